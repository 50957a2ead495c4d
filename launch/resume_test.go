package launch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/launch"
)

// sessionOf returns the Session of browser b's launch handle, as the app sees it in a request.
func (e *env) sessionOf(t *testing.T, b *browser, handle string) *launch.Session {
	t.Helper()
	s, err := e.cfg.Session(requestWithCookies(t, b, e.app.URL+"/?handle="+handle))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// worker returns a Config for another process of the same app (its own runtime and in-process
// single flight) that shares store and locker, as a background worker would.
func (e *env) worker(store launch.SessionStore, locker *memLocker) *launch.Config {
	c := &launch.Config{
		ClientID: e.cfg.ClientID, RedirectURL: e.cfg.RedirectURL, AllowedIssuers: e.cfg.AllowedIssuers,
		HTTPClient: e.cfg.HTTPClient, Now: e.cfg.Now, SessionStore: store,
	}
	if locker != nil {
		c.Locker = locker
	}
	return c
}

// countingStore counts the loads that reach a real session store.
type countingStore struct {
	launch.SessionStore
	loads atomic.Int64
}

func (s *countingStore) Load(ctx context.Context, key string) (*launch.TokenSet, error) {
	s.loads.Add(1)
	return s.SessionStore.Load(ctx, key)
}

// TestSessionByKey: a launch resumed by its key, without the browser's cookie and handle, is the
// browser's launch: the same context and user, a FHIR client that works, in another process with
// other cookie keys too. Malformed keys fail with ErrNoSession before the store sees them; a key
// names one browser's launch only; the issuer must still be allowed; Logout ends it.
func TestSessionByKey(t *testing.T) {
	t.Parallel()
	store := &countingStore{SessionStore: new(launch.MemorySessionStore)}
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.SessionStore = store }})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	key := e.sessionOf(t, b, p.Handle).Key()
	sid, handle, _ := strings.Cut(key, ".")
	if len(sid) != 43 || handle != p.Handle {
		t.Fatalf("key has session id of %d characters and handle %q (launch handle %q)", len(sid), handle, p.Handle)
	}

	for _, cfg := range []*launch.Config{e.cfg, e.worker(store, nil)} {
		s, err := cfg.SessionByKey(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if s.Handle != p.Handle || s.Issuer != e.fhir || s.Patient != p.Patient || s.FHIRUser != p.FHIRUser ||
			s.Scopes.String() != p.Scopes || !s.EHRLaunch || !s.Refreshable {
			t.Errorf("resumed session = %+v, launch = %+v", s, p)
		}
		fc, err := s.FHIRClient()
		if err != nil {
			t.Fatal(err)
		}
		var pat fhir.Patient
		if _, err := fc.Read(t.Context(), "Patient", s.Patient, &pat); err != nil || pat.Id == nil || *pat.Id != p.Patient {
			t.Errorf("FHIR read with a resumed session: %v", err)
		}
	}

	s, err := e.cfg.SessionByKey(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}

	// A stored set copied under another browser's key does not open there (the key binds both).
	other := strings.Repeat("A", 43) + "." + handle
	ts, err := store.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(t.Context(), other, ts); err != nil {
		t.Fatal(err)
	}

	loads := store.loads.Load()
	for _, tc := range []struct {
		name, key string
		reaches   bool // a well-formed key is looked up; a malformed one is not
	}{
		{"empty", "", false},
		{"no separator", sid + handle, false},
		{"handle only", handle, false},
		{"short handle", key[:len(key)-1], false},
		{"long handle", key + "A", false},
		{"short session id", sid[1:] + "." + handle, false},
		{"path", "../../../../etc/passwd." + handle, false},
		{"two dots", sid + "." + handle + "." + handle, false},
		{"space", strings.Replace(key, key[:1], " ", 1), false},
		{"unknown handle", sid + "." + strings.Repeat("B", 22), true},
		{"unknown session id", strings.Repeat("C", 43) + "." + handle, true},
		{"copied to another session id", other, true},
	} {
		before := store.loads.Load()
		if _, err := e.cfg.SessionByKey(t.Context(), tc.key); !errors.Is(err, launch.ErrNoSession) {
			t.Errorf("%s: %v, want ErrNoSession", tc.name, err)
		}
		if got := store.loads.Load() > before; got != tc.reaches {
			t.Errorf("%s: store consulted = %v, want %v", tc.name, got, tc.reaches)
		}
	}
	if store.loads.Load() == loads {
		t.Error("no lookup reached the store")
	}

	elsewhere := &launch.Config{ClientID: e.cfg.ClientID, RedirectURL: e.cfg.RedirectURL,
		AllowedIssuers: []string{"https://other-ehr.example/fhir"}, SessionStore: store}
	if _, err := elsewhere.SessionByKey(t.Context(), key); !errors.Is(err, launch.ErrIssuerNotAllowed) {
		t.Errorf("issuer no longer allowed: %v", err)
	}

	if err := s.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cfg.SessionByKey(t.Context(), key); !errors.Is(err, launch.ErrNoSession) {
		t.Errorf("after Logout: %v", err)
	}
	if status, _, _ := b.get(t, e.app.URL+"/?handle="+p.Handle); status != http.StatusUnauthorized {
		t.Errorf("browser after Logout by key: status %d", status)
	}
}

