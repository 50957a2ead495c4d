//go:build race

package bulk

// raceEnabled: the race detector changes escape analysis, so allocation counts differ.
const raceEnabled = true
