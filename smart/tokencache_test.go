package smart

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// cacheClock is a settable clock for cache tests.
type cacheClock struct{ ns atomic.Int64 }

func newCacheClock() *cacheClock {
	c := &cacheClock{}
	c.ns.Store(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *cacheClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *cacheClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// countingFetch returns tokens "tok-1", "tok-2", … with the given lifetime from clk.
type countingFetch struct {
	clk   *cacheClock
	life  time.Duration
	calls atomic.Int64
}

func (f *countingFetch) fetch(ctx context.Context) (*Token, error) {
	n := f.calls.Add(1)
	ot := &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer"}
	if f.life > 0 {
		ot.Expiry = f.clk.Now().Add(f.life)
		ot.ExpiresIn = int64(f.life / time.Second)
	}
	return &Token{Token: ot, Scope: "system/*.rs"}, nil
}

func TestCacheReusesTokenUntilMargin(t *testing.T) { // BS-05, CONV-4
	t.Parallel()
	tests := []struct {
		name     string
		life     time.Duration
		opts     CacheOptions
		reusedAt time.Duration // still served from the cache
		renewAt  time.Duration // renewed
	}{
		{"300s token: 10% margin (30 s)", 300 * time.Second, CacheOptions{}, 269 * time.Second, 271 * time.Second},
		{"1h token: 60 s margin", time.Hour, CacheOptions{}, time.Hour - 61*time.Second, time.Hour - 59*time.Second},
		{"custom margin 5 s", 300 * time.Second, CacheOptions{Margin: 5 * time.Second}, 294 * time.Second, 296 * time.Second},
		{"custom fraction 50%", 100 * time.Second, CacheOptions{MarginFraction: 0.5}, 49 * time.Second, 51 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newCacheClock()
			f := &countingFetch{clk: clk, life: tt.life}
			tt.opts.Now = clk.Now
			c := NewCachingTokenSource(f.fetch, tt.opts)
			first, err := c.TokenContext(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(tt.reusedAt)
			again, err := c.Token()
			if err != nil {
				t.Fatal(err)
			}
			if again != first || f.calls.Load() != 1 {
				t.Fatalf("at +%v: got %q after %d fetches, want the cached token", tt.reusedAt, again.AccessToken, f.calls.Load())
			}
			clk.Advance(tt.renewAt - tt.reusedAt)
			renewed, err := c.TokenContext(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if renewed.AccessToken != "tok-2" || f.calls.Load() != 2 {
				t.Fatalf("at +%v: got %q after %d fetches, want a renewed token", tt.renewAt, renewed.AccessToken, f.calls.Load())
			}
		})
	}
}

func TestCacheRealClockExpiry(t *testing.T) { // the monotonic fast path renews too
	t.Parallel()
	var calls atomic.Int64
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		n := calls.Add(1)
		return &Token{Token: &oauth2.Token{AccessToken: fmt.Sprintf("real-%d", n), Expiry: time.Now().Add(time.Second)}}, nil
	}, CacheOptions{})
	for range 3 {
		if tok, err := c.TokenContext(t.Context()); err != nil || tok.AccessToken != "real-1" {
			t.Fatalf("%v, %v", tok, err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // past the renewal point (0.9 s) even on a loaded machine
	if tok, err := c.TokenContext(t.Context()); err != nil || tok.AccessToken != "real-2" {
		t.Fatalf("after expiry: %v, %v", tok, err)
	}
}

func TestCacheSingleFlight(t *testing.T) { // BS-05: concurrent callers share one fetch
	t.Parallel()
	clk := newCacheClock()
	release := make(chan struct{})
	var calls atomic.Int64
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		calls.Add(1)
		<-release
		return &Token{Token: &oauth2.Token{AccessToken: "shared", Expiry: clk.Now().Add(time.Hour)}}, nil
	}, CacheOptions{Now: clk.Now})

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			tok, err := c.TokenContext(t.Context())
			if err == nil && tok.AccessToken != "shared" {
				err = fmt.Errorf("got %q", tok.AccessToken)
			}
			errs <- err
		})
	}
	time.Sleep(20 * time.Millisecond) // let the callers pile up behind the fetch
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestCacheFailedFetchSharedNotCached(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	boom := errors.New("token endpoint down")
	release := make(chan struct{})
	var calls atomic.Int64
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		if calls.Add(1) == 1 {
			<-release
			return nil, boom
		}
		return &Token{Token: &oauth2.Token{AccessToken: "ok", Expiry: clk.Now().Add(time.Hour)}}, nil
	}, CacheOptions{Now: clk.Now})

	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Go(func() {
			if _, err := c.TokenContext(t.Context()); errors.Is(err, boom) {
				failed.Add(1)
			}
		})
	}
	waitForWaiters(t, c, 20) // a caller arriving after the failure would rightly fetch again
	close(release)
	wg.Wait()
	if calls.Load() != 1 || failed.Load() != 20 {
		t.Fatalf("fetches = %d, callers failed = %d; want the 20 waiters to share one failed fetch", calls.Load(), failed.Load())
	}
	tok, err := c.TokenContext(t.Context())
	if err != nil || tok.AccessToken != "ok" {
		t.Fatalf("after a failure the next caller must fetch again: %v, %v", tok, err)
	}
}

