package sandbox

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestAuthorizeHTMLErrors: an unknown client_id or a redirect_uri that is not registered byte for byte
// gets an HTML page and never a redirect (SBX-03, SEC-05).
func TestAuthorizeHTMLErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	for name, mod := range map[string]func(url.Values){
		"unknown client":          func(p url.Values) { p.Set("client_id", "nobody") },
		"redirect with slash":     func(p url.Values) { p.Set("redirect_uri", c.RedirectURIs[0]+"/") },
		"redirect with query":     func(p url.Values) { p.Set("redirect_uri", c.RedirectURIs[0]+"?next=https://evil.example") },
		"redirect missing":        func(p url.Values) { p.Del("redirect_uri") },
		"redirect of upper case":  func(p url.Values) { p.Set("redirect_uri", strings.ToUpper(c.RedirectURIs[0])) },
		"repeated client_id":      func(p url.Values) { p.Add("client_id", c.ID) },
		"repeated redirect":       func(p url.Values) { p.Add("redirect_uri", "https://evil.example/cb") },
		"unknown client by fault": func(url.Values) { h.s.Fault("auth_invalid_client_id", 1, c.ID) },
		"bad redirect by fault":   func(url.Values) { h.s.Fault("auth_invalid_redirect_uri", 1, "") },
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := h.authParams(c, "openid")
			mod(p)
			resp, _ := h.get("/auth/authorize?" + p.Encode())
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
				!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Errorf("status %d, Location %q, type %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Content-Type"))
			}
		})
	}
}

// TestAuthorizeRedirectErrors: every later problem is redirected to the client with state (SBX-03,
// LAUNCH-04, LAUNCH-05, RFC 9207 iss in 2.2 mode).
func TestAuthorizeRedirectErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	backendOnly := h.backend(newTestKey(t, "ES384"), func(c *Client) {
		c.RedirectURIs = []string{"https://b.example/cb"}
		c.GrantTypes = []string{grantClient}
	})
	other := h.app(authNone)
	bound := h.s.NewLaunch(LaunchContext{Patient: "pat-1", ClientID: other.ID})
	tests := []struct {
		name   string
		client Client
		mod    func(url.Values)
		code   string
	}{
		{"missing state", c, func(p url.Values) { p.Del("state") }, "invalid_request"},
		{"response_type token", c, func(p url.Values) { p.Set("response_type", "token") }, "unsupported_response_type"},
		{"aud missing", c, func(p url.Values) { p.Del("aud") }, "invalid_request"},
		{"aud with https scheme", c, func(p url.Values) { p.Set("aud", strings.Replace(h.base, "http:", "https:", 1)) }, "invalid_request"},
		{"aud with trailing slash", c, func(p url.Values) { p.Set("aud", h.base+"/") }, "invalid_request"},
		{"no code_challenge", c, func(p url.Values) { p.Del("code_challenge"); p.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", c, func(p url.Values) { p.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"method defaults to plain", c, func(p url.Values) { p.Del("code_challenge_method") }, "invalid_request"},
		{"short challenge", c, func(p url.Values) { p.Set("code_challenge", "abc") }, "invalid_request"},
		{"method without challenge", c, func(p url.Values) { p.Del("code_challenge") }, "invalid_request"},
		{"unknown launch", c, func(p url.Values) { p.Set("launch", "nope"); p.Set("scope", "launch openid") }, "invalid_request"},
		{"launch bound to another client", c, func(p url.Values) { p.Set("launch", bound); p.Set("scope", "launch") }, "invalid_request"},
		{"launch without launch scope", other, func(p url.Values) { p.Set("launch", bound) }, "invalid_scope"},
		{"empty scope", c, func(p url.Values) { p.Set("scope", " ") }, "invalid_scope"},
		{"client without authorization_code", backendOnly, nil, "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := h.authParams(tt.client, "openid fhirUser")
			if tt.mod != nil {
				tt.mod(p)
			}
			q := h.authorize(p)
			if q.Get("error") != tt.code || q.Get("code") != "" || q.Get("error_description") == "" {
				t.Fatalf("callback %v, want error=%s", q, tt.code)
			}
			if q.Get("state") != p.Get("state") {
				t.Errorf("state %q, want %q", q.Get("state"), p.Get("state"))
			}
			if q.Get("iss") != h.base {
				t.Errorf("iss %q, want %q (RFC 9207, advertised in 2.2)", q.Get("iss"), h.base)
			}
		})
	}
}

