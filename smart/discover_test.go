package smart

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// loadTestdata reads testdata/dir/name.
func loadTestdata(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testServer is an httptest server with a mux and a log of the paths requested.
type testServer struct {
	*httptest.Server
	mux *http.ServeMux

	mu   sync.Mutex
	hits []string
	hdrs []http.Header
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{mux: http.NewServeMux()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits = append(s.hits, r.URL.EscapedPath())
		s.hdrs = append(s.hdrs, r.Header.Clone())
		s.mu.Unlock()
		s.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hits)
}

func (s *testServer) header(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hdrs[i]
}

// serveBody answers with body and Content-Type ct.
func serveBody(ct string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil
		}
		_, _ = w.Write(body)
	}
}

// DISC-01: the discovery URL keeps the base path and never doubles a slash.
func TestDiscoverURL(t *testing.T) {
	t.Parallel()
	doc := loadTestdata(t, "discovery", "backend-only.json")
	for _, path := range []string{"", "/", "/fhir", "/fhir/", "/apis/fhir/r4", "/apis/fhir/r4/", "/t%2Fenant/fhir"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			s.mux.HandleFunc("/", serveBody("application/json", doc))
			cfg, err := Discover(t.Context(), nil, s.URL+path)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSuffix(path, "/") + "/.well-known/smart-configuration"
			if got := s.paths(); len(got) != 1 || got[0] != want {
				t.Errorf("requested %q, want exactly [%q]", got, want)
			}
			if cfg.FHIRBase != s.URL+path || cfg.DocumentURL != s.URL+want {
				t.Errorf("FHIRBase %q DocumentURL %q", cfg.FHIRBase, cfg.DocumentURL)
			}
		})
	}
}

// DISC-02: Accept header; media types; hostile bodies.
func TestDiscoverContentTypes(t *testing.T) {
	t.Parallel()
	doc := loadTestdata(t, "discovery", "smart-2.2-full.json")
	tests := []struct {
		name string
		ct   string
		body []byte
		want error
	}{
		{"json", "application/json", doc, nil},
		{"json charset", "application/json; charset=utf-8", doc, nil},
		{"json upper case", "Application/JSON;charset=UTF-8", doc, nil},
		{"no content type", "", doc, nil},
		{"html login page", "text/html; charset=utf-8", []byte("<!doctype html><html><body><form action=/login>Sign in</form></body></html>"), ErrNotJSON},
		{"html served as json", "application/json", []byte("<html><body>Sign in</body></html>"), ErrNotJSON},
		{"no content type html", "", []byte("<html></html>"), ErrNotJSON},
		{"truncated", "application/json", doc[:len(doc)/2], ErrNotJSON},
		{"array", "application/json", []byte(`[{"token_endpoint":"https://x.example/t"}]`), ErrNotJSON},
		{"string", "application/json", []byte(`"https://x.example/t"`), ErrNotJSON},
		{"empty", "application/json", nil, ErrNotJSON},
		{"trailing garbage", "application/json", append(slices.Clone(doc), "{}"...), ErrNotJSON},
		{"duplicate token_endpoint", "application/json", []byte(`{"token_endpoint":"https://a.example/t","token_endpoint":"https://b.example/t","capabilities":[]}`), ErrNotJSON},
		{"missing token_endpoint", "application/json", loadTestdata(t, "discovery", "hostile-no-token-endpoint.json"), ErrMissingTokenEndpoint},
		{"token_endpoint a number", "application/json", []byte(`{"token_endpoint":42,"capabilities":[]}`), ErrInvalidDocument},
		{"capabilities a string", "application/json", []byte(`{"token_endpoint":"https://a.example/t","capabilities":"launch-ehr"}`), ErrInvalidDocument},
		{"capabilities with a number", "application/json", []byte(`{"token_endpoint":"https://a.example/t","capabilities":["launch-ehr",1]}`), ErrInvalidDocument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			s.mux.HandleFunc("/fhir/.well-known/smart-configuration", serveBody(tt.ct, tt.body))
			d := Discoverer{Fallbacks: []Fallback{}}
			cfg, err := d.Discover(t.Context(), s.URL+"/fhir")
			if !errors.Is(err, tt.want) {
				t.Fatalf("Discover = %v, want %v", err, tt.want)
			}
			if got := s.header(0).Get("Accept"); got != "application/json" {
				t.Errorf("Accept = %q", got)
			}
			if tt.want != nil {
				var de *DiscoveryError
				if !errors.As(err, &de) || de.StatusCode != 200 || !strings.HasSuffix(de.URL, "/.well-known/smart-configuration") {
					t.Errorf("error %v is not a *DiscoveryError with the status and URL", err)
				}
				if strings.Contains(err.Error(), "Sign in") || !strings.HasPrefix(err.Error(), "smart: ") {
					t.Errorf("error %q quotes the body or lacks the prefix", err)
				}
				return
			}
			if cfg.TokenEndpoint != "https://ehr.example.org/auth/token" {
				t.Errorf("TokenEndpoint = %q", cfg.TokenEndpoint)
			}
		})
	}
}

