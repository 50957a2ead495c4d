package launch_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// withProfile sets the vendor profile name (changed by mod) for the app's one issuer.
func withProfile(t *testing.T, name string, mod ...func(*smart.Profile)) func(*launch.Config) {
	t.Helper()
	p, err := smart.ProfileByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mod {
		m(&p)
	}
	return func(c *launch.Config) {
		c.Issuers = map[string]launch.IssuerSettings{c.AllowedIssuers[0]: launch.SettingsFromProfile(p, c.ClientID)}
	}
}

// TestProfileLaunch: a standalone launch against the sandbox playing each vendor whose quirks touch a
// user-facing launch, with the vendor's profile and with the generic one (issue 11).
func TestProfileLaunch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		as, profile string
		fail        func(t *testing.T, err error) // nil: the launch and a FHIR read succeed
		pkceWarning bool
	}{
		{as: "va", profile: "va"}, // AudienceOmit
		{as: "va", profile: "generic", fail: func(t *testing.T, err error) {
			var ae *launch.AuthorizationError
			if !errors.As(err, &ae) || ae.Code != "invalid_request" || !strings.Contains(ae.Description, "aud") {
				t.Fatalf("err = %v, want the VA's refusal of aud", err)
			}
		}},
		{as: "meditech", profile: "meditech"}, // DiscoveryFallbacks: OpenID Connect discovery
		{as: "meditech", profile: "generic", fail: func(t *testing.T, err error) {
			if !errors.Is(err, smart.ErrMissingTokenEndpoint) {
				t.Fatalf("err = %v, want discovery to find no token endpoint", err)
			}
		}},
		{as: "epic", profile: "epic"}, // ClientIDHeader on the token and FHIR requests
		{as: "epic", profile: "generic", fail: func(t *testing.T, err error) {
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_request" || !strings.Contains(re.ErrorDescription, "Epic-Client-ID") {
				t.Fatalf("err = %v, want the token endpoint's demand for Epic-Client-ID", err)
			}
		}},
		{as: "athena", profile: "athena"},                     // ForcePKCE: S256 without a warning
		{as: "athena", profile: "generic", pkceWarning: true}, // tolerated: S256 anyway, with a warning
		{as: "smart-sandbox", profile: "smart-sandbox"},
		{as: "cms-bcda", profile: "generic"}, // expires_in as a string: CONV-4 for everyone
	}
	for _, tt := range tests {
		t.Run(tt.as+" with "+tt.profile, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{as: tt.as, configure: withProfile(t, tt.profile)})
			b := newBrowser(t)
			status, body, _ := b.get(t, e.app.URL+"/login")
			if tt.fail != nil {
				if status == http.StatusOK {
					t.Fatalf("launch succeeded: %s", body)
				}
				tt.fail(t, e.lastErr())
				return
			}
			if status != http.StatusOK {
				t.Fatalf("launch: %d %v", status, e.lastErr())
			}
			p := b.launchOK(t, e, e.app.URL+"/login")
			if status, body, _ := b.get(t, e.app.URL+"/patient?handle="+p.Handle); status != http.StatusOK {
				t.Fatalf("FHIR read: %d %s", status, body)
			}
			if warned := strings.Contains(e.logs.String(), "does not advertise PKCE"); warned != tt.pkceWarning {
				t.Errorf("PKCE warning logged = %v, want %v", warned, tt.pkceWarning)
			}
		})
	}
}

// TestProfilePersonaMismatch: Oracle Health's unauthorized_client for a provider app in a patient
// launch is explained on the error page, error_uri included (yourphr #338).
func TestProfilePersonaMismatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{as: "oracle", configure: withProfile(t, "oracle")})
	app := e.srv.RegisterApp(t, smarttest.App{Name: "provider app", SkipLogin: true, RedirectURIs: []string{e.cfg.RedirectURL},
		Scope: "openid fhirUser launch/patient user/*.rs offline_access"})
	e.cfg.ClientID = app.ID // before the first handler ran: the Config is not built yet
	status, body, _ := newBrowser(t).get(t, e.app.URL+"/login")
	if status != http.StatusBadGateway || !strings.Contains(body, "client-persona-mismatch") ||
		!strings.Contains(body, "registered in the Code Console for the provider persona") {
		t.Fatalf("status %d, page:\n%s", status, body)
	}
}

// TestProfileRefreshAuth: how a refresh authenticates follows the profile (RefreshClientID,
// RefreshAssertion; client-js PR #175, client-js #145).
func TestProfileRefreshAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method string
		mod          func(*smart.Profile)
		ok           bool
	}{
		{"public with client_id", "none", nil, true},
		{"public without client_id", "none", func(p *smart.Profile) { p.RefreshClientID = false }, false},
		{"asymmetric with assertion", "private_key_jwt", nil, true},
		{"asymmetric without assertion", "private_key_jwt", func(p *smart.Profile) { p.RefreshAssertion = false }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mods []func(*smart.Profile)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			e := newEnv(t, envOptions{authMethod: tt.method, configure: withProfile(t, "generic", mods...)})
			b := newBrowser(t)
			p := b.launchOK(t, e, e.app.URL+"/login")
			resp, err := b.PostForm(e.app.URL+"/refresh", url.Values{"handle": {p.Handle}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ok := resp.StatusCode == http.StatusOK; ok != tt.ok {
				t.Fatalf("refresh: %d (%v), want ok=%v", resp.StatusCode, e.lastErr(), tt.ok)
			}
			if !tt.ok && errors.Is(e.lastErr(), launch.ErrReauthRequired) {
				t.Errorf("a refused client authentication deleted the launch: %v", e.lastErr())
			}
		})
	}
}

