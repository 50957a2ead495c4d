package backend

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

// keyFormats renders a key in each format ParsePrivateKey reads.
func keyFormats(t *testing.T, key crypto.Signer, kid string) map[string][]byte {
	t.Helper()
	pkcs8, err := MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	jk, err := jwk.FromRaw(key)
	if err != nil {
		t.Fatal(err)
	}
	_ = jk.Set(jwk.KeyIDKey, kid)
	jwkJSON, _ := json.Marshal(jk)
	out := map[string][]byte{"PKCS8": pkcs8, "JWK": jwkJSON, "JWKSet": []byte(`{"keys":[` + string(jwkJSON) + `]}`)}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		out["PKCS1"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case *ecdsa.PrivateKey:
		der, _ := x509.MarshalECPrivateKey(k)
		out["SEC1"] = append([]byte("-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n"),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	}
	return out
}

func TestTokenVerifiedByServer(t *testing.T) { // AUTH-05…08, BS-02, BS-04, JWKS-06
	t.Parallel()
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		for format, data := range keyFormats(t, key, "kid-from-jwk") {
			alg := map[bool]string{true: RS384, false: ES384}[isRSA(key)]
			t.Run(alg+"/"+format, func(t *testing.T) {
				t.Parallel()
				signer, kid, err := ParsePrivateKey(data)
				if err != nil {
					t.Fatal(err)
				}
				srv := newTokenServer(t, "svc")
				srv.register(kid, key.Public())
				c := &Config{ClientID: "svc", FHIRBase: srv.FHIRBase(), PrivateKey: signer, KeyID: kid}
				tok, err := c.Token(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if tok.AccessToken != "at-1" || tok.Scope != "system/*.rs" || tok.Expiry.IsZero() {
					t.Fatalf("token %+v", tok)
				}
				f := srv.form(0)
				if f.Get("grant_type") != "client_credentials" || f.Get("scope") != "system/*.rs" || f.Has("client_id") ||
					f.Get("client_assertion_type") != ClientAssertionType {
					t.Fatalf("form %v", f)
				}
				if srv.header(0).Get("Authorization") != "" {
					t.Fatal("an assertion must be the only client authentication (RFC 7521)")
				}
			})
		}
	}
}

func isRSA(k crypto.Signer) bool { _, ok := k.Public().(*rsa.PublicKey); return ok }

// hsmSigner hides the key type, as an HSM or KMS handle does (AUTH-11).
type hsmSigner struct{ k crypto.Signer }

func (h hsmSigner) Public() crypto.PublicKey { return h.k.Public() }
func (h hsmSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return h.k.Sign(r, d, o)
}

func TestTokenWithOpaqueSigner(t *testing.T) { // AUTH-11: any crypto.Signer
	t.Parallel()
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		srv := newTokenServer(t, "svc")
		srv.register(mustThumbprint(t, key), key.Public())
		c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/Patient.rs"}, PrivateKey: hsmSigner{key}}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatalf("%T: %v", key, err)
		}
	}
}

func TestTokenWithCertificate(t *testing.T) { // CONV-7: x5c for servers that register a certificate
	t.Parallel()
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		srv := newTokenServer(t, "svc")
		ca, leaf := newTestCA(t, key.Public())
		srv.ca = ca // no key registered: only the certificate chain vouches for it
		c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: key,
			KeyID: "cert-key", Certificates: []*x509.Certificate{leaf}}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatalf("%T: %v", key, err)
		}
		// A certificate for another key is a configuration error, caught before any request.
		_, other := newTestCA(t, otherECKey().Public())
		c.Certificates = []*x509.Certificate{other}
		if _, err := c.Token(t.Context()); !errors.Is(err, ErrConfig) || srv.requests() != 1 {
			t.Fatalf("mismatched certificate: err %v after %d requests", err, srv.requests())
		}
	}
}