// waitForWaiters waits until n callers wait for c's fetch in flight, so that a test does not depend
// on how fast a loaded machine schedules them.
func waitForWaiters(t *testing.T, c *CachingTokenSource, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := 0
		if c.flight != nil {
			got = c.flight.waiters
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait for the fetch, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheWaiterHonoursItsOwnContext(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	release := make(chan struct{})
	fetchCtxErr := make(chan error, 1)
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		select {
		case <-release:
			fetchCtxErr <- nil
			return &Token{Token: &oauth2.Token{AccessToken: "late", Expiry: clk.Now().Add(time.Hour)}}, nil
		case <-ctx.Done():
			fetchCtxErr <- ctx.Err()
			return nil, ctx.Err()
		}
	}, CacheOptions{Now: clk.Now})

	patient := make(chan *oauth2.Token, 1)
	go func() {
		tok, _ := c.TokenContext(t.Context())
		patient <- tok
	}()
	waitForWaiters(t, c, 1) // the patient caller waits before the impatient one comes and goes
	short, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.TokenContext(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("impatient caller waited %v", d)
	}
	close(release) // the patient caller still waits: the fetch must not have been cancelled
	if tok := <-patient; tok == nil || tok.AccessToken != "late" {
		t.Fatalf("patient caller got %v", tok)
	}
	if err := <-fetchCtxErr; err != nil {
		t.Fatalf("fetch was cancelled although a caller still waited: %v", err)
	}
}

func TestCacheFetchCancelledWhenEveryWaiterLeaves(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	fetchCtxErr := make(chan error, 1)
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		<-ctx.Done()
		fetchCtxErr <- ctx.Err()
		return nil, ctx.Err()
	}, CacheOptions{Now: clk.Now})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.TokenContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	select {
	case err := <-fetchCtxErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("fetch ctx err = %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("abandoned fetch was never cancelled (goroutine leak)")
	}
}

