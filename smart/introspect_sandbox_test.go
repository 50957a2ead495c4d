package smart_test

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// backendToken gets a SMART Backend Services token from the sandbox with a jwx-signed assertion whose
// iat is backdated as the generic profile says.
func backendToken(t *testing.T, srv *smarttest.Server) (*smarttest.BackendClient, *smart.Token) {
	t.Helper()
	bc := srv.RegisterBackendClient(t, "ES384")
	generic := mustPreset(t, "generic")
	now := time.Now()
	claims, err := jwt.NewBuilder().Issuer(bc.ID).Subject(bc.ID).Audience([]string{bc.TokenURL}).
		IssuedAt(generic.AssertionIssuedAt(now)).Expiration(now.Add(4 * time.Minute)).JwtID(rand.Text()).Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "JWT")
	_ = hdr.Set(jws.KeyIDKey, bc.KeyID)
	signed, err := jwt.Sign(claims, jwt.WithKey(jwa.ES384, bc.Signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := smart.ExchangeToken(t.Context(), srv.Client(), bc.TokenURL, url.Values{
		"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {string(signed)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bc, tok
}

// launchToken runs an EHR launch of a public app with launch context and returns its token.
func launchToken(t *testing.T, srv *smarttest.Server) (*smarttest.AppClient, *smart.Token, string) {
	t.Helper()
	redirect := "http://127.0.0.1:1/cb"
	app := srv.RegisterApp(t, smarttest.App{RedirectURIs: []string{redirect}, SkipLogin: true})
	patient := srv.Sandbox.Patients()[0].ID
	launch := srv.Launch(smarttest.LaunchContext{Patient: patient, User: "Practitioner/" + srv.Sandbox.Practitioners()[0].ID,
		ClientID: app.ID, Intent: "reconcile-medications", SkipLogin: true,
		FHIRContext: []smarttest.FHIRContextItem{{Reference: "Patient/" + patient, Role: "https://example.org/role"}}})
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"response_type": {"code"}, "client_id": {app.ID}, "redirect_uri": {redirect}, "state": {"s1"},
		"scope": {"launch openid fhirUser patient/*.rs offline_access"}, "aud": {srv.FHIRBase}, "launch": {launch},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	hc := srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(srv.AuthorizeURL + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := smart.ExchangeToken(t.Context(), srv.Client(), srv.TokenURL, url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "client_id": {app.ID}, "code_verifier": {verifier}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return app, tok, patient
}

// TestIntrospectSandbox runs the Introspector against the sandbox's /auth/introspect, which wants a
// live access token as Bearer (INTRO-01) and answers with the launch context (INTRO-03).
func TestIntrospectSandbox(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t)
	cfg, err := smart.Discover(t.Context(), srv.Client(), srv.FHIRBase)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := mustPreset(t, "generic").IntrospectionURL(cfg)
	if endpoint == "" || cfg.CheckEndpointOrigins() != nil {
		t.Fatalf("introspection_endpoint %q: %v", endpoint, cfg.CheckEndpointOrigins())
	}
	bc, bearer := backendToken(t, srv)
	app, appTok, patient := launchToken(t, srv)
	in := &smart.Introspector{Endpoint: endpoint, HTTPClient: srv.Client(), TokenSource: oauth2.StaticTokenSource(bearer.Token), CacheTTL: time.Minute}

	self, err := in.Introspect(t.Context(), bearer.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !self.Active || self.ClientID != bc.ID || self.Scope != "system/*.rs" || self.Expiry.Before(time.Now()) || self.Patient != "" {
		t.Errorf("backend token: %+v", self)
	}

	got, err := in.Introspect(t.Context(), appTok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Active || got.ClientID != app.ID || got.Patient != patient || got.Intent != "reconcile-medications" ||
		got.Issuer != srv.FHIRBase || got.Subject == "" || got.FHIRUser == "" || len(got.FHIRContext) != 1 ||
		got.FHIRContext[0].Role != "https://example.org/role" || !got.GrantedScopes().Allows("patient", "Observation", smart.PermRead) {
		t.Errorf("app token: %+v", got)
	}
	if !smart.CanRefresh(appTok) {
		t.Fatal("no refresh token with offline_access")
	}
	rt, err := in.IntrospectWithHint(t.Context(), appTok.RefreshToken, "refresh_token")
	if err != nil || !rt.Active || rt.ClientID != app.ID || rt.TokenType != "refresh_token" {
		t.Errorf("refresh token: %+v, %v", rt, err)
	}
	if res, err := in.Introspect(t.Context(), "not-a-token-the-sandbox-issued"); err != nil || res.Active {
		t.Errorf("unknown token: %+v, %v", res, err)
	}

	// INTRO-04: a clock two hours ahead sees the sandbox's "active" token as expired.
	ahead := &smart.Introspector{Endpoint: endpoint, HTTPClient: srv.Client(), TokenSource: oauth2.StaticTokenSource(bearer.Token),
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	if res, err := ahead.Introspect(t.Context(), appTok.AccessToken); err != nil || res.Active || !res.Expired {
		t.Errorf("clock ahead: %+v, %v", res, err)
	}

	// Our own bearer token expired on the server: 401, no retry possible with a static source.
	srv.Sandbox.ExpireAccessTokens()
	if _, err := ahead.Introspect(t.Context(), appTok.AccessToken); !errors.Is(err, smart.ErrIntrospectionUnauthorized) {
		t.Errorf("expired bearer: %v", err)
	}
	// INTRO-05: the cached answer of the first Introspector is still served within its TTL, but a
	// request with other credentials is not answered from it.
	if res, err := in.Introspect(t.Context(), appTok.AccessToken); err != nil || !res.Active {
		t.Errorf("cached: %+v, %v", res, err)
	}
	other := &smart.Introspector{Endpoint: endpoint, HTTPClient: srv.Client(), TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "someone-else"}), CacheTTL: time.Minute}
	if _, err := other.Introspect(t.Context(), appTok.AccessToken); !errors.Is(err, smart.ErrIntrospectionUnauthorized) {
		t.Errorf("other credentials: %v", err)
	}
}
