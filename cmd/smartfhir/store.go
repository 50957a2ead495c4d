package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
)

// storeKeysEnv holds the store's encryption keys: never a flag, so that they stay out of process
// listings and shell history.
const storeKeysEnv = "SMARTFHIR_STORE_KEYS"

// storeFlag adds --store to a command whose state several processes may share (SMARTFHIR_STORE).
func (g *globals) storeFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&g.store, "store", "", "Redis URL (redis://, rediss://, unix://) to share tokens, launches and locks between processes (a URL with a password only from SMARTFHIR_STORE); keys from "+storeKeysEnv)
}

// openStore connects to the --store Redis, with the AES-256-GCM keys of SMARTFHIR_STORE_KEYS, or
// returns nil without --store. The store is opened once per run and closed when the run ends.
//
// go-redis logs on its own ("redis: … pool.go: …" while Redis is down) through one logger for the
// whole process, which redisstore, a library, leaves alone. The CLI runs one command a process, so it
// sets that logger here: go-redis's lines go to the command's stderr with --verbose and nowhere
// otherwise (the store's errors are reported by the command itself).
func (g *globals) openStore(ctx context.Context) (*redisstore.Store, error) {
	if g.store == "" || g.st != nil {
		return g.st, nil
	}
	// A password in a flag value shows in process listings and shell history (CONV-6: no secret from
	// a flag value); from SMARTFHIR_STORE it does not.
	if u, err := url.Parse(g.store); err == nil && u.User != nil && g.store != g.getenv("SMARTFHIR_STORE") {
		if _, hasPassword := u.User.Password(); hasPassword {
			return nil, usagef("--store: the URL holds a password: set SMARTFHIR_STORE instead of the flag, so that it stays out of process listings and shell history")
		}
	}
	keys, err := redisstore.ParseKeys(g.getenv(storeKeysEnv))
	if err != nil {
		return nil, usagef("--store needs %s (base64 of 32 random bytes: head -c 32 /dev/urandom | base64): %v", storeKeysEnv, err)
	}
	redis.SetLogger(g.redisLogger())
	st, err := redisstore.Open(ctx, g.store, redisstore.Options{Keys: keys, InsecureAllowPlaintext: g.insecureHTTP})
	if errors.Is(err, redisstore.ErrConfig) {
		return nil, usagef("--store: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	g.st = st
	g.closers = append(g.closers, func() { _ = st.Close() })
	return st, nil
}

// shareTokens makes bc keep its tokens in the --store, fetched by one process at a time (its Locker),
// so that parallel runs share one token instead of each asking for its own. Without --store it does
// nothing.
func (g *globals) shareTokens(ctx context.Context, bc *backend.Config) error {
	st, err := g.openStore(ctx)
	if err != nil || st == nil {
		return err
	}
	bc.Store, bc.Locker = st.Tokens(), st
	return nil
}

// shareLaunches makes cfg keep its launch states and sessions in the --store, refresh under its
// lock, and answer 503 while Redis is unavailable. Without --store it does nothing.
func (g *globals) shareLaunches(ctx context.Context, cfg *launch.Config) error {
	st, err := g.openStore(ctx)
	if err != nil || st == nil {
		return err
	}
	cfg.StateStore, cfg.SessionStore, cfg.Locker = st.States(), st.Sessions(), st
	cfg.OnError = redisstore.ErrorHandler(cfg.OnError)
	return nil
}

// redisLogger is the go-redis logger of the run: the command's stderr with --verbose, else silence.
func (g *globals) redisLogger() redisLog {
	if g.verbose {
		return redisLog{w: g.stderr}
	}
	return redisLog{}
}

// redisLog writes go-redis's log lines, one line each with control characters escaped, to w (nil:
// it drops them).
type redisLog struct{ w io.Writer }

// Printf implements go-redis's logger.
func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	if l.w != nil {
		fmt.Fprintf(l.w, "smartfhir: store: %s\n", oneLine(fmt.Sprintf(format, v...)))
	}
}
