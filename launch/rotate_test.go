package launch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/launch"
)

// sessionCookie returns the value of b's session cookie for the app.
func (b *browser) sessionCookie(t testing.TB, e *env) string {
	t.Helper()
	u, _ := url.Parse(e.app.URL + "/")
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == launch.DefaultHostCookieName {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// browserWithCookie is a browser whose jar holds only the session cookie value v (an attacker who
// planted or read it).
func browserWithCookie(t testing.TB, e *env, v string) *browser {
	t.Helper()
	b := newBrowser(t)
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(e.app.URL + "/")
	jar.SetCookies(u, []*http.Cookie{{Name: launch.DefaultHostCookieName, Value: v, Path: "/"}})
	b.Jar = jar
	return b
}

// TestSessionRotation (SEC-01, session fixation): the callback issues a new browser session id. A
// cookie value known before the callback (planted, tossed or read on a shared machine) reaches
// neither the new launch nor the browser's earlier ones, which the browser itself keeps, and an
// authorization pending in another tab across the rotation still completes.
func TestSessionRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p0, p1, p2 := e.sb.Patients()[0].ID, e.sb.Patients()[1].ID, e.sb.Patients()[2].ID

	first := b.launchOK(t, e, e.ehrLaunchURL(p0))
	cbSecond := b.callbackURL(t, e.ehrLaunchURL(p1))
	cbPending := b.callbackURL(t, e.ehrLaunchURL(p2)) // another tab, still at the server
	planted := b.sessionCookie(t, e)                  // what the attacker knows before the callback
	second := b.launchOK(t, e, cbSecond)
	if b.sessionCookie(t, e) == planted {
		t.Fatal("the callback did not re-issue the session cookie")
	}
	third := b.launchOK(t, e, cbPending) // bound to the id before the rotation
	if third.Patient != p2 {
		t.Fatalf("pending launch across the rotation: %+v", third)
	}

	attacker := browserWithCookie(t, e, planted)
	for _, tc := range []struct{ handle, patient string }{{first.Handle, p0}, {second.Handle, p1}, {third.Handle, p2}} {
		if status, body, _ := b.get(t, e.app.URL+"/?handle="+tc.handle); status != http.StatusOK ||
			!strings.Contains(body, `"Patient":"`+tc.patient+`"`) {
			t.Errorf("browser, handle of %s: %d %s", tc.patient, status, body)
		}
		if status, body, _ := attacker.get(t, e.app.URL+"/?handle="+tc.handle); status == http.StatusOK ||
			!errors.Is(e.lastErr(), launch.ErrNoSession) {
			t.Errorf("the pre-callback cookie reached the launch of %s: %d %s", tc.patient, status, body)
		}
	}
}

// TestSessionRotationBound: a browser holds at most 16 launches; beyond that the oldest is dropped,
// so the cookie that lists them stays small.
func TestSessionRotationBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	var handles []string
	for range 17 {
		handles = append(handles, b.launchOK(t, e, e.ehrLaunchURL("")).Handle)
	}
	for i, h := range handles {
		status, _, _ := b.get(t, e.app.URL+"/?handle="+h)
		if want := i > 0; (status == http.StatusOK) != want {
			t.Errorf("launch %d: status %d, want reachable %v", i, status, want)
		}
	}
	if n := len(b.sessionCookie(t, e)); n > 1500 { // 16 handles: about 1150 bytes
		t.Errorf("session cookie is %d bytes", n)
	}
}

// TestCookieName: the default name carries the __Host- prefix exactly when the cookie is Secure,
// host-only and Path=/; another name can be chosen, and a prefixed name the options break is
// refused with ErrConfig.
func TestCookieName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    launch.CookieOptions
		want    string // "" means ErrConfig
		wantSet bool   // check the Set-Cookie of a launch
	}{
		{name: "default", want: launch.DefaultHostCookieName, wantSet: true},
		{name: "iframe", opts: launch.CookieOptions{SameSiteNone: true}, want: launch.DefaultHostCookieName},
		{name: "InsecureNoSecure", opts: launch.CookieOptions{InsecureNoSecure: true}, want: launch.DefaultCookieName, wantSet: true},
		{name: "InsecureNoSecure with SameSiteNone", opts: launch.CookieOptions{InsecureNoSecure: true, SameSiteNone: true}, want: launch.DefaultCookieName},
		{name: "Domain", opts: launch.CookieOptions{Domain: "app.example"}, want: launch.DefaultCookieName},
		{name: "Path", opts: launch.CookieOptions{Path: "/app"}, want: launch.DefaultCookieName},
		{name: "chosen name", opts: launch.CookieOptions{Name: "myapp"}, want: "myapp", wantSet: true},
		{name: "chosen __Host- name", opts: launch.CookieOptions{Name: "__Host-myapp"}, want: "__Host-myapp"},
		{name: "__Host- without Secure", opts: launch.CookieOptions{Name: "__Host-myapp", InsecureNoSecure: true}},
		{name: "__Host- with Domain", opts: launch.CookieOptions{Name: "__host-myapp", Domain: "app.example"}},
		{name: "__Host- with Path", opts: launch.CookieOptions{Name: "__Host-myapp", Path: "/app"}},
		{name: "__Secure- without Secure", opts: launch.CookieOptions{Name: "__Secure-myapp", InsecureNoSecure: true}},
		{name: "__Secure- with Domain", opts: launch.CookieOptions{Name: "__Secure-myapp", Domain: "app.example"}, want: "__Secure-myapp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := &launch.Config{ClientID: "app", RedirectURL: "https://app.example/callback",
				AllowedIssuers: []string{"https://ehr.example/fhir"}, Cookie: tc.opts}
			err := cfg.Validate()
			if tc.want == "" {
				if !errors.Is(err, launch.ErrConfig) {
					t.Fatalf("Validate = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantSet {
				return
			}
			e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.Cookie = tc.opts }})
			b := newBrowser(t)
			b.stopAt = "/auth/authorize"
			_, _, resp := b.get(t, e.ehrLaunchURL(""))
			if cs := resp.Cookies(); len(cs) != 1 || cs[0].Name != tc.want {
				t.Errorf("cookies = %v, want one named %s", cs, tc.want)
			}
		})
	}
}

// xxStore is a SessionStore that, as the SessionStore contract allows (and redisstore does), refuses
// an update (Updated after Created) of a launch that is not stored.
type xxStore struct{ launch.MemorySessionStore }

func (s *xxStore) Save(ctx context.Context, key string, ts *launch.TokenSet) error {
	if ts.Updated.After(ts.Created) {
		if _, err := s.Load(ctx, key); err != nil {
			return launch.ErrNoSession
		}
	}
	return s.MemorySessionStore.Save(ctx, key, ts)
}

// TestSessionRotationRefreshedLaunch: a launch that was refreshed before the rotation moves too, with
// a store that refuses updates of absent launches (REF-03 writes keep working on the moved launch).
func TestSessionRotationRefreshedLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.SessionStore = new(xxStore) }})
	b := newBrowser(t)
	first := b.launchOK(t, e, e.ehrLaunchURL(""))
	refresh := func() {
		t.Helper()
		resp, err := b.Post(e.app.URL+"/refresh?handle="+first.Handle, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d %v", resp.StatusCode, e.lastErr())
		}
	}
	refresh()
	b.launchOK(t, e, e.ehrLaunchURL("")) // rotates
	if status, _, _ := b.get(t, e.app.URL+"/?handle="+first.Handle); status != http.StatusOK {
		t.Fatalf("the refreshed launch was lost at the rotation: %d %v", status, e.lastErr())
	}
	refresh() // an update of the moved launch
}
