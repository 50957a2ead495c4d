package backend

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Keys are expensive to generate under -race: make each kind once per test binary.
var (
	testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
		return mustKey(parseKeyFile("../testdata/keys/rs384.test-only.pem")).(*rsa.PrivateKey)
	})
	testECKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		return mustKey(parseKeyFile("../testdata/keys/es384.test-only.pem")).(*ecdsa.PrivateKey)
	})
	otherECKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// parseKeyFile reads a fixed test key.
func parseKeyFile(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, _, err := ParsePrivateKey(b)
	return k, err
}

func mustKey(k crypto.Signer, err error) crypto.Signer {
	if err != nil {
		panic(err)
	}
	return k
}

func mustThumbprint(t testing.TB, k crypto.Signer) string {
	t.Helper()
	tp, err := Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// fakeClock is a settable clock shared by a client and a test server.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().Truncate(time.Second).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// tokenServer is an httptest SMART token endpoint that verifies client assertions with jwx the way a
// conforming server does (SBX-05): typ, kid, alg, iss = sub = client_id, aud = its token URL as a
// string, exp at most five minutes ahead, jti never seen before, and the signature with the
// registered key (or the x5c certificate, checked against a CA). It also serves discovery under /fhir
// and a protected /fhir/Patient.
type tokenServer struct {
	*httptest.Server
	t        *testing.T
	clientID string
	secret   string // client_secret_basic/post mode when set
	now      func() time.Time

	mu         sync.Mutex
	keys       map[string]crypto.PublicKey // kid → registered key
	revoked    map[string]bool
	ca         *x509.CertPool
	seen       map[string]bool
	forms      []url.Values
	headers    []http.Header
	assertions []string
	issued     map[string]bool
	expiresIn  any
	grant      string // granted scope; "" echoes the request
	omitScope  bool
	extra      map[string]any // further token response members
	discovery  map[string]any
	fault      func(w http.ResponseWriter, n int) bool // n is the 1-based request number
	apiHits    atomic.Int64
	discHits   atomic.Int64
	apiHeaders []http.Header
}

func newTokenServer(t *testing.T, clientID string) *tokenServer {
	t.Helper()
	s := &tokenServer{t: t, clientID: clientID, now: time.Now, keys: map[string]crypto.PublicKey{}, revoked: map[string]bool{},
		seen: map[string]bool{}, issued: map[string]bool{}, expiresIn: 300}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /fhir/Patient", s.handleAPI)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *tokenServer) TokenURL() string { return s.URL + "/token" }
func (s *tokenServer) FHIRBase() string { return s.URL + "/fhir" }

// register registers a public key under kid.
func (s *tokenServer) register(kid string, pub crypto.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kid] = pub
}

func (s *tokenServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.forms)
}

func (s *tokenServer) form(i int) url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forms[i]
}

func (s *tokenServer) header(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[i]
}

func (s *tokenServer) apiHeader(i int) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiHeaders[i]
}