// DISC-14: bounded body, no cross-origin redirect, no hang, vendor headers.
func TestDiscoverBounded(t *testing.T) {
	t.Parallel()

	t.Run("50 MB body stops at 1 MiB", func(t *testing.T) {
		t.Parallel()
		var written atomic.Int64
		s := newTestServer(t)
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			chunk := []byte(`{"a":"` + strings.Repeat("x", 64<<10))
			for range 50 << 20 / len(chunk) {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
		d := Discoverer{Fallbacks: []Fallback{}}
		_, err := d.Discover(t.Context(), s.URL)
		if !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("Discover = %v, want ErrBodyTooLarge", err)
		}
		s.Close() // waits for the handler to notice
		if n := written.Load(); n >= 50<<20 {
			t.Errorf("the server wrote all %d bytes: the client did not stop reading", n)
		}
	})

	t.Run("MaxBodyBytes", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/", serveBody("application/json", loadTestdata(t, "discovery", "smart-2.2-full.json")))
		d := Discoverer{MaxBodyBytes: 100, Fallbacks: []Fallback{}}
		if _, err := d.Discover(t.Context(), s.URL); !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("Discover = %v, want ErrBodyTooLarge", err)
		}
	})

	t.Run("302 to another origin", func(t *testing.T) {
		t.Parallel()
		evil := newTestServer(t)
		evil.mux.HandleFunc("/", serveBody("application/json", loadTestdata(t, "discovery", "backend-only.json")))
		s := newTestServer(t)
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil.URL+r.URL.Path, http.StatusFound)
		})
		// Even a caller's client that follows every redirect must not follow this one.
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}
		_, err := Discover(t.Context(), hc, s.URL+"/fhir")
		if !errors.Is(err, ErrRedirectRefused) {
			t.Fatalf("Discover = %v, want ErrRedirectRefused", err)
		}
		if got := evil.paths(); len(got) != 0 {
			t.Errorf("the other origin received %q", got)
		}
		if hc.CheckRedirect == nil || hc.CheckRedirect(nil, nil) != nil {
			t.Error("the caller's client was modified")
		}
		if got := s.paths(); len(got) != 1 {
			t.Errorf("fell back after a refused redirect: %q", got)
		}
	})

	t.Run("302 within the origin", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/other/.well-known/smart-configuration", http.StatusFound)
		})
		s.mux.HandleFunc("/other/.well-known/smart-configuration", serveBody("application/json", loadTestdata(t, "discovery", "backend-only.json")))
		if _, err := Discover(t.Context(), nil, s.URL+"/fhir"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stall until the context deadline", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"token_endpoint":`))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Discover(ctx, nil, s.URL)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Discover = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("Timeout without a deadline", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		d := Discoverer{Timeout: 100 * time.Millisecond}
		if _, err := d.Discover(t.Context(), s.URL); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Discover = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("vendor headers and clock", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/", serveBody("application/json", loadTestdata(t, "discovery", "epic-like.json")))
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		d := Discoverer{Header: http.Header{"Epic-Client-Id": {"my-client"}}, Now: func() time.Time { return now }}
		cfg, err := d.Discover(t.Context(), s.URL)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.header(0).Get("Epic-Client-ID"); got != "my-client" {
			t.Errorf("Epic-Client-ID = %q", got)
		}
		if !cfg.FetchedAt.Equal(now) {
			t.Errorf("FetchedAt = %v", cfg.FetchedAt)
		}
	})

	t.Run("server error does not fall back", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
		_, err := Discover(t.Context(), nil, s.URL)
		var de *DiscoveryError
		if !errors.As(err, &de) || de.StatusCode != 500 || !errors.Is(err, ErrHTTPStatus) {
			t.Fatalf("Discover = %v", err)
		}
		if got := s.paths(); len(got) != 1 {
			t.Errorf("requests %q", got)
		}
	})
}

// CONV-1: the FHIR base itself is checked before any request.
func TestDiscoverBaseURL(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"http://ehr.example.org/fhir", "ftp://ehr.example.org/fhir", "fhir", "https://169.254.169.254/fhir", "https://ehr.example.org/fhir?x=1", "https://u:p@ehr.example.org/fhir"} {
		if _, err := Discover(t.Context(), nil, base); !errors.Is(err, ErrInsecureURL) {
			t.Errorf("Discover(%q) = %v, want ErrInsecureURL", base, err)
		}
	}
}

