package backend

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart"
)

// sandboxAs starts a sandbox playing a vendor (Options.As) with a backend client for testECKey.
func sandboxAs(t *testing.T, as string) (*sandbox.Server, string, string) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Patients: 2, As: as})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	jwks, err := PublicJWKS(Key{Signer: testECKey()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sb.RegisterClient(sandbox.Client{Name: "profile test", AuthMethod: "private_key_jwt", JWKS: jwks,
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	return sb, ts.URL + "/fhir", c.ID
}

func preset(t *testing.T, name string) *smart.Profile {
	t.Helper()
	p, err := smart.ProfileByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestProfileAgainstVendorModes: each profile setting the backend applies, against the sandbox mode
// that has the quirk, with and without it (issue 11).
func TestProfileAgainstVendorModes(t *testing.T) {
	t.Parallel()
	custom := func(base string, mod func(*smart.Profile)) func(*testing.T) *smart.Profile {
		return func(t *testing.T) *smart.Profile {
			p := preset(t, base)
			mod(p)
			return p
		}
	}
	named := func(name string) func(*testing.T) *smart.Profile {
		return func(t *testing.T) *smart.Profile { return preset(t, name) }
	}
	none := func(*testing.T) *smart.Profile { return nil }
	tests := []struct {
		name    string
		as      string
		profile func(*testing.T) *smart.Profile
		header  http.Header                   // Config.Header
		want    func(t *testing.T, err error) // nil: success
		tokens  int64                         // client_credentials requests
	}{
		// Epic: the Epic-Client-ID header (ClientIDHeader) and one retry of a bare 400 (RetryBare400).
		{name: "epic with epic", as: "epic", profile: named("epic"), tokens: 2},
		{name: "epic with generic: no Epic-Client-ID", as: "epic", profile: named("generic"), tokens: 1, want: wantOAuthCode("invalid_request")},
		{name: "epic, header but no retry: the bare 400 surfaces", as: "epic", tokens: 1, want: wantBare400,
			profile: custom("generic", func(p *smart.Profile) { p.ClientIDHeader = "Epic-Client-ID" })},
		{name: "epic without a profile: CONV-3 retries the bare 400", as: "epic", profile: none, tokens: 2,
			header: http.Header{"Epic-Client-Id": nil}}, // filled in below with the client id
		// MEDITECH: OpenID Connect discovery only (DiscoveryFallbacks).
		{name: "meditech with meditech", as: "meditech", profile: named("meditech"), tokens: 1},
		{name: "meditech with generic", as: "meditech", profile: named("generic"), want: wantErr(smart.ErrMissingTokenEndpoint)},
		// The SMART launcher under-advertises private_key_jwt (LenientDiscovery).
		{name: "smart-sandbox with smart-sandbox", as: "smart-sandbox", profile: named("smart-sandbox"), tokens: 1},
		{name: "smart-sandbox with generic", as: "smart-sandbox", profile: named("generic"), want: wantErr(smart.ErrAuthMethodNotSupported)},
		// athena's non-OAuth errors are classified whatever the profile (ClassifyTokenError).
		{name: "athena with athena", as: "athena", profile: named("athena"), tokens: 1},
		// CMS BCDA's expires_in string is CONV-4 for every profile.
		{name: "cms-bcda with generic", as: "cms-bcda", profile: named("generic"), tokens: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb, fhirBase, clientID := sandboxAs(t, tt.as)
			hdr := tt.header
			if _, ok := hdr["Epic-Client-Id"]; ok {
				hdr = http.Header{"Epic-Client-Id": {clientID}}
			}
			cfg := &Config{ClientID: clientID, FHIRBase: fhirBase, PrivateKey: testECKey(), Profile: tt.profile(t), Header: hdr}
			tok, err := cfg.Token(t.Context())
			if tt.want != nil {
				tt.want(t, err)
			} else if err != nil || tok.AccessToken == "" {
				t.Fatalf("token: %v", err)
			}
			if n := sb.Count("token_requests:client_credentials"); tt.tokens != 0 && n != tt.tokens {
				t.Errorf("token requests = %d, want %d", n, tt.tokens)
			}
			if err != nil {
				return
			}
			// The FHIR API gets the profile's headers too (Epic wants them everywhere).
			resp, err := cfg.Client(t.Context()).Get(fhirBase + "/Patient?_count=1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET Patient: %d", resp.StatusCode)
			}
		})
	}
}

func wantOAuthCode(code string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != code {
			t.Fatalf("err = %v, want OAuth error %s", err, code)
		}
	}
}

func wantBare400(t *testing.T, err error) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil || re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode != "" {
		t.Fatalf("err = %v, want a bare HTTP 400", err)
	}
	if !strings.Contains(smart.ExplainTokenError(err), "Epic") {
		t.Errorf("explanation %q does not mention Epic's flaky 400s", smart.ExplainTokenError(err))
	}
}