func TestCacheTokenWithoutExpiryNeverCached(t *testing.T) { // CONV-4
	t.Parallel()
	f := &countingFetch{clk: newCacheClock()} // life 0: no expiry
	c := NewCachingTokenSource(f.fetch, CacheOptions{Now: f.clk.Now})
	for range 3 {
		if _, err := c.TokenContext(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if f.calls.Load() != 3 {
		t.Fatalf("fetches = %d, want 3 (a token without expiry is never cached)", f.calls.Load())
	}
}

func TestCacheInvalidate(t *testing.T) { // CONV-3: 401 → invalidate
	t.Parallel()
	clk := newCacheClock()
	f := &countingFetch{clk: clk, life: time.Hour}
	c := NewCachingTokenSource(f.fetch, CacheOptions{Now: clk.Now})
	first, _ := c.TokenContext(t.Context())
	c.Invalidate(&oauth2.Token{AccessToken: "someone-else"})
	c.Invalidate(nil)
	if again, _ := c.TokenContext(t.Context()); again != first {
		t.Fatal("invalidating another token dropped the cached one")
	}
	c.Invalidate(first)
	renewed, err := c.TokenContext(t.Context())
	if err != nil || renewed.AccessToken != "tok-2" {
		t.Fatalf("after Invalidate: %v, %v; want tok-2", renewed, err)
	}
}

func TestCacheSharedStore(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	f := &countingFetch{clk: clk, life: time.Hour}
	store := &MemoryStore{}
	a := NewCachingTokenSource(f.fetch, CacheOptions{Key: "k", Store: store, Now: clk.Now})
	b := NewCachingTokenSource(f.fetch, CacheOptions{Key: "k", Store: store, Now: clk.Now})
	ta, err := a.TokenContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.TokenContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ta.AccessToken != tb.AccessToken || f.calls.Load() != 1 {
		t.Fatalf("two sources on one store: %q, %q after %d fetches; want one shared token", ta.AccessToken, tb.AccessToken, f.calls.Load())
	}
	// A token refused by the resource server is not taken back from the store.
	b.Invalidate(tb)
	tb2, err := b.TokenContext(t.Context())
	if err != nil || tb2.AccessToken == tb.AccessToken {
		t.Fatalf("after Invalidate the store's copy was reused: %v, %v", tb2, err)
	}
	// Nor is a store entry inside the refresh margin.
	other := NewCachingTokenSource(f.fetch, CacheOptions{Key: "k2", Store: store, Now: clk.Now})
	_ = store.Store(t.Context(), "k2", &Token{Token: &oauth2.Token{AccessToken: "stale", Expiry: clk.Now().Add(10 * time.Second), ExpiresIn: 3600}})
	if tok, _ := other.TokenContext(t.Context()); tok.AccessToken == "stale" {
		t.Fatal("a stored token about to expire was served")
	}
}

// brokenStore fails every call.
type brokenStore struct{}

func (brokenStore) Load(context.Context, string) (*Token, error) {
	return nil, errors.New("redis down")
}
func (brokenStore) Store(context.Context, string, *Token) error { return errors.New("redis down") }

func TestCacheStoreErrorsDegrade(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	f := &countingFetch{clk: clk, life: time.Hour}
	var reported atomic.Int64
	c := NewCachingTokenSource(f.fetch, CacheOptions{Key: "k", Store: brokenStore{}, Now: clk.Now,
		OnStoreError: func(error) { reported.Add(1) }})
	for range 2 {
		if tok, err := c.TokenContext(t.Context()); err != nil || tok.AccessToken != "tok-1" {
			t.Fatalf("%v, %v", tok, err)
		}
	}
	if reported.Load() != 2 || f.calls.Load() != 1 {
		t.Fatalf("reported %d store errors after %d fetches; want 2 and 1", reported.Load(), f.calls.Load())
	}
}

// chanLocker is an in-process Locker for tests.
type chanLocker struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
	taken atomic.Int64
}

func (l *chanLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]chan struct{}{}
	}
	ch, ok := l.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		l.locks[key] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		l.taken.Add(1)
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestCacheLockerSingleFlightAcrossSources(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	var calls atomic.Int64
	fetch := func(ctx context.Context) (*Token, error) {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond)
		return &Token{Token: &oauth2.Token{AccessToken: "one", Expiry: clk.Now().Add(time.Hour)}}, nil
	}
	store, locker := &MemoryStore{}, &chanLocker{}
	var wg sync.WaitGroup
	for range 8 { // eight "replicas"
		src := NewCachingTokenSource(fetch, CacheOptions{Key: "k", Store: store, Locker: locker, Now: clk.Now})
		wg.Go(func() {
			if tok, err := src.TokenContext(t.Context()); err != nil || tok.AccessToken != "one" {
				t.Errorf("%v, %v", tok, err)
			}
		})
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("fetches across 8 sources = %d, want 1", calls.Load())
	}
}