func TestTokenNegative(t *testing.T) { // BS-06, AUTH-10, SEC-08
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(s *tokenServer, c *Config)
		wantCode string
		wantReqs int
		check    func(t *testing.T, err error)
	}{
		{name: "unknown kid", setup: func(s *tokenServer, c *Config) { c.KeyID = "not-registered" },
			wantCode: "invalid_client", wantReqs: 1},
		{name: "revoked key", setup: func(s *tokenServer, c *Config) { s.revoked[mustThumbprint(s.t, testECKey())] = true },
			wantCode: "invalid_client", wantReqs: 1},
		{name: "expired assertion (client clock 10 min behind)", setup: func(s *tokenServer, c *Config) {
			c.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
		}, wantCode: "invalid_client", wantReqs: 2, check: func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "clock") {
				t.Errorf("want a clock hint (BS-10): %v", err)
			}
		}},
		{name: "replayed jti", setup: func(s *tokenServer, c *Config) {
			c.rand = constReader{}
			s.seen["BwcHBwcHBwcHBwcHBwcHBw"] = true // the jti constReader yields
		}, wantCode: "invalid_client", wantReqs: 2},
		{name: "wrong aud", setup: func(s *tokenServer, c *Config) { c.TokenURL = s.TokenURL() + "?alias" },
			wantCode: "invalid_client", wantReqs: 1},
		{name: "invalid_scope", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				oauthError(w, 400, "invalid_scope", "system/Observation.rs is not pre-authorised")
				return true
			}
		}, wantCode: "invalid_scope", wantReqs: 1},
		{name: "HTML 500", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(500)
				io.WriteString(w, "<html><body>Internal error</body></html>")
				return true
			}
		}, wantReqs: 1, check: func(t *testing.T, err error) {
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != 500 {
				t.Errorf("want a RetrieveError with status 500: %v", err)
			}
		}},
		{name: "HTML 200", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<html>login</html>")
				return true
			}
		}, wantReqs: 1, check: func(t *testing.T, err error) {
			if !errors.Is(err, smart.ErrMalformedTokenResponse) {
				t.Errorf("want ErrMalformedTokenResponse: %v", err)
			}
		}},
		{name: "server echoes the assertion", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				w.WriteHeader(502)
				s.mu.Lock()
				a := s.assertions[len(s.assertions)-1]
				s.mu.Unlock()
				io.WriteString(w, "bad gateway for "+a)
				return true
			}
		}, wantReqs: 1},
		{name: "invalid_client without a clock hint is not retried", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				oauthError(w, 401, "invalid_client", "unknown client")
				return true
			}
		}, wantCode: "invalid_client", wantReqs: 1},
		{name: "429 three times", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				w.Header().Set("Retry-After", "1")
				oauthError(w, 429, "slow_down", "")
				return true
			}
		}, wantCode: "slow_down", wantReqs: 3},
		{name: "503 asking for 10 minutes", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool {
				w.Header().Set("Retry-After", "600")
				w.WriteHeader(503)
				return true
			}
		}, wantReqs: 1, check: func(t *testing.T, err error) {
			var ra *RetryAfterError
			if !errors.As(err, &ra) || ra.After != 10*time.Minute {
				t.Errorf("want a RetryAfterError of 10 min: %v", err)
			}
		}},
		{name: "bare 400 twice", setup: func(s *tokenServer, c *Config) {
			s.fault = func(w http.ResponseWriter, n int) bool { w.WriteHeader(400); return true }
		}, wantReqs: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newTokenServer(t, "svc")
			key := testECKey()
			srv.register(mustThumbprint(t, key), key.Public())
			ns := &noSleep{}
			c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: key, sleep: ns.sleep}
			tt.setup(srv, c)
			tok, err := c.Token(t.Context())
			if err == nil {
				t.Fatalf("got token %v, want an error", tok.AccessToken)
			}
			t.Logf("error: %v", err)
			if !strings.HasPrefix(err.Error(), "backend: ") {
				t.Errorf("error lacks the package prefix: %v", err)
			}
			if tt.wantCode != "" {
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || re.ErrorCode != tt.wantCode {
					t.Errorf("want a RetrieveError %q: %v", tt.wantCode, err)
				}
			}
			if got := srv.requests(); got != tt.wantReqs {
				t.Errorf("token requests = %d, want %d", got, tt.wantReqs)
			}
			srv.mu.Lock()
			assertNoSecret(t, err, srv.assertions...)
			srv.mu.Unlock()
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestTokenRetriesWithFreshAssertion(t *testing.T) { // CONV-3, AUTH-08, quirks: Epic bare 400
	t.Parallel()
	tests := []struct {
		name      string
		fault     func(w http.ResponseWriter)
		wantWaits []time.Duration
	}{
		{"429 then success", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "2")
			oauthError(w, 429, "too_many_requests", "")
		}, []time.Duration{2 * time.Second}},
		{"503 HTTP-date then success", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
		}, []time.Duration{0}},
		{"bare 400 then success", func(w http.ResponseWriter) { w.WriteHeader(400) }, []time.Duration{0}},
		{"invalid_client jti replay then success", func(w http.ResponseWriter) {
			oauthError(w, 400, "invalid_client", "jti has already been used")
		}, []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newTokenServer(t, "svc")
			key := testRSAKey()
			srv.register(mustThumbprint(t, key), key.Public())
			srv.fault = func(w http.ResponseWriter, n int) bool {
				if n == 1 {
					tt.fault(w)
					return true
				}
				return false
			}
			ns := &noSleep{}
			c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: key, sleep: ns.sleep}
			tok, err := c.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "at-2" || srv.requests() != 2 {
				t.Fatalf("token %q after %d requests", tok.AccessToken, srv.requests())
			}
			if fmt.Sprint(ns.waits) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits %v, want %v", ns.waits, tt.wantWaits)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.assertions) != 2 || srv.assertions[0] == srv.assertions[1] {
				t.Fatal("the retry re-sent the same assertion")
			}
			var c1, c2 map[string]any
			_ = decodeSegment(strings.Split(srv.assertions[0], ".")[1], &c1)
			_ = decodeSegment(strings.Split(srv.assertions[1], ".")[1], &c2)
			if c1["jti"] == c2["jti"] {
				t.Fatal("the retry reused the jti")
			}
		})
	}
}

