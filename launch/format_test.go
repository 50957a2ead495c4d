package launch_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

// TestFormatHidesSecrets: whatever the verb, fmt shows neither a Session's key nor the client
// secret its runtime holds, nor the tokens of a TokenSet, nor the verifier of a Record; the
// non-secret fields still show (SEC-08).
func TestFormatHidesSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{authMethod: "client_secret_basic"})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	s := e.sessionOf(t, b, p.Handle)
	tok := &smart.Token{Token: &oauth2.Token{AccessToken: "at-SECRET-1", RefreshToken: "rt-SECRET-2", TokenType: "Bearer",
		Expiry: time.Now().Add(time.Hour)}, IDToken: "idt-SECRET-3", Scope: "patient/*.rs"}
	ts := launch.TokenSet{Browser: "sid-SECRET-4", Issuer: "https://ehr.example/fhir", Token: tok}
	rec := launch.Record{Browser: "sid-SECRET-4", Issuer: "https://ehr.example/fhir", Verifier: "pkce-SECRET-5", Nonce: "nonce-SECRET-6"}
	for _, tc := range []struct {
		name    string
		v       []any // the value and a pointer to it
		secrets []string
		shown   string
	}{
		{"Session", []any{s, *s}, []string{s.Key()[:43], e.secret}, p.Patient},
		{"TokenSet", []any{ts, &ts}, []string{"SECRET"}, "https://ehr.example/fhir"},
		{"Record", []any{rec, &rec}, []string{"SECRET"}, "https://ehr.example/fhir"},
	} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			for _, v := range tc.v {
				out := fmt.Sprintf(verb, v)
				for _, secret := range tc.secrets {
					if secret != "" && strings.Contains(out, secret) {
						t.Errorf("%s with %s shows a secret: %.300s", tc.name, verb, out)
					}
				}
				if verb == "%+v" && !strings.Contains(out, tc.shown) {
					t.Errorf("%s with %s lacks %q: %.300s", tc.name, verb, tc.shown, out)
				}
			}
		}
	}
}
