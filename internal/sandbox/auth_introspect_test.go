package sandbox

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestIntrospect covers the bearer-protected introspection endpoint (SBX-08, INTRO-01…03).
func TestIntrospect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	launch := h.s.NewLaunch(LaunchContext{Patient: "pat-1", Encounter: "enc-1", User: "Practitioner/prac-1", SkipLogin: true})
	code, v := h.code(c, "launch openid fhirUser patient/*.rs offline_access", func(p url.Values) { p.Set("launch", launch) })
	_, tok := h.exchange(c, code, v)
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)
	key := newTestKey(t, "ES384")
	b := h.backend(key)
	_, btok := h.clientCredentials(key.sign(t, h.claims(b.ID), nil), "system/*.rs")
	caller := bearer(btok["access_token"].(string))

	resp, body := h.post("/auth/introspect", url.Values{"token": {at}}, caller)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := map[string]any{"active": true, "scope": "launch openid fhirUser patient/*.rs offline_access",
		"client_id": c.ID, "patient": "pat-1", "encounter": "enc-1", "iss": h.base, "sub": "Practitioner/prac-1",
		"fhirUser": h.base + "/Practitioner/prac-1", "token_type": "Bearer"}
	for k, w := range want {
		if body[k] != w {
			t.Errorf("%s = %v, want %v", k, body[k], w)
		}
	}
	if exp, _ := body["exp"].(float64); int64(exp) != h.s.Now().Add(time.Hour).Unix() && int64(exp) != h.s.Now().Add(time.Hour).Unix()-1 {
		t.Errorf("exp %v", body["exp"])
	}
	if _, body := h.post("/auth/introspect", url.Values{"token": {rt}}, caller); body["active"] != true || body["client_id"] != c.ID {
		t.Errorf("refresh token: %v", body)
	}
	if _, body := h.post("/auth/introspect", url.Values{"token": {btok["access_token"].(string)}}, caller); body["active"] != true ||
		body["patient"] != nil || body["sub"] != nil {
		t.Errorf("backend token: %v", body)
	}

	inactive := func(name, tok string) {
		t.Helper()
		_, body := h.post("/auth/introspect", url.Values{"token": {tok}}, caller)
		if len(body) != 1 || body["active"] != false {
			t.Errorf("%s: %v, want only active:false", name, body)
		}
	}
	inactive("unknown", "nope")
	h.s.RevokeAccessToken(at)
	inactive("revoked", at)

	for name, mod := range map[string]func(*http.Request){
		"no credentials": func(*http.Request) {},
		"unknown bearer": bearer("nope"),
		"basic":          basic(c.ID, "x"),
	} {
		resp, _ := h.post("/auth/introspect", url.Values{"token": {rt}}, mod)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
	}
	h.s.ExpireAccessTokens()
	resp, _ = h.post("/auth/introspect", url.Values{"token": {rt}}, caller)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired bearer: status %d", resp.StatusCode)
	}
}

// TestRevoke covers RFC 7009 revocation of access and refresh tokens (SBX-08).
func TestRevoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	other := h.app(authNone)
	tok := h.tokens(c, "patient/*.rs launch/patient offline_access")
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)

	revoke := func(client Client, token string) int {
		resp, _ := h.post("/auth/revoke", url.Values{"token": {token}, "client_id": {client.ID}})
		return resp.StatusCode
	}
	if s := revoke(other, at); s != http.StatusOK {
		t.Errorf("foreign revoke: %d", s)
	}
	if _, _, ok := h.s.LookupAccessToken(at); !ok {
		t.Fatal("another client revoked the token")
	}
	if s := revoke(c, at); s != http.StatusOK {
		t.Errorf("revoke: %d", s)
	}
	if _, _, ok := h.s.LookupAccessToken(at); ok {
		t.Error("access token survives revocation")
	}
	tok = h.tokens(c, "patient/*.rs launch/patient offline_access")
	_ = revoke(c, rt)
	resp, body := h.refresh(c, rt, nil)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if s := revoke(c, "unknown"); s != http.StatusOK {
		t.Errorf("unknown token: %d", s)
	}
	resp, body = h.post("/auth/revoke", url.Values{"token": {tok["access_token"].(string)}})
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
}
