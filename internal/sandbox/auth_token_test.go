package sandbox

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// TestCodeFlowClientTypes redeems a code with each client type (SBX-04, AUTH-01, AUTH-02, AUTH-03,
// AUTH-05, TOK-01).
func TestCodeFlowClientTypes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	key := newTestKey(t, "ES384")
	const secret = "p:a%ss w+rd" // form-encoded before base64 (RFC 6749 §2.3.1)
	tests := []struct {
		name   string
		client Client
		auth   func(c Client, form url.Values) func(*http.Request)
	}{
		{"public", h.app(authNone), func(c Client, f url.Values) func(*http.Request) {
			f.Set("client_id", c.ID)
			return func(*http.Request) {}
		}},
		{"client_secret_basic", h.app(authSecretBas, func(c *Client) { c.Secret = secret; c.ID = "my app:1" }),
			func(c Client, f url.Values) func(*http.Request) { return basic(c.ID, c.Secret) }},
		{"client_secret_post", h.app(authSecretPost), func(c Client, f url.Values) func(*http.Request) {
			f.Set("client_id", c.ID)
			f.Set("client_secret", c.Secret)
			return func(*http.Request) {}
		}},
		{"private_key_jwt", h.app(authPrivateJWT, func(c *Client) { c.JWKS = jwksOf(t, key) }),
			func(c Client, f url.Values) func(*http.Request) {
				f.Set("client_assertion_type", jwtBearer)
				f.Set("client_assertion", key.sign(t, h.claims(c.ID), nil))
				return func(*http.Request) {}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, verifier := h.code(tt.client, "openid fhirUser patient/*.rs launch/patient offline_access")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {tt.client.RedirectURIs[0]}, "code_verifier": {verifier}}
			resp, body := h.post("/auth/token", form, tt.auth(tt.client, form))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %v", resp.StatusCode, body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Error("token response may be cached")
			}
			for _, k := range []string{"access_token", "refresh_token", "id_token", "patient"} {
				if s, _ := body[k].(string); s == "" {
					t.Errorf("no %s in %v", k, body)
				}
			}
			if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) ||
				body["scope"] != "openid fhirUser patient/*.rs launch/patient offline_access" || body["need_patient_banner"] != true {
				t.Errorf("response %v", body)
			}
		})
	}
}

