package backend

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// sandboxFor starts an in-process sandbox EHR and registers a backend client with the public JWKS of
// keys (SBX-05, SBX-07).
func sandboxFor(t *testing.T, jwks []byte) (*sandbox.Server, *httptest.Server, string) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Patients: 3})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	c, err := sb.RegisterClient(sandbox.Client{Name: "backend test", AuthMethod: "private_key_jwt", JWKS: jwks,
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	return sb, ts, c.ID
}

func TestSandboxEndToEnd(t *testing.T) { // BS-01…05, AUTH-05…08 against the sandbox EHR
	t.Parallel()
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		name := map[bool]string{true: RS384, false: ES384}[isRSA(key)]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			jwks, err := PublicJWKS(Key{Signer: key})
			if err != nil {
				t.Fatal(err)
			}
			sb, ts, clientID := sandboxFor(t, jwks)
			cfg := &Config{ClientID: clientID, FHIRBase: ts.URL + "/fhir", PrivateKey: key}
			tok, err := cfg.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok.Scope == "" || len(MissingScopes([]string{"system/*.rs"}, tok)) != 0 || tok.Expiry.IsZero() {
				t.Fatalf("token scope %q, expiry %v", tok.Scope, tok.Expiry)
			}
			hc := cfg.Client(t.Context())
			for range 3 {
				resp, err := hc.Get(ts.URL + "/fhir/Patient?_count=1")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET Patient: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			}
			if n := sb.Count("token_requests:client_credentials"); n != 2 { // Token, then one for the client's cache
				t.Fatalf("token requests = %d, want 2", n)
			}
			// The sandbox expires every token: the client renews once and carries on (CONV-3, BS-05).
			sb.ExpireAccessTokens()
			resp, err := hc.Get(ts.URL + "/fhir/Patient?_count=1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || sb.Count("token_requests:client_credentials") != 3 {
				t.Fatalf("after expiry: status %d, token requests %d", resp.StatusCode, sb.Count("token_requests:client_credentials"))
			}
		})
	}
}

func TestSandboxJWKSURL(t *testing.T) { // JWKS-02, JWKS-07, AUTH-05 jku, AUTH-12
	t.Parallel()
	ks, err := NewKeySet(Key{Signer: testECKey()})
	if err != nil {
		t.Fatal(err)
	}
	jwksSrv := httptest.NewServer(ks.Handler(time.Minute))
	t.Cleanup(jwksSrv.Close)
	sb, err := sandbox.New(sandbox.Options{Patients: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	c, err := sb.RegisterClient(sandbox.Client{AuthMethod: "private_key_jwt", JWKSURI: jwksSrv.URL + "/jwks.json",
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{ClientID: c.ID, FHIRBase: ts.URL + "/fhir", Keys: ks, JWKSetURL: c.JWKSURI}
	if _, err := cfg.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A jku other than the registered URL is refused (JWKS-07).
	cfg.JWKSetURL = jwksSrv.URL + "/other.json"
	_, err = cfg.Token(t.Context())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("mismatched jku: err = %v", err)
	}
}

func TestSandboxCertificate(t *testing.T) { // CONV-7: a client registered with an X.509 certificate
	t.Parallel()
	key := testRSAKey()
	_, leaf := newTestCA(t, key.Public())
	jk, _ := jwk.FromRaw(key.Public())
	_ = jk.Set(jwk.KeyIDKey, "cert-1")
	_ = jk.Set(jwk.X509CertChainKey, []string{base64.StdEncoding.EncodeToString(leaf.Raw)})
	jwks, _ := json.Marshal(map[string]any{"keys": []jwk.Key{jk}})
	_, ts, clientID := sandboxFor(t, jwks)
	cfg := &Config{ClientID: clientID, FHIRBase: ts.URL + "/fhir", PrivateKey: key, KeyID: "cert-1",
		Certificates: []*x509.Certificate{leaf}}
	if _, err := cfg.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSandboxFaults(t *testing.T) { // AUTH-10, BS-06, BS-10, CONV-3 against the sandbox's faults
	t.Parallel()
	key := testECKey()
	jwks, _ := PublicJWKS(Key{Signer: key})
	tests := []struct {
		name     string
		arm      func(sb *sandbox.Server, clientID string)
		wantOK   bool
		wantCode string
		wantReqs int64
	}{
		{"token_invalid_jti once: retried with a new assertion", func(sb *sandbox.Server, id string) { sb.Fault("token_invalid_jti", 1, id) }, true, "", 2},
		{"token_invalid_jti always: at most two attempts", func(sb *sandbox.Server, id string) { sb.Fault("token_invalid_jti", -1, id) }, false, "invalid_client", 2},
		{"token_bare_400 once (Epic)", func(sb *sandbox.Server, id string) { sb.Fault("token_bare_400", 1, id) }, true, "", 2},
		{"token_invalid_scope", func(sb *sandbox.Server, id string) { sb.Fault("token_invalid_scope", 1, id) }, false, "invalid_scope", 1},
		{"token_expired_registration_token", func(sb *sandbox.Server, id string) { sb.Fault("token_expired_registration_token", -1, id) }, false, "invalid_client", 1},
		{"token_missing_expires_in: 300 s assumed", func(sb *sandbox.Server, id string) { sb.Fault("token_missing_expires_in", 1, id) }, true, "", 1},
		{"token_html_502", func(sb *sandbox.Server, id string) { sb.Fault("token_html_502", 1, id) }, false, "", 1},
		{"revoked key", func(sb *sandbox.Server, id string) { _ = sb.RevokeClientKey(id, mustThumbprint(t, key)) }, false, "invalid_client", 1},
		{"server clock 3 min ahead: the 4-minute assertion still passes", func(sb *sandbox.Server, id string) { sb.SetClockOffset(3 * time.Minute) }, true, "", 1},
		{"server clock 6 min ahead: expired, with a clock hint", func(sb *sandbox.Server, id string) { sb.SetClockOffset(6 * time.Minute) }, false, "invalid_client", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb, ts, clientID := sandboxFor(t, jwks)
			tt.arm(sb, clientID)
			cfg := &Config{ClientID: clientID, FHIRBase: ts.URL + "/fhir", PrivateKey: key, sleep: (&noSleep{}).sleep}
			_, err := cfg.Token(t.Context())
			if got := sb.Count("token_requests:client_credentials"); got != tt.wantReqs {
				t.Errorf("token requests = %d, want %d", got, tt.wantReqs)
			}
			if tt.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatal("want an error")
			}
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || tt.wantCode != "" && re.ErrorCode != tt.wantCode {
				t.Fatalf("err = %v, want a RetrieveError %q", err, tt.wantCode)
			}
			if strings.Contains(tt.name, "clock hint") && !strings.Contains(err.Error(), "clock") {
				t.Errorf("no clock hint: %v", err)
			}
		})
	}
}