func wantErr(target error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("err = %v, want %v", err, target)
		}
	}
}

func TestProfileNonOAuthError(t *testing.T) { // apiserver-athenaFlex #319, TOK-12
	t.Parallel()
	_, fhirBase, clientID := sandboxAs(t, "athena")
	cfg := &Config{ClientID: clientID, FHIRBase: fhirBase, PrivateKey: otherECKey(), Profile: preset(t, "athena")}
	_, err := cfg.Token(t.Context())
	var no *smart.NonOAuthError
	var re *oauth2.RetrieveError
	if !errors.As(err, &no) || no.StatusCode != http.StatusUnauthorized || !strings.Contains(no.Message, "kid") || !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *smart.NonOAuthError (401) that still unwraps to *oauth2.RetrieveError", err)
	}
}

func TestProfileAssertionClaims(t *testing.T) { // AUTH-06; Keycloak #8966 (AssertionBackdate); client-js #145 (AssertionAud)
	t.Parallel()
	t.Run("backdated iat", func(t *testing.T) {
		t.Parallel()
		srv := newTokenServer(t, "svc")
		srv.register(mustThumbprint(t, testECKey()), testECKey().Public())
		clock := newFakeClock()
		srv.now = clock.Now
		c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: testECKey(),
			Now: clock.Now, Profile: preset(t, "epic")}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		var claims struct{ Iat, Exp int64 }
		if err := decodeSegment(strings.Split(srv.assertions[0], ".")[1], &claims); err != nil {
			t.Fatal(err)
		}
		now := clock.Now().Unix()
		if claims.Iat != now-20 || claims.Exp != now+240 {
			t.Fatalf("iat %d exp %d, want now-20 and now+240 (now %d)", claims.Iat, claims.Exp, now)
		}
	})
	t.Run("aud from the CapabilityStatement", func(t *testing.T) {
		t.Parallel()
		var gotAud []string
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		implURL := srv.URL + "/interconnect-hsi"
		mux.HandleFunc("GET /fhir/metadata", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			fmt.Fprintf(w, `{"resourceType":"CapabilityStatement","publisher":"Epic","implementation":{"url":%q}}`, implURL)
		})
		mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
			var claims struct{ Aud string }
			_ = r.ParseForm()
			_ = decodeSegment(strings.Split(r.PostForm.Get("client_assertion")+"..", ".")[1], &claims)
			gotAud = append(gotAud, claims.Aud)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"at","token_type":"Bearer","expires_in":300,"scope":"system/*.rs"}`)
		})
		p := preset(t, "epic")
		p.AssertionAud = smart.AssertionAudienceMetadata
		c := &Config{ClientID: "svc", FHIRBase: srv.URL + "/fhir", TokenURL: srv.URL + "/token", Scopes: []string{"system/*.rs"},
			PrivateKey: testECKey(), Profile: p}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(gotAud) != 1 || gotAud[0] != implURL {
			t.Fatalf("aud = %q, want %q", gotAud, implURL)
		}
		// Without a FHIR base there is no CapabilityStatement to read: an error, not the token URL.
		c2 := &Config{ClientID: "svc", TokenURL: srv.URL + "/token", Scopes: []string{"system/*.rs"}, PrivateKey: testECKey(), Profile: p}
		if _, err := c2.Token(t.Context()); !errors.Is(err, smart.ErrNoMetadataAudience) {
			t.Fatalf("without FHIRBase: %v", err)
		}
		// An implementation.url on another origin is not signed for (AUTH-09).
		implURL = "http://127.0.0.2:1/elsewhere"
		if _, err := c.Token(t.Context()); !errors.Is(err, smart.ErrUntrustedEndpoint) {
			t.Fatalf("foreign implementation.url: %v", err)
		}
	})
}

func TestProfileScopes(t *testing.T) { // SCOPE-12: the profile's grammar; fasten-sources: extra scopes
	t.Parallel()
	srv := newTokenServer(t, "svc")
	srv.register(mustThumbprint(t, testECKey()), testECKey().Public())
	p := preset(t, "generic")
	p.ScopeStyle = smart.ScopeV1
	p.ExtraScopes = []string{"sandbox"}
	c := &Config{ClientID: "svc", FHIRBase: srv.FHIRBase(), PrivateKey: testECKey(), Profile: p}
	tok, err := c.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.form(0).Get("scope"); got != "system/*.read sandbox" {
		t.Errorf("scope = %q, want the v1 default plus the extra scope", got)
	}
	if len(tok.Warnings) != 0 {
		t.Errorf("warnings %q", tok.Warnings)
	}
	bad := preset(t, "generic")
	bad.Headers = map[string]string{"Authorization": "Bearer x"}
	if _, err := (&Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: testECKey(),
		Profile: bad}).Token(t.Context()); !errors.Is(err, ErrConfig) || !errors.Is(err, smart.ErrInvalidProfile) {
		t.Fatalf("invalid profile: %v", err)
	}
}

func TestKeyAndSecret(t *testing.T) { // AUTH-04: private_key_jwt when the server supports it
	t.Parallel()
	tests := []struct {
		name       string
		discovery  map[string]any
		wantSecret bool
	}{
		{"asymmetric advertised", nil, false},
		{"methods not listed", map[string]any{"token_endpoint_auth_methods_supported": nil, "capabilities": []string{}}, false},
		{"secret only", map[string]any{"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
			"capabilities": []string{"permission-v2"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newTokenServer(t, "svc")
			srv.register(mustThumbprint(t, testECKey()), testECKey().Public())
			srv.discovery = tt.discovery
			if tt.wantSecret {
				srv.secret = "the-secret-value"
			}
			c := &Config{ClientID: "svc", FHIRBase: srv.FHIRBase(), ClientSecret: "the-secret-value", PrivateKey: testECKey()}
			tok, err := c.Token(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			usedSecret := srv.header(0).Get("Authorization") != ""
			if usedSecret != tt.wantSecret || srv.form(0).Has("client_assertion") == tt.wantSecret || srv.form(0).Has("client_secret") {
				t.Fatalf("secret used = %v (form %v), want %v", usedSecret, srv.form(0), tt.wantSecret)
			}
			if warned := len(tok.Warnings) > 0 && strings.Contains(tok.Warnings[0], "AUTH-04"); warned != tt.wantSecret {
				t.Errorf("warnings %q", tok.Warnings)
			}
		})
	}
	for _, as := range []string{"generic", "smart-sandbox"} {
		// The sandbox advertises client-confidential-asymmetric and private_key_jwt; as the SMART
		// launcher it lists only secrets, and a lenient profile keeps the key anyway. Its client has
		// no secret: only the JWT works.
		t.Run("sandbox as "+as, func(t *testing.T) {
			t.Parallel()
			_, fhirBase, clientID := sandboxAs(t, as)
			c := &Config{ClientID: clientID, FHIRBase: fhirBase, ClientSecret: "never-sent", PrivateKey: testECKey(), Profile: preset(t, as)}
			if _, err := c.Token(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTokenSourceSkewedClock: Config.Now corrects this machine's clock (BS-10); the cached token's
// expiry must be on that clock too, or every call would fetch a new token.
func TestTokenSourceSkewedClock(t *testing.T) {
	t.Parallel()
	sb, fhirBase, clientID := sandboxAs(t, "")
	sb.SetClockOffset(time.Hour) // the server's clock runs an hour ahead
	skewed := func() time.Time { return time.Now().Add(time.Hour) }
	c := &Config{ClientID: clientID, FHIRBase: fhirBase, PrivateKey: testECKey(), Now: skewed}
	src := c.TokenSource(t.Context())
	for range 3 {
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if left := tok.Expiry.Sub(skewed()); left < 4*time.Minute || left > 5*time.Minute {
			t.Fatalf("expiry %v is %v from the corrected clock, want about 5 min", tok.Expiry, left)
		}
	}
	if n := sb.Count("token_requests:client_credentials"); n != 1 {
		t.Fatalf("token requests = %d, want 1 (the cached token looked expired)", n)
	}
}