// TestCodeRejected lists the ways a code exchange fails (SBX-04, LAUNCH-11, TOK-01, RFC 9700 §4.8).
func TestCodeRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	conf := h.app(authSecretBas)
	other := h.app(authNone)
	const scope = "patient/*.rs launch/patient offline_access"
	form := func(code, verifier string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code},
			"redirect_uri": {c.RedirectURIs[0]}, "code_verifier": {verifier}, "client_id": {c.ID}}
	}
	tests := []struct {
		name   string
		send   func() (*http.Response, map[string]any)
		status int
		code   string
	}{
		{"PKCE mismatch", func() (*http.Response, map[string]any) {
			code, _ := h.code(c, scope)
			v, _ := pkce()
			return h.post("/auth/token", form(code, v))
		}, 400, "invalid_grant"},
		{"missing verifier", func() (*http.Response, map[string]any) {
			code, _ := h.code(c, scope)
			return h.post("/auth/token", form(code, ""))
		}, 400, "invalid_grant"},
		{"malformed verifier", func() (*http.Response, map[string]any) {
			code, _ := h.code(c, scope)
			return h.post("/auth/token", form(code, "short"))
		}, 400, "invalid_grant"},
		{"redirect_uri mismatch", func() (*http.Response, map[string]any) {
			code, v := h.code(c, scope)
			f := form(code, v)
			f.Set("redirect_uri", c.RedirectURIs[0]+"/")
			return h.post("/auth/token", f)
		}, 400, "invalid_grant"},
		{"redirect_uri missing", func() (*http.Response, map[string]any) {
			code, v := h.code(c, scope)
			f := form(code, v)
			f.Del("redirect_uri")
			return h.post("/auth/token", f)
		}, 400, "invalid_grant"},
		{"code of another client", func() (*http.Response, map[string]any) {
			code, v := h.code(other, scope)
			f := form(code, v)
			f.Set("redirect_uri", other.RedirectURIs[0])
			return h.post("/auth/token", f)
		}, 400, "invalid_grant"},
		{"unknown code", func() (*http.Response, map[string]any) {
			return h.post("/auth/token", form("nope", "x"))
		}, 400, "invalid_grant"},
		{"public client without client_id", func() (*http.Response, map[string]any) {
			code, v := h.code(c, scope)
			f := form(code, v)
			f.Del("client_id")
			return h.post("/auth/token", f)
		}, 400, "invalid_request"},
		{"public client sending a secret", func() (*http.Response, map[string]any) {
			code, v := h.code(c, scope)
			f := form(code, v)
			f.Set("client_secret", "x")
			return h.post("/auth/token", f)
		}, 401, "invalid_client"},
		{"confidential client without credentials", func() (*http.Response, map[string]any) {
			code, v := h.code(conf, scope)
			return h.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {conf.RedirectURIs[0]}, "code_verifier": {v}, "client_id": {conf.ID}})
		}, 401, "invalid_client"},
		{"wrong secret", func() (*http.Response, map[string]any) {
			code, v := h.code(conf, scope)
			return h.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {conf.RedirectURIs[0]}, "code_verifier": {v}}, basic(conf.ID, conf.Secret+"x"))
		}, 401, "invalid_client"},
		{"secret by post for a basic client", func() (*http.Response, map[string]any) {
			code, v := h.code(conf, scope)
			return h.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {conf.RedirectURIs[0]}, "code_verifier": {v}, "client_id": {conf.ID}, "client_secret": {conf.Secret}})
		}, 401, "invalid_client"},
		{"two authentication methods", func() (*http.Response, map[string]any) {
			code, v := h.code(conf, scope)
			return h.post("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {conf.RedirectURIs[0]}, "code_verifier": {v}, "client_id": {conf.ID},
				"client_secret": {conf.Secret}}, basic(conf.ID, conf.Secret))
		}, 400, "invalid_request"},
		{"JSON body", func() (*http.Response, map[string]any) {
			req, _ := http.NewRequest(http.MethodPost, h.url("/auth/token"), strings.NewReader(`{"grant_type":"authorization_code"}`))
			req.Header.Set("Content-Type", "application/json")
			return h.do(req)
		}, 400, "invalid_request"},
		{"repeated parameter", func() (*http.Response, map[string]any) {
			code, v := h.code(c, scope)
			f := form(code, v)
			f.Add("code", "x")
			return h.post("/auth/token", f)
		}, 400, "invalid_request"},
		{"no grant_type", func() (*http.Response, map[string]any) {
			return h.post("/auth/token", url.Values{"client_id": {c.ID}})
		}, 400, "invalid_request"},
		{"password grant", func() (*http.Response, map[string]any) {
			return h.post("/auth/token", url.Values{"grant_type": {"password"}, "client_id": {c.ID}})
		}, 400, "unsupported_grant_type"},
		{"client_credentials for an app", func() (*http.Response, map[string]any) {
			return h.post("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}}, basic(conf.ID, conf.Secret))
		}, 400, "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.send()
			wantOAuthError(t, resp, body, tt.status, tt.code)
		})
	}
	t.Run("GET", func(t *testing.T) {
		if resp, _ := h.get("/auth/token"); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

// TestCodeReplay: a second redemption fails and revokes what the first one issued (SBX-04, RFC 6749
// §4.1.2); a code older than a minute is refused.
func TestCodeReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	code, v := h.code(c, "patient/*.rs launch/patient offline_access")
	_, first := h.exchange(c, code, v)
	at, rt := first["access_token"].(string), first["refresh_token"].(string)
	resp, body := h.exchange(c, code, v)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	if _, _, ok := h.s.LookupAccessToken(at); ok {
		t.Error("access token from the replayed code still works")
	}
	resp, body = h.post("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.ID}})
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")

	code, v = h.code(c, "patient/*.rs launch/patient")
	h.s.SetClockOffset(61 * time.Second)
	resp, body = h.exchange(c, code, v)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

// TestVerifierWithoutChallenge refuses a PKCE downgrade (v1 mode allows no challenge, but then no
// verifier either; RFC 9700 §4.8.2).
func TestVerifierWithoutChallenge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Version: "v1"})
	c := h.app(authNone)
	code, v := h.code(c, "patient/*.read launch/patient", func(p url.Values) {
		p.Del("code_challenge")
		p.Del("code_challenge_method")
	})
	resp, body := h.exchange(c, code, v)
	wantOAuthError(t, resp, body, http.StatusBadRequest, "invalid_grant")
}

