package smarttest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart/smarttest"
)

func getJSON(t *testing.T, hc *http.Client, u string) map[string]any {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return m
}

func TestNewServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      []smarttest.Option
		scheme    string
		pkceField bool
	}{
		{"default", nil, "http", true},
		{"v1 over TLS", []smarttest.Option{smarttest.WithVersion("v1"), smarttest.WithTLS(), smarttest.WithPatients(2),
			smarttest.WithSeed(7), smarttest.WithClock(time.Now)}, "https", false},
		{"as athena (PKCE not advertised)", []smarttest.Option{smarttest.WithAs("athena"), smarttest.WithPatients(1)}, "http", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := smarttest.NewServer(t, tt.opts...)
			if !strings.HasPrefix(srv.URL, tt.scheme+"://127.0.0.1:") || srv.FHIRBase != srv.URL+"/fhir" {
				t.Fatalf("URL %q FHIRBase %q", srv.URL, srv.FHIRBase)
			}
			doc := getJSON(t, srv.Client(), srv.FHIRBase+"/.well-known/smart-configuration")
			if doc["token_endpoint"] != srv.TokenURL || doc["authorization_endpoint"] != srv.AuthorizeURL ||
				doc["registration_endpoint"] != srv.RegistrationURL {
				t.Errorf("discovery %v", doc)
			}
			if _, ok := doc["code_challenge_methods_supported"]; ok != tt.pkceField {
				t.Errorf("code_challenge_methods_supported present = %v", ok)
			}
		})
	}
}

// assertion signs a client assertion the way a SMART backend client does (AUTH-05, AUTH-06), with jwx.
func assertion(t *testing.T, k *smarttest.Key, clientID, tokenURL string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(clientID).Subject(clientID).Audience([]string{tokenURL}).
		IssuedAt(now).Expiration(now.Add(4 * time.Minute)).JwtID(rand.Text()).Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "JWT")
	_ = hdr.Set(jws.KeyIDKey, k.KeyID)
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.SignatureAlgorithm(k.Alg), k.Signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func TestRegisterBackendClient(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t)
	for _, alg := range []string{"ES384", "RS384"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			bc := srv.RegisterBackendClient(t, alg)
			if bc.Alg != alg || bc.TokenURL != srv.TokenURL || !json.Valid(bc.JWKS) || strings.Contains(string(bc.JWKS), `"d"`) {
				t.Fatalf("client %+v", bc)
			}
			if want := thumbprint(t, bc.Signer.Public()); bc.KeyID != want {
				t.Errorf("kid %q, want the RFC 7638 thumbprint %q", bc.KeyID, want)
			}
			resp, err := srv.Client().PostForm(bc.TokenURL, url.Values{
				"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {assertion(t, bc.Key, bc.ID, bc.TokenURL)},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != http.StatusOK || body["scope"] != "system/*.rs" {
				t.Errorf("token: %d %v", resp.StatusCode, body)
			}
		})
	}
}

// thumbprint computes an RFC 7638 thumbprint by hand from the key's members (RFC 7638 §3.2).
func thumbprint(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var members string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		x, y := k.X.FillBytes(make([]byte, 48)), k.Y.FillBytes(make([]byte, 48))
		members = `{"crv":"P-384","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`
	case *rsa.PublicKey:
		members = `{"e":"` + b64(big.NewInt(int64(k.E)).Bytes()) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`
	default:
		t.Fatalf("key type %T", pub)
	}
	sum := sha256.Sum256([]byte(members))
	return b64(sum[:])
}

// appFlow runs an authorization-code flow with golang.org/x/oauth2 as the client library and returns
// the token.
func appFlow(t *testing.T, srv *smarttest.Server, app *smarttest.AppClient, scope string, extra ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	cfg := oauth2.Config{
		ClientID: app.ID, ClientSecret: app.Secret, RedirectURL: app.RedirectURIs[0], Scopes: strings.Fields(scope),
		Endpoint: oauth2.Endpoint{AuthURL: srv.AuthorizeURL, TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	if app.AuthMethod == smarttest.SecretBasic {
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	verifier := oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", srv.FHIRBase)}, extra...)
	hc := srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(cfg.AuthCodeURL("state-1", opts...))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if q.Get("state") != "state-1" || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	exch := []oauth2.AuthCodeOption{oauth2.VerifierOption(verifier)}
	if app.AuthMethod == smarttest.PrivateKeyJWT {
		exch = append(exch,
			oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
			oauth2.SetAuthURLParam("client_assertion", assertion(t, app.Key, app.ID, srv.TokenURL)))
	}
	tok, err := cfg.Exchange(t.Context(), q.Get("code"), exch...)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func TestRegisterApp(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t)
	for _, method := range []string{smarttest.Public, smarttest.SecretBasic, smarttest.SecretPost, smarttest.PrivateKeyJWT} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			app := srv.RegisterApp(t, smarttest.App{AuthMethod: method, RedirectURIs: []string{"http://127.0.0.1:1/cb"}, SkipLogin: true})
			if (app.Secret != "") != (method == smarttest.SecretBasic || method == smarttest.SecretPost) ||
				(app.Key != nil) != (method == smarttest.PrivateKeyJWT) {
				t.Fatalf("app %+v", app)
			}
			tok := appFlow(t, srv, app, "openid fhirUser patient/*.rs launch/patient offline_access")
			if tok.RefreshToken == "" || tok.Extra("patient") == "" || tok.Extra("id_token") == "" {
				t.Errorf("token %+v", tok)
			}
		})
	}
}

func TestLaunch(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t)
	app := srv.RegisterApp(t, smarttest.App{Name: "EHR app", RedirectURIs: []string{"http://127.0.0.1:1/cb"},
		LaunchURL: "http://127.0.0.1:1/launch?x=1"})
	patient := srv.Sandbox.Patients()[0].ID
	id := srv.Launch(smarttest.LaunchContext{Patient: patient, ClientID: app.ID, SkipLogin: true, Intent: "summary",
		FHIRContext: []smarttest.FHIRContextItem{{Reference: "Encounter/e1"}}})
	u, err := url.Parse(srv.LaunchURL(app.LaunchURL, id))
	if err != nil || u.Query().Get("iss") != srv.FHIRBase || u.Query().Get("launch") != id || u.Query().Get("x") != "1" {
		t.Fatalf("launch URL %v", u)
	}
	tok := appFlow(t, srv, app, "launch patient/*.rs", oauth2.SetAuthURLParam("launch", id))
	if tok.Extra("patient") != patient || tok.Extra("intent") != "summary" {
		t.Errorf("token extras patient=%v intent=%v", tok.Extra("patient"), tok.Extra("intent"))
	}
}

func TestFault(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t)
	bc := srv.RegisterBackendClient(t, "ES384")
	srv.FaultFor("token_html_502", 1, bc.ID)
	srv.Fault("discovery_404", 1)
	resp, err := srv.Client().Get(srv.FHIRBase + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("discovery_404: %d", resp.StatusCode)
	}
	resp, err = srv.Client().PostForm(bc.TokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion(t, bc.Key, bc.ID, bc.TokenURL)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("token_html_502: %d", resp.StatusCode)
	}
	if len(smarttest.FaultNames()) < 50 {
		t.Errorf("FaultNames: %v", smarttest.FaultNames())
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown fault name did not panic")
		}
	}()
	srv.Fault("token_invalid_jit", 1)
}
