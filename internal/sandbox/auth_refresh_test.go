package sandbox

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// refresh sends a refresh_token grant as the public client c.
func (h *harness) refresh(c Client, rt string, extra url.Values) (*http.Response, map[string]any) {
	h.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.ID}}
	for k, v := range extra {
		form[k] = v
	}
	return h.post("/auth/token", form)
}

// tokens runs a standalone authorization for c and returns the token response.
func (h *harness) tokens(c Client, scope string) map[string]any {
	h.t.Helper()
	code, v := h.code(c, scope)
	resp, body := h.exchange(c, code, v)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("token: %d %v", resp.StatusCode, body)
	}
	return body
}

// TestRefreshRotation: each refresh returns a new refresh token and keeps the launch context; reusing a
// rotated one revokes the whole family (SBX-06, REF-03, REF-05, SEC-06).
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	first := h.tokens(c, "patient/*.rs launch/patient offline_access")
	rt1 := first["refresh_token"].(string)
	resp, second := h.refresh(c, rt1, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, second)
	}
	rt2 := second["refresh_token"].(string)
	if rt2 == "" || rt2 == rt1 || second["patient"] != first["patient"] || second["scope"] != first["scope"] ||
		second["expires_in"] != float64(3600) {
		t.Fatalf("refresh response %v", second)
	}
	_, third := h.refresh(c, rt2, nil)
	rt3 := third["refresh_token"].(string)

	resp, body := h.refresh(c, rt1, nil) // reuse of a rotated token
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = h.refresh(c, rt3, nil)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	for _, r := range []map[string]any{first, second, third} {
		if _, _, ok := h.s.LookupAccessToken(r["access_token"].(string)); ok {
			t.Error("an access token of the revoked family still works")
		}
	}
}

// TestRefreshRules covers scope narrowing, client binding, online vs offline access and who gets a
// refresh token at all (SBX-06, REF-01, REF-08).
func TestRefreshRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	other := h.app(authNone)
	conf := h.app(authSecretBas)
	noRefresh := h.app(authNone, func(c *Client) { c.GrantTypes = []string{grantCode} })

	t.Run("narrower scope", func(t *testing.T) {
		rt := h.tokens(c, "patient/*.rs launch/patient offline_access")["refresh_token"].(string)
		resp, body := h.refresh(c, rt, url.Values{"scope": {"patient/Observation.rs"}})
		if resp.StatusCode != http.StatusOK || body["scope"] != "patient/Observation.rs" {
			t.Errorf("got %d %v", resp.StatusCode, body)
		}
	})
	t.Run("wider scope", func(t *testing.T) {
		rt := h.tokens(c, "patient/*.rs launch/patient offline_access")["refresh_token"].(string)
		resp, body := h.refresh(c, rt, url.Values{"scope": {"patient/*.cruds"}})
		wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_scope")
	})
	t.Run("another client", func(t *testing.T) {
		rt := h.tokens(c, "patient/*.rs launch/patient offline_access")["refresh_token"].(string)
		resp, body := h.refresh(other, rt, nil)
		wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		if resp, body := h.refresh(c, rt, nil); resp.StatusCode != http.StatusOK { // not burnt by the attempt
			t.Errorf("owner after a foreign attempt: %d %v", resp.StatusCode, body)
		}
	})
	t.Run("confidential client must authenticate", func(t *testing.T) {
		code, v := h.code(conf, "patient/*.rs launch/patient offline_access")
		_, body := h.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {conf.RedirectURIs[0]}, "code_verifier": {v}}, basic(conf.ID, conf.Secret))
		rt := body["refresh_token"].(string)
		resp, body := h.refresh(conf, rt, nil)
		wantOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
		resp, body = h.post("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, basic(conf.ID, conf.Secret))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("with Basic: %d %v", resp.StatusCode, body)
		}
	})
	t.Run("no offline_access, no refresh token", func(t *testing.T) {
		if body := h.tokens(c, "patient/*.rs launch/patient"); body["refresh_token"] != nil {
			t.Errorf("refresh token without offline_access: %v", body)
		}
		if body := h.tokens(noRefresh, "patient/*.rs launch/patient offline_access"); body["refresh_token"] != nil {
			t.Errorf("refresh token for a client without the refresh_token grant: %v", body)
		}
	})
	t.Run("online access ends with the session", func(t *testing.T) {
		online := h.tokens(c, "patient/*.rs launch/patient online_access")["refresh_token"].(string)
		offline := h.tokens(c, "patient/*.rs launch/patient offline_access")["refresh_token"].(string)
		resp, body := h.refresh(c, online, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("online refresh: %d %v", resp.StatusCode, body)
		}
		online = body["refresh_token"].(string)
		h.s.EndUserSessions()
		resp, body = h.refresh(c, online, nil)
		wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		if resp, body := h.refresh(c, offline, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("offline after the session ended: %d %v", resp.StatusCode, body)
		}
	})
	t.Run("unknown and missing", func(t *testing.T) {
		resp, body := h.refresh(c, "nope", nil)
		wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
		resp, body = h.refresh(c, "", nil)
		wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	})
}

// TestRefreshPolicy turns rotation and the context echo off (SBX-06, REF-03, REF-05).
func TestRefreshPolicy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	rt := h.tokens(c, "patient/*.rs launch/patient offline_access")["refresh_token"].(string)
	h.s.SetRefreshRotation(false)
	h.s.SetRefreshContextEcho(false)
	for i := range 2 { // the same refresh token works again without rotation
		resp, body := h.refresh(c, rt, nil)
		if resp.StatusCode != http.StatusOK || body["refresh_token"] != nil || body["patient"] != nil ||
			body["need_patient_banner"] != nil || body["scope"] == nil {
			t.Fatalf("refresh %d: %d %v", i, resp.StatusCode, body)
		}
	}
	h.s.SetRefreshRotation(true)
	h.s.SetRefreshContextEcho(true)
	resp, body := h.refresh(c, rt, nil)
	if resp.StatusCode != http.StatusOK || body["refresh_token"] == nil || body["patient"] == nil {
		t.Fatalf("defaults again: %d %v", resp.StatusCode, body)
	}
	resp, body = h.refresh(c, rt, nil)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

// TestExpiredAccessTokensSwept: the token store forgets access tokens an hour after they expired, so
// that a long-running sandbox does not grow with every token it ever issued; until then a use is
// still answered "expired" (SBX-09).
func TestExpiredAccessTokensSwept(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Patients: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := s.Now()
	old := s.IssueAccessToken(Grant{ClientID: "a", IssuedAt: now, Expiry: now.Add(5 * time.Minute)})

	s.SetClockOffset(30 * time.Minute) // expired, within the grace period
	s.IssueAccessToken(Grant{ClientID: "a", IssuedAt: s.Now(), Expiry: s.Now().Add(5 * time.Minute)})
	if _, expired, ok := s.LookupAccessToken(old); ok || !expired {
		t.Errorf("token expired 25 min ago: ok=%v expired=%v, want reported expired", ok, expired)
	}

	s.SetClockOffset(3 * time.Hour)
	live := s.IssueAccessToken(Grant{ClientID: "a", IssuedAt: s.Now(), Expiry: s.Now().Add(5 * time.Minute)})
	s.tokens.mu.Lock()
	n := len(s.tokens.m)
	s.tokens.mu.Unlock()
	if n != 1 {
		t.Errorf("token store holds %d tokens after the sweep, want 1 (the live one)", n)
	}
	if _, _, ok := s.LookupAccessToken(live); !ok {
		t.Error("the live token was swept")
	}
}
