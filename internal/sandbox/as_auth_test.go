package sandbox

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/smart"
)

// asClientCredentials asks for a backend token; mod adds headers.
func (h *harness) asClientCredentials(t *testing.T, key *testKey, id string, mod ...func(*http.Request)) (*http.Response, map[string]any) {
	t.Helper()
	return h.post("/auth/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
		"client_assertion_type": {jwtBearer}, "client_assertion": {key.sign(t, h.claims(id), nil)},
	}, mod...)
}

func header(name, value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

func TestAsUnknownMode(t *testing.T) { // issue 11: --as takes a preset name
	t.Parallel()
	_, err := New(Options{As: "cerner-millennium"})
	if err == nil || !strings.Contains(err.Error(), "epic") || !strings.Contains(err.Error(), "cms-ab2d") {
		t.Fatalf("err = %v, want one listing the known modes", err)
	}
	for _, alias := range []string{"", "cerner", "EPIC"} { // LookupProfile's aliases and case
		s, err := New(Options{As: alias})
		if err != nil {
			t.Fatalf("As %q: %v", alias, err)
		}
		if want := map[string]string{"": "generic", "cerner": "oracle", "EPIC": "epic"}[alias]; s.As() != want {
			t.Errorf("As %q plays %q, want %q", alias, s.As(), want)
		}
	}
}

// TestAsDetected: every mode publishes the vendor's name, so that smart.DetectProfile names the preset
// the mode plays (issue 11: detection is reported, and testable against the sandbox).
func TestAsDetected(t *testing.T) {
	t.Parallel()
	for _, name := range AsNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{As: name, Patients: 1})
			resp, err := h.hc.Get(h.base + "/metadata")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			info, err := smart.ParseServerInfo(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got, why := smart.DetectProfile(nil, info); got != name {
				t.Errorf("detected %q (%s), want %q", got, why, name)
			}
		})
	}
}

func TestAsEpicToken(t *testing.T) { // quirks.md Epic: Epic-Client-ID, flaky bare 400
	t.Parallel()
	h := newHarness(t, Options{As: "epic", Patients: 1})
	key := newTestKey(t, "ES384")
	c := h.backend(key)

	resp, body := h.asClientCredentials(t, key, c.ID)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
	if d, _ := body["error_description"].(string); !strings.Contains(d, "Epic-Client-ID") {
		t.Errorf("description %q does not name the header", d)
	}
	resp, body = h.asClientCredentials(t, key, c.ID, header("Epic-Client-ID", "someone-else"))
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")

	withID := header("Epic-Client-ID", c.ID)
	resp, body = h.asClientCredentials(t, key, c.ID, withID)
	if resp.StatusCode != http.StatusBadRequest || body != nil || resp.ContentLength > 0 {
		t.Fatalf("first request: %d %v, want a bare 400", resp.StatusCode, body)
	}
	for range 2 { // once per client only
		if resp, body = h.asClientCredentials(t, key, c.ID, withID); resp.StatusCode != http.StatusOK || body["access_token"] == "" {
			t.Fatalf("later request: %d %v", resp.StatusCode, body)
		}
	}
	other := h.backend(key)
	if resp, _ = h.asClientCredentials(t, key, other.ID, header("Epic-Client-ID", other.ID)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another client's first request: %d, want its own bare 400", resp.StatusCode)
	}
	if n := h.s.Count("as_bare_400"); n != 2 {
		t.Errorf("bare 400s = %d, want 2", n)
	}
}

func TestAsDiscovery(t *testing.T) { // DISC-05, DISC-10, DISC-12 against the vendors' documents
	t.Parallel()
	t.Run("athena leaves PKCE out", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{As: "athena", Patients: 1})
		_, doc := h.get("/fhir/.well-known/smart-configuration")
		if _, ok := doc["code_challenge_methods_supported"]; ok || doc["token_endpoint"] == nil {
			t.Fatalf("doc = %v", doc)
		}
		// S256 still works: a standalone launch with PKCE gets its token.
		c := h.app(authNone)
		code, verifier := h.code(c, "openid fhirUser launch/patient patient/*.rs")
		if resp, body := h.exchange(c, code, verifier); resp.StatusCode != http.StatusOK {
			t.Fatalf("exchange: %d %v", resp.StatusCode, body)
		}
	})
	t.Run("meditech has OpenID Connect discovery only", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{As: "meditech", Patients: 1})
		if resp, _ := h.get("/fhir/.well-known/smart-configuration"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("smart-configuration: %d, want 404", resp.StatusCode)
		}
		if resp, doc := h.get("/fhir/.well-known/openid-configuration"); resp.StatusCode != http.StatusOK || doc["token_endpoint"] == nil {
			t.Errorf("openid-configuration: %d %v", resp.StatusCode, doc)
		}
		d := smart.Discoverer{HTTPClient: h.hc}
		if _, err := d.Discover(t.Context(), h.base); !errors.Is(err, smart.ErrMissingTokenEndpoint) {
			t.Errorf("default discovery: %v, want ErrMissingTokenEndpoint (no oauth-uris either)", err)
		}
	})
	t.Run("smart-sandbox under-advertises asymmetric auth", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{As: "smart-sandbox", Patients: 1})
		_, doc := h.get("/fhir/.well-known/smart-configuration")
		methods, _ := doc["token_endpoint_auth_methods_supported"].([]any)
		caps, _ := doc["capabilities"].([]any)
		if len(methods) == 0 || containsAny(methods, "private_key_jwt") || containsAny(caps, "client-confidential-asymmetric") ||
			doc["token_endpoint_auth_signing_alg_values_supported"] != nil {
			t.Fatalf("doc = %v", doc)
		}
		key := newTestKey(t, "RS384") // and yet private_key_jwt works
		c := h.backend(key)
		if resp, body := h.asClientCredentials(t, key, c.ID); resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %d %v", resp.StatusCode, body)
		}
	})
}

