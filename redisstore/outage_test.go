package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
	"github.com/smartfhir/smartfhir/smart"
)

const redisPassword = "PASSWORD-secret-redis-acl"

// storeOps is every call of a Store, each with its own keys.
func storeOps(st *redisstore.Store) []struct {
	name string
	run  func(ctx context.Context) error
} {
	now := time.Now()
	return []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"ping", st.Ping},
		{"save session", func(ctx context.Context) error { return st.Sessions().Save(ctx, "s", newTokenSet(now)) }},
		{"load session", func(ctx context.Context) error {
			_, err := st.Sessions().Load(ctx, "s")
			if errors.Is(err, launch.ErrNoSession) {
				return nil // absent is an answer
			}
			return err
		}},
		{"delete session", func(ctx context.Context) error { return st.Sessions().Delete(ctx, "gone") }},
		{"save state", func(ctx context.Context) error { return st.States().Save(ctx, secretState, newRecord(now)) }},
		{"take state", func(ctx context.Context) error {
			_, err := st.States().Take(ctx, "never-saved")
			if errors.Is(err, launch.ErrStateUnknown) {
				return nil
			}
			return err
		}},
		{"store token", func(ctx context.Context) error {
			return st.Tokens().Store(ctx, "t", newToken(secretAT, secretRT, now.Add(time.Hour)))
		}},
		{"load token", func(ctx context.Context) error { _, err := st.Tokens().Load(ctx, "t"); return err }},
		{"lock", func(ctx context.Context) error {
			unlock, err := st.Lock(ctx, "l", time.Second)
			if err == nil {
				unlock()
			}
			return err
		}},
	}
}

// checkUnavailable asserts that err is a typed Redis failure that names its operation and leaks
// nothing.
func checkUnavailable(t *testing.T, op string, err error) {
	t.Helper()
	var re *redisstore.Error
	if !errors.Is(err, redisstore.ErrUnavailable) || !errors.As(err, &re) {
		t.Errorf("%s: %v, want an *Error wrapping ErrUnavailable", op, err)
		return
	}
	for _, s := range []string{redisPassword, secretAT, secretRT, secretVerifier, secretState, secretBrowser} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("%s: error text leaks %q: %v", op, s, err)
		}
	}
}

// TestRedisOutage: with Redis killed, then hung (SIGSTOP), every call fails within its timeout with a
// typed error (no panic, no secret, nothing half-written), and the same Store works again once Redis
// is back (CONV-2 timeouts on every call).
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--requirepass", redisPassword)
	const timeout = 300 * time.Millisecond
	st, err := redisstore.Open(t.Context(), "redis://:"+redisPassword+"@"+r.addr(),
		redisstore.Options{Keys: [][]byte{newKey()}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ops := storeOps(st)
	allWork := func(phase string) {
		t.Helper()
		for _, op := range ops {
			if err := op.run(t.Context()); err != nil {
				t.Errorf("%s: %s: %v", phase, op.name, err)
			}
		}
	}
	allFail := func(phase string, wantTimeout bool) {
		t.Helper()
		for _, op := range ops {
			start := time.Now()
			err := op.run(t.Context())
			if d := time.Since(start); d > timeout+500*time.Millisecond {
				t.Errorf("%s: %s took %v, beyond its %v timeout", phase, op.name, d, timeout)
			}
			checkUnavailable(t, phase+": "+op.name, err)
			if wantTimeout && !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
				t.Errorf("%s: %s: %v, want a timeout", phase, op.name, err)
			}
		}
	}
	recovers := func(phase string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for st.Ping(t.Context()) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		allWork(phase)
	}

	allWork("up")
	r.stop()
	allFail("killed", false)
	r.start()
	recovers("restarted")

	r.pause()
	allFail("hung", true)
	r.resume()
	recovers("resumed")
}

// TestRedisOutageUnderLoad: goroutines keep calling the Store while Redis is killed and restarted
// under them: every error is a typed one, nothing panics, and all calls succeed afterwards.
func TestRedisOutageUnderLoad(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{Timeout: 300 * time.Millisecond})
	ops := storeOps(st)
	stop := make(chan struct{})
	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				op := ops[i%len(ops)]
				calls.Add(1)
				if err := op.run(t.Context()); err != nil {
					failures.Add(1)
					checkUnavailable(t, op.name, err)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	r.stop()
	time.Sleep(500 * time.Millisecond)
	r.start()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() == 0 {
		t.Errorf("no call failed in %d while Redis was down: the outage did not happen", calls.Load())
	}
	for _, op := range ops {
		if err := op.run(t.Context()); err != nil {
			t.Errorf("after the outage: %s: %v", op.name, err)
		}
	}
}

// TestRedisCacheDegrades: a smart.CachingTokenSource over a Store keeps serving tokens while Redis is
// down (each process fetching for itself), reports the failures as ErrUnavailable through
// OnStoreError, and shares tokens again once Redis is back.
func TestRedisCacheDegrades(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{Timeout: 300 * time.Millisecond})
	var fetches atomic.Int64
	var reported []error
	var mu sync.Mutex
	fetch := func(context.Context) (*smart.Token, error) {
		n := fetches.Add(1)
		return newToken(fmt.Sprintf("AT-%d", n), "", time.Now().Add(time.Hour)), nil
	}
	newSource := func() *smart.CachingTokenSource {
		return smart.NewCachingTokenSource(fetch, smart.CacheOptions{Key: "svc", Store: st.Tokens(), Locker: st,
			OnStoreError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }})
	}
	r.stop()
	tok, err := newSource().TokenContext(t.Context())
	if err != nil || tok.AccessToken != "AT-1" {
		t.Fatalf("token with Redis down: %v, %v", tok, err)
	}
	mu.Lock()
	if len(reported) == 0 {
		t.Error("Redis failures were not reported")
	}
	for _, err := range reported {
		checkUnavailable(t, "OnStoreError", err)
	}
	mu.Unlock()

	r.start()
	for range 50 {
		if st.Ping(t.Context()) == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, err := newSource().TokenContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := newSource().TokenContext(t.Context())
	if err != nil || b.AccessToken != a.AccessToken || fetches.Load() != 2 {
		t.Fatalf("after recovery: %q then %q (%v), %d fetches; want one shared token", a.AccessToken, b.AccessToken, err, fetches.Load())
	}
}
