package smarttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// Key is a client's signing key, registered with the sandbox as an inline JWK Set.
type Key struct {
	// Signer signs client assertions (an *ecdsa.PrivateKey on P-384 or an *rsa.PrivateKey of 2048 bits).
	Signer crypto.Signer
	// KeyID is the JWK kid: the RFC 7638 thumbprint (SHA-256, base64url) of the public key.
	KeyID string
	// Alg is the JWS algorithm: "ES384" or "RS384".
	Alg string
	// JWKS is the public JWK Set as registered.
	JWKS []byte
}

// NewKey generates a key for alg ("ES384" or "RS384") with its public JWK Set.
func NewKey(tb testing.TB, alg string) *Key {
	tb.Helper()
	var signer crypto.Signer
	var err error
	switch alg {
	case "ES384":
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS384":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("smarttest: alg %q: want ES384 or RS384", alg)
	}
	if err != nil {
		tb.Fatalf("smarttest: generating a key: %v", err)
	}
	pub, err := jwk.FromRaw(signer.Public())
	if err != nil {
		tb.Fatalf("smarttest: %v", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatalf("smarttest: %v", err)
	}
	k := &Key{Signer: signer, KeyID: base64.RawURLEncoding.EncodeToString(tp), Alg: alg}
	for name, v := range map[string]any{jwk.KeyIDKey: k.KeyID, jwk.AlgorithmKey: jwa.SignatureAlgorithm(alg), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(name, v); err != nil {
			tb.Fatalf("smarttest: %v", err)
		}
	}
	if k.JWKS, err = json.Marshal(map[string]any{"keys": []jwk.Key{pub}}); err != nil {
		tb.Fatalf("smarttest: %v", err)
	}
	return k
}

// BackendClient is a registered SMART Backend Services client.
type BackendClient struct {
	ID       string
	TokenURL string // the aud of its assertions
	Scope    string // pre-authorised scopes
	*Key
}

// RegisterBackendClient registers a backend client (client_credentials, private_key_jwt) with a new
// key for alg ("ES384" or "RS384"), pre-authorised for every system scope (system/*.cruds, which also
// grants the v1 spellings).
func (s *Server) RegisterBackendClient(tb testing.TB, alg string) *BackendClient {
	tb.Helper()
	key := NewKey(tb, alg)
	c, err := s.Sandbox.RegisterClient(sandbox.Client{
		Name: "smarttest backend client", AuthMethod: "private_key_jwt", JWKS: key.JWKS,
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.cruds",
	})
	if err != nil {
		tb.Fatalf("smarttest: %v", err)
	}
	return &BackendClient{ID: c.ID, TokenURL: s.TokenURL, Scope: c.Scope, Key: key}
}

// Client authentication methods of apps (RFC 7591 token_endpoint_auth_method).
const (
	Public        = "none"                // client-public
	SecretBasic   = "client_secret_basic" // client-confidential-symmetric
	SecretPost    = "client_secret_post"
	PrivateKeyJWT = "private_key_jwt" // client-confidential-asymmetric
)

// App describes an app to register for the authorization-code flow.
type App struct {
	Name string
	// AuthMethod is Public (default), SecretBasic, SecretPost or PrivateKeyJWT.
	AuthMethod string
	// Alg is the key algorithm of a PrivateKeyJWT app: "ES384" (default) or "RS384".
	Alg string
	// RedirectURIs are matched byte for byte; at least one is required.
	RedirectURIs []string
	// LaunchURL is where the EHR launch simulator (and Server.LaunchURL) sends EHR launches.
	LaunchURL string
	// Scope limits what the app may be granted ("" allows every patient/ and user/ scope).
	Scope string
	// NoRefresh leaves the refresh_token grant out of the registration.
	NoRefresh bool
	// SkipLogin skips the sandbox's login/consent and patient-picker pages, so that a test can follow
	// the authorize redirect with a plain http.Client.
	SkipLogin bool
}

// AppClient is a registered app.
type AppClient struct {
	ID           string
	Secret       string // SecretBasic and SecretPost apps
	AuthMethod   string
	RedirectURIs []string
	LaunchURL    string
	*Key         // PrivateKeyJWT apps
}

// RegisterApp registers an app; it fails the test if the sandbox refuses the registration.
func (s *Server) RegisterApp(tb testing.TB, app App) *AppClient {
	tb.Helper()
	if app.AuthMethod == "" {
		app.AuthMethod = Public
	}
	c := sandbox.Client{
		Name: app.Name, AuthMethod: app.AuthMethod, RedirectURIs: app.RedirectURIs, LaunchURL: app.LaunchURL,
		Scope: app.Scope, SkipLogin: app.SkipLogin, GrantTypes: []string{"authorization_code", "refresh_token"},
	}
	if app.NoRefresh {
		c.GrantTypes = c.GrantTypes[:1]
	}
	var key *Key
	if app.AuthMethod == PrivateKeyJWT {
		if app.Alg == "" {
			app.Alg = "ES384"
		}
		key = NewKey(tb, app.Alg)
		c.JWKS = key.JWKS
	}
	out, err := s.Sandbox.RegisterClient(c)
	if err != nil {
		tb.Fatalf("smarttest: %v", err)
	}
	return &AppClient{ID: out.ID, Secret: out.Secret, AuthMethod: out.AuthMethod, RedirectURIs: out.RedirectURIs,
		LaunchURL: out.LaunchURL, Key: key}
}

// LaunchContext is the context of an EHR launch (SMART scopes-and-launch-context.md).
type LaunchContext struct {
	Patient, Encounter string // FHIR ids
	// User is the logged-in user, "Practitioner/123": the fhirUser of the id_token.
	User string
	// ClientID binds the launch to one app ("" lets any app use it).
	ClientID          string
	FHIRContext       []FHIRContextItem
	Intent            string
	NeedPatientBanner bool
	SmartStyleURL     string
	Tenant            string
	// SkipLogin skips the login/consent page for this launch.
	SkipLogin bool
}

// FHIRContextItem is one fhirContext entry.
type FHIRContextItem struct {
	Reference, Canonical, Type, Role string
	Identifier                       json.RawMessage
}

// Launch mints an EHR launch id for lc, valid for an hour.
func (s *Server) Launch(lc LaunchContext) string {
	items := make([]sandbox.FHIRContextItem, len(lc.FHIRContext))
	for i, it := range lc.FHIRContext {
		items[i] = sandbox.FHIRContextItem{Reference: it.Reference, Canonical: it.Canonical, Type: it.Type,
			Role: it.Role, Identifier: it.Identifier}
	}
	return s.Sandbox.NewLaunch(sandbox.LaunchContext{
		Patient: lc.Patient, Encounter: lc.Encounter, User: lc.User, ClientID: lc.ClientID, FHIRContext: items,
		Intent: lc.Intent, NeedPatientBanner: lc.NeedPatientBanner, SmartStyleURL: lc.SmartStyleURL,
		Tenant: lc.Tenant, SkipLogin: lc.SkipLogin,
	})
}

// LaunchURL is appLaunchURL with iss (the FHIR base) and launch added: what the EHR opens.
func (s *Server) LaunchURL(appLaunchURL, launchID string) string {
	sep := "?"
	if strings.Contains(appLaunchURL, "?") {
		sep = "&"
	}
	return appLaunchURL + sep + url.Values{"iss": {s.FHIRBase}, "launch": {launchID}}.Encode()
}
