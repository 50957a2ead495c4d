package launch

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeySetRefetchRateLimit: an unknown kid re-fetches the JWK Set at most once per 30 s, failed
// re-fetches included; a request that verified with an older set than the cached one uses the
// cached one without a fetch (JWKS-05).
func TestKeySetRefetchRateLimit(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)
	var offset atomic.Int64
	rt := testRuntime(t, func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	ctx, hc, uri := t.Context(), srv.Client(), srv.URL+"/jwks"
	step := func(want int32, what string) {
		t.Helper()
		if got := hits.Load(); got != want {
			t.Fatalf("%s: %d fetches, want %d", what, got, want)
		}
	}

	first, err := rt.keySet(ctx, hc, uri)
	if err != nil {
		t.Fatal(err)
	}
	step(1, "first use")
	second, ok, err := rt.refetchKeySet(ctx, hc, uri, first)
	if err != nil || !ok || second == first {
		t.Fatalf("re-fetch = %v %v", ok, err)
	}
	step(2, "unknown kid")
	if _, ok, err := rt.refetchKeySet(ctx, hc, uri, second); ok || err != nil {
		t.Errorf("second unknown kid within 30 s: ok=%v err=%v, want rate-limited", ok, err)
	}
	step(2, "rate-limited")
	if got, ok, _ := rt.refetchKeySet(ctx, hc, uri, first); !ok || got != second {
		t.Error("a request holding the older set did not get the newer one")
	}
	step(2, "older set")

	offset.Add(int64(31 * time.Second))
	failing.Store(true)
	if _, ok, err := rt.refetchKeySet(ctx, hc, uri, second); ok || err == nil {
		t.Errorf("failed re-fetch: ok=%v err=%v", ok, err)
	}
	step(3, "after the interval")
	if _, ok, err := rt.refetchKeySet(ctx, hc, uri, second); ok || err != nil {
		t.Errorf("after a failed re-fetch: ok=%v err=%v, want rate-limited", ok, err)
	}
	step(3, "a failed re-fetch counts")
	if got, err := rt.keySet(ctx, hc, uri); err != nil || got != second {
		t.Errorf("the cached set was lost by a failed re-fetch: %v", err)
	}
	step(3, "cached")
}