// TestRefreshLockerAcrossProcesses: two processes resume one launch by its key after its token
// expired and ask for a token at once; with a shared Locker exactly one refresh is sent and both
// get its token (REF-04, SEC-06: the sandbox revokes the grant if a refresh token is used twice).
// The lock is named by a hash, never by the key. A lock that fails fails the refresh and keeps the
// tokens.
func TestRefreshLockerAcrossProcesses(t *testing.T) {
	t.Parallel()
	store := new(launch.MemorySessionStore)
	locker := &memLocker{}
	e := newEnv(t, envOptions{configure: func(c *launch.Config) { c.SessionStore, c.Locker = store, locker }})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))
	key := e.sessionOf(t, b, p.Handle).Key()
	e.advance(61 * time.Minute) // past the sandbox's one-hour access token

	broken := e.worker(store, nil)
	broken.Locker = &memLocker{err: errors.New("lock service down")}
	s, err := broken.SessionByKey(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "lock service down") || errors.Is(err, launch.ErrReauthRequired) {
		t.Errorf("Token with a failing lock: %v", err)
	}
	if n := e.refreshes(); n != 0 {
		t.Fatalf("%d refreshes without the lock", n)
	}

	procs := []*launch.Config{e.cfg, e.worker(store, locker)}
	var sessions []*launch.Session
	for _, c := range procs {
		s, err := c.SessionByKey(t.Context(), key) // the tokens were kept
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	var mu sync.Mutex
	tokens := map[string]int{}
	var wg sync.WaitGroup
	for i := range 20 {
		s := sessions[i%len(sessions)]
		wg.Go(func() {
			tok, err := s.Token(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			tokens[tok.AccessToken]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := e.refreshes(); n != 1 {
		t.Errorf("%d refresh requests from two processes, want 1", n)
	}
	if len(tokens) != 1 {
		t.Errorf("%d distinct access tokens, want 1", len(tokens))
	}
	names := locker.seen()
	if len(names) == 0 {
		t.Fatal("the Locker was never asked")
	}
	for _, n := range names {
		if strings.Contains(n, key) || strings.Contains(n, p.Handle) || strings.Contains(n, key[:43]) {
			t.Errorf("lock name %q reveals the session key", n)
		}
	}
	if status, body, _ := b.get(t, e.app.URL+"/patient?handle="+p.Handle); status != http.StatusOK {
		t.Errorf("browser after the workers' refresh: %d %s", status, body)
	}
}

// memLocker is a smart.Locker for processes that share memory (the test's "processes" are two
// Configs): one holder per name, the others wait. With err set, Lock fails.
type memLocker struct {
	err   error
	mu    sync.Mutex
	held  map[string]chan struct{}
	names []string
}

func (l *memLocker) Lock(ctx context.Context, name string, ttl time.Duration) (func(), error) {
	if l.err != nil {
		return nil, l.err
	}
	for {
		l.mu.Lock()
		l.names = append(l.names, name)
		ch, busy := l.held[name]
		if !busy {
			if l.held == nil {
				l.held = map[string]chan struct{}{}
			}
			ch = make(chan struct{})
			l.held[name] = ch
			l.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					l.mu.Lock()
					delete(l.held, name)
					l.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *memLocker) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.names...)
}