// DISC-06: relative endpoints; the https policy after resolution.
func TestDiscoverRelativeEndpoints(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.mux.HandleFunc("/fhir/.well-known/smart-configuration", serveBody("application/json", loadTestdata(t, "discovery", "relative-endpoints.json")))
	cfg, err := Discover(t.Context(), nil, s.URL+"/fhir")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TokenEndpoint != s.URL+"/fhir/auth/token" || cfg.AuthorizationEndpoint != s.URL+"/fhir/auth/authorize" || cfg.RegistrationEndpoint != s.URL+"/register" {
		t.Errorf("endpoints %q %q %q", cfg.TokenEndpoint, cfg.AuthorizationEndpoint, cfg.RegistrationEndpoint)
	}
	if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.HasPrefix(w, "token_endpoint: relative URL") }) {
		t.Errorf("no warning for the relative URL: %q", cfg.Warnings)
	}
}

func TestParseConfigurationEndpointPolicy(t *testing.T) {
	t.Parallel()
	const base = "https://ehr.example.org/fhir"
	doc := func(extra string) []byte {
		return []byte(`{"token_endpoint":"https://ehr.example.org/token","capabilities":[]` + extra + `}`)
	}
	tests := []struct {
		name  string
		doc   []byte
		want  error
		check func(*Configuration) bool
	}{
		{"http token endpoint", []byte(`{"token_endpoint":"http://evil.example/token","capabilities":[]}`), ErrInsecureURL, nil},
		{"javascript authorize", doc(`,"authorization_endpoint":"javascript:alert(1)"`), ErrInsecureURL, nil},
		{"file jwks", doc(`,"jwks_uri":"file:///etc/passwd"`), ErrInsecureURL, nil},
		{"metadata host registration", doc(`,"registration_endpoint":"https://169.254.169.254/latest"`), ErrInsecureURL, nil},
		{"user info in introspection", doc(`,"introspection_endpoint":"https://a:b@ehr.example.org/i"`), ErrInsecureURL, nil},
		{"http management page dropped", doc(`,"management_endpoint":"http://evil.example/manage"`), nil,
			func(c *Configuration) bool { return c.ManagementEndpoint == "" && len(c.Warnings) > 0 }},
		{"bad associated endpoint dropped", doc(`,"associated_endpoints":[{"url":"ftp://x.example","capabilities":[]},{"url":"https://ok.example/d","capabilities":["x"]}]`), nil,
			func(c *Configuration) bool {
				return len(c.AssociatedEndpoints) == 1 && c.AssociatedEndpoints[0].URL == "https://ok.example/d"
			}},
		{"scheme-relative resolves to https", doc(`,"revocation_endpoint":"//other.example/revoke"`), nil,
			func(c *Configuration) bool { return c.RevocationEndpoint == "https://other.example/revoke" }},
		{"loopback http allowed", []byte(`{"token_endpoint":"http://127.0.0.1:9090/auth/token","capabilities":[]}`), nil,
			func(c *Configuration) bool { return c.TokenEndpoint == "http://127.0.0.1:9090/auth/token" }},
		{"optional member of the wrong type", doc(`,"scopes_supported":"openid","grant_types_supported":["a",1],"authorization_response_iss_parameter_supported":"yes","user_access_brand_identifier":"x"`), nil,
			func(c *Configuration) bool {
				return c.ScopesSupported == nil && c.GrantTypesSupported == nil && !c.AuthorizationResponseIssParameterSupported &&
					c.UserAccessBrandIdentifier == nil && len(c.Warnings) >= 4
			}},
		{"null members", []byte(`{"token_endpoint":"https://ehr.example.org/token","capabilities":null,"issuer":null}`), nil,
			func(c *Configuration) bool { return c.Capabilities == nil && c.Issuer == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfiguration(tt.doc, base)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseConfiguration = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if !errors.Is(err, ErrInvalidDocument) {
					t.Errorf("%v does not wrap ErrInvalidDocument too", err)
				}
				return
			}
			if !tt.check(cfg) {
				t.Errorf("unexpected configuration %+v", cfg)
			}
		})
	}
	// InsecureAllowHTTP opts in (CONV-1).
	d := Discoverer{InsecureAllowHTTP: true}
	s := newTestServer(t)
	s.mux.HandleFunc("/", serveBody("application/json", []byte(`{"token_endpoint":"http://ehr.internal.example/token","capabilities":[]}`)))
	if cfg, err := d.Discover(t.Context(), s.URL); err != nil || cfg.TokenEndpoint != "http://ehr.internal.example/token" {
		t.Errorf("InsecureAllowHTTP: %v", err)
	}
	if _, err := Discover(t.Context(), nil, s.URL); !errors.Is(err, ErrInsecureURL) {
		t.Errorf("without InsecureAllowHTTP: %v", err)
	}
}