func TestRefreshTokenIgnored(t *testing.T) { // BS-04
	t.Parallel()
	srv := newTokenServer(t, "svc")
	key := testECKey()
	srv.register(mustThumbprint(t, key), key.Public())
	srv.extra = map[string]any{"refresh_token": "rt-should-not-be-kept"}
	c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: key, Store: &smart.MemoryStore{}}
	tok, err := c.TokenSource(t.Context()).Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Fatal("a backend token kept its refresh token")
	}
}

func TestBlamesClock(t *testing.T) { // AUTH-10: only clock and jti problems earn a retry
	t.Parallel()
	for desc, want := range map[string]bool{
		`assertion rejected: "exp" not satisfied`:                 true,
		"client_assertion has expired (exp 2026-11-26T11:02:35Z)": true,
		"client_assertion: jti has already been used (simulated)": true,
		"JWT not yet valid":                                       true,
		"iat is in the future":                                    true,
		"replayed assertion":                                      true,
		"the client registration has expired (simulated)":         false,
		`key "abc" has been revoked`:                              false,
		"unknown client":                                          false,
		"no key of client \"x\" has kid \"expected-kid\" (RS384)": false,
		"": false,
	} {
		if got := blamesClock(desc); got != want {
			t.Errorf("blamesClock(%q) = %v, want %v", desc, got, want)
		}
	}
}

