package launch_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// TestLaunchRefusedBeforeNetwork: a launch URL without iss or launch, or with an iss outside the
// allow-list, gets an error page and causes ZERO outbound requests (LAUNCH-01, LAUNCH-02, SEC-03).
func TestLaunchRefusedBeforeNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name   string
		query  url.Values
		status int
		want   error
	}{
		{"no iss", url.Values{"launch": {"x"}}, http.StatusBadRequest, launch.ErrMissingParameter},
		{"no launch", url.Values{"iss": {e.fhir}}, http.StatusBadRequest, launch.ErrMissingParameter},
		{"empty both", url.Values{"iss": {""}, "launch": {""}}, http.StatusBadRequest, launch.ErrMissingParameter},
		{"attacker iss", url.Values{"iss": {"https://attacker.test/fhir"}, "launch": {"x"}}, http.StatusForbidden, launch.ErrIssuerNotAllowed},
		{"other port", url.Values{"iss": {strings.Replace(e.fhir, "127.0.0.1:", "127.0.0.1:1", 1)}, "launch": {"x"}}, http.StatusForbidden, launch.ErrIssuerNotAllowed},
		{"sub-path", url.Values{"iss": {e.fhir + "/other"}, "launch": {"x"}}, http.StatusForbidden, launch.ErrIssuerNotAllowed},
		{"metadata host", url.Values{"iss": {"http://169.254.169.254/fhir"}, "launch": {"x"}}, http.StatusForbidden, launch.ErrIssuerNotAllowed},
		{"file scheme", url.Values{"iss": {"file:///etc/passwd"}, "launch": {"x"}}, http.StatusForbidden, launch.ErrIssuerNotAllowed},
		{"query in iss", url.Values{"iss": {e.fhir + "?x=1"}, "launch": {"x"}}, http.StatusForbidden, launch.ErrIssuerNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.rec.count.Load()
			b := newBrowser(t)
			status, body, _ := b.get(t, e.app.URL+"/launch?"+tc.query.Encode())
			if status != tc.status || !errors.Is(e.lastErr(), tc.want) {
				t.Errorf("status %d err %v, want %d %v", status, e.lastErr(), tc.status, tc.want)
			}
			if n := e.rec.count.Load() - before; n != 0 {
				t.Errorf("%d outbound requests, want 0: %v", n, e.rec.reqs())
			}
			if !strings.Contains(body, "<h1>") {
				t.Errorf("no error page: %s", body)
			}
		})
	}
}

// TestIssuerNormalised: the allow-list ignores scheme/host case and a trailing slash, and aud is the
// iss exactly as received (LAUNCH-02, LAUNCH-05).
func TestIssuerNormalised(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	b.stopAt = "/auth/authorize"
	iss := strings.Replace(e.fhir, "http://127.0.0.1", "HTTP://127.0.0.1", 1) + "/"
	_, _, _ = b.get(t, e.app.URL+"/launch?"+url.Values{"iss": {iss}, "launch": {e.newLaunch("")}}.Encode())
	if len(b.seen) == 0 {
		t.Fatalf("refused: %v", e.lastErr())
	}
	if aud := b.seen[len(b.seen)-1].Query().Get("aud"); aud != iss {
		t.Errorf("aud = %q, want the iss as received %q", aud, iss)
	}
}

