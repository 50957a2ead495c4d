package launch

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

func testRuntime(t *testing.T, mod func(*Config)) *runtime {
	t.Helper()
	c := &Config{ClientID: "app", RedirectURL: "https://app.example/cb", AllowedIssuers: []string{"https://ehr.example/fhir"},
		Scopes: []string{"openid", "fhirUser", "patient/*.rs", "online_access", "launch"}}
	if mod != nil {
		mod(c)
	}
	rt, err := c.runtime()
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// TestNormalizeIssuer: case of scheme and host, default port and trailing slash are ignored; the
// path is not (LAUNCH-02).
func TestNormalizeIssuer(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t, func(c *Config) { c.AllowedIssuers = []string{"https://EHR.example:443/fhir/R4/"} })
	for _, tc := range []struct {
		iss string
		ok  bool
	}{
		{"https://ehr.example/fhir/R4", true},
		{"HTTPS://ehr.EXAMPLE/fhir/R4/", true},
		{"https://ehr.example:443/fhir/R4", true},
		{"https://ehr.example/fhir/r4", false},
		{"https://ehr.example:8443/fhir/R4", false},
		{"http://ehr.example/fhir/R4", false},
		{"https://ehr.example/fhir/R4?x", false},
		{"https://ehr.example/fhir/R4#f", false},
		{"https://user@ehr.example/fhir/R4", false},
		{"https://ehr.example.attacker.test/fhir/R4", false},
		{"", false},
		{"javascript:alert(1)", false},
	} {
		_, err := rt.policy.check(tc.iss)
		if (err == nil) != tc.ok {
			t.Errorf("check(%q) = %v, want ok=%v", tc.iss, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrIssuerNotAllowed) {
			t.Errorf("check(%q) error %v does not wrap ErrIssuerNotAllowed", tc.iss, err)
		}
	}
}

// TestAudienceModes: exact by default, trimmed or omitted per issuer (quirks: vendor aud rules).
func TestAudienceModes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode AudienceMode
		want string
	}{{AudienceExact, "https://ehr/fhir/"}, {AudienceTrimmed, "https://ehr/fhir"}, {AudienceOmitted, ""}} {
		if got := audience("https://ehr/fhir/", tc.mode); got != tc.want {
			t.Errorf("audience(mode %d) = %q, want %q", tc.mode, got, tc.want)
		}
	}
}

// TestScopes: launch added for EHR launches; standalone drops launch and online_access and adds
// launch/patient (LAUNCH-03, STAND-01, STAND-02, STAND-04).
func TestScopes(t *testing.T) {
	t.Parallel()
	rt := testRuntime(t, nil)
	if got := rt.scopes(true); !slices.Contains(got, "launch") || !slices.Contains(got, "online_access") {
		t.Errorf("EHR scopes = %v", got)
	}
	got := rt.scopes(false)
	if slices.Contains(got, "launch") || slices.Contains(got, "online_access") || !slices.Contains(got, "launch/patient") {
		t.Errorf("standalone scopes = %v", got)
	}
}

// TestPKCEVector: the RFC 7636 Appendix B vector through the function the launch uses (LAUNCH-07).
func TestPKCEVector(t *testing.T) {
	t.Parallel()
	if got := oauth2.S256ChallengeFromVerifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Errorf("challenge = %q", got)
	}
	v := oauth2.GenerateVerifier()
	if len(v) != 43 || strings.ContainsAny(oauth2.S256ChallengeFromVerifier(v), "=+/") {
		t.Errorf("verifier %d chars", len(v))
	}
	if a, b := randomString(32), randomString(32); a == b || len(a) != 43 { // LAUNCH-06: 256 bits
		t.Errorf("states %q %q", a, b)
	}
}

