package sandbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientCredentials covers SMART Backend Services with both algorithms (SBX-05, SBX-07, AUTH-05…07).
func TestClientCredentials(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"ES384", "RS384"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{})
			key := newTestKey(t, alg)
			c := h.backend(key)
			resp, body := h.clientCredentials(key.sign(t, h.claims(c.ID), nil), "system/*.rs")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %v", resp.StatusCode, body)
			}
			if body["token_type"] != "Bearer" || body["expires_in"] != float64(300) || body["scope"] != "system/*.rs" {
				t.Errorf("response %v", body)
			}
			if _, ok := body["refresh_token"]; ok {
				t.Error("backend services got a refresh token")
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("Cache-Control %q", cc)
			}
			g, _, ok := h.s.LookupAccessToken(body["access_token"].(string))
			if !ok || !g.Backend || g.ClientID != c.ID {
				t.Errorf("grant %+v ok=%v", g, ok)
			}
			if n := h.s.Count("token_requests:client_credentials"); n != 1 {
				t.Errorf("token_requests:client_credentials = %d", n)
			}
		})
	}
}

// TestAssertionRejected lists every way an assertion must fail with invalid_client (SBX-05, AUTH-05,
// AUTH-06, AUTH-08, JWKS-07).
func TestAssertionRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newTestKey(t, "ES384")
	c := h.backend(key)
	other := newTestKey(t, "ES384")
	rsaKey := newTestKey(t, "RS384")
	const b64 = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0" // {"alg":"none","typ":"JWT"}

	with := func(mod func(map[string]any)) map[string]any {
		cl := h.claims(c.ID)
		mod(cl)
		return cl
	}
	reused := key.sign(t, h.claims(c.ID), nil)
	if resp, body := h.clientCredentials(reused, "system/*.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use: %d %v", resp.StatusCode, body)
	}
	payload, _ := json.Marshal(h.claims(c.ID))
	enc := base64.RawURLEncoding
	hsInput := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"`+key.kid()+`","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, jwksOf(t, key))
	mac.Write([]byte(hsInput))

	tests := []struct {
		name, assertion, want string
	}{
		{"reused jti (AUTH-08)", reused, "jti has already been used"},
		{"wrong aud", key.sign(t, with(func(m map[string]any) { m["aud"] = h.base }), nil), "aud must be"},
		{"aud http vs https", key.sign(t, with(func(m map[string]any) {
			m["aud"] = strings.Replace(h.url("/auth/token"), "http:", "https:", 1)
		}), nil), "aud must be"},
		{"aud array of two", key.sign(t, with(func(m map[string]any) { m["aud"] = []string{h.url("/auth/token"), "x"} }), nil), "aud must be"},
		{"exp more than 5 min ahead", key.sign(t, with(func(m map[string]any) { m["exp"] = h.s.Now().Add(6 * time.Minute).Unix() }), nil), "more than 5 minutes"},
		{"exp in milliseconds", key.sign(t, with(func(m map[string]any) { m["exp"] = h.s.Now().UnixMilli() }), nil), "more than 5 minutes"},
		{"expired", key.sign(t, with(func(m map[string]any) { m["exp"] = h.s.Now().Add(-time.Second).Unix() }), nil), "expired"},
		{"no exp", key.sign(t, with(func(m map[string]any) { delete(m, "exp") }), nil), "exp is required"},
		{"iat in the future", key.sign(t, with(func(m map[string]any) { m["iat"] = h.s.Now().Add(3 * time.Minute).Unix() }), nil), "iat is in the future"},
		{"no jti", key.sign(t, with(func(m map[string]any) { delete(m, "jti") }), nil), "jti is required"},
		{"iss != sub", key.sign(t, with(func(m map[string]any) { m["sub"] = "someone-else" }), nil), "sub must equal iss"},
		{"unknown iss", key.sign(t, with(func(m map[string]any) { m["iss"], m["sub"] = "nobody", "nobody" }), nil), "not a registered client"},
		{"unknown kid", other.sign(t, h.claims(c.ID), nil), "no key of client"},
		{"kid of another alg", rsaKey.sign(t, h.claims(c.ID), map[string]any{"kid": key.kid()}), "no key of client"},
		{"signed by another key with our kid", other.sign(t, h.claims(c.ID), map[string]any{"kid": key.kid()}), "signature does not verify"},
		{"missing typ", key.sign(t, h.claims(c.ID), map[string]any{"typ": nil}), "typ must be"},
		{"typ JOSE", key.sign(t, h.claims(c.ID), map[string]any{"typ": "JOSE"}), "typ must be"},
		{"missing kid", key.sign(t, h.claims(c.ID), map[string]any{"kid": nil}), "kid is required"},
		{"jku not registered", key.sign(t, h.claims(c.ID), map[string]any{"jku": h.url("/evil/jwks")}), "jku does not match"},
		{"alg none", b64 + "." + enc.EncodeToString(payload) + ".", "alg \"none\" is not allowed"},
		{"HS256 keyed with the public JWKS", hsInput + "." + enc.EncodeToString(mac.Sum(nil)), "alg \"HS256\" is not allowed"},
		{"garbage", "not-a-jwt", "not a compact JWS"},
		{"too long", strings.Repeat("a", 20000), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.clientCredentials(tt.assertion, "system/*.rs")
			wantOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
			desc := body["error_description"].(string)
			if !strings.Contains(desc, tt.want) {
				t.Errorf("error_description %q, want it to contain %q", desc, tt.want)
			}
			if len(tt.assertion) > 20 && strings.Contains(desc, tt.assertion[len(tt.assertion)-20:]) {
				t.Error("error_description echoes the assertion")
			}
		})
	}
}