// DISC-12: the CapabilityStatement fallback.
func TestDiscoverCapabilityStatementFallback(t *testing.T) {
	t.Parallel()

	t.Run("endpoints from oauth-uris", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/r3/metadata", serveBody("application/fhir+json;charset=utf-8", loadTestdata(t, "discovery", "v1-capabilitystatement.json")))
		cfg, err := Discover(t.Context(), nil, s.URL+"/r3/")
		if err != nil {
			t.Fatal(err)
		}
		want := &Configuration{
			AuthorizationEndpoint: "https://legacy.example.org/oauth/authorize",
			TokenEndpoint:         "https://legacy.example.org/oauth/token",
			RegistrationEndpoint:  "https://legacy.example.org/oauth/register",
			ManagementEndpoint:    "https://legacy.example.org/oauth/manage",
			IntrospectionEndpoint: "https://legacy.example.org/oauth/introspect",
			RevocationEndpoint:    "https://legacy.example.org/oauth/revoke",
			Capabilities:          []string{"launch-standalone", "launch-ehr", "client-public"},
			FHIRBase:              s.URL + "/r3/",
			DocumentURL:           s.URL + "/r3/metadata",
			Legacy:                true,
		}
		if diff := cmp.Diff(want, cfg, cmp.AllowUnexported(Configuration{}), cmp.FilterPath(func(p cmp.Path) bool {
			return p.Last().String() == ".FetchedAt" || p.Last().String() == ".Warnings"
		}, cmp.Ignore())); diff != "" {
			t.Errorf("configuration (-want +got):\n%s", diff)
		}
		if got := s.paths(); !slices.Equal(got, []string{"/r3/.well-known/smart-configuration", "/r3/metadata"}) {
			t.Errorf("requests %q", got)
		}
		if accept := s.header(1).Get("Accept"); !strings.HasPrefix(accept, "application/fhir+json") || !strings.Contains(accept, "application/json+fhir") {
			t.Errorf("metadata Accept = %q", accept)
		}
		if cfg.ScopeStyle() != ScopeStyleV1 || cfg.RequireLaunch() != nil {
			t.Error("a legacy server gets v1 scopes and may launch")
		}
		if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.Contains(w, "used "+s.URL+"/r3/metadata") }) {
			t.Errorf("warnings %q", cfg.Warnings)
		}
	})

	t.Run("after an HTML well-known", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/.well-known/smart-configuration", serveBody("text/html", []byte("<html>login</html>")))
		s.mux.HandleFunc("/metadata", serveBody("application/json+fhir", loadTestdata(t, "discovery", "v1-capabilitystatement.json")))
		cfg, err := Discover(t.Context(), nil, s.URL)
		if err != nil || !cfg.Legacy {
			t.Fatalf("Discover = %+v, %v", cfg, err)
		}
	})

	t.Run("missing token", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/metadata", serveBody("application/fhir+json", loadTestdata(t, "discovery", "v1-capabilitystatement-no-token.json")))
		_, err := Discover(t.Context(), nil, s.URL)
		if !errors.Is(err, ErrMissingTokenEndpoint) {
			t.Fatalf("Discover = %v, want ErrMissingTokenEndpoint", err)
		}
		var de *DiscoveryError
		if !errors.As(err, &de) || de.StatusCode != 404 {
			t.Errorf("the first error should be the 404 of .well-known: %v", err)
		}
	})

	for name, body := range map[string]string{
		"no oauth-uris":       `{"resourceType":"CapabilityStatement","rest":[{"mode":"server"}]}`,
		"not a capstatement":  `{"resourceType":"Patient","id":"x"}`,
		"truncated":           `{"resourceType":"CapabilityStatement","rest":[`,
		"token not https":     `{"resourceType":"CapabilityStatement","rest":[{"security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[{"url":"token","valueUri":"http://evil.example/t"}]}]}}]}`,
		"rest of wrong shape": `{"resourceType":"CapabilityStatement","rest":{"security":1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			s.mux.HandleFunc("/metadata", serveBody("application/fhir+json", []byte(body)))
			if cfg, err := Discover(t.Context(), nil, s.URL); err == nil {
				t.Fatalf("Discover = %+v, want an error", cfg)
			}
		})
	}

	t.Run("huge CapabilityStatement", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/metadata", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			_, _ = io.WriteString(w, `{"resourceType":"CapabilityStatement","text":"`)
			chunk := strings.Repeat("x", 64<<10)
			for range (MaxCapabilityStatementBytes + 1<<20) / len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		})
		if _, err := Discover(t.Context(), nil, s.URL); !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("Discover = %v, want ErrBodyTooLarge", err)
		}
	})

	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		d := Discoverer{Fallbacks: []Fallback{}}
		if _, err := d.Discover(t.Context(), s.URL); !errors.Is(err, ErrHTTPStatus) {
			t.Fatalf("Discover = %v", err)
		}
		if got := s.paths(); len(got) != 1 {
			t.Errorf("requests %q", got)
		}
	})

	t.Run("OpenID configuration (MEDITECH)", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t)
		s.mux.HandleFunc("/fhir/.well-known/openid-configuration", serveBody("application/json", loadTestdata(t, "discovery", "meditech-like-openid-configuration.json")))
		d := Discoverer{Fallbacks: []Fallback{FallbackCapabilityStatement, FallbackOpenIDConfiguration}}
		cfg, err := d.Discover(t.Context(), s.URL+"/fhir")
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.Legacy || cfg.Issuer != "https://greenfield.meditech-like.example.com" || cfg.JWKSURI == "" || cfg.RequireLaunch() != nil {
			t.Errorf("configuration %+v", cfg)
		}
		var claims struct {
			Userinfo string `json:"userinfo_endpoint"`
		}
		if err := cfg.Claims(&claims); err != nil || claims.Userinfo == "" {
			t.Errorf("Claims: %q, %v", claims.Userinfo, err)
		}
		if got := s.paths(); !slices.Equal(got, []string{"/fhir/.well-known/smart-configuration", "/fhir/metadata", "/fhir/.well-known/openid-configuration"}) {
			t.Errorf("requests %q", got)
		}
	})
}

