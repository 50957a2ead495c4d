package sandbox

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// registerHTTP posts RFC 7591 metadata to /auth/register.
func (h *harness) registerHTTP(meta string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url("/auth/register"), strings.NewReader(meta))
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// x5cJWKS is the public JWKS of key with a self-signed certificate for certKey (key itself when nil),
// valid from now for validFor.
func x5cJWKS(t *testing.T, key, certKey *testKey, validFor time.Duration) []byte {
	t.Helper()
	if certKey == nil {
		certKey = key
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(validFor),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, certKey.raw.Public(), certKey.raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := key.priv.PublicKey()
	var chain cert.Chain
	_ = chain.AddString(base64.StdEncoding.EncodeToString(der))
	if err := pub.Set(jwk.X509CertChainKey, &chain); err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	b, _ := json.Marshal(set)
	return b
}

// TestRegister covers open RFC 7591 registration (CONV-7, SBX-04 client types).
func TestRegister(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ec := newTestKey(t, "ES384")
	other := newTestKey(t, "ES384")
	privJWK, _ := json.Marshal(map[string]any{"keys": []any{ec.priv}})
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakJWK, _ := jwk.FromRaw(&weak.PublicKey)
	weakSet, _ := json.Marshal(map[string]any{"keys": []any{weakJWK}})

	tests := []struct {
		name, meta, wantErr string
		check               func(t *testing.T, body map[string]any)
	}{
		{"public", `{"redirect_uris":["http://127.0.0.1:4000/cb"],"token_endpoint_auth_method":"none","client_name":"P","client_id":"mine"}`, "",
			func(t *testing.T, b map[string]any) {
				if b["client_id"] == "mine" || b["client_id"] == "" || b["client_secret"] != nil {
					t.Errorf("public client %v", b)
				}
				if gt := b["grant_types"].([]any); len(gt) != 2 || gt[0] != "authorization_code" {
					t.Errorf("grant_types %v", gt)
				}
			}},
		{"basic gets a secret once", `{"redirect_uris":["https://app.example/cb"]}`, "",
			func(t *testing.T, b map[string]any) {
				if b["token_endpoint_auth_method"] != "client_secret_basic" || len(b["client_secret"].(string)) < 32 ||
					b["client_secret_expires_at"] != float64(0) {
					t.Errorf("symmetric client %v", b)
				}
			}},
		{"private_key_jwt backend", `{"jwks":` + string(jwksOf(t, ec)) + `,"scope":"system/*.rs"}`, "",
			func(t *testing.T, b map[string]any) {
				if b["token_endpoint_auth_method"] != "private_key_jwt" || b["grant_types"].([]any)[0] != "client_credentials" {
					t.Errorf("backend client %v", b)
				}
			}},
		{"x5c chain accepted", `{"jwks":` + string(x5cJWKS(t, ec, nil, time.Hour)) + `}`, "", nil},
		{"native app scheme", `{"redirect_uris":["com.example.app:/cb"],"token_endpoint_auth_method":"none"}`, "", nil},
		{"x5c of another key", `{"jwks":` + string(x5cJWKS(t, ec, other, time.Hour)) + `}`, "invalid_client_metadata", nil},
		{"private key material", `{"jwks":` + string(privJWK) + `}`, "invalid_client_metadata", nil},
		{"RSA 1024", `{"jwks":` + string(weakSet) + `}`, "invalid_client_metadata", nil},
		{"jwks and jwks_uri", `{"jwks":` + string(jwksOf(t, ec)) + `,"jwks_uri":"https://app.example/jwks"}`, "invalid_client_metadata", nil},
		{"jwks_uri over http", `{"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://app.example/jwks"}`, "invalid_client_metadata", nil},
		{"private_key_jwt without keys", `{"token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"]}`, "invalid_client_metadata", nil},
		{"public backend", `{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}`, "invalid_client_metadata", nil},
		{"unknown method", `{"token_endpoint_auth_method":"tls_client_auth","redirect_uris":["https://a.example/cb"]}`, "invalid_client_metadata", nil},
		{"unknown grant", `{"grant_types":["password"],"redirect_uris":["https://a.example/cb"]}`, "invalid_client_metadata", nil},
		{"code without redirect", `{"token_endpoint_auth_method":"none"}`, "invalid_redirect_uri", nil},
		{"fragment", `{"redirect_uris":["https://a.example/cb#x"]}`, "invalid_redirect_uri", nil},
		{"plain http", `{"redirect_uris":["http://a.example/cb"]}`, "invalid_redirect_uri", nil},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, "invalid_redirect_uri", nil},
		{"relative", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri", nil},
		{"bad launch_url", `{"redirect_uris":["https://a.example/cb"],"launch_url":"file:///etc/passwd"}`, "invalid_client_metadata", nil},
		{"malformed JSON", `{"redirect_uris":`, "invalid_client_metadata", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.registerHTTP(tt.meta)
			if tt.wantErr != "" {
				wantOAuthError(t, resp, body, http.StatusBadRequest, tt.wantErr)
				return
			}
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d %v", resp.StatusCode, body)
			}
			if id, _ := body["client_id"].(string); id == "" || body["client_id_issued_at"] == nil {
				t.Errorf("response %v", body)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, h.url("/auth/register"), bytes.NewReader([]byte(`{}`)))
	req.Header.Set("Content-Type", "text/plain")
	resp, body := h.do(req)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_request")
}

// TestRegisterClientGoAPI: IDs may be chosen through the Go API, but not twice; the stored client
// keeps no secret.
func TestRegisterClientGoAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.register(Client{ID: "my-app", Secret: "s3cret", RedirectURIs: []string{"https://a.example/cb"}})
	if c.ID != "my-app" || c.Secret != "s3cret" || c.AuthMethod != authSecretBas {
		t.Errorf("client %+v", c)
	}
	if _, err := h.s.RegisterClient(Client{ID: "my-app", AuthMethod: authNone, RedirectURIs: []string{"https://a.example/cb"}}); err == nil {
		t.Error("duplicate client_id accepted")
	}
	rec, _ := h.s.auth.clients.get("my-app")
	if rec.Secret != "" || !rec.secretOK("s3cret") || rec.secretOK("s3cret ") {
		t.Error("stored secret handling")
	}
	if _, err := h.s.RegisterClient(Client{ID: "line\nbreak", AuthMethod: authNone, RedirectURIs: []string{"https://a.example/cb"}}); err == nil {
		t.Error("client_id with a control character accepted")
	}
	if _, err := New(Options{Clients: []Client{{AuthMethod: "bogus"}}}); err == nil {
		t.Error("New accepted a bad client")
	}
}

// TestX5CCertificateValidity: a key with an x5c chain works while its certificate is valid, not after.
func TestX5CCertificateValidity(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newTestKey(t, "RS384")
	c := h.register(Client{AuthMethod: authPrivateJWT, JWKS: x5cJWKS(t, key, nil, time.Hour)})
	if resp, body := h.clientCredentials(key.sign(t, h.claims(c.ID), nil), "system/*.rs"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %v", resp.StatusCode, body)
	}
	h.s.SetClockOffset(2 * time.Hour)
	resp, body := h.clientCredentials(key.sign(t, h.claims(c.ID), nil), "system/*.rs")
	wantOAuthError(t, resp, body, http.StatusUnauthorized, "invalid_client")
	if !strings.Contains(body["error_description"].(string), "certificate") {
		t.Errorf("description %v", body)
	}
}

// TestBasicCredentialsErrorQuotesNoSecret: a client_secret_basic header whose secret is not
// form-urlencoded is invalid_client, and the description quotes no part of the secret (CONV-4).
func TestBasicCredentialsErrorQuotesNoSecret(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Patients: 1})
	c := h.register(Client{AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"})
	const secret = "s3cr%ZZet"
	resp, body := h.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}},
		func(r *http.Request) {
			r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.ID+":"+secret)))
		})
	desc, _ := body["error_description"].(string)
	if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	if strings.Contains(desc, "%ZZ") || strings.Contains(desc, "s3cr") {
		t.Errorf("error_description quotes the secret: %q", desc)
	}
}
