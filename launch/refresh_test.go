package launch_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/launch"
)

func (e *env) refreshes() int64 { return e.sb.Count("token_requests:refresh_token") }

// TestRefreshRotation: an access token about to expire is refreshed before use; the rotated refresh
// token replaces the old one (the sandbox revokes the family on reuse, so a second refresh proves
// it), and the launch context survives (REF-01, REF-03, REF-05, TOK-15). Every client type
// authenticates the refresh like the exchange.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"none", "client_secret_basic", "private_key_jwt"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{authMethod: method})
			b := newBrowser(t)
			p := b.launchOK(t, e, e.ehrLaunchURL(""))
			for i := 1; i <= 2; i++ {
				e.advance(59*time.Minute + 30*time.Second) // inside the refresh margin of a 1 h token
				status, body, _ := b.get(t, e.app.URL+"/patient?handle="+p.Handle)
				if status != http.StatusOK {
					t.Fatalf("read %d after refresh: %d %s (%v)", i, status, body, e.lastErr())
				}
				if n := e.refreshes(); n != int64(i) {
					t.Fatalf("refreshes = %d, want %d", n, i)
				}
			}
			_, body, _ := b.get(t, e.app.URL+"/?handle="+p.Handle)
			if !strings.Contains(body, `"Patient":"`+p.Patient+`"`) {
				t.Errorf("context lost after refresh: %s", body)
			}
		})
	}
}

// TestRefreshSingleFlight: 50 concurrent requests of one launch with an expiring token cause one
// refresh (REF-04).
func TestRefreshSingleFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	e.advance(59*time.Minute + 30*time.Second)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			resp, err := b.Get(e.app.URL + "/patient?handle=" + p.Handle)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d (%v)", resp.StatusCode, e.lastErr())
			}
		})
	}
	wg.Wait()
	if n := e.refreshes(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// TestRefreshAfter401: the server stops accepting the token before its expiry; the FHIR call gets a
// 401, the token is refreshed once and the call retried once (REF-07, CONV-3).
func TestRefreshAfter401(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	e.sb.ExpireAccessTokens()
	status, body, _ := b.get(t, e.app.URL+"/patient?handle="+p.Handle)
	if status != http.StatusOK || e.refreshes() != 1 {
		t.Errorf("after 401: status %d refreshes %d: %s", status, e.refreshes(), body)
	}
	// The next request of the launch uses the new token without another refresh.
	status, _, _ = b.get(t, e.app.URL+"/patient?handle="+p.Handle)
	if status != http.StatusOK || e.refreshes() != 1 {
		t.Errorf("next request: status %d refreshes %d", status, e.refreshes())
	}
}

// TestRefreshInvalidGrant: a refused refresh clears the tokens and asks for a new launch, without
// retrying (REF-06).
func TestRefreshInvalidGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	e.sb.Fault("token_expired_refresh_token", 1, e.clientID)
	before := e.sb.Count("token_requests")
	resp, err := b.PostForm(e.app.URL+"/refresh", url.Values{"handle": {p.Handle}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !errors.Is(e.lastErr(), launch.ErrReauthRequired) || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d err %v, want ErrReauthRequired", resp.StatusCode, e.lastErr())
	}
	if n := e.sb.Count("token_requests") - before; n != 1 {
		t.Errorf("%d token requests, want exactly 1", n)
	}
	status, _, _ := b.get(t, e.app.URL+"/?handle="+p.Handle)
	if status != http.StatusUnauthorized || !errors.Is(e.lastErr(), launch.ErrNoSession) {
		t.Errorf("tokens not cleared: status %d err %v", status, e.lastErr())
	}
}

// TestRefreshWithoutOfflineAccess: refresh is decided by the refresh token, not the scope (REF-02),
// and an online_access token dies with the user's EHR session (REF-08).
func TestRefreshWithoutOfflineAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{scopes: []string{"launch", "online_access", "patient/*.rs"}})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	if strings.Contains(p.Scopes, "offline_access") || !p.Refreshable {
		t.Fatalf("scopes %q refreshable %v", p.Scopes, p.Refreshable)
	}
	resp, err := b.PostForm(e.app.URL+"/refresh", url.Values{"handle": {p.Handle}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e.refreshes() != 1 {
		t.Fatalf("refresh: %d (%v)", resp.StatusCode, e.lastErr())
	}
	e.sb.EndUserSessions()
	resp, err = b.PostForm(e.app.URL+"/refresh", url.Values{"handle": {p.Handle}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !errors.Is(e.lastErr(), launch.ErrReauthRequired) {
		t.Errorf("after the EHR session ended: %d %v", resp.StatusCode, e.lastErr())
	}
}

// TestRefreshScopeSubset: a narrower refresh is sent, a wider one refused before sending (SCOPE-13).
func TestRefreshScopeSubset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cfg := e.cfg
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.app.URL+"/?handle="+p.Handle, nil)
	for _, c := range b.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	s, err := cfg.Session(req)
	if err != nil {
		t.Fatal(err)
	}
	before := e.sb.Count("token_requests")
	if err := s.Refresh(t.Context(), "patient/*.cruds"); !errors.Is(err, launch.ErrScopeNotGranted) {
		t.Errorf("wider scope: %v", err)
	}
	if e.sb.Count("token_requests") != before {
		t.Error("a wider refresh was sent")
	}
	if err := s.Refresh(t.Context(), "patient/Patient.rs"); err != nil {
		t.Errorf("narrower scope: %v", err)
	}
	if !s.Scopes.Has("patient/Patient.rs") || s.Scopes.Has("patient/Observation.rs") {
		t.Errorf("scopes after narrowing: %s", s.Scopes)
	}
}