// TestCheckClaims covers the id_token claim rules (IDT-01, IDT-07, LAUNCH-12).
func TestCheckClaims(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	rt := testRuntime(t, func(c *Config) { c.Now = func() time.Time { return now } })
	num := func(d time.Duration) *json.Number { n := json.Number(itoa(now.Add(d).Unix())); return &n }
	str := func(s string) *string { return &s }
	good := func() idClaims {
		return idClaims{Iss: "https://ehr/fhir", Sub: "u1", Aud: json.RawMessage(`"app"`), Exp: num(time.Hour), Iat: num(-time.Minute), Nonce: str("n1")}
	}
	chk := idTokenCheck{issuer: "https://ehr/fhir", nonce: "n1"}
	for _, tc := range []struct {
		name string
		mod  func(*idClaims)
		chk  idTokenCheck
		ok   bool
	}{
		{"good", func(*idClaims) {}, chk, true},
		{"wrong iss", func(c *idClaims) { c.Iss = "https://ehr/fhir/" }, chk, false},
		{"aud other client", func(c *idClaims) { c.Aud = json.RawMessage(`"other"`) }, chk, false},
		{"aud array with azp", func(c *idClaims) { c.Aud, c.Azp = json.RawMessage(`["app","x"]`), "app" }, chk, true},
		{"aud array without azp", func(c *idClaims) { c.Aud = json.RawMessage(`["app","x"]`) }, chk, false},
		{"azp other", func(c *idClaims) { c.Azp = "other" }, chk, false},
		{"aud missing", func(c *idClaims) { c.Aud = nil }, chk, false},
		{"expired 30s ago (skew 60s)", func(c *idClaims) { c.Exp = num(-30 * time.Second) }, chk, true},
		{"expired 120s ago", func(c *idClaims) { c.Exp = num(-120 * time.Second) }, chk, false},
		{"no exp", func(c *idClaims) { c.Exp = nil }, chk, false},
		{"iat in the future", func(c *idClaims) { c.Iat = num(5 * time.Minute) }, chk, false},
		{"iat 2 days old", func(c *idClaims) { c.Iat = num(-48 * time.Hour) }, chk, false},
		{"nbf in the future", func(c *idClaims) { c.Nbf = num(5 * time.Minute) }, chk, false},
		{"nonce missing", func(c *idClaims) { c.Nonce = nil }, chk, false},
		{"nonce wrong", func(c *idClaims) { c.Nonce = str("n2") }, chk, false},
		{"nonce not sent", func(c *idClaims) { c.Nonce = nil }, idTokenCheck{issuer: "https://ehr/fhir"}, true},
		{"no sub", func(c *idClaims) { c.Sub = "" }, chk, false},
	} {
		c := good()
		tc.mod(&c)
		err := rt.checkClaims(&c, tc.chk)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
		var ie *IDTokenError
		if err != nil && !errors.As(err, &ie) {
			t.Errorf("%s: %T is not *IDTokenError", tc.name, err)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestResolveFHIRUser: relative and absolute references, allowed types only (IDT-03, IDT-04).
func TestResolveFHIRUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ref, want string }{
		{"Practitioner/123", "https://ehr/fhir/Practitioner/123"},
		{"https://ehr/fhir/PractitionerRole/9", "https://ehr/fhir/PractitionerRole/9"},
		{"https://other.example/Patient/1", "https://other.example/Patient/1"},
		{"RelatedPerson/a.b", "https://ehr/fhir/RelatedPerson/a.b"},
		{"Person/p", "https://ehr/fhir/Person/p"},
		{"Organization/1", ""},
		{"../Practitioner/1", ""},
		{"/Practitioner/1", ""},
		{"Practitioner/1?x=y", ""},
		{"Practitioner/a_b", ""},
		{"javascript:alert(1)//Patient/1", ""},
		{"http://169.254.169.254/Patient/1", ""},
		{"Practitioner", ""},
	} {
		got, err := resolveFHIRUser(tc.ref, "https://ehr/fhir", false)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("resolveFHIRUser(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	// An absolute fhirUser follows the FHIR base's URL policy: plain http to a remote host only
	// with InsecureAllowHTTP, never to a metadata address (CONV-1).
	for _, tc := range []struct {
		ref       string
		allowHTTP bool
		ok        bool
	}{
		{"http://ehr.test/fhir/Practitioner/1", false, false},
		{"http://ehr.test/fhir/Practitioner/1", true, true},
		{"http://127.0.0.1:8080/fhir/Practitioner/1", false, true},
		{"http://169.254.169.254/fhir/Practitioner/1", true, false},
	} {
		_, err := resolveFHIRUser(tc.ref, "http://ehr.test/fhir", tc.allowHTTP)
		if (err == nil) != tc.ok {
			t.Errorf("resolveFHIRUser(%q, allowHTTP %v): %v, want ok=%v", tc.ref, tc.allowHTTP, err, tc.ok)
		}
	}
}

// TestMergeRefreshContext: a refresh response's launch context replaces the stored one where
// present and is flagged when it differs, fhirContext included; what it omits is kept (REF-05).
func TestMergeRefreshContext(t *testing.T) {
	t.Parallel()
	list := func(ref string) []smart.FHIRContextItem {
		return []smart.FHIRContextItem{{Reference: ref, Role: "https://example.org/med-rec", Identifier: json.RawMessage(`{"value":"1"}`)}}
	}
	old := &TokenSet{Token: &smart.Token{Token: &oauth2.Token{AccessToken: "a1", RefreshToken: "r1"}, Scope: "patient/*.rs",
		LaunchContext: smart.LaunchContext{Patient: "p1", Encounter: "e1", FHIRContext: list("List/1")}}}
	for _, tc := range []struct {
		name    string
		lc      smart.LaunchContext
		changed bool
		want    smart.LaunchContext
	}{
		{"omitted", smart.LaunchContext{}, false, old.Token.LaunchContext},
		{"repeated", old.Token.LaunchContext, false, old.Token.LaunchContext},
		{"other patient", smart.LaunchContext{Patient: "p2"}, true, smart.LaunchContext{Patient: "p2", Encounter: "e1", FHIRContext: list("List/1")}},
		{"other fhirContext", smart.LaunchContext{FHIRContext: list("List/2")}, true, smart.LaunchContext{Patient: "p1", Encounter: "e1", FHIRContext: list("List/2")}},
		{"other identifier", smart.LaunchContext{FHIRContext: []smart.FHIRContextItem{{Reference: "List/1", Role: "https://example.org/med-rec", Identifier: json.RawMessage(`{"value":"2"}`)}}},
			true, smart.LaunchContext{Patient: "p1", Encounter: "e1", FHIRContext: []smart.FHIRContextItem{{Reference: "List/1", Role: "https://example.org/med-rec", Identifier: json.RawMessage(`{"value":"2"}`)}}}},
	} {
		got := mergeRefresh(old, &smart.Token{Token: &oauth2.Token{AccessToken: "a2"}, Scope: "patient/*.rs", LaunchContext: tc.lc})
		if got.ContextChanged != tc.changed {
			t.Errorf("%s: ContextChanged = %v", tc.name, got.ContextChanged)
		}
		if !reflect.DeepEqual(got.Token.LaunchContext, tc.want) {
			t.Errorf("%s: context = %+v, want %+v", tc.name, got.Token.LaunchContext, tc.want)
		}
		if got.Token.RefreshToken != "r1" {
			t.Errorf("%s: refresh token not kept (REF-03)", tc.name)
		}
	}
}

// TestSelectKey: kid and key type select exactly one key; none or two fail (JWKS-05).
func TestSelectKey(t *testing.T) {
	t.Parallel()
	set, err := jwk.Parse([]byte(`{"keys":[
	 {"kty":"RSA","kid":"a","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
	 {"kty":"RSA","kid":"dup","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
	 {"kty":"RSA","kid":"dup","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
	 {"kty":"RSA","kid":"enc","use":"enc","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
	 {"kty":"oct","kid":"hmac","k":"c2VjcmV0"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h  idHeader
		ok bool
	}{
		{idHeader{Alg: "RS256", Kid: "a"}, true},
		{idHeader{Alg: "ES256", Kid: "a"}, false}, // kty does not suit alg
		{idHeader{Alg: "RS256", Kid: "dup"}, false},
		{idHeader{Alg: "RS256", Kid: "enc"}, false},
		{idHeader{Alg: "RS256", Kid: "hmac"}, false},
		{idHeader{Alg: "RS256", Kid: "unknown"}, false},
		{idHeader{Alg: "RS256"}, false}, // no kid, several RSA keys
	} {
		_, err := selectKey(set, tc.h)
		if (err == nil) != tc.ok {
			t.Errorf("selectKey(%+v) = %v, want ok=%v", tc.h, err, tc.ok)
		}
	}
}

// TestConfigValidation: unusable configurations fail with ErrConfig, at Validate and at every
// handler (fail closed).
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	base := func() *Config {
		return &Config{ClientID: "app", RedirectURL: "https://app.example/cb", AllowedIssuers: []string{"https://ehr/fhir"}}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no client id", func(c *Config) { c.ClientID = "" }},
		{"no redirect", func(c *Config) { c.RedirectURL = "" }},
		{"http redirect", func(c *Config) { c.RedirectURL = "http://app.example/cb" }},
		{"redirect fragment", func(c *Config) { c.RedirectURL = "https://app.example/cb#x" }},
		{"no issuers", func(c *Config) { c.AllowedIssuers = nil }},
		{"bad issuer", func(c *Config) { c.AllowedIssuers = []string{"ftp://x"} }},
		{"settings for unlisted issuer", func(c *Config) { c.Issuers = map[string]IssuerSettings{"https://other/fhir": {}} }},
		{"credential header", func(c *Config) {
			c.Issuers = map[string]IssuerSettings{"https://ehr/fhir": {Header: map[string][]string{"Authorization": {"x"}}}}
		}},
		{"key id without key", func(c *Config) { c.KeyID = "k1" }},
		{"invalid issuer profile", func(c *Config) {
			p, _ := smart.LookupProfile("epic")
			p.Headers = map[string]string{"Cookie": "x"}
			c.Issuers = map[string]IssuerSettings{"https://ehr/fhir": {Profile: &p}}
		}},
		{"hmac id_token alg", func(c *Config) { c.IDTokenAlgorithms = []string{"HS256"} }},
		{"none id_token alg", func(c *Config) { c.IDTokenAlgorithms = []string{"none"} }},
		{"scope with space", func(c *Config) { c.Scopes = []string{"a b"} }},
		{"short cookie key", func(c *Config) { c.CookieKeys = [][]byte{[]byte("short"), make([]byte, 32)} }},
	} {
		c := base()
		tc.mod(c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate() = %v, want ErrConfig", tc.name, err)
		}
	}
	if err := base().Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func testSigner(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