// Vendor-shaped documents: DISC-03, DISC-04, DISC-08, DISC-09, DISC-11, DISC-16, BS-01.
func TestVendorDocuments(t *testing.T) {
	t.Parallel()
	all := []CapabilitySet{SetPatientStandalone, SetPatientEHR, SetClinicianStandalone, SetClinicianEHR}
	tests := []struct {
		file    string
		base    string
		sets    []CapabilitySet
		style   ScopeStyle
		launch  error
		backend error
		openid  error
	}{
		{"smart-2.2-full.json", "https://ehr.example.org/fhir", all, ScopeStyleV2, nil, nil, nil},
		{"epic-like.json", "https://fhir.epic-like.example.com/api/FHIR/R4", all, ScopeStyleV2, nil, nil, nil},
		{"oracle-like.json", "https://fhir-ehr.oracle-like.example.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d", all, ScopeStyleV2, nil, nil, nil},
		// athena: no code_challenge_methods_supported (PKCE forced), no encounter context.
		{"athena-like.json", "https://api.athena-like.example.com/fhir/r4", []CapabilitySet{SetPatientStandalone, SetPatientEHR, SetClinicianStandalone}, ScopeStyleV1, nil, nil, nil},
		{"v1-wellknown.json", "https://v1.example.org/fhir", nil, ScopeStyleV1, nil, ErrAuthMethodNotSupported, ErrOpenIDConfig},
		{"backend-only.json", "https://bulk.example.org/fhir", nil, ScopeStyleV2, ErrNoAuthorizationEndpoint, nil, ErrOpenIDConfig},
		{"hostile-plain-only.json", "https://ehr.example.org/fhir", nil, ScopeStyleV1, ErrNoS256, ErrGrantTypeNotSupported, ErrOpenIDConfig},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfiguration(loadTestdata(t, "discovery", tt.file), tt.base)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.CapabilitySets(); !slices.Equal(got, tt.sets) {
				t.Errorf("CapabilitySets = %q, want %q", got, tt.sets)
			}
			if got := cfg.ScopeStyle(); got != tt.style {
				t.Errorf("ScopeStyle = %v, want %v", got, tt.style)
			}
			if err := cfg.RequireLaunch(); !errors.Is(err, tt.launch) {
				t.Errorf("RequireLaunch = %v, want %v", err, tt.launch)
			}
			if err := cfg.RequireBackend(); !errors.Is(err, tt.backend) {
				t.Errorf("RequireBackend = %v, want %v", err, tt.backend)
			}
			if err := cfg.RequireOpenID(); !errors.Is(err, tt.openid) {
				t.Errorf("RequireOpenID = %v, want %v", err, tt.openid)
			}
			if e := cfg.Endpoint(); e.AuthStyle == oauth2.AuthStyleAutoDetect || e.TokenURL != cfg.TokenEndpoint {
				t.Errorf("Endpoint = %+v", e)
			}
		})
	}
}