func TestTokenRetryHonoursContext(t *testing.T) { // CONV-3: waits are ctx-aware
	t.Parallel()
	srv := newTokenServer(t, "svc")
	srv.fault = func(w http.ResponseWriter, n int) bool {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(429)
		return true
	}
	c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: testECKey()}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Token(ctx)
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.After != 30*time.Second {
		t.Fatalf("err = %v, want a RetryAfterError (the wait exceeds the deadline)", err)
	}
	if time.Since(start) > time.Second || srv.requests() != 1 {
		t.Fatalf("waited %v and sent %d requests; want an immediate answer", time.Since(start), srv.requests())
	}
	// A real wait is interrupted by cancellation.
	srv.fault = func(w http.ResponseWriter, n int) bool {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(429)
		return true
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := c.Token(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestClientSecret(t *testing.T) { // AUTH-02, AUTH-03, AUTH-04, CONV-4
	t.Parallel()
	t.Run("basic header vector", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "my-app")
		srv.secret = "my-app-secret-123"
		c := &Config{ClientID: "my-app", ClientSecret: "my-app-secret-123", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.read"}}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := srv.header(0).Get("Authorization"); got != "Basic bXktYXBwOm15LWFwcC1zZWNyZXQtMTIz" {
			t.Fatalf("Authorization = %q", got)
		}
		if f := srv.form(0); f.Has("client_id") || f.Has("client_secret") || f.Has("client_assertion") {
			t.Fatalf("credentials in the body too: %v", f)
		}
	})
	t.Run("basic with characters to form-encode", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "app:1")
		srv.secret = "p%ss: w+rd"
		c := &Config{ClientID: "app:1", ClientSecret: "p%ss: w+rd", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.read"}}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("post", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "svc")
		srv.secret = "s3cret-value"
		c := &Config{ClientID: "svc", ClientSecret: "s3cret-value", AuthStyle: oauth2.AuthStyleInParams, TokenURL: srv.TokenURL(), Scopes: []string{"system/*.read"}}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		if srv.header(0).Get("Authorization") != "" || srv.form(0).Get("client_secret") != "s3cret-value" {
			t.Fatal("client_secret_post must send the secret in the body only")
		}
	})
	t.Run("wrong secret never leaks", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "svc")
		srv.secret = "right"
		srv.fault = func(w http.ResponseWriter, n int) bool {
			oauthError(w, 401, "invalid_client", "bad secret wrong-secret-value") // a hostile echo
			return true
		}
		c := &Config{ClientID: "svc", ClientSecret: "wrong-secret-value", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.read"}}
		_, err := c.Token(t.Context())
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
			t.Fatalf("err = %v", err)
		}
		assertNoSecret(t, err, "wrong-secret-value")
	})
	t.Run("key and secret: the key wins", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "svc")
		srv.register(mustThumbprint(t, testECKey()), testECKey().Public())
		c := &Config{ClientID: "svc", ClientSecret: "unused-secret", PrivateKey: testECKey(), TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		if srv.header(0).Get("Authorization") != "" || srv.form(0).Has("client_secret") || !srv.form(0).Has("client_assertion") {
			t.Fatal("with a key the assertion must be used and the secret never sent")
		}
	})
}