// TestAuthorizeV1 allows a request without PKCE in v1 mode but still refuses plain (SBX-20).
func TestAuthorizeV1(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Version: "v1"})
	c := h.app(authNone)
	p, _ := h.authParams(c, "patient/*.read launch/patient")
	p.Del("code_challenge")
	p.Del("code_challenge_method")
	q := h.authorize(p)
	if q.Get("code") == "" || q.Has("iss") {
		t.Fatalf("v1 without PKCE: %v", q)
	}
	resp, body := h.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {c.RedirectURIs[0]}, "client_id": {c.ID}})
	if resp.StatusCode != http.StatusOK || body["scope"] != "patient/*.read launch/patient" {
		t.Fatalf("token %d %v", resp.StatusCode, body)
	}
	p, _ = h.authParams(c, "patient/*.read")
	p.Set("code_challenge_method", "plain")
	if q := h.authorize(p); q.Get("error") != "invalid_request" {
		t.Errorf("plain in v1 mode: %v", q)
	}
}

// TestAuthorizePost accepts the request as a form body (authorize-post, LAUNCH-09) and answers 303.
func TestAuthorizePost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	p, verifier := h.authParams(c, "patient/*.rs launch/patient "+strings.Repeat("patient/Observation.rs?code=x ", 1000))
	resp, _ := h.post("/auth/authorize", p)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp, body := h.exchange(c, loc.Query().Get("code"), verifier); resp.StatusCode != http.StatusOK {
		t.Fatalf("token %d %v", resp.StatusCode, body)
	}
}

// TestConsentPage walks the login/consent page and the patient picker as a browser would (SBX-03).
func TestConsentPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone, func(c *Client) { c.Name = "Growth <Chart>" })
	txRE := regexp.MustCompile(`name="tx" value="([^"]+)"`)
	page := func() (string, url.Values) {
		p, _ := h.authParams(c, "openid fhirUser patient/*.rs launch/patient offline_access")
		p.Del("sandbox_skip_login")
		resp, _ := h.get("/auth/authorize?" + p.Encode())
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="patient"`) {
			t.Fatalf("page: %d %s", resp.StatusCode, body)
		}
		if strings.Contains(body, "<Chart>") || !strings.Contains(body, "Growth &lt;Chart&gt;") {
			t.Error("client name is not HTML-escaped")
		}
		m := txRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no tx in the page")
		}
		return m[1], p
	}
	patient := h.s.Patients()[1].ID
	tx, p := page()
	resp, _ := h.post("/auth/decide", url.Values{"tx": {tx}, "decision": {"approve"}, "patient": {patient}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("state") != p.Get("state") || loc.Query().Get("code") == "" {
		t.Fatalf("approve: %d %s", resp.StatusCode, loc)
	}
	if resp, _ := h.post("/auth/decide", url.Values{"tx": {tx}, "decision": {"approve"}, "patient": {patient}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second use of tx: %d", resp.StatusCode)
	}
	tx, _ = page()
	resp, _ = h.post("/auth/decide", url.Values{"tx": {tx}, "decision": {"deny"}})
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "access_denied" {
		t.Errorf("deny: %s", loc)
	}
	tx, _ = page()
	resp, _ = h.post("/auth/decide", url.Values{"tx": {tx}, "decision": {"approve"}, "patient": {"../x"}})
	loc, _ = url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "access_denied" {
		t.Errorf("bad patient: %s", loc)
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