// TestAssertionClockOffset moves the sandbox clock against a client whose assertions expire 4 minutes
// after its own now (SBX-20, BS-10, SEC-10): small skews pass, a client 2 minutes ahead exceeds the 5-minute
// limit, one 5 minutes behind sends expired assertions.
func TestAssertionClockOffset(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newTestKey(t, "ES384")
	c := h.backend(key)
	for _, tt := range []struct {
		sandboxOffset time.Duration
		ok            bool
	}{{-30 * time.Second, true}, {3 * time.Minute, true}, {-2 * time.Minute, false}, {5 * time.Minute, false}} {
		h.s.SetClockOffset(0)
		made := h.claims(c.ID)
		h.s.SetClockOffset(tt.sandboxOffset)
		resp, body := h.clientCredentials(key.sign(t, made, nil), "system/*.rs")
		if got := resp.StatusCode == http.StatusOK; got != tt.ok {
			t.Errorf("sandbox clock %v: status %d %v, want ok=%v", tt.sandboxOffset, resp.StatusCode, body, tt.ok)
		}
	}
}

// TestRevokedKey: a revoked key fails, by the Go API and by the control endpoint (CONV-7).
func TestRevokedKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	k1, k2 := newTestKey(t, "ES384"), newTestKey(t, "RS384")
	c := h.backend(k1, func(c *Client) { c.JWKS = jwksOf(t, k1, k2) })
	if err := h.s.RevokeClientKey(c.ID, k1.kid()); err != nil {
		t.Fatal(err)
	}
	resp, body := h.clientCredentials(k1.sign(t, h.claims(c.ID), nil), "system/*.rs")
	wantOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	if !strings.Contains(body["error_description"].(string), "revoked") {
		t.Errorf("description %v", body)
	}
	if resp, body := h.clientCredentials(k2.sign(t, h.claims(c.ID), nil), "system/*.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("other key: %d %v", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, h.url("/sandbox/clients/"+c.ID+"/keys/"+k2.kid()), nil)
	if resp, _ := h.do(req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("control endpoint: %d", resp.StatusCode)
	}
	resp, body = h.clientCredentials(k2.sign(t, h.claims(c.ID), nil), "system/*.rs")
	wantOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	if err := h.s.RevokeClientKey("nobody", "x"); err == nil {
		t.Error("RevokeClientKey of an unknown client succeeded")
	}
}

// jwksServer publishes a changeable JWK Set with a Cache-Control header and counts fetches.
type jwksServer struct {
	*httptest.Server
	body         atomic.Pointer[[]byte]
	cacheControl atomic.Pointer[string]
	fetches      atomic.Int32
}