// TestIDToken verifies the id_token as a client would, with the keys at jwks_uri (SBX-04, IDT-01…04).
func TestIDToken(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"2.2", "v1"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{Version: version})
			c := h.app(authNone)
			scope := "openid fhirUser profile patient/*.rs launch/patient"
			code, v := h.code(c, scope, func(p url.Values) {
				p.Set("nonce", "n-0S6_WzA2Mj")
				p.Set("sandbox_user", "Practitioner/prac-1")
			})
			_, body := h.exchange(c, code, v)
			tok := verifyIDToken(t, h, body["id_token"].(string), c.ID)
			claims := tok.PrivateClaims()
			want := h.base + "/Practitioner/prac-1"
			if version == "v1" {
				if claims["profile"] != want || claims["fhirUser"] != nil {
					t.Errorf("v1 claims %v", claims)
				}
			} else if claims["fhirUser"] != want || claims["profile"] != nil {
				t.Errorf("claims %v", claims)
			}
			if claims["nonce"] != "n-0S6_WzA2Mj" || tok.Subject() != "Practitioner/prac-1" {
				t.Errorf("nonce/sub: %v %q", claims, tok.Subject())
			}
		})
	}
}

// verifyIDToken fetches /auth/jwks and validates tok: RS256, iss = FHIR base, aud = client, exp.
func verifyIDToken(t *testing.T, h *harness, tok, clientID string) jwt.Token {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), h.url("/auth/jwks"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseString(tok, jwt.WithKeySet(set), jwt.WithIssuer(h.base), jwt.WithAudience(clientID),
		jwt.WithClock(jwt.ClockFunc(h.s.Now)))
	if err != nil {
		t.Fatalf("id_token does not verify: %v", err)
	}
	return parsed
}

