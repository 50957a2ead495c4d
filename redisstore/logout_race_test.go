package redisstore_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
)

// logoutDuringRefresh forwards requests, and logs the launch out (as another replica would) while
// a refresh_token request is on its way to the server.
type logoutDuringRefresh struct {
	base   http.RoundTripper
	logout func()
}

func (l logoutDuringRefresh) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte("grant_type=refresh_token")) {
			l.logout()
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return l.base.RoundTrip(r)
}

// TestRedisRefreshDoesNotResurrect: a launch logged out while its refresh is in flight stays logged
// out, even when the refreshing replica's clock is behind the one that launched it (an NTP step, a
// skewed replica): the refresh's write only updates an existing launch (SET XX), and the refresh
// ends with ErrReauthRequired (REF-06), not with fresh tokens for a launch the user ended.
func TestRedisRefreshDoesNotResurrect(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{})
	var key string
	deleter := openStore(t, c.redis, redisstore.Options{}) // deletes need no encryption key
	cfg := c.cfgs[0]
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: logoutDuringRefresh{base: http.DefaultTransport,
		logout: func() { _ = deleter.Sessions().Delete(t.Context(), key) }}}

	b := c.newBrowser(t)
	p, err := c.ehrLaunch(t, b, c.srv.Sandbox.Patients()[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, c.proxy.URL+"/?handle="+p.Handle, nil)
	for _, ck := range b.Jar.Cookies(r.URL) {
		r.AddCookie(ck)
	}
	s, err := cfg.Session(r)
	if err != nil {
		t.Fatal(err)
	}
	key = s.Key()

	c.clock.advance(-time.Hour) // this replica's clock is behind the launch's
	err = s.Refresh(t.Context())
	if !errors.Is(err, launch.ErrReauthRequired) {
		t.Errorf("Refresh after a logout = %v, want ErrReauthRequired", err)
	}
	if n := c.redis.raw(t).Exists(t.Context(), redisKey("session", key)).Val(); n != 0 {
		t.Error("the logged-out launch is back in Redis")
	}
}
