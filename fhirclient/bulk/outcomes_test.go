package bulk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BULK-27: the error files quoted in Result.Issues are read with the Client's MaxLine, not the
// default: a line over the limit is not read.
func TestCollectOutcomesHonoursMaxLine(t *testing.T) {
	t.Parallel()
	short := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"short"}]}`
	long := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"` + strings.Repeat("x", 400) + `"}]}`
	tests := map[string]struct {
		maxLine int64
		want    int
	}{
		"within the limit": {maxLine: 4096, want: 2},
		"over the limit":   {maxLine: 256, want: 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "err.ndjson"), []byte(short+"\n"+long+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := &run{e: &Exporter{Dir: dir}, c: &Client{MaxLine: tt.maxLine}}
			res := &Result{Files: []FileEvent{{Kind: KindError, Name: "err.ndjson"}}}
			r.collectOutcomes(res)
			if len(res.Issues) != tt.want {
				t.Errorf("issues = %d, want %d: %q", len(res.Issues), tt.want, res.Issues)
			}
		})
	}
}