// TestKeyAndSecret: a client configured with a key and a secret uses private_key_jwt where the server
// supports it, the secret only where the server lists methods without it (AUTH-04).
func TestKeyAndSecret(t *testing.T) {
	t.Parallel()
	otherKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, as, method string
		ok               bool
	}{
		// The app is registered with a key only: the assertion must be what was sent.
		{"asymmetric advertised, key registered", "", smarttest.PrivateKeyJWT, true},
		// The app is registered with a secret only: the key is tried and refused.
		{"asymmetric advertised, secret registered", "", smarttest.SecretBasic, false},
		// The SMART launcher lists only client_secret_basic and none: the secret is used.
		{"secret only advertised", "smart-sandbox", smarttest.SecretBasic, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{as: tt.as, authMethod: tt.method, configure: func(c *launch.Config) {
				if c.ClientSecret == "" {
					c.ClientSecret = "a-secret-the-server-never-issued"
				}
				if c.PrivateKey == nil {
					c.PrivateKey = otherKey
				}
			}})
			status, _, _ := newBrowser(t).get(t, e.app.URL+"/login")
			if ok := status == http.StatusOK; ok != tt.ok {
				t.Fatalf("launch: %d (%v), want ok=%v", status, e.lastErr(), tt.ok)
			}
		})
	}
}

// flakyStore is a session store whose loads can be made to time out.
type flakyStore struct {
	launch.MemorySessionStore
	failing atomic.Bool
	deletes atomic.Int64
}

var errStoreTimeout = errors.New("redis: i/o timeout")

func (s *flakyStore) Load(ctx context.Context, key string) (*launch.TokenSet, error) {
	if s.failing.Load() {
		return nil, errStoreTimeout
	}
	return s.MemorySessionStore.Load(ctx, key)
}

func (s *flakyStore) Delete(ctx context.Context, key string) error {
	s.deletes.Add(1)
	return s.MemorySessionStore.Delete(ctx, key)
}

// ttlLocker records the ttl the refresh asks for.
type ttlLocker struct{ ttl atomic.Int64 }

func (l *ttlLocker) Lock(_ context.Context, _ string, ttl time.Duration) (func(), error) {
	l.ttl.Store(int64(ttl))
	return func() {}, nil
}

// TestRefreshStoreUnavailable: a store that times out during a refresh is a 503 that keeps the
// launch (ErrStoreUnavailable), never a re-authorization that deletes it; and the refresh lock lives
// longer than the refresh it guards.
func TestRefreshStoreUnavailable(t *testing.T) {
	t.Parallel()
	store := &flakyStore{}
	locker := &ttlLocker{}
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.SessionStore = store; c.Locker = locker }})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	s := e.sessionOf(t, b, p.Handle)

	store.failing.Store(true)
	err := s.Refresh(t.Context())
	if !errors.Is(err, launch.ErrStoreUnavailable) || !errors.Is(err, errStoreTimeout) || errors.Is(err, launch.ErrReauthRequired) {
		t.Fatalf("Refresh = %v, want ErrStoreUnavailable wrapping the timeout", err)
	}
	if n := store.deletes.Load(); n != 0 {
		t.Fatalf("%d deletes: a store timeout must not end the launch", n)
	}
	rec := httptest.NewRecorder()
	launch.ErrorPage(rec, &http.Request{}, err)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("ErrorPage status %d, want 503", rec.Code)
	}

	store.failing.Store(false)
	if err := s.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh once the store is back: %v", err)
	}
	if got := time.Duration(locker.ttl.Load()); got != 75*time.Second {
		t.Errorf("lock ttl %v, want the 60 s refresh timeout + 15 s", got)
	}
	if status, _, _ := b.get(t, e.app.URL+"/?handle="+p.Handle); status != http.StatusOK {
		t.Errorf("the launch is gone: %d", status)
	}
}

// logoutRaceStore is a session store whose updates (a refresh's write) find the launch gone, as
// redisstore's SET XX does when another replica logged the launch out during the refresh.
type logoutRaceStore struct {
	launch.MemorySessionStore
	race atomic.Bool
}

func (s *logoutRaceStore) Save(ctx context.Context, key string, ts *launch.TokenSet) error {
	if s.race.Load() && ts.Updated.After(ts.Created) {
		_ = s.MemorySessionStore.Delete(ctx, key)
		return launch.ErrNoSession
	}
	return s.MemorySessionStore.Save(ctx, key, ts)
}

// TestRefreshAfterLogoutElsewhere: a launch logged out while its refresh was in flight (the store's
// write finds it gone) ends the launch with ErrReauthRequired and a 401 page, not a 503 "try
// again" for a launch that will never come back (REF-06; CONV-5).
func TestRefreshAfterLogoutElsewhere(t *testing.T) {
	t.Parallel()
	store := &logoutRaceStore{}
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.SessionStore = store }})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	s := e.sessionOf(t, b, p.Handle)
	e.advance(time.Second) // the refresh's Updated lies after the launch's Created
	defer e.advance(-time.Second)

	store.race.Store(true)
	err := s.Refresh(t.Context())
	if !errors.Is(err, launch.ErrReauthRequired) || errors.Is(err, launch.ErrStoreUnavailable) {
		t.Fatalf("Refresh = %v, want ErrReauthRequired (not ErrStoreUnavailable)", err)
	}
	rec := httptest.NewRecorder()
	launch.ErrorPage(rec, &http.Request{}, err)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("ErrorPage status %d, want 401", rec.Code)
	}
}
