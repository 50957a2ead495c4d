package launch_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// TestEHRLaunch runs the EHR launch for each client type against the sandbox: launch URL →
// authorize → callback → landing page with the context, then a FHIR read with the token
// (LAUNCH-01…11, TOK-01, IDT-01, IDT-03).
func TestEHRLaunch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ method, alg string }{
		{smarttest.Public, ""}, {smarttest.SecretBasic, ""}, {smarttest.PrivateKeyJWT, "ES384"}, {smarttest.PrivateKeyJWT, "RS384"},
	} {
		t.Run(tc.method+tc.alg, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{authMethod: tc.method, alg: tc.alg})
			b := newBrowser(t)
			patient := e.sb.Patients()[1].ID
			p := b.launchOK(t, e, e.ehrLaunchURL(patient))
			if p.Patient != patient || !p.EHR || p.Issuer != e.fhir {
				t.Fatalf("landing page = %+v, want patient %s from an EHR launch of %s", p, patient, e.fhir)
			}
			wantUser := e.fhir + "/Practitioner/" + e.sb.Practitioners()[0].ID
			if p.FHIRUser != wantUser || !p.FHIRUserInBase || p.FHIRUserRef != "Practitioner/"+e.sb.Practitioners()[0].ID {
				t.Errorf("fhirUser = %q (%q, in base %v), want %q", p.FHIRUser, p.FHIRUserRef, p.FHIRUserInBase, wantUser)
			}
			if !p.Refreshable || !strings.Contains(p.Scopes, "launch") {
				t.Errorf("refreshable %v, scopes %q", p.Refreshable, p.Scopes)
			}
			status, body, _ := b.get(t, e.app.URL+"/patient?handle="+p.Handle)
			if status != http.StatusOK || !strings.Contains(body, `"id":"`+patient+`"`) {
				t.Fatalf("FHIR read through the session: %d %s", status, body)
			}
			// The authorize request carried every LAUNCH-04 parameter, with aud = iss byte for byte.
			var authz *url.URL
			for _, u := range b.seen {
				if strings.HasSuffix(u.Path, "/authorize") {
					authz = u
				}
			}
			if authz == nil {
				t.Fatal("no authorize redirect seen")
			}
			q := authz.Query()
			for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "state", "aud", "code_challenge", "code_challenge_method", "launch"} {
				if q.Get(k) == "" {
					t.Errorf("authorize request lacks %s", k)
				}
			}
			if q.Get("aud") != e.fhir || q.Get("redirect_uri") != e.cfg.RedirectURL || q.Get("code_challenge_method") != "S256" {
				t.Errorf("aud %q redirect_uri %q method %q", q.Get("aud"), q.Get("redirect_uri"), q.Get("code_challenge_method"))
			}
			if q.Has("nonce") || q.Has("max_age") { // LAUNCH-12: only when configured
				t.Errorf("unrequested OIDC parameters sent: %v", q)
			}
		})
	}
}

// TestStandaloneLaunch: no launch parameter, no launch scope, launch/patient added for patient/
// scopes, online_access dropped, aud = the configured base (STAND-01…04).
func TestStandaloneLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{scopes: []string{"openid", "fhirUser", "launch", "online_access", "patient/Patient.rs", "patient/Observation.rs"}})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.app.URL+"/login")
	if p.EHR || p.Patient != e.sb.Patients()[0].ID || !p.Banner {
		t.Fatalf("standalone landing = %+v", p)
	}
	var authz url.Values
	for _, u := range b.seen {
		if strings.HasSuffix(u.Path, "/authorize") {
			authz = u.Query()
		}
	}
	scopes := strings.Fields(authz.Get("scope"))
	for _, s := range scopes {
		if s == "launch" || s == "online_access" {
			t.Errorf("standalone request has scope %q", s)
		}
	}
	if authz.Has("launch") || !strings.Contains(authz.Get("scope"), "launch/patient") || authz.Get("aud") != e.fhir {
		t.Errorf("standalone authorize = %v", authz)
	}
}

// TestLaunchEncoding: a launch id with + / = survives byte for byte (LAUNCH-03, LAUNCH-08, quirks
// #21), and a granular scope with ? & = | : stays one scope token.
func TestLaunchEncoding(t *testing.T) {
	t.Parallel()
	granular := "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&code=x"
	e := newEnv(t, envOptions{scopes: []string{"patient/Patient.rs", granular}})
	b := newBrowser(t)
	b.stopAt = "/auth/authorize"
	launchID := "a+b/c=d e&f"
	_, _, _ = b.get(t, e.app.URL+"/launch?"+url.Values{"iss": {e.fhir}, "launch": {launchID}}.Encode())
	if len(b.seen) == 0 {
		t.Fatal("no redirect")
	}
	raw := b.seen[len(b.seen)-1].RawQuery
	got, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Get("launch") != launchID || !strings.Contains(raw, "launch=a%2Bb%2Fc%3Dd+e%26f") {
		t.Errorf("launch = %q in %s, want %q percent-encoded", got.Get("launch"), raw, launchID)
	}
	scopes := strings.Fields(got.Get("scope"))
	if len(scopes) != 3 || scopes[1] != granular {
		t.Errorf("scopes = %q", scopes)
	}
}

