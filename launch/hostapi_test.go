package launch_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

// requestWithCookies returns a request to u carrying b's cookies for it.
func requestWithCookies(t *testing.T, b *browser, u string) *http.Request {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	for _, c := range b.Jar.Cookies(r.URL) {
		r.AddCookie(c)
	}
	return r
}

// TestAppOwnedCallback: a host that owns the callback starts with AuthorizeURL and an app-chosen
// state plus app data, and finishes with Complete (quirks §3 #3).
func TestAppOwnedCallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	w := httptest.NewRecorder()
	state := "app-chosen-state-0123456789-abcdef"
	authURL, err := e.cfg.AuthorizeURL(t.Context(), w, httptest.NewRequest(http.MethodGet, e.app.URL+"/", nil),
		launch.Request{Issuer: e.fhir, State: state, AppData: "return=/chart/7"})
	if err != nil {
		t.Fatal(err)
	}
	appURL, _ := url.Parse(e.app.URL)
	b.Jar.SetCookies(appURL, w.Result().Cookies())
	cb, err := url.Parse(b.callbackURL(t, authURL))
	if err != nil {
		t.Fatal(err)
	}
	if cb.Query().Get("state") != state {
		t.Fatalf("state %q", cb.Query().Get("state"))
	}
	r := requestWithCookies(t, b, cb.String())
	// The rotated session cookie needs a ResponseWriter: without one nothing happens, and the state
	// is still there.
	if _, err := e.cfg.Complete(t.Context(), nil, r, cb.Query().Get("code"), state); !errors.Is(err, launch.ErrConfig) {
		t.Fatalf("Complete with a nil ResponseWriter: %v, want ErrConfig", err)
	}
	cw := httptest.NewRecorder()
	s, err := e.cfg.Complete(t.Context(), cw, r, cb.Query().Get("code"), state)
	if err != nil {
		t.Fatal(err)
	}
	if cs := cw.Result().Cookies(); len(cs) != 1 || cs[0].Name != launch.DefaultHostCookieName {
		t.Errorf("Complete set cookies %v, want the rotated session cookie", cs)
	}
	if s.AppData != "return=/chart/7" || s.Patient == "" || s.Handle == "" {
		t.Errorf("session = %+v", s)
	}
	if _, err := e.cfg.Complete(t.Context(), httptest.NewRecorder(), r, cb.Query().Get("code"), state); !errors.Is(err, launch.ErrStateUnknown) {
		t.Errorf("second Complete: %v", err)
	}
	for _, bad := range []string{"short", "has space in it 0123456789abcdef"} {
		_, err := e.cfg.AuthorizeURL(t.Context(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil),
			launch.Request{Issuer: e.fhir, State: bad})
		if !errors.Is(err, launch.ErrConfig) {
			t.Errorf("state %q: %v", bad, err)
		}
	}
	if _, err := e.cfg.AuthorizeURL(t.Context(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil),
		launch.Request{Issuer: "https://attacker.test/fhir"}); !errors.Is(err, launch.ErrIssuerNotAllowed) {
		t.Errorf("unlisted issuer: %v", err)
	}
}

// TestSessionFromToken: a token obtained elsewhere becomes a launch without the dance (quirks §3
// #14); the same context rules apply.
func TestSessionFromToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL("")) // a real token from the sandbox
	s0, err := e.cfg.Session(requestWithCookies(t, b, e.app.URL+"/?handle="+p.Handle))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s0.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	other := newBrowser(t)
	w := httptest.NewRecorder()
	s, err := e.cfg.SessionFromToken(t.Context(), w, httptest.NewRequest(http.MethodGet, e.app.URL+"/", nil), e.fhir, tok)
	if err != nil {
		t.Fatal(err)
	}
	appURL, _ := url.Parse(e.app.URL)
	other.Jar.SetCookies(appURL, w.Result().Cookies())
	status, body, _ := other.get(t, e.app.URL+"/patient?handle="+s.Handle)
	if status != http.StatusOK {
		t.Errorf("FHIR read with an adopted token: %d %s", status, body)
	}
	bad := &smart.Token{Token: &oauth2.Token{AccessToken: "x", TokenType: "Bearer"}, Scope: "patient/*.rs"}
	var tre *smart.TokenResponseError
	if _, err := e.cfg.SessionFromToken(t.Context(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), e.fhir, bad); !errors.As(err, &tre) {
		t.Errorf("patient/ scope without patient: %v", err)
	}
	var ide *launch.IDTokenError // TOK-05: openid granted, no id_token
	noID := &smart.Token{Token: &oauth2.Token{AccessToken: "x", TokenType: "Bearer"}, Scope: "openid fhirUser"}
	if _, err := e.cfg.SessionFromToken(t.Context(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), e.fhir, noID); !errors.As(err, &ide) {
		t.Errorf("openid without id_token: %v", err)
	}
	if _, err := e.cfg.SessionFromToken(t.Context(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), "https://attacker.test/fhir", tok); !errors.Is(err, launch.ErrIssuerNotAllowed) {
		t.Errorf("unlisted issuer: %v", err)
	}
}

// TestNonce: with UseNonce the request carries a nonce and the sandbox's id_token must echo it
// (LAUNCH-12).
func TestNonce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.UseNonce = true }})
	b := newBrowser(t)
	b.launchOK(t, e, e.ehrLaunchURL(""))
	for _, u := range b.seen {
		if u.Path == "/auth/authorize" && len(u.Query().Get("nonce")) < 43 {
			t.Errorf("nonce = %q", u.Query().Get("nonce"))
		}
	}
}
