package launch_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
)

const (
	smartConfigPath  = "/fhir/.well-known/smart-configuration"
	openIDConfigPath = "/fhir/.well-known/openid-configuration"
)

// rewriteDocs serves sandbox, except that the JSON documents at the paths of edits are passed
// through their edit first; an edit that returns false turns the document into a 404.
func rewriteDocs(sandbox http.Handler, edits map[string]func(doc map[string]any) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		edit, ok := edits[r.URL.Path]
		if !ok {
			sandbox.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		sandbox.ServeHTTP(rec, r)
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || !edit(doc) {
			http.NotFound(w, r)
			return
		}
		writeJSONTest(w, doc)
	})
}

// keyHost is a server on an origin of its own: /jwks serves the sandbox's JWK Set, /redirect
// redirects to to. It records what each request carried.
type keyHost struct {
	*httptest.Server
	sandbox http.Handler // set once the sandbox exists
	to      string

	mu   sync.Mutex
	hits []http.Header
}

func newKeyHost(t *testing.T) *keyHost {
	k := &keyHost{}
	k.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.hits = append(k.hits, r.Header.Clone())
		k.mu.Unlock()
		switch r.URL.Path {
		case "/jwks":
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/auth/jwks"
			k.sandbox.ServeHTTP(w, r2)
		case "/redirect":
			http.Redirect(w, r, k.to, http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(k.Close)
	return k
}

func (k *keyHost) requests() []http.Header {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]http.Header(nil), k.hits...)
}

// TestIDTokenKeysFallback: when the SMART configuration names no jwks_uri, the id_token's keys come
// from the jwks_uri of {issuer}/.well-known/openid-configuration, fetched once per issuer (IDT-01).
// By design a jwks_uri on another origin than the issuer is followed, in either document: its
// authority is the allowed issuer's discovery, and it receives no token, client authentication or
// cookie. It must pass CONV-1 (no plain http to a remote host, no file:, no metadata address) and
// may not redirect to yet another origin (DISC-14); an openid-configuration naming another issuer,
// or none at all, fails the launch with an *IDTokenError.
func TestIDTokenKeysFallback(t *testing.T) {
	t.Parallel()
	noJWKS := func(doc map[string]any) bool { delete(doc, "jwks_uri"); return true }
	for _, tc := range []struct {
		name      string
		smart     func(k *keyHost) func(map[string]any) bool
		openid    func(k *keyHost) func(map[string]any) bool
		wantErr   func(error) bool // nil: the launch succeeds; else what the *IDTokenError wraps
		oidcGets  int              // openid-configuration requests over two launches
		keyHits   int              // requests to the key host over two launches
		thirdHits int              // requests to the redirect's target
	}{
		{name: "same origin as the issuer", oidcGets: 1},
		{
			name:     "openid-configuration jwks_uri on another origin",
			openid:   func(k *keyHost) func(map[string]any) bool { return set("jwks_uri", k.URL+"/jwks") },
			oidcGets: 1, keyHits: 1,
		},
		{
			name:    "smart-configuration jwks_uri on another origin",
			smart:   func(k *keyHost) func(map[string]any) bool { return set("jwks_uri", k.URL+"/jwks") },
			keyHits: 1,
		},
		{
			name:    "openid-configuration names another issuer",
			openid:  func(*keyHost) func(map[string]any) bool { return set("issuer", "https://attacker.example/fhir") },
			wantErr: anyError, oidcGets: 2,
		},
		{
			name:    "no openid-configuration",
			openid:  func(*keyHost) func(map[string]any) bool { return func(map[string]any) bool { return false } },
			wantErr: anyError, oidcGets: 2,
		},
		{
			name:    "openid-configuration without jwks_uri",
			openid:  func(*keyHost) func(map[string]any) bool { return noJWKS },
			wantErr: anyError, oidcGets: 2,
		},
		{
			name:    "jwks_uri plain http on a remote host",
			openid:  func(*keyHost) func(map[string]any) bool { return set("jwks_uri", "http://keys.example/jwks") },
			wantErr: insecureURL, oidcGets: 2,
		},
		{
			name:    "jwks_uri file:",
			openid:  func(*keyHost) func(map[string]any) bool { return set("jwks_uri", "file:///etc/passwd") },
			wantErr: insecureURL, oidcGets: 2,
		},
		{
			name:    "jwks_uri on the cloud metadata address",
			openid:  func(*keyHost) func(map[string]any) bool { return set("jwks_uri", "https://169.254.169.254/jwks") },
			wantErr: insecureURL, oidcGets: 2,
		},
		{
			name:    "JWK Set redirects to a third origin",
			openid:  func(k *keyHost) func(map[string]any) bool { return set("jwks_uri", k.URL+"/redirect") },
			wantErr: refusedRedirect, oidcGets: 1, keyHits: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keys := newKeyHost(t)
			third := newKeyHost(t)
			keys.to = third.URL + "/jwks"
			edits := map[string]func(map[string]any) bool{smartConfigPath: noJWKS}
			if tc.smart != nil {
				edits[smartConfigPath] = tc.smart(keys)
			}
			if tc.openid != nil {
				edits[openIDConfigPath] = tc.openid(keys)
			}
			e := newEnv(t, envOptions{wrap: func(sb http.Handler) http.Handler {
				keys.sandbox, third.sandbox = sb, sb
				return rewriteDocs(sb, edits)
			}})
			for range 2 { // the second launch uses the cached keys (and the cached jwks_uri)
				b := newBrowser(t)
				status, body, _ := b.get(t, e.ehrLaunchURL(""))
				err := e.lastErr()
				switch {
				case tc.wantErr == nil && (status != http.StatusOK || err != nil):
					t.Fatalf("launch: %d %v\n%.300s", status, err, body)
				case tc.wantErr != nil && status == http.StatusOK:
					t.Fatal("launch succeeded, want an *IDTokenError")
				case tc.wantErr != nil:
					var ie *launch.IDTokenError
					if !errors.As(err, &ie) || !tc.wantErr(err) {
						t.Errorf("error %T %v", err, err)
					}
				}
			}
			oidc := 0
			for _, r := range e.rec.reqs() {
				if strings.HasSuffix(r, openIDConfigPath) {
					oidc++
				}
				for _, bad := range []string{"keys.example", "169.254.169.254", "file:"} {
					if strings.Contains(r, bad) {
						t.Errorf("request to a refused jwks_uri: %s", r)
					}
				}
			}
			if oidc != tc.oidcGets {
				t.Errorf("%d openid-configuration requests, want %d", oidc, tc.oidcGets)
			}
			hits := keys.requests()
			if len(hits) != tc.keyHits {
				t.Errorf("%d requests to the key host, want %d", len(hits), tc.keyHits)
			}
			for _, h := range hits {
				for _, name := range []string{"Authorization", "Cookie", "DPoP"} {
					if h.Get(name) != "" {
						t.Errorf("the key host received %s", name)
					}
				}
			}
			if n := len(third.requests()); n != tc.thirdHits {
				t.Errorf("%d requests to the redirect's target, want %d", n, tc.thirdHits)
			}
		})
	}
}

func anyError(error) bool            { return true }
func insecureURL(err error) bool     { return errors.Is(err, httpx.ErrInsecureURL) }
func refusedRedirect(err error) bool { return errors.As(err, new(*httpx.RedirectError)) }

// set returns an edit that sets doc[k] = v.
func set(k, v string) func(map[string]any) bool {
	return func(doc map[string]any) bool { doc[k] = v; return true }
}