func TestConfigErrors(t *testing.T) { // AUTH-07, BS-03, BS-07, CONV-1
	t.Parallel()
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	base := func() Config {
		return Config{ClientID: "svc", TokenURL: "https://ehr.example.org/token", Scopes: []string{"system/*.rs"}, PrivateKey: testECKey()}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   error
	}{
		{"no client id", func(c *Config) { c.ClientID = "" }, ErrConfig},
		{"no key or secret", func(c *Config) { c.PrivateKey = nil }, ErrConfig},
		{"no URL", func(c *Config) { c.TokenURL = "" }, ErrConfig},
		{"no scopes and nothing to discover them from", func(c *Config) { c.Scopes = nil }, ErrConfig},
		{"RSA 1024", func(c *Config) { c.PrivateKey = rsa1024 }, ErrUnsupportedKey},
		{"P-256", func(c *Config) { c.PrivateKey = p256 }, ErrUnsupportedKey},
		{"algorithm mismatch", func(c *Config) { c.Algorithm = RS384 }, ErrUnsupportedKey},
		{"RS256", func(c *Config) { c.PrivateKey, c.Algorithm = testRSAKey(), "RS256" }, ErrUnsupportedKey},
		{"lifetime 6 min", func(c *Config) { c.AssertionLifetime = 6 * time.Minute }, ErrConfig},
		{"reserved endpoint param", func(c *Config) { c.EndpointParams = map[string][]string{"client_assertion": {"x"}} }, ErrConfig},
		{"Authorization header", func(c *Config) { c.Header = http.Header{"Authorization": {"Basic x"}} }, ErrConfig},
		{"plain http", func(c *Config) { c.TokenURL = "http://ehr.example.org/token" }, ErrConfig},
		{"file URL", func(c *Config) { c.TokenURL = "file:///etc/passwd" }, ErrConfig},
		{"patient scope", func(c *Config) { c.Scopes = []string{"patient/*.rs"} }, ErrConfig},
		{"user scope", func(c *Config) { c.Scopes = []string{"system/*.rs", "user/Observation.read"} }, ErrConfig},
		{"key and key set", func(c *Config) { c.Keys, _ = NewKeySet(Key{Signer: testRSAKey()}) }, ErrConfig},
		{"key set with kid", func(c *Config) { c.Keys, _ = NewKeySet(Key{Signer: testRSAKey()}); c.PrivateKey = nil; c.KeyID = "x" }, ErrConfig},
		{"bad AuthStyle", func(c *Config) { c.PrivateKey, c.ClientSecret, c.AuthStyle = nil, "s", 7 }, ErrConfig},
		{"bad trusted origin", func(c *Config) { c.TrustedOrigins = []string{"not a url"} }, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tt.mutate(&c)
			if _, err := c.Token(t.Context()); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// Allowed on request.
	c := base()
	c.Scopes, c.AllowNonSystemScopes = []string{"patient/*.rs"}, true
	if _, err := c.resolve(t.Context()); err != nil {
		t.Fatalf("AllowNonSystemScopes: %v", err)
	}
	c = base()
	c.TokenURL, c.InsecureAllowHTTP = "http://ehr.internal/token", true
	if _, err := c.resolve(t.Context()); err != nil {
		t.Fatalf("InsecureAllowHTTP: %v", err)
	}
}

func TestConfigStringRedacts(t *testing.T) { // AUTH-11, SEC-08
	t.Parallel()
	c := Config{ClientID: "svc", ClientSecret: "top-secret-value", PrivateKey: testRSAKey(), Keys: nil}
	d := testRSAKey().D.String()
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{c, &c, Key{Signer: testRSAKey()}} {
			out := fmt.Sprintf(f, v)
			if strings.Contains(out, "top-secret-value") || strings.Contains(out, d[:20]) {
				t.Fatalf("%s of %T prints secrets: %s", f, v, out)
			}
		}
	}
}

func TestDiscovery(t *testing.T) { // AUTH-09, BS-01, CONV-6
	t.Parallel()
	key := testECKey()
	kid := mustThumbprint(t, key)
	tests := []struct {
		name      string
		discovery map[string]any
		trust     bool
		scopes    []string
		wantErr   error
		wantScope string
	}{
		{name: "permission-v2 → system/*.rs", wantScope: "system/*.rs"},
		{name: "no permission-v2 → system/*.read", discovery: map[string]any{"capabilities": []string{"client-confidential-asymmetric"}}, wantScope: "system/*.read"},
		{name: "configured scopes win", scopes: []string{"system/Group.rs"}, wantScope: "system/Group.rs"},
		{name: "token endpoint on another origin", discovery: map[string]any{"token_endpoint": "https://evil.example/token"}, wantErr: smart.ErrUntrustedEndpoint},
		{name: "grant type not supported", discovery: map[string]any{"grant_types_supported": []string{"authorization_code"}}, wantErr: smart.ErrGrantTypeNotSupported},
		{name: "signing alg not supported", discovery: map[string]any{"token_endpoint_auth_signing_alg_values_supported": []string{"RS384"}}, wantErr: smart.ErrSigningAlgNotSupported},
		{name: "SMART launcher style: no signing algs listed", discovery: map[string]any{"token_endpoint_auth_signing_alg_values_supported": nil}, wantScope: "system/*.rs"},
		{name: "no token endpoint", discovery: map[string]any{"token_endpoint": nil}, wantErr: smart.ErrMissingTokenEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newTokenServer(t, "svc")
			srv.register(kid, key.Public())
			srv.discovery = tt.discovery
			c := &Config{ClientID: "svc", FHIRBase: srv.FHIRBase(), Scopes: tt.scopes, PrivateKey: key}
			tok, err := c.Token(t.Context())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || srv.requests() != 0 {
					t.Fatalf("err = %v after %d token requests; want %v and none", err, srv.requests(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if srv.form(0).Get("scope") != tt.wantScope || tok.Scope != tt.wantScope {
				t.Fatalf("scope requested %q, granted %q; want %q", srv.form(0).Get("scope"), tok.Scope, tt.wantScope)
			}
		})
	}
}

func TestDiscoveredForeignTokenEndpointWhenTrusted(t *testing.T) { // AUTH-09: explicit trust
	t.Parallel()
	key := testECKey()
	authz := newTokenServer(t, "svc") // the authorization server, on its own origin
	authz.register(mustThumbprint(t, key), key.Public())
	fhir := newTokenServer(t, "svc") // the FHIR server, whose discovery names authz's token endpoint
	fhir.discovery = map[string]any{"token_endpoint": authz.TokenURL()}
	c := &Config{ClientID: "svc", FHIRBase: fhir.FHIRBase(), PrivateKey: key}
	if _, err := c.Token(t.Context()); !errors.Is(err, smart.ErrUntrustedEndpoint) || authz.requests() != 0 {
		t.Fatalf("untrusted: err %v, %d requests", err, authz.requests())
	}
	c.TrustedOrigins = []string{authz.URL}
	if _, err := c.Token(t.Context()); err != nil {
		t.Fatalf("trusted: %v", err)
	}
}

func TestGrantedScopeNarrower(t *testing.T) { // SCOPE-10, BS-04
	t.Parallel()
	key := testECKey()
	for _, require := range []bool{false, true} {
		srv := newTokenServer(t, "svc")
		srv.register(mustThumbprint(t, key), key.Public())
		srv.grant = "system/Patient.rs"
		c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/Patient.rs", "system/Observation.rs"},
			PrivateKey: key, RequireScopes: require}
		tok, err := c.Token(t.Context())
		if require {
			if !errors.Is(err, smart.ErrScopeNotGranted) || !strings.Contains(err.Error(), "system/Observation.rs") {
				t.Fatalf("RequireScopes: err = %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m := MissingScopes(c.Scopes, tok); len(m) != 1 || m[0] != "system/Observation.rs" {
			t.Fatalf("MissingScopes = %v", m)
		}
		if !strings.Contains(strings.Join(tok.Warnings, "\n"), "system/Observation.rs") {
			t.Fatalf("warnings %v do not report the narrower grant", tok.Warnings)
		}
	}
	// v1 and v2 spellings of the same access are equal.
	if m := MissingScopes([]string{"system/*.read"}, &smart.Token{Token: &oauth2.Token{}, Scope: "system/*.rs"}); len(m) != 0 {
		t.Fatalf("system/*.rs should cover system/*.read: missing %v", m)
	}
}

// TOK-04: a token response without scope leaves the grant unknown. It is neither "everything
// missing" (a false list in MissingScopes and the warnings) nor silently accepted under RequireScopes.
func TestGrantedScopeOmitted(t *testing.T) {
	t.Parallel()
	key := testECKey()
	scopes := []string{"system/Patient.rs", "system/Observation.rs"}
	for _, require := range []bool{false, true} {
		srv := newTokenServer(t, "svc")
		srv.register(mustThumbprint(t, key), key.Public())
		srv.omitScope = true
		c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: scopes, PrivateKey: key, RequireScopes: require}
		tok, err := c.Token(t.Context())
		if require {
			if !errors.Is(err, smart.ErrScopeNotGranted) || !strings.Contains(err.Error(), "did not say which scopes it granted") {
				t.Fatalf("RequireScopes: err = %v, want the grant reported as unknown", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !tok.ScopeOmitted {
			t.Fatal("ScopeOmitted = false")
		}
		if m := MissingScopes(scopes, tok); m != nil {
			t.Errorf("MissingScopes = %v, want nil: the grant is unknown, not empty", m)
		}
		w := strings.Join(tok.Warnings, "\n")
		if strings.Contains(w, "not granted") || !strings.Contains(w, "did not say which scopes it granted") {
			t.Errorf("warnings %q: want the grant reported as unknown, not as missing", tok.Warnings)
		}
	}
	if m := MissingScopes([]string{"system/*.rs"}, nil); len(m) != 1 {
		t.Errorf("nil token: missing %v", m)
	}
}

func TestTokenSourceSingleRequestUnderRace(t *testing.T) { // BS-05: 500 callers, expired cache, one request
	t.Parallel()
	clk := newFakeClock()
	srv := newTokenServer(t, "svc")
	srv.now = clk.Now
	key := testECKey()
	srv.register(mustThumbprint(t, key), key.Public())
	c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: key, Now: clk.Now}
	ts := c.TokenSource(t.Context())
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour) // the cached token is now expired
	var wg sync.WaitGroup
	errs := make(chan error, 500)
	for range 500 {
		wg.Go(func() {
			tok, err := ts.Token()
			if err == nil && tok.AccessToken != "at-2" {
				err = fmt.Errorf("got %q", tok.AccessToken)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.requests(); got != 2 {
		t.Fatalf("token requests = %d, want 2 (one initial, one renewal)", got)
	}
}

func TestClient(t *testing.T) { // CONV-1, CONV-3, BS-09, quirks: Epic-Client-ID
	t.Parallel()
	key := testECKey()
	srv := newTokenServer(t, "svc")
	srv.register(mustThumbprint(t, key), key.Public())
	other := newTokenServer(t, "svc") // same host, another port
	c := &Config{ClientID: "svc", FHIRBase: srv.FHIRBase(), PrivateKey: key, Header: http.Header{"Epic-Client-Id": {"svc"}}}
	hc := c.Client(t.Context())

	get := func(u string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(srv.FHIRBase() + "/Patient"); got != 200 {
		t.Fatalf("status %d", got)
	}
	if got := get(other.FHIRBase() + "/Patient"); got != 401 || other.apiHeader(0).Get("Authorization") != "" ||
		other.apiHeader(0).Get("Epic-Client-Id") != "" {
		t.Fatalf("another origin got status %d with headers %v", got, other.apiHeader(0))
	}
	if srv.apiHeader(0).Get("Epic-Client-Id") != "svc" || srv.header(0).Get("Epic-Client-Id") != "svc" {
		t.Fatal("vendor header missing on the FHIR or token request")
	}
	// The server forgets its tokens: a 401 renews the token once and the request succeeds.
	srv.mu.Lock()
	clear(srv.issued)
	srv.mu.Unlock()
	if got := get(srv.FHIRBase() + "/Patient"); got != 200 || srv.requests() != 2 {
		t.Fatalf("after revocation: status %d after %d token requests", got, srv.requests())
	}
	// A Config error surfaces on the first request.
	bad := &Config{ClientID: "svc", PrivateKey: key}
	if _, err := bad.Client(t.Context()).Get(srv.FHIRBase() + "/Patient"); !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want ErrConfig", err)
	}
}

func TestTokenSourceWithKeySetAndStore(t *testing.T) { // JWKS-04 with a shared store
	t.Parallel()
	srv := newTokenServer(t, "svc")
	a, b := testECKey(), testRSAKey()
	srv.register("a", a.Public())
	srv.register("b", b.Public())
	ks, err := NewKeySet(Key{Signer: a, ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	store := &smart.MemoryStore{}
	c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, Keys: ks, Store: store}
	if _, err := c.TokenSource(t.Context()).Token(); err != nil {
		t.Fatal(err)
	}
	// A second source (another replica) shares the stored token.
	if tok, err := c.TokenSource(t.Context()).Token(); err != nil || tok.AccessToken != "at-1" || srv.requests() != 1 {
		t.Fatalf("shared store: %v, %v after %d requests", tok, err, srv.requests())
	}
	// After a rotation has taken effect the new key signs.
	if err := ks.Rotate(Key{Signer: b, ID: "b"}, time.Now().Add(-time.Hour), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	srv.mu.Lock()
	_ = decodeSegment(strings.Split(srv.assertions[len(srv.assertions)-1], ".")[0], &h)
	srv.mu.Unlock()
	if h["kid"] != "b" || h["alg"] != RS384 {
		t.Fatalf("header after rotation %v", h)
	}
}

// DISC-14: a discovered token endpoint that answers 404, 410 or invalid_client may have moved. The
// TokenSource discovers again (at most once a minute) and, if the endpoint changed, retries once with
// a fresh assertion; it never loops.
func TestTokenSourceRediscoversMovedTokenEndpoint(t *testing.T) {
	t.Parallel()
	key := testECKey()
	kid := mustThumbprint(t, key)
	t.Run("moved", func(t *testing.T) {
		t.Parallel()
		old, moved := newTokenServer(t, "svc"), newTokenServer(t, "svc")
		old.register(kid, key.Public())
		moved.register(kid, key.Public())
		old.fault = func(w http.ResponseWriter, n int) bool {
			old.mu.Lock()
			old.discovery = map[string]any{"token_endpoint": moved.TokenURL()}
			old.mu.Unlock()
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		c := &Config{ClientID: "svc", FHIRBase: old.FHIRBase(), PrivateKey: key, TrustedOrigins: []string{moved.URL}}
		tok, err := c.TokenSource(t.Context()).Token()
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		if tok.AccessToken == "" || old.requests() != 1 || moved.requests() != 1 || old.discHits.Load() != 2 {
			t.Fatalf("old %d requests, moved %d, %d discoveries; want 1, 1, 2", old.requests(), moved.requests(), old.discHits.Load())
		}
		if a, b := old.form(0).Get("client_assertion"), moved.form(0).Get("client_assertion"); a == b {
			t.Error("the retry reused the assertion")
		}
	})
	t.Run("moved but untrusted", func(t *testing.T) { // AUTH-09 still holds on rediscovery
		t.Parallel()
		old, evil := newTokenServer(t, "svc"), newTokenServer(t, "svc")
		old.register(kid, key.Public())
		old.fault = func(w http.ResponseWriter, n int) bool {
			old.mu.Lock()
			old.discovery = map[string]any{"token_endpoint": evil.TokenURL()}
			old.mu.Unlock()
			w.WriteHeader(http.StatusGone)
			return true
		}
		c := &Config{ClientID: "svc", FHIRBase: old.FHIRBase(), PrivateKey: key}
		var re *oauth2.RetrieveError
		if _, err := c.TokenSource(t.Context()).Token(); !errors.As(err, &re) || re.Response.StatusCode != http.StatusGone {
			t.Fatalf("err = %v, want the 410", err)
		}
		if evil.requests() != 0 {
			t.Fatal("the assertion went to an untrusted rediscovered endpoint")
		}
	})
	t.Run("unchanged, rate limited", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "svc") // the key is not registered: invalid_client every time
		now := time.Now()
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		c := &Config{ClientID: "svc", FHIRBase: srv.FHIRBase(), PrivateKey: key, Now: clock}
		ts := c.TokenSource(t.Context())
		for i, want := range []struct{ requests, discoveries int }{{1, 2}, {2, 2}, {3, 3}} {
			if i == 2 {
				mu.Lock()
				now = now.Add(rediscoverEvery + time.Second)
				mu.Unlock()
			}
			var re *oauth2.RetrieveError
			if _, err := ts.Token(); !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
				t.Fatalf("fetch %d: err = %v, want invalid_client", i, err)
			}
			if srv.requests() != want.requests || int(srv.discHits.Load()) != want.discoveries {
				t.Fatalf("after fetch %d: %d token requests, %d discoveries; want %d, %d", i, srv.requests(), srv.discHits.Load(), want.requests, want.discoveries)
			}
		}
	})
}