// DISC-04: missing PKCE and grant type lists are tolerated with a warning; DISC-05: plain alongside
// S256 is fine (plain is never chosen).
func TestRequireLaunchPKCE(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		methods []string
		want    error
	}{
		{nil, nil},
		{[]string{"S256"}, nil},
		{[]string{"plain", "S256"}, nil},
		{[]string{"plain"}, ErrNoS256},
		{[]string{"s256"}, ErrNoS256},
	} {
		c := &Configuration{AuthorizationEndpoint: "https://a.example/authorize", TokenEndpoint: "https://a.example/token", CodeChallengeMethodsSupported: tt.methods}
		if err := c.RequireLaunch(); !errors.Is(err, tt.want) {
			t.Errorf("%q: RequireLaunch = %v, want %v", tt.methods, err, tt.want)
		}
	}
	c := &Configuration{AuthorizationEndpoint: "https://a.example/authorize", GrantTypesSupported: []string{"client_credentials"}}
	if err := c.RequireLaunch(); !errors.Is(err, ErrGrantTypeNotSupported) {
		t.Errorf("RequireLaunch without authorization_code = %v", err)
	}
	cfg, err := ParseConfiguration(loadTestdata(t, "discovery", "athena-like.json"), "https://api.athena-like.example.com/fhir")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.HasPrefix(w, "code_challenge_methods_supported: missing") }) {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

// BS-01.
func TestRequireBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    Configuration
		want error
	}{
		{"lists absent", Configuration{TokenEndpoint: "https://a.example/t"}, nil},
		{"no token endpoint", Configuration{}, ErrMissingTokenEndpoint},
		{"no client_credentials", Configuration{TokenEndpoint: "https://a.example/t", GrantTypesSupported: []string{"authorization_code"}}, ErrGrantTypeNotSupported},
		{"secret only", Configuration{TokenEndpoint: "https://a.example/t", TokenEndpointAuthMethodsSupported: []string{"client_secret_basic"}}, ErrAuthMethodNotSupported},
		{"RS256 only", Configuration{TokenEndpoint: "https://a.example/t", TokenEndpointAuthSigningAlgValuesSupported: []string{"RS256"}}, ErrSigningAlgNotSupported},
		{"RS384 only", Configuration{TokenEndpoint: "https://a.example/t", TokenEndpointAuthSigningAlgValuesSupported: []string{"RS384"}}, nil},
	}
	for _, tt := range tests {
		if err := tt.c.RequireBackend(); !errors.Is(err, tt.want) {
			t.Errorf("%s: RequireBackend = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// DISC-10: auth method and signing algorithm, never a downgrade.
func TestPickAuthMethod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		advertised []string
		client     []string
		want       string
		err        error
	}{
		{nil, []string{AuthMethodClientSecretBasic}, AuthMethodClientSecretBasic, nil},
		{nil, []string{AuthMethodClientSecretPost}, "", ErrAuthMethodNotSupported}, // RFC 8414 default is basic
		{nil, []string{AuthMethodPrivateKeyJWT}, AuthMethodPrivateKeyJWT, nil},
		{nil, []string{AuthMethodNone}, AuthMethodNone, nil},
		{[]string{"client_secret_basic"}, []string{AuthMethodPrivateKeyJWT, AuthMethodClientSecretBasic}, "", ErrAuthMethodNotSupported}, // no downgrade
		{[]string{"client_secret_post", "private_key_jwt"}, []string{AuthMethodClientSecretBasic, AuthMethodClientSecretPost}, AuthMethodClientSecretPost, nil},
		{[]string{"client_secret_post", "private_key_jwt"}, []string{AuthMethodPrivateKeyJWT}, AuthMethodPrivateKeyJWT, nil},
		{[]string{"private_key_jwt"}, []string{AuthMethodNone}, AuthMethodNone, nil}, // public clients are rarely listed
		{[]string{"private_key_jwt"}, nil, "", ErrAuthMethodNotSupported},
	}
	for _, tt := range tests {
		c := &Configuration{TokenEndpointAuthMethodsSupported: tt.advertised}
		got, err := c.PickAuthMethod(tt.client...)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("advertised %q, client %q: %q, %v; want %q, %v", tt.advertised, tt.client, got, err, tt.want, tt.err)
		}
	}
	c := &Configuration{TokenEndpointAuthSigningAlgValuesSupported: []string{"RS384"}}
	if alg, err := c.PickSigningAlg("ES384", "RS384"); alg != "RS384" || err != nil {
		t.Errorf("PickSigningAlg = %q, %v", alg, err)
	}
	if alg, err := (&Configuration{}).PickSigningAlg("ES384", "RS384"); alg != "ES384" || err != nil {
		t.Errorf("PickSigningAlg without a list = %q, %v", alg, err)
	}
	if _, err := c.PickSigningAlg("ES384"); !errors.Is(err, ErrSigningAlgNotSupported) {
		t.Errorf("PickSigningAlg = %v", err)
	}
}