// TestEHRLaunchContext returns the launch's context with the token, fhirContext as objects in 2.2 and as
// strings in 2.0 mode (SBX-02, SBX-20, TOK-08).
func TestEHRLaunchContext(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"2.2", "2.0"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{Version: version})
			c := h.app(authNone)
			launch := h.s.NewLaunch(LaunchContext{
				Patient: "pat-2", Encounter: "enc-9", Intent: "reconcile-medications", NeedPatientBanner: false,
				SmartStyleURL: "https://ehr.example/style.json", Tenant: "t1", User: "Practitioner/prac-1",
				FHIRContext: []FHIRContextItem{{Reference: "DiagnosticReport/123"}, {Canonical: "http://q.example/Questionnaire/a", Type: "Questionnaire"}},
				ClientID:    c.ID, SkipLogin: true,
			})
			code, v := h.code(c, "launch openid fhirUser patient/*.rs", func(p url.Values) {
				p.Set("launch", launch)
				p.Del("sandbox_skip_login")
			})
			_, body := h.exchange(c, code, v)
			want := map[string]any{"patient": "pat-2", "encounter": "enc-9", "intent": "reconcile-medications",
				"need_patient_banner": false, "smart_style_url": "https://ehr.example/style.json", "tenant": "t1"}
			for k, w := range want {
				if body[k] != w {
					t.Errorf("%s = %v, want %v", k, body[k], w)
				}
			}
			var wantCtx any = []any{map[string]any{"reference": "DiagnosticReport/123"},
				map[string]any{"canonical": "http://q.example/Questionnaire/a", "type": "Questionnaire"}}
			if version == "2.0" {
				wantCtx = []any{"DiagnosticReport/123"}
			}
			if diff := cmp.Diff(wantCtx, body["fhirContext"]); diff != "" {
				t.Errorf("fhirContext (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStandalonePicks covers the automatic choices of a standalone launch (SBX-03 patient picker).
func TestStandalonePicks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	first := h.s.Patients()[0].ID
	tests := []struct {
		name, scope                  string
		params                       url.Values
		patient, encounter, fhirUser string
	}{
		{"first patient, patient user", "openid fhirUser patient/*.rs launch/patient", nil, first, "", "Patient/" + first},
		{"chosen patient and encounter", "openid fhirUser patient/*.rs launch/patient launch/encounter",
			url.Values{"sandbox_patient": {"pat-2"}, "sandbox_encounter": {"e1"}}, "pat-2", "e1", "Patient/pat-2"},
		{"clinician app", "openid fhirUser user/*.rs launch/patient", nil, first, "", "Practitioner/" + h.s.Practitioners()[0].ID},
		{"no patient needed", "openid fhirUser user/*.rs", nil, "", "", "Practitioner/" + h.s.Practitioners()[0].ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, v := h.code(c, tt.scope, func(p url.Values) {
				for k, vs := range tt.params {
					p[k] = vs
				}
			})
			_, body := h.exchange(c, code, v)
			if got, _ := body["patient"].(string); got != tt.patient {
				t.Errorf("patient %q, want %q", got, tt.patient)
			}
			if got, _ := body["encounter"].(string); got != tt.encounter {
				t.Errorf("encounter %q, want %q", got, tt.encounter)
			}
			g, _, _ := h.s.LookupAccessToken(body["access_token"].(string))
			if g.FHIRUser != tt.fhirUser {
				t.Errorf("fhirUser %q, want %q", g.FHIRUser, tt.fhirUser)
			}
		})
	}
}

// TestAppScopes covers scope down-grading for apps (SBX-04 scope policy).
func TestAppScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, version, allowed, requested, want string
	}{
		{"all allowed", "", "", "openid fhirUser patient/*.rs launch/patient", "openid fhirUser patient/*.rs launch/patient"},
		{"system scopes never for apps", "", "", "system/*.rs patient/*.rs launch/patient", "patient/*.rs launch/patient"},
		{"narrowed", "", "patient/Observation.rs launch/patient", "patient/*.cruds launch/patient openid", "patient/Observation.rs launch/patient"},
		{"v1 request stays v1", "", "", "patient/*.read launch/patient", "patient/*.read launch/patient"},
		{"v1 mode converts", "v1", "", "patient/*.rs user/*.cruds launch/patient", "patient/*.read user/*.* launch/patient"},
		{"v1 mode drops what v1 cannot say", "v1", "", "patient/*.r user/*.rs?category=x launch/patient", "launch/patient"},
		{"unknown dropped", "", "", "patient/*.rs __custom.scope launch/patient", "patient/*.rs launch/patient"},
		{"standalone drops launch", "", "", "launch patient/*.rs launch/patient", "patient/*.rs launch/patient"},
		{"out-of-order letters dropped", "", "", "patient/*.sr patient/*.rs launch/patient", "patient/*.rs launch/patient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{Version: tt.version})
			c := h.app(authNone, func(c *Client) { c.Scope = tt.allowed })
			code, v := h.code(c, tt.requested)
			resp, body := h.exchange(c, code, v)
			if resp.StatusCode != http.StatusOK || body["scope"] != tt.want {
				t.Errorf("got %d scope %q, want %q", resp.StatusCode, body["scope"], tt.want)
			}
		})
	}
}
