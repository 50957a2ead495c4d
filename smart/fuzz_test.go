package smart

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// addTestdataSeeds adds every file of testdata/dir to the corpus.
func addTestdataSeeds(f *testing.F, dir string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata/%s: %v", dir, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseScope checks that parsing never panics, that canonical forms are fixed points, and that
// every form this package emits parses back (SCOPE-11, SCOPE-12, SCOPE-14, SCOPE-16).
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"patient/Observation.rs", "user/*.cruds", "system/*.read", "patient/*.*", "launch", "launch/patient",
		"launch/list?role=https://example.org/med-list-at-home", "openid", "fhirUser", "profile", "offline_access",
		"__custom", "https://ehr.example.org/scope", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&code=a,b",
		"http://smarthealthit.org/fhir/scopes/patient/*.r", "http://openid.net/specs/openid-connect-core-1_0#openid",
		"patient/Observation.sr", "Patient/X.r", "launch/List", `a"b`, "patient/Observation.rs?a=b=c&&d=e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "smart: ") {
				t.Fatalf("error without prefix: %v", err)
			}
		} else {
			canon := sc.String()
			again, err := ParseScope(canon)
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
			}
			if again.String() != canon {
				t.Fatalf("canonical form not a fixed point: %q -> %q", canon, again.String())
			}
			for _, style := range []ScopeStyle{ScopeStyleV1, ScopeStyleV2} {
				if _, err := ParseScope(sc.Format(style)); err != nil {
					t.Fatalf("%v form %q of %q does not parse: %v", style, sc.Format(style), s, err)
				}
			}
			if back, err := ParseScope(sc.URI()); err != nil || back.String() != canon {
				t.Fatalf("URI form %q of %q: %q, %v", sc.URI(), s, back.String(), err)
			}
			if sc.Kind == KindResource && !sc.Covers(sc) {
				t.Fatalf("%q does not cover itself", s)
			}
		}
		// Lenient parsing never fails and is idempotent on its own output.
		ss := ParseScopesLenient(s)
		out := ss.String()
		if again := ParseScopesLenient(out).String(); again != out {
			t.Fatalf("lenient String not a fixed point: %q -> %q", out, again)
		}
		if d := Diff(ss, ss); len(d) != 0 {
			t.Fatalf("Diff(x, x) = %q for %q", d, s)
		}
		_, _ = ParseScopes(s)
	})
}

// FuzzParseConfiguration checks that a hostile discovery document or CapabilityStatement never
// panics and that an accepted one only names URLs that pass the CONV-1 policy (DISC-06).
func FuzzParseConfiguration(f *testing.F) {
	addTestdataSeeds(f, "discovery")
	f.Add([]byte(`{"token_endpoint":"auth/token","capabilities":[],"associated_endpoints":[{"url":"x"}]}`))
	f.Add([]byte(`{"token_endpoint":"//evil.example/t","capabilities":["sso-openid-connect"]}`))
	base, _ := url.Parse("https://ehr.example.org/fhir/r4")
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := ParseConfiguration(doc, base.String())
		if err == nil {
			for _, e := range []string{cfg.TokenEndpoint, cfg.AuthorizationEndpoint, cfg.JWKSURI, cfg.RegistrationEndpoint,
				cfg.IntrospectionEndpoint, cfg.RevocationEndpoint, cfg.ManagementEndpoint, cfg.SMARTAppStateEndpoint} {
				if e == "" {
					continue
				}
				if _, err := httpx.ParseAbsURL(e, false); err != nil {
					t.Fatalf("accepted endpoint %q: %v", e, err)
				}
			}
			if cfg.TokenEndpoint == "" {
				t.Fatal("accepted a configuration without a token endpoint")
			}
			_ = cfg.CapabilitySets()
			_ = cfg.CheckEndpointOrigins()
			_ = cfg.RequireLaunch()
			_ = cfg.RequireBackend()
			b, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseConfiguration(b, base.String())
			if err != nil || again.TokenEndpoint != cfg.TokenEndpoint {
				t.Fatalf("re-parse of %s: %v", b, err)
			}
		}
		if cfg, err := parseCapabilityStatement(bytes.NewReader(doc), base, false); err == nil && cfg.TokenEndpoint == "" {
			t.Fatal("CapabilityStatement accepted without a token endpoint")
		}
	})
}

// FuzzParseTokenResponse checks that a hostile token response never panics and that an accepted
// one only yields values safe to use: a header-safe access token, FHIR ids, an expiry (TOK-03,
// TOK-06, TOK-13), and a lossless round trip.
func FuzzParseTokenResponse(f *testing.F) {
	addTestdataSeeds(f, "token")
	f.Add([]byte(`{"access_token":"a","token_type":"bearer","patient":"Patient/1","expires_in":"5","fhirContext":[{"reference":"x","role":""},"a"]}`))
	f.Add([]byte(`{"error":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := ParseTokenResponse(body, testNow)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") && !strings.Contains(msg, "Response:") {
				t.Fatalf("control characters in %q", msg)
			}
			return
		}
		if !ValidAccessToken(tok.AccessToken) {
			t.Fatalf("accepted access token %q", tok.AccessToken)
		}
		for _, id := range []string{tok.Patient, tok.Encounter} {
			if id != "" && !IsFHIRID(id) {
				t.Fatalf("accepted id %q", id)
			}
		}
		if tok.Expiry.Before(testNow) || strings.ContainsAny(tok.RefreshToken, "\r\n") {
			t.Fatalf("expiry %v, refresh %q", tok.Expiry, tok.RefreshToken)
		}
		b, err := json.Marshal(tok)
		if err != nil {
			t.Fatal(err)
		}
		var back Token
		if err := json.Unmarshal(b, &back); err != nil || back.AccessToken != tok.AccessToken || back.Patient != tok.Patient || back.Scope != tok.Scope {
			t.Fatalf("round trip: %v", err)
		}
		_ = tok.GrantedScopes()
	})
}
