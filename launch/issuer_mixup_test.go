package launch_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smartfhir/smartfhir/launch"
)

// discoHost serves a SMART configuration at /fhir whose issuer and authorization endpoint the test
// chooses, and counts requests to its own authorize and token endpoints.
type discoHost struct {
	*httptest.Server
	issuer, authURL string // "" means this server's own
	tokenURL        string // "" means this server's own
	hits            atomic.Int32
}

func newDiscoHost(t *testing.T) *discoHost {
	t.Helper()
	h := &discoHost{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != smartConfigPath {
			h.hits.Add(1)
			http.NotFound(w, r)
			return
		}
		iss, auth := h.issuer, h.authURL
		if iss == "" {
			iss = h.URL + "/auth"
		}
		if auth == "" {
			auth = h.URL + "/auth/authorize"
		}
		tok := h.tokenURL
		if tok == "" {
			tok = h.URL + "/auth/token"
		}
		writeJSONTest(w, map[string]any{
			"issuer": iss, "authorization_endpoint": auth, "token_endpoint": tok,
			"jwks_uri": h.URL + "/auth/jwks", "code_challenge_methods_supported": []string{"S256"},
			"capabilities": []string{"launch-standalone", "client-public", "context-standalone-patient"},
		})
	}))
	t.Cleanup(h.Close)
	return h
}

// TestAllowedIssuersMixUp: when two allowed FHIR bases' discovery documents claim one issuer or one
// authorization endpoint, the launch at the base discovered second is refused with a *MixUpError
// before the browser is sent anywhere (SEC-04), while the first keeps working; distinct servers
// both launch.
func TestAllowedIssuersMixUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		clash   func(a, b *discoHost) // makes b claim something of a's
		claim   string                // "" means no clash
		reverse bool                  // launch at b first
	}{
		{name: "distinct servers"},
		{name: "same issuer", clash: func(a, b *discoHost) { b.issuer = a.URL + "/auth" }, claim: "issuer"},
		{name: "same issuer, other order", clash: func(a, b *discoHost) { b.issuer = a.URL + "/auth" }, claim: "issuer", reverse: true},
		{name: "same issuer up to case and slash", clash: func(a, b *discoHost) {
			b.issuer = strings.Replace(a.URL, "http://", "HTTP://", 1) + "/auth/"
		}, claim: "issuer"},
		{name: "same authorization endpoint", clash: func(a, b *discoHost) { b.authURL = a.URL + "/auth/authorize" }, claim: "authorization_endpoint"},
		{name: "one authorization server for two FHIR bases", clash: func(a, b *discoHost) {
			b.issuer, b.authURL, b.tokenURL = a.URL+"/auth", a.URL+"/auth/authorize", a.URL+"/auth/token"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newDiscoHost(t), newDiscoHost(t)
			if tc.clash != nil {
				tc.clash(a, b)
			}
			var lastErr atomic.Pointer[error]
			cfg := &launch.Config{
				ClientID: "app", RedirectURL: "https://app.example/callback", Scopes: []string{"patient/*.rs"},
				AllowedIssuers: []string{a.URL + "/fhir", b.URL + "/fhir"},
				OnError: func(w http.ResponseWriter, _ *http.Request, err error) {
					lastErr.Store(&err)
					http.Error(w, "refused", http.StatusBadGateway)
				},
			}
			launchAt := func(h *discoHost) (int, error) {
				lastErr.Store(nil)
				rec := httptest.NewRecorder()
				req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "https://app.example/login", nil)
				cfg.StandaloneHandler(h.URL+"/fhir").ServeHTTP(rec, req)
				if p := lastErr.Load(); p != nil {
					return rec.Code, *p
				}
				return rec.Code, nil
			}
			first, second := a, b
			if tc.reverse {
				first, second = b, a
			}
			for range 2 { // the refusal holds on every attempt, and the first base keeps working
				if code, err := launchAt(first); code != http.StatusFound || err != nil {
					t.Fatalf("first base: %d %v", code, err)
				}
				code, err := launchAt(second)
				if tc.claim == "" {
					if code != http.StatusFound || err != nil {
						t.Fatalf("distinct second base: %d %v", code, err)
					}
					continue
				}
				var me *launch.MixUpError
				if !errors.As(err, &me) || !errors.Is(err, launch.ErrMixUp) || !errors.Is(err, launch.ErrDiscovery) || me.Claim != tc.claim {
					t.Fatalf("second base: %d %v, want a *MixUpError on %s", code, err, tc.claim)
				}
				if code == http.StatusFound {
					t.Fatal("second base: the browser was redirected")
				}
			}
			if a.hits.Load() != 0 || b.hits.Load() != 0 {
				t.Errorf("requests beyond discovery: a %d b %d", a.hits.Load(), b.hits.Load())
			}
		})
	}
}