// TestCallbackState: missing, forged, replayed, expired and foreign-session states are refused
// before any token request (LAUNCH-06, LAUNCH-10, SEC-01, STAND-05).
func TestCallbackState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tokenRequests := func() int64 { return e.sb.Count("token_requests") }

	t.Run("missing", func(t *testing.T) {
		b := newBrowser(t)
		cb := b.callbackURL(t, e.ehrLaunchURL(""))
		u, _ := url.Parse(cb)
		q := u.Query()
		q.Del("state")
		u.RawQuery = q.Encode()
		checkRefused(t, e, b, u.String(), launch.ErrStateUnknown, tokenRequests)
	})
	t.Run("forged", func(t *testing.T) {
		b := newBrowser(t)
		cb := b.callbackURL(t, e.ehrLaunchURL(""))
		checkRefused(t, e, b, replaceParam(cb, "state", "forged-state-forged-state-forged"), launch.ErrStateUnknown, tokenRequests)
	})
	t.Run("replayed", func(t *testing.T) {
		b := newBrowser(t)
		cb := b.callbackURL(t, e.ehrLaunchURL(""))
		b.launchOK(t, e, cb)
		checkRefused(t, e, b, cb, launch.ErrStateUnknown, tokenRequests)
	})
	t.Run("other browser session", func(t *testing.T) {
		victim, attacker := newBrowser(t), newBrowser(t)
		// Login CSRF: the attacker's own callback URL (its code, its state) opened in the victim's
		// browser, and the reverse.
		cb := attacker.callbackURL(t, e.ehrLaunchURL(""))
		checkRefused(t, e, victim, cb, launch.ErrStateMismatch, tokenRequests)
		// The state was consumed by the failed attempt: not even its owner can use it now.
		checkRefused(t, e, attacker, cb, launch.ErrStateUnknown, tokenRequests)
	})
	t.Run("expired", func(t *testing.T) {
		b := newBrowser(t)
		cb := b.callbackURL(t, e.ehrLaunchURL(""))
		e.advance(11 * time.Minute)
		defer e.advance(-11 * time.Minute)
		checkRefused(t, e, b, cb, launch.ErrStateExpired, tokenRequests)
	})
	t.Run("both code and error", func(t *testing.T) {
		e.sb.Fault("auth_code_and_error", 1, e.clientID)
		b := newBrowser(t)
		before := tokenRequests()
		status, _, _ := b.get(t, e.ehrLaunchURL(""))
		var ae *launch.AuthorizationError
		if !errors.As(e.lastErr(), &ae) || ae.Code != "access_denied" || status != http.StatusForbidden {
			t.Errorf("status %d err %v, want *AuthorizationError access_denied", status, e.lastErr())
		}
		if tokenRequests() != before {
			t.Error("the code was exchanged despite the error")
		}
	})
	t.Run("access denied", func(t *testing.T) {
		e.sb.Fault("auth_access_denied", 1, e.clientID)
		b := newBrowser(t)
		before := tokenRequests()
		b.get(t, e.ehrLaunchURL(""))
		var ae *launch.AuthorizationError
		if !errors.As(e.lastErr(), &ae) || ae.Code != "access_denied" || tokenRequests() != before {
			t.Errorf("err %v, token requests %d→%d", e.lastErr(), before, tokenRequests())
		}
	})
	t.Run("wrong RFC 9207 iss", func(t *testing.T) {
		e.sb.Fault("auth_iss_wrong", 1, e.clientID)
		b := newBrowser(t)
		before := tokenRequests()
		b.get(t, e.ehrLaunchURL(""))
		if !errors.Is(e.lastErr(), launch.ErrStateMismatch) || tokenRequests() != before {
			t.Errorf("err %v, token requests %d→%d", e.lastErr(), before, tokenRequests())
		}
	})
}

func checkRefused(t *testing.T, e *env, b *browser, u string, want error, tokenRequests func() int64) {
	t.Helper()
	before := tokenRequests()
	status, body, _ := b.get(t, u)
	if status != http.StatusBadRequest || !errors.Is(e.lastErr(), want) {
		t.Errorf("status %d, err %v; want 400 and %v", status, e.lastErr(), want)
	}
	if n := tokenRequests() - before; n != 0 {
		t.Errorf("%d token requests, want none", n)
	}
	if q, _ := url.Parse(u); q != nil && q.Query().Get("code") != "" && strings.Contains(body, q.Query().Get("code")) {
		t.Error("the error page shows the code")
	}
}

func replaceParam(u, k, v string) string {
	p, _ := url.Parse(u)
	q := p.Query()
	q.Set(k, v)
	p.RawQuery = q.Encode()
	return p.String()
}

// TestMixUp: a code from another issuer delivered with this issuer's state is only ever sent to the
// token endpoint of the issuer the request went to (SEC-04), and a callback iss naming another
// server is refused before any exchange.
func TestMixUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{version: "2.0"}) // 2.0: no RFC 9207 iss, so the token endpoint binding is what protects
	srvB := startSandbox(t, "2.0", "")
	sbB, fhirB := srvB.Sandbox, srvB.FHIRBase
	idB := e.register(srvB, smarttest.Public, "").ID
	// The app knows both servers; B registered it under another client id, so use a second Config.
	e.cfg.AllowedIssuers = append(e.cfg.AllowedIssuers, fhirB)

	b := newBrowser(t)
	cbA := b.callbackURL(t, e.app.URL+"/login") // honest flow at A: code A, state A
	codeB := func() string {                    // a code minted by B for the same redirect URI (the attacker's server)
		u := srvB.URL + "/auth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {idB},
			"redirect_uri": {e.cfg.RedirectURL}, "scope": {"patient/*.rs launch/patient"}, "state": {"s-attacker-state-0123456789"},
			"aud": {fhirB}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
			"code_challenge_method": {"S256"}}.Encode()
		cb := b.callbackURL(t, u)
		p, _ := url.Parse(cb)
		return p.Query().Get("code")
	}()
	beforeA, beforeB := e.sb.Count("token_requests"), sbB.Count("token_requests")
	status, _, _ := b.get(t, replaceParam(cbA, "code", codeB))
	var re *oauth2.RetrieveError
	if status != http.StatusBadGateway || !errors.As(e.lastErr(), &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("injected code: status %d err %v, want invalid_grant from A", status, e.lastErr())
	}
	if e.sb.Count("token_requests")-beforeA != 1 || sbB.Count("token_requests") != beforeB {
		t.Errorf("token requests A +%d B +%d; the code must go to A only", e.sb.Count("token_requests")-beforeA, sbB.Count("token_requests")-beforeB)
	}

	// With an RFC 9207 iss naming B, the callback is refused before any exchange.
	cbA2 := b.callbackURL(t, e.app.URL+"/login")
	before := e.sb.Count("token_requests")
	b.get(t, replaceParam(cbA2, "iss", fhirB))
	if !errors.Is(e.lastErr(), launch.ErrStateMismatch) || e.sb.Count("token_requests") != before {
		t.Errorf("iss mix-up: err %v", e.lastErr())
	}
}