func (s *tokenServer) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	s.discHits.Add(1)
	doc := map[string]any{
		"token_endpoint":                                   s.TokenURL(),
		"capabilities":                                     []string{"client-confidential-asymmetric", "permission-v2"},
		"grant_types_supported":                            []string{"client_credentials"},
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
	}
	s.mu.Lock()
	for k, v := range s.discovery {
		if v == nil {
			delete(doc, k)
		} else {
			doc[k] = v
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}

func (s *tokenServer) handleAPI(w http.ResponseWriter, r *http.Request) {
	s.apiHits.Add(1)
	s.mu.Lock()
	s.apiHeaders = append(s.apiHeaders, r.Header.Clone())
	ok := s.issued[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","total":0}`)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *tokenServer) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		oauthError(w, 400, "invalid_request", "form body required")
		return
	}
	s.mu.Lock()
	s.forms = append(s.forms, r.PostForm)
	s.headers = append(s.headers, r.Header.Clone())
	n := len(s.forms)
	if a := r.PostForm.Get("client_assertion"); a != "" {
		s.assertions = append(s.assertions, a)
	}
	fault := s.fault
	s.mu.Unlock()
	if fault != nil && fault(w, n) {
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauthError(w, 400, "unsupported_grant_type", "")
		return
	}
	if r.PostForm.Get("scope") == "" {
		oauthError(w, 400, "invalid_scope", "scope is required")
		return
	}
	if err := s.authenticate(r); err != nil {
		oauthError(w, 401, "invalid_client", err.Error())
		return
	}
	s.mu.Lock()
	tok := fmt.Sprintf("at-%d", n)
	s.issued[tok] = true
	resp := map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": s.expiresIn}
	for k, v := range s.extra {
		resp[k] = v
	}
	if !s.omitScope {
		resp["scope"] = r.PostForm.Get("scope")
		if s.grant != "" {
			resp["scope"] = s.grant
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

func (s *tokenServer) authenticate(r *http.Request) error {
	f := r.PostForm
	if s.secret != "" {
		id, secret, ok := r.BasicAuth()
		if ok {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
			if f.Has("client_secret") {
				return errors.New("two authentication methods")
			}
		} else {
			id, secret = f.Get("client_id"), f.Get("client_secret")
		}
		if id != s.clientID || secret != s.secret {
			return errors.New("bad client credentials")
		}
		return nil
	}
	if r.Header.Get("Authorization") != "" || f.Has("client_id") || f.Has("client_secret") {
		return errors.New("assertion plus another authentication method")
	}
	if f.Get("client_assertion_type") != ClientAssertionType {
		return errors.New("wrong client_assertion_type")
	}
	return s.verify(f.Get("client_assertion"))
}

// verify checks a client assertion like a SMART server (SBX-05, JWKS-07).
func (s *tokenServer) verify(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	var hdr map[string]any
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return err
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		return err
	}
	if hdr["typ"] != "JWT" {
		return errors.New("typ must be JWT")
	}
	kid, _ := hdr["kid"].(string)
	if kid == "" {
		return errors.New("kid missing")
	}
	alg, _ := hdr["alg"].(string)
	if alg != RS384 && alg != ES384 {
		return fmt.Errorf("alg %q not allowed", alg)
	}
	if _, isString := claims["aud"].(string); !isString {
		return errors.New("aud must be a single string")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || alg == ES384 && len(sig) != 96 {
		return fmt.Errorf("ES384 signature must be 96 bytes raw R||S, got %d", len(sig))
	}
	s.mu.Lock()
	pub, registered := s.keys[kid]
	revoked := s.revoked[kid]
	ca := s.ca
	s.mu.Unlock()
	if x5c, ok := hdr["x5c"].([]any); ok && ca != nil {
		leaf, err := verifyChain(x5c, ca, hdr["x5t#S256"])
		if err != nil {
			return err
		}
		pub, registered = leaf.PublicKey, true
	}
	switch {
	case revoked:
		return fmt.Errorf("key %q has been revoked", kid)
	case !registered:
		return fmt.Errorf("no registered key with kid %q", kid)
	}
	tok, err := jwt.Parse([]byte(assertion), jwt.WithKey(jwa.SignatureAlgorithm(alg), pub), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(s.now)), jwt.WithAcceptableSkew(5*time.Second),
		jwt.WithAudience(s.TokenURL()), jwt.WithIssuer(s.clientID), jwt.WithSubject(s.clientID))
	if err != nil {
		return fmt.Errorf("assertion rejected: %v", err)
	}
	if tok.Expiration().After(s.now().Add(5*time.Minute + 5*time.Second)) {
		return errors.New("exp is more than 5 minutes ahead")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[tok.JwtID()] || tok.JwtID() == "" {
		return errors.New("jti replay")
	}
	s.seen[tok.JwtID()] = true
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("bad base64url: %v", err)
	}
	return json.Unmarshal(b, v)
}

func verifyChain(x5c []any, ca *x509.CertPool, x5t any) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, c := range x5c {
		s, _ := c.(string)
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("x5c: not standard base64")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c: %v", err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("x5c empty")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: ca, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("x5c: %v", err)
	}
	sum := sha256.Sum256(certs[0].Raw)
	if x5t != base64.RawURLEncoding.EncodeToString(sum[:]) {
		return nil, errors.New("x5t#S256 does not match the leaf")
	}
	return certs[0], nil
}

// newTestCA returns a CA pool and a leaf certificate for pub signed by it.
func newTestCA(t *testing.T, pub crypto.PublicKey) (*x509.CertPool, *x509.Certificate) {
	t.Helper()
	caKey := otherECKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test client"},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, leaf
}

// noSleep records retry waits instead of sleeping.
type noSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (n *noSleep) sleep(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.waits = append(n.waits, d)
	n.mu.Unlock()
	return ctx.Err()
}

// constReader returns the same bytes forever: every jti is identical (to exercise replay detection).
type constReader struct{}

func (constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 7
	}
	return len(p), nil
}

// assertNoSecret fails when err's text contains any of secrets (SEC-08).
func assertNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error text leaks a secret: %v", err)
		}
	}
}

// jsonEqual compares two JSON documents structurally.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