func containsAny(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestAsTokenShapes(t *testing.T) { // CONV-4 expires_in string; athena's non-OAuth errors (TOK-12)
	t.Parallel()
	t.Run("cms-bcda expires_in string", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{As: "cms-bcda", Patients: 1})
		key := newTestKey(t, "ES384")
		c := h.backend(key)
		resp, body := h.asClientCredentials(t, key, c.ID)
		if s, ok := body["expires_in"].(string); resp.StatusCode != http.StatusOK || !ok || s != "300" {
			t.Fatalf("%d %v, want expires_in \"300\"", resp.StatusCode, body)
		}
	})
	t.Run("athena non-OAuth error", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, Options{As: "athena", Patients: 1})
		resp, body := h.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}},
			basic("nobody", "wrong"))
		if resp.StatusCode != http.StatusUnauthorized || body["error"] != nil || body["message"] == "" || body["id"] != float64(401) {
			t.Fatalf("%d %v, want {message, id: 401}", resp.StatusCode, body)
		}
	})
}

func TestAsPersonaMismatch(t *testing.T) { // quirks.md Oracle: client-persona-mismatch, error_uri surfaced
	t.Parallel()
	h := newHarness(t, Options{As: "oracle", Patients: 2})
	provider := h.app(authNone, func(c *Client) { c.Scope = "openid fhirUser launch/patient user/*.rs offline_access" })
	patientApp := h.app(authNone, func(c *Client) { c.Scope = "openid fhirUser launch/patient patient/*.rs offline_access" })

	code, verifier := h.code(provider, "openid fhirUser launch/patient user/*.rs")
	resp, body := h.exchange(provider, code, verifier)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	uri, _ := body["error_uri"].(string)
	if !strings.Contains(uri, "client-persona-mismatch") || !strings.Contains(uri, "persona=provider") {
		t.Fatalf("error_uri %q", uri)
	}
	code, verifier = h.code(patientApp, "openid fhirUser launch/patient patient/*.rs")
	if resp, body := h.exchange(patientApp, code, verifier); resp.StatusCode != http.StatusOK {
		t.Fatalf("patient app: %d %v", resp.StatusCode, body)
	}
	// The fault does the same for any grant and any mode.
	g := newHarness(t, Options{Patients: 1})
	key := newTestKey(t, "ES384")
	c := g.backend(key)
	g.s.Fault("token_persona_mismatch", 1, "")
	resp, body = g.asClientCredentials(t, key, c.ID)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "unauthorized_client")
	if uri, _ := body["error_uri"].(string); !strings.Contains(uri, "client-persona-mismatch") {
		t.Errorf("fault error_uri %q", uri)
	}
}

func TestAsVAAudience(t *testing.T) { // fasten-sources: aud must be omitted for the VA
	t.Parallel()
	h := newHarness(t, Options{As: "va", Patients: 1})
	c := h.app(authNone)
	p, _ := h.authParams(c, "launch/patient patient/*.rs")
	if q := h.authorize(p); q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "aud") {
		t.Fatalf("with aud: %v", q)
	}
	code, verifier := h.code(c, "launch/patient patient/*.rs", func(v url.Values) { v.Del("aud") })
	if resp, body := h.exchange(c, code, verifier); resp.StatusCode != http.StatusOK {
		t.Fatalf("without aud: %d %v", resp.StatusCode, body)
	}
	// Elsewhere aud stays required (LAUNCH-05).
	g := newHarness(t, Options{Patients: 1})
	gc := g.app(authNone)
	p, _ = g.authParams(gc, "launch/patient patient/*.rs")
	p.Del("aud")
	if q := g.authorize(p); q.Get("error") != "invalid_request" {
		t.Fatalf("generic without aud: %v", q)
	}
}