// TestAuthorizePost: a long request goes by an auto-submitting POST form when the server
// advertises authorize-post (LAUNCH-09), and the sandbox accepts it.
func TestAuthorizePost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.AuthorizePostThreshold = 100 }})
	b := newBrowser(t)
	status, body, resp := b.get(t, e.ehrLaunchURL(""))
	if status != http.StatusOK || !strings.Contains(body, `<form method="post"`) {
		t.Fatalf("want a POST form, got %d %s", status, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("CSP = %q", csp)
	}
	// Submit the form as a browser would.
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		form.Add(m[1], htmlUnescape(m[2]))
	}
	action := formAction.FindStringSubmatch(body)[1]
	resp2, err := b.PostForm(htmlUnescape(action), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var p pageInfo
	if err := json.NewDecoder(resp2.Body).Decode(&p); err != nil || p.Patient == "" {
		t.Fatalf("after POST authorize: %d %v %v", resp2.StatusCode, err, e.lastErr())
	}
}

// TestTwoLaunchesOneBrowser: two tabs, two patients, one cookie jar; each handle keeps its own
// launch, and the state of one cannot complete the other (quirks §3 #1, #2).
func TestTwoLaunchesOneBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p0, p1 := e.sb.Patients()[0].ID, e.sb.Patients()[1].ID
	// Both launches reach the server before either returns.
	cb0 := b.callbackURL(t, e.ehrLaunchURL(p0))
	cb1 := b.callbackURL(t, e.ehrLaunchURL(p1))
	a := b.launchOK(t, e, cb1)
	c := b.launchOK(t, e, cb0)
	if a.Patient != p1 || c.Patient != p0 || a.Handle == c.Handle {
		t.Fatalf("tabs mixed up: %+v / %+v", a, c)
	}
	for _, tc := range []struct{ handle, patient string }{{a.Handle, p1}, {c.Handle, p0}} {
		status, body, _ := b.get(t, e.app.URL+"/?handle="+tc.handle)
		if status != http.StatusOK || !strings.Contains(body, `"Patient":"`+tc.patient+`"`) {
			t.Errorf("handle %s: %d %s", tc.handle, status, body)
		}
	}
}

// TestConcurrentUsers: 100 browsers launch at once; each lands on its own patient.
func TestConcurrentUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	patients := e.sb.Patients()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			b := newBrowser(t)
			want := patients[i%len(patients)].ID
			resp, err := b.Get(e.ehrLaunchURL(want))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var p pageInfo
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Patient != want {
				errs <- fmt.Errorf("user %d: status %d, patient %q want %q (%v)", i, resp.StatusCode, p.Patient, want, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCookieAttributes: the session cookie is HttpOnly, Secure, SameSite=Lax, Path=/ and carries
// no token (SEC-07); SameSiteNone is an explicit opt-in.
func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		none     bool
		sameSite http.SameSite
	}{{"default", false, http.SameSiteLaxMode}, {"iframe opt-in", true, http.SameSiteNoneMode}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.Cookie.SameSiteNone = tc.none }})
			b := newBrowser(t)
			b.stopAt = "/auth/authorize"
			_, _, resp := b.get(t, e.ehrLaunchURL(""))
			cs := resp.Cookies()
			if len(cs) != 1 {
				t.Fatalf("cookies = %v", cs)
			}
			c := cs[0]
			if !c.HttpOnly || !c.Secure || c.SameSite != tc.sameSite || c.Path != "/" || c.Name != launch.DefaultHostCookieName {
				t.Errorf("cookie = %+v", c)
			}
			if len(c.Value) > 400 {
				t.Errorf("cookie is %d bytes: it should hold only a session id", len(c.Value))
			}
			if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
				t.Errorf("Referrer-Policy = %q", rp)
			}
		})
	}
}

// TestCallbackCleanRedirect: the callback answers 303 to a URL without code or state, with
// Referrer-Policy: no-referrer (SEC-13).
func TestCallbackCleanRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	cb := b.callbackURL(t, e.ehrLaunchURL(""))
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, _, resp := b.get(t, cb)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || strings.Contains(loc, "code=") || strings.Contains(loc, "state=") ||
		!strings.HasPrefix(loc, "/?handle=") {
		t.Errorf("callback answered %d Location %q", resp.StatusCode, loc)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("Referrer-Policy = %q", resp.Header.Get("Referrer-Policy"))
	}
}

// TestNoSession: app pages refuse requests without the cookie, with a foreign handle or none.
func TestNoSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	other := newBrowser(t)
	for _, tc := range []struct {
		name string
		b    *browser
		u    string
	}{
		{"no handle", b, e.app.URL + "/"},
		{"bad handle", b, e.app.URL + "/?handle=xyz"},
		{"other browser", other, e.app.URL + "/?handle=" + p.Handle},
	} {
		status, _, _ := tc.b.get(t, tc.u)
		if status != http.StatusUnauthorized || !errors.Is(e.lastErr(), launch.ErrNoSession) {
			t.Errorf("%s: status %d, err %v", tc.name, status, e.lastErr())
		}
	}
}

var (
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]+)">`)
)

func htmlUnescape(s string) string { return html.UnescapeString(s) }