func newJWKSServer(t *testing.T, jwks []byte, cacheControl string) *jwksServer {
	js := &jwksServer{}
	js.body.Store(&jwks)
	js.cacheControl.Store(&cacheControl)
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", *js.cacheControl.Load())
		_, _ = w.Write(*js.body.Load())
	}))
	t.Cleanup(js.Close)
	return js
}

// TestJWKSURI covers keys published at jwks_uri: Cache-Control honoured, one refetch for an unknown
// kid (rotation), jku accepted only when equal to the registered URL (SBX-05, JWKS-04, JWKS-07).
func TestJWKSURI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	k1, k2 := newTestKey(t, "ES384"), newTestKey(t, "ES384")
	js := newJWKSServer(t, jwksOf(t, k1), "max-age=300")
	c := h.register(Client{AuthMethod: authPrivateJWT, JWKSURI: js.URL + "/jwks.json"})
	ok := func(key *testKey, hdr map[string]any) {
		t.Helper()
		if resp, body := h.clientCredentials(key.sign(t, h.claims(c.ID), hdr), "system/*.rs"); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %v", resp.StatusCode, body)
		}
	}
	ok(k1, nil)
	ok(k1, map[string]any{"jku": c.JWKSURI})
	if n := js.fetches.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1 (max-age=300)", n)
	}
	// Rotation: k2 appears in the set; the cached set lacks it; one refetch finds it.
	both := jwksOf(t, k1, k2)
	js.body.Store(&both)
	ok(k2, nil)
	if n := js.fetches.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2 after the unknown kid", n)
	}
	// no-store: every request fetches again.
	noStore := "no-store"
	js.cacheControl.Store(&noStore)
	h.s.SetClockOffset(10 * time.Minute) // the max-age=300 entry is stale
	ok(k1, nil)
	ok(k1, nil)
	if n := js.fetches.Load(); n != 4 {
		t.Errorf("fetches = %d, want 4 with no-store", n)
	}
	resp, body := h.clientCredentials(k1.sign(t, h.claims(c.ID), map[string]any{"jku": js.URL + "/other.json"}), "system/*.rs")
	wantOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
}

func TestCacheLifetime(t *testing.T) {
	t.Parallel()
	for cc, want := range map[string]time.Duration{
		"": 0, "max-age=60": time.Minute, "public, max-age=120": 2 * time.Minute, "no-store": 0,
		"max-age=60, no-cache": 0, "max-age=999999": maxJWKSCache, "max-age=-1": 0, "max-age=abc": 0,
	} {
		if got := cacheLifetime(cc); got != want {
			t.Errorf("cacheLifetime(%q) = %v, want %v", cc, got, want)
		}
	}
}

// TestBackendScopes covers scope down-grading for backend clients (SBX-07, BS-02, BS-06).
func TestBackendScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, version, allowed, requested, want, err string
	}{
		{"v2 within allowed", "", "system/*.rs", "system/Patient.rs", "system/Patient.rs", ""},
		{"narrowed to allowed permissions", "", "system/*.rs", "system/*.cruds", "system/*.rs", ""},
		{"narrowed to allowed type", "", "system/Observation.rs", "system/*.rs", "system/Observation.rs", ""},
		{"v1 request answered in v1", "", "system/*.cruds", "system/*.read", "system/*.read", ""},
		{"v1 mode answers v2 request in v1", "v1", "system/*.cruds", "system/*.rs", "system/*.read", ""},
		{"granular kept", "", "system/*.rs", "system/Observation.rs?category=laboratory", "system/Observation.rs?category=laboratory", ""},
		{"patient scopes dropped", "", "", "patient/*.rs system/*.rs", "system/*.rs", ""},
		{"nothing allowed", "", "system/Patient.rs", "system/Observation.rs", "", "invalid_scope"},
		{"openid is not a backend scope", "", "", "openid", "", "invalid_scope"},
		{"no scope", "", "", "", "", "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{Version: tt.version})
			key := newTestKey(t, "ES384")
			c := h.backend(key, func(c *Client) { c.Scope = tt.allowed })
			resp, body := h.clientCredentials(key.sign(t, h.claims(c.ID), nil), tt.requested)
			if tt.err != "" {
				wantOAuthError(t, resp, body, http.StatusBadRequest, tt.err)
				return
			}
			if resp.StatusCode != http.StatusOK || body["scope"] != tt.want {
				t.Errorf("got %d %v, want scope %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}