func TestCacheFetchWithoutToken(t *testing.T) {
	t.Parallel()
	for name, fetch := range map[string]func(context.Context) (*Token, error){
		"nil token":    func(context.Context) (*Token, error) { return nil, nil },
		"nil oauth2":   func(context.Context) (*Token, error) { return &Token{}, nil },
		"empty access": func(context.Context) (*Token, error) { return &Token{Token: &oauth2.Token{}}, nil },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := NewCachingTokenSource(fetch, CacheOptions{})
			if _, err := c.TokenContext(t.Context()); !errors.Is(err, ErrNoToken) {
				t.Fatalf("err = %v, want ErrNoToken", err)
			}
		})
	}
}

func TestCacheCurrentReturnsSMARTToken(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	f := &countingFetch{clk: clk, life: time.Hour}
	c := NewCachingTokenSource(f.fetch, CacheOptions{Now: clk.Now})
	tok, err := c.Current(t.Context())
	if err != nil || tok.Scope != "system/*.rs" {
		t.Fatalf("%v, %v", tok, err)
	}
	if again, _ := c.Current(t.Context()); again != tok || f.calls.Load() != 1 {
		t.Fatal("Current did not use the cache")
	}
}

// BenchmarkCachedToken measures the cached path (CONV-9: ≤ 100 ns/op, 0 allocs).
func BenchmarkCachedToken(b *testing.B) {
	f := &countingFetch{clk: newCacheClock(), life: time.Hour}
	c := NewCachingTokenSource(f.fetch, CacheOptions{}) // real clock
	f.clk.ns.Store(time.Now().UnixNano())
	if _, err := c.Token(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
	if f.calls.Load() != 1 {
		b.Fatalf("fetches = %d", f.calls.Load())
	}
}

// TestCacheNoSecondFetchWhileAbandonedOneEnds: a fetch every waiter left is cancelled, but it takes a
// moment to return (an HTTP request being torn down); a caller arriving meanwhile must wait for it,
// not start a second token request beside it (BS-05: one fetch at a time).
func TestCacheNoSecondFetchWhileAbandonedOneEnds(t *testing.T) {
	t.Parallel()
	clk := newCacheClock()
	var running, maxRunning, calls atomic.Int64
	teardown, tearing := make(chan struct{}), make(chan struct{})
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		if calls.Add(1) == 1 {
			<-ctx.Done()
			close(tearing)
			<-teardown // still tearing down when the next caller arrives
			return nil, ctx.Err()
		}
		return &Token{Token: &oauth2.Token{AccessToken: "second", Expiry: clk.Now().Add(time.Hour)}}, nil
	}, CacheOptions{Now: clk.Now})

	short, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.TokenContext(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient caller: err = %v, want DeadlineExceeded", err)
	}
	<-tearing
	got := make(chan error, 1)
	go func() {
		tok, err := c.TokenContext(t.Context())
		if err == nil && tok.AccessToken != "second" {
			err = fmt.Errorf("token %q, want second", tok.AccessToken)
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond) // the next caller arrives while the first fetch is tearing down
	close(teardown)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if m := maxRunning.Load(); m != 1 {
		t.Fatalf("%d fetches ran at once, want 1", m)
	}

	// A waiter for the abandoned fetch still honours its own context.
	c2 := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		<-ctx.Done()
		time.Sleep(5 * time.Second) // a fetch slow to wind down
		return nil, ctx.Err()
	}, CacheOptions{Now: clk.Now})
	short2, cancel2 := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel2()
	c2.TokenContext(short2)
	short3, cancel3 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel3()
	start := time.Now()
	if _, err := c2.TokenContext(short3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter for an abandoned fetch: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waiter for an abandoned fetch waited %v past its deadline", d)
	}
}