// DISC-08, DISC-09.
func TestCapabilities(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfiguration(loadTestdata(t, "discovery", "smart-2.2-full.json"), "https://ehr.example.org/fhir")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Capability{CapContextBanner, CapContextStyle, "context-passthrough-banner", "http://sdo.example.org/example-new-capability", CapSMARTAppState} {
		if !cfg.Supports(c) {
			t.Errorf("Supports(%q) = false", c)
		}
	}
	if cfg.Supports("launch-everything") {
		t.Error("Supports an unlisted capability")
	}
	base := []string{"client-public", "launch-ehr", "launch-standalone", "context-ehr-patient", "context-standalone-patient", "permission-patient"}
	tests := []struct {
		caps []string
		want []CapabilitySet
	}{
		{base, []CapabilitySet{SetPatientStandalone, SetPatientEHR}},
		{append(slices.Clone(base), "permission-user"), []CapabilitySet{SetPatientStandalone, SetPatientEHR, SetClinicianStandalone}},
		{append(slices.Clone(base), "permission-user", "context-ehr-encounter"), []CapabilitySet{SetPatientStandalone, SetPatientEHR, SetClinicianStandalone, SetClinicianEHR}},
		{[]string{"client-confidential-asymmetric", "launch-ehr", "context-ehr-patient", "permission-patient"}, nil}, // asymmetric alone is not enough
		{[]string{"client-confidential-symmetric", "launch-ehr", "context-ehr-patient", "permission-patient"}, []CapabilitySet{SetPatientEHR}},
		{nil, nil},
	}
	for _, tt := range tests {
		c := &Configuration{Capabilities: tt.caps}
		if got := c.CapabilitySets(); !slices.Equal(got, tt.want) {
			t.Errorf("%q: sets %q, want %q", tt.caps, got, tt.want)
		}
	}
	if (&Configuration{}).SupportsSet("nonsense") {
		t.Error("SupportsSet of an unknown set")
	}
}

// DISC-16, SCOPE-12.
func TestConfigurationScopeStyle(t *testing.T) {
	t.Parallel()
	for caps, want := range map[string]ScopeStyle{
		"permission-v2":               ScopeStyleV2,
		"permission-v1":               ScopeStyleV1,
		"permission-v1 permission-v2": ScopeStyleV2,
		"":                            ScopeStyleV1,
	} {
		c := &Configuration{Capabilities: strings.Fields(caps)}
		if got := c.ScopeStyle(); got != want {
			t.Errorf("%q: %v, want %v", caps, got, want)
		}
		if want == ScopeStyleV2 && MustParseScopes("system/*.read").Format(c.ScopeStyle()) != "system/*.rs" {
			t.Error("v2 server should get .rs")
		}
	}
}

// DISC-11.
func TestOpenIDWithoutIssuer(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfiguration([]byte(`{"token_endpoint":"https://a.example/t","capabilities":["sso-openid-connect"],"jwks_uri":"https://a.example/jwks"}`), "https://a.example/fhir")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.RequireOpenID(); !errors.Is(err, ErrOpenIDConfig) {
		t.Errorf("RequireOpenID = %v", err)
	}
	if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.HasPrefix(w, "sso-openid-connect advertised") }) {
		t.Errorf("warnings %q", cfg.Warnings)
	}
}

