package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// redisLogLines counts the lines go-redis logged during the tests (quietLogger).
var redisLogLines atomic.Int64

// quietLogger swallows go-redis's own log lines ("redis: … pool.go: …" during the outage tests),
// which would otherwise clutter the test and CI output on stderr. With `go test -v` they are kept.
type quietLogger struct{ verbose bool }

func (l quietLogger) Printf(_ context.Context, format string, v ...any) {
	redisLogLines.Add(1)
	if l.verbose {
		fmt.Fprintf(os.Stderr, "go-redis: "+format+"\n", v...)
	}
}

// TestMain installs quietLogger once for the test binary. go-redis has a single process-wide logger,
// which a library must leave to the program (the redisstore package never sets it); a test binary
// is a program.
func TestMain(m *testing.M) {
	verbose := false
	for _, a := range os.Args[1:] {
		if a == "-test.v" || a == "-test.v=true" {
			verbose = true
		}
	}
	redis.SetLogger(quietLogger{verbose: verbose})
	os.Exit(m.Run())
}

// TestGoRedisLogsQuiet: a line go-redis logs reaches the logger of TestMain, not stderr.
func TestGoRedisLogsQuiet(t *testing.T) {
	before := redisLogLines.Load()
	// An unknown client-side cache strategy makes go-redis log a warning as the client is built.
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ClientSideCacheStrategy: 99})
	defer c.Close()
	if redisLogLines.Load() == before {
		t.Fatal("go-redis logged nothing through the TestMain logger (is it still the default stderr logger?)")
	}
}
