package sandbox

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// harness is one sandbox on a loopback httptest server, driven over real HTTP.
type harness struct {
	t    testing.TB
	s    *Server
	ts   *httptest.Server
	base string       // FHIR base
	hc   *http.Client // does not follow redirects
}

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	hc := ts.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &harness{t: t, s: s, ts: ts, base: ts.URL + "/fhir", hc: hc}
}

func (h *harness) url(path string) string { return h.ts.URL + path }

func (h *harness) register(c Client) Client {
	h.t.Helper()
	out, err := h.s.RegisterClient(c)
	if err != nil {
		h.t.Fatalf("RegisterClient: %v", err)
	}
	return out
}

// app registers a client for the authorization-code flow.
func (h *harness) app(method string, mod ...func(*Client)) Client {
	c := Client{AuthMethod: method, RedirectURIs: []string{"http://127.0.0.1:4000/callback"}, Name: "test app"}
	for _, m := range mod {
		m(&c)
	}
	return h.register(c)
}

// do sends a request and decodes a JSON body (if any) into a map; resp.Body can be read again.
func (h *harness) do(req *http.Request) (*http.Response, map[string]any) {
	h.t.Helper()
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			h.t.Fatalf("%s %s: bad JSON %q: %v", req.Method, req.URL.Path, body, err)
		}
	}
	return resp, m
}

// post sends a form POST; mod may add headers.
func (h *harness) post(path string, form url.Values, mod ...func(*http.Request)) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mod {
		m(req)
	}
	return h.do(req)
}

func (h *harness) get(path string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
	return h.do(req)
}

func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
	}
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// pkce returns a fresh verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams is a valid authorization request for c (standalone, PKCE S256).
func (h *harness) authParams(c Client, scope string) (url.Values, string) {
	verifier, challenge := pkce()
	return url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {c.RedirectURIs[0]},
		"scope": {scope}, "state": {"st-" + rand.Text()}, "aud": {h.base},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"sandbox_skip_login": {"1"},
	}, verifier
}

// authorize sends GET /auth/authorize and returns the redirect's query; it fails unless redirected.
func (h *harness) authorize(p url.Values) url.Values {
	h.t.Helper()
	resp, _ := h.get("/auth/authorize?" + p.Encode())
	if resp.StatusCode != http.StatusFound {
		h.t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		h.t.Fatalf("authorize: Location: %v", err)
	}
	return loc.Query()
}

// code runs an authorization for c and returns the code and the PKCE verifier.
func (h *harness) code(c Client, scope string, mod ...func(url.Values)) (code, verifier string) {
	h.t.Helper()
	p, verifier := h.authParams(c, scope)
	for _, m := range mod {
		m(p)
	}
	q := h.authorize(p)
	if q.Get("code") == "" {
		h.t.Fatalf("authorize: no code: %v", q)
	}
	return q.Get("code"), verifier
}

// exchange redeems a code as a public client.
func (h *harness) exchange(c Client, code, verifier string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.post("/auth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURIs[0]},
		"code_verifier": {verifier}, "client_id": {c.ID},
	})
}

// wantOAuthError checks an RFC 6749 error response.
func wantOAuthError(t testing.TB, resp *http.Response, body map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || body["error"] != code {
		t.Fatalf("got %d %v, want %d error=%s", resp.StatusCode, body, status, code)
	}
	if d, _ := body["error_description"].(string); d == "" {
		t.Errorf("error %s without error_description", code)
	}
}

// testKey is a client's signing key (the client side, signed with jwx).
type testKey struct {
	priv jwk.Key // private, with kid and alg
	alg  jwa.SignatureAlgorithm
	raw  crypto.Signer
}

func newTestKey(t testing.TB, alg string) *testKey {
	t.Helper()
	var raw crypto.Signer
	var err error
	switch alg {
	case "ES384":
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS384":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.AssignKeyID(k); err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
	return &testKey{priv: k, alg: jwa.SignatureAlgorithm(alg), raw: raw}
}

func (k *testKey) kid() string { return k.priv.KeyID() }

// jwks is the public JWK Set of the keys.
func jwksOf(t testing.TB, keys ...*testKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.priv.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		_ = set.AddKey(pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign signs claims with the key; hdr sets protected header members (typ defaults to JWT, kid to the
// key's; a nil value removes a member).
func (k *testKey) sign(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, "JWT")
	for name, v := range hdr {
		if v == nil {
			_ = h.Remove(name)
			continue
		}
		_ = h.Set(name, v)
	}
	var signWith any = k.priv // jwx copies the JWK's kid into the header
	if _, ok := hdr["kid"]; ok {
		signWith = k.raw // the test decides the kid
	}
	out, err := jws.Sign(payload, jws.WithKey(k.alg, signWith, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// backend registers a backend client with inline JWKS for key.
func (h *harness) backend(key *testKey, mod ...func(*Client)) Client {
	c := Client{AuthMethod: authPrivateJWT, JWKS: jwksOf(h.t, key), Scope: "system/*.cruds", Name: "backend"}
	for _, m := range mod {
		m(&c)
	}
	return h.register(c)
}

// claims are valid assertion claims for client id at this sandbox.
func (h *harness) claims(id string) map[string]any {
	now := h.s.Now()
	return map[string]any{
		"iss": id, "sub": id, "aud": h.url("/auth/token"),
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
	}
}

// clientCredentials asks for a backend token with a signed assertion.
func (h *harness) clientCredentials(assertion, scope string) (*http.Response, map[string]any) {
	h.t.Helper()
	return h.post("/auth/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {jwtBearer}, "client_assertion": {assertion},
	})
}