// DISC-07, AUTH-09: a document can name any host; credentials go only to trusted origins.
func TestCheckEndpointOrigins(t *testing.T) {
	t.Parallel()
	const base = "https://fhir-ehr.oracle-like.example.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d"
	cfg, err := ParseConfiguration(loadTestdata(t, "discovery", "oracle-like.json"), base)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckEndpointOrigins()
	if !errors.Is(err, ErrUntrustedEndpoint) || !strings.Contains(err.Error(), "token_endpoint is on https://authorization.oracle-like.example.com:443") {
		t.Fatalf("CheckEndpointOrigins() = %v", err)
	}
	if err := cfg.CheckEndpointOrigins("https://authorization.oracle-like.example.com"); err != nil {
		t.Errorf("with the auth server trusted: %v", err)
	}
	if got := cfg.TokenEndpointOrigin(); got != "https://authorization.oracle-like.example.com:443" {
		t.Errorf("TokenEndpointOrigin = %q", got)
	}
	// Same host, other port: another origin (CONV-1).
	c := &Configuration{FHIRBase: "https://ehr.example.org/fhir", TokenEndpoint: "https://ehr.example.org:8443/token"}
	if err := c.CheckEndpointOrigins(); !errors.Is(err, ErrUntrustedEndpoint) {
		t.Errorf("other port: %v", err)
	}
	c = &Configuration{FHIRBase: "https://ehr.example.org/fhir", TokenEndpoint: "https://ehr.example.org/token", IntrospectionEndpoint: "https://evil.example/introspect"}
	if err := c.CheckEndpointOrigins(); !errors.Is(err, ErrUntrustedEndpoint) || !strings.Contains(err.Error(), "introspection_endpoint") {
		t.Errorf("introspection elsewhere: %v", err)
	}
	// The app-state endpoint is called with the access token (SMART 2.2 §app-state).
	a := &Configuration{FHIRBase: "https://ehr.example.org/fhir", TokenEndpoint: "https://ehr.example.org/token", SMARTAppStateEndpoint: "https://evil.example/$smart-app-state"}
	if err := a.CheckEndpointOrigins(); !errors.Is(err, ErrUntrustedEndpoint) || !strings.Contains(err.Error(), "smart_app_state_endpoint") {
		t.Errorf("app state elsewhere: %v", err)
	}
	if err := c.CheckEndpointOrigins("not a url"); err == nil {
		t.Error("a bad trusted origin must be reported")
	}
}

// DISC-15: every member survives a round trip; Claims reads vendor members.
func TestConfigurationRoundTrip(t *testing.T) {
	t.Parallel()
	doc := loadTestdata(t, "discovery", "smart-2.2-full.json")
	cfg, err := ParseConfiguration(doc, "https://ehr.example.org/fhir")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings for a complete document: %q", cfg.Warnings)
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	_ = json.Unmarshal(doc, &want)
	_ = json.Unmarshal(out, &got)
	var vendor struct {
		X struct{ Tier string } `json:"x-vendor-extension"`
	}
	if err := cfg.Claims(&vendor); err != nil || vendor.X.Tier != "gold" {
		t.Errorf("Claims: %+v, %v", vendor, err)
	}
	delete(want, "x-vendor-extension")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-doc +marshalled):\n%s", diff)
	}
	if err := cfg.Claims(new(int)); err == nil {
		t.Error("Claims into an int should fail")
	}
	if err := (&Configuration{}).Claims(&vendor); err != nil {
		t.Errorf("Claims without a document: %v", err)
	}
}

func TestEndpointAuthStyle(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		methods []string
		want    oauth2.AuthStyle
	}{
		{nil, oauth2.AuthStyleInHeader},
		{[]string{"client_secret_basic", "client_secret_post"}, oauth2.AuthStyleInHeader},
		{[]string{"client_secret_post"}, oauth2.AuthStyleInParams},
		{[]string{"private_key_jwt", "client_secret_post"}, oauth2.AuthStyleInParams},
	} {
		c := &Configuration{AuthorizationEndpoint: "https://a.example/authz", TokenEndpoint: "https://a.example/token", TokenEndpointAuthMethodsSupported: tt.methods}
		e := c.Endpoint()
		if e.AuthStyle != tt.want || e.AuthURL != c.AuthorizationEndpoint || e.TokenURL != c.TokenEndpoint {
			t.Errorf("%q: %+v", tt.methods, e)
		}
	}
}

func BenchmarkParseConfiguration(b *testing.B) {
	doc := loadTestdata(b, "discovery", "epic-like.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConfiguration(doc, "https://fhir.epic-like.example.com/api/FHIR/R4"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDiscovererParse(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"token_endpoint":"http://ehr.internal.example/token","capabilities":[]}`)
	if _, err := ParseConfiguration(doc, "http://ehr.internal.example/fhir"); !errors.Is(err, ErrInsecureURL) {
		t.Errorf("ParseConfiguration over http = %v", err)
	}
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	d := Discoverer{InsecureAllowHTTP: true, Now: func() time.Time { return now }}
	cfg, err := d.Parse(doc, "http://ehr.internal.example/fhir")
	if err != nil || cfg.FHIRBase != "http://ehr.internal.example/fhir" || !cfg.FetchedAt.Equal(now) {
		t.Errorf("Parse = %+v, %v", cfg, err)
	}
}
