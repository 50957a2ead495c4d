package launch_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIDTokenKeyRotationConcurrent: after the server rotates its id_token key, launches that
// complete while the one permitted re-fetch of the JWK Set is in flight wait for it and succeed;
// the rate limit still allows a single re-fetch (JWKS-05). Before, they failed with "no key" (their
// code already redeemed), because the re-fetch slot was taken but its keys were not yet there.
func TestIDTokenKeyRotationConcurrent(t *testing.T) {
	t.Parallel()
	var fetches atomic.Int32
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	e := newEnv(t, envOptions{wrap: func(sb http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/auth/jwks" && fetches.Add(1) > 1 {
				arrived <- struct{}{}
				<-release // the re-fetch after the rotation is slow
			}
			sb.ServeHTTP(w, r)
		})
	}})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	newBrowser(t).launchOK(t, e, e.ehrLaunchURL("")) // the app caches the JWK Set

	const n = 5
	browsers := make([]*browser, n+1)
	callbacks := make([]string, n+1)
	for i := range browsers {
		browsers[i] = newBrowser(t)
		callbacks[i] = browsers[i].callbackURL(t, e.ehrLaunchURL(""))
	}
	e.sb.Fault("idtoken_unknown_kid", 1, e.clientID) // the next id_token is signed with a new key
	status := make([]int, n+1)
	var wg sync.WaitGroup
	wg.Go(func() { status[0], _, _ = browsers[0].get(t, callbacks[0]) })
	<-arrived // the key was rotated and the app's one re-fetch is in flight
	for i := 1; i <= n; i++ {
		wg.Go(func() { status[i], _, _ = browsers[i].get(t, callbacks[i]) })
	}
	time.Sleep(300 * time.Millisecond) // the others meet the unknown kid meanwhile
	once.Do(func() { close(release) })
	wg.Wait()
	for i, s := range status {
		if s != http.StatusOK {
			t.Errorf("launch %d: status %d", i, s)
		}
	}
	e.mu.Lock()
	if len(e.errs) > 0 {
		t.Errorf("errors: %v", e.errs)
	}
	e.mu.Unlock()
	if got := fetches.Load(); got != 2 {
		t.Errorf("%d JWK Set fetches, want 2 (the first and one re-fetch)", got)
	}
}