// TestHostileTokenResponses: sandbox faults in the token response and id_token are refused with
// typed errors (TOK-06, TOK-05, IDT-01, IDT-02, IDT-04), while tolerated quirks pass (IDT-06,
// JWKS-05 rotation, IDT-05 foreign fhirUser kept but not dereferenceable).
func TestHostileTokenResponses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var tre *smart.TokenResponseError
	var ide *launch.IDTokenError
	for _, tc := range []struct {
		fault string
		as    any // nil: the launch succeeds
		check func(t *testing.T, p pageInfo)
	}{
		{fault: "token_patient_injection", as: &tre},
		{fault: "token_crlf_access_token", as: &tre},
		{fault: "idtoken_bad_signature", as: &ide},
		{fault: "idtoken_alg_none", as: &ide},
		{fault: "idtoken_hs256", as: &ide},
		{fault: "idtoken_wrong_iss", as: &ide},
		{fault: "idtoken_wrong_aud", as: &ide},
		{fault: "idtoken_aud_array_no_azp", as: &ide},
		{fault: "idtoken_expired", as: &ide},
		{fault: "idtoken_future_iat", as: &ide},
		{fault: "idtoken_wrong_fhiruser_type", as: &ide},
		{fault: "idtoken_unknown_kid", check: func(t *testing.T, p pageInfo) {
			if p.FHIRUser == "" {
				t.Error("rotated key: no fhirUser")
			}
		}},
		{fault: "idtoken_profile_only", check: func(t *testing.T, p pageInfo) {
			if !p.Legacy || p.FHIRUser == "" {
				t.Errorf("profile claim not used as fhirUser: %+v", p)
			}
		}},
		{fault: "idtoken_foreign_fhiruser", check: func(t *testing.T, p pageInfo) {
			if p.FHIRUserInBase || p.FHIRUser == "" {
				t.Errorf("foreign fhirUser %q must be kept but not be in the FHIR base", p.FHIRUser)
			}
		}},
		{fault: "token_expires_in_string"},
		{fault: "token_type_lower"},
		{fault: "token_fhircontext_strings"},
		{fault: "token_extension_members"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			e.sb.Fault(tc.fault, 1, e.clientID)
			defer e.sb.Fault(tc.fault, 0, e.clientID)
			b := newBrowser(t)
			if tc.as == nil {
				p := b.launchOK(t, e, e.ehrLaunchURL(""))
				if tc.check != nil {
					tc.check(t, p)
				}
				return
			}
			status, body, _ := b.get(t, e.ehrLaunchURL(""))
			err := e.lastErr()
			if status != http.StatusBadGateway || !errors.As(err, tc.as) {
				t.Fatalf("status %d err %v (%T), want 502 and %T", status, err, err, tc.as)
			}
			for _, s := range e.rec.seen() {
				if len(s) > 8 && strings.Contains(body, s) {
					t.Errorf("the error page shows a credential")
				}
			}
		})
	}
}

// TestNoSecretsInLogs: with debug logging across launches, refreshes and failures, no token, code,
// verifier, secret or assertion that crossed the wire appears in the log or in an error (SEC-08).
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"none", "client_secret_basic", "private_key_jwt"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{authMethod: method})
			b := newBrowser(t)
			p := b.launchOK(t, e, e.ehrLaunchURL(""))
			resp, err := b.PostForm(e.app.URL+"/refresh", url.Values{"handle": {p.Handle}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			e.sb.Fault("idtoken_bad_signature", 1, e.clientID)
			b.get(t, e.ehrLaunchURL(""))
			cb := b.callbackURL(t, e.ehrLaunchURL(""))
			b.get(t, cb)
			b.get(t, cb) // replay
			secrets := e.rec.seen()
			if len(secrets) < 6 {
				t.Fatalf("recorded only %d credentials", len(secrets))
			}
			if e.secret != "" {
				secrets = append(secrets, e.secret)
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "launch complete") {
				t.Fatalf("debug log incomplete:\n%s", logs)
			}
			e.mu.Lock()
			for _, err := range e.errs {
				logs += "\n" + err.Error()
			}
			e.mu.Unlock()
			for _, s := range secrets {
				if strings.Contains(logs, s) {
					t.Errorf("a credential (%d bytes) appears in the logs", len(s))
				}
			}
		})
	}
}
