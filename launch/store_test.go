package launch

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

// TestStateStoreTakeOnce: of 50 concurrent Takes of one state exactly one succeeds, in memory and
// on disk (CONV-5, LAUNCH-06).
func TestStateStoreTakeOnce(t *testing.T) {
	t.Parallel()
	fs, err := NewFileStateStore(t.TempDir(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]StateStore{"memory": new(MemoryStateStore), "file": fs} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := &Record{Browser: "b", Issuer: "https://ehr/fhir", Verifier: "v", Created: time.Now(), Expires: time.Now().Add(time.Minute)}
			if err := st.Save(t.Context(), "s1", rec); err != nil {
				t.Fatal(err)
			}
			var ok atomic.Int32
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					got, err := st.Take(t.Context(), "s1")
					switch {
					case err == nil && got.Verifier == "v":
						ok.Add(1)
					case !errors.Is(err, ErrStateUnknown):
						t.Errorf("Take: %v", err)
					}
				})
			}
			wg.Wait()
			if ok.Load() != 1 {
				t.Errorf("%d successful Takes, want 1", ok.Load())
			}
		})
	}
}

// TestFileSessionStore: files are 0600, encrypted (no token in clear), bound to their key, and
// unreadable with another store key (SEC-07).
func TestFileSessionStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := bytes.Repeat([]byte{1}, 32)
	st, err := NewFileSessionStore(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	ts := &TokenSet{Browser: "b", Issuer: "https://ehr/fhir", Expires: time.Now().Add(time.Hour),
		Token: &smart.Token{Token: &oauth2.Token{AccessToken: "ACCESS-SECRET-123", RefreshToken: "REFRESH-SECRET-456", TokenType: "Bearer"},
			LaunchContext: smart.LaunchContext{Patient: "p1"}}}
	if err := st.Save(t.Context(), "sid.h1", ts); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(t.Context(), "sid.h1")
	if err != nil || got.Token.RefreshToken != "REFRESH-SECRET-456" || got.Token.Patient != "p1" {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 {
		t.Fatalf("files = %v", files)
	}
	fi, _ := os.Stat(files[0])
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(files[0])
	if bytes.Contains(raw, []byte("SECRET")) || bytes.Contains(raw, []byte("sid.h1")) || bytes.Contains([]byte(files[0]), []byte("sid")) {
		t.Error("the file or its name shows plaintext")
	}
	// Copied under another key's name, the file does not decrypt (the key is additional data).
	if err := os.WriteFile(st.f.path("sid.h2"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// A file that does not open (moved, another store key after a rotation, truncated) reads as
	// no session: the user launches again, never a 503 "store unavailable" (ErrorPage).
	if _, err := st.Load(t.Context(), "sid.h2"); !errors.Is(err, ErrNoSession) {
		t.Errorf("moved file: %v, want ErrNoSession", err)
	}
	other, _ := NewFileSessionStore(dir, bytes.Repeat([]byte{2}, 32))
	if _, err := other.Load(t.Context(), "sid.h1"); !errors.Is(err, ErrNoSession) {
		t.Errorf("another key: %v, want ErrNoSession", err)
	}
	if err := os.WriteFile(st.f.path("sid.h4"), raw[:5], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(t.Context(), "sid.h4"); !errors.Is(err, ErrNoSession) {
		t.Errorf("truncated file: %v, want ErrNoSession", err)
	}
	if err := st.Delete(t.Context(), "sid.h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(t.Context(), "sid.h1"); !errors.Is(err, ErrNoSession) {
		t.Errorf("after Delete: %v", err)
	}
	ts.Expires = time.Now().Add(-time.Second)
	_ = st.Save(t.Context(), "sid.h3", ts)
	if _, err := st.Load(t.Context(), "sid.h3"); !errors.Is(err, ErrNoSession) {
		t.Errorf("expired set: %v", err)
	}
	if _, err := NewFileSessionStore(dir, []byte("short")); !errors.Is(err, ErrConfig) {
		t.Errorf("short key: %v", err)
	}
}

// TestFileStateStoreKeyRotation: a pending state sealed with a retired store key is an unknown
// state (the user starts again), not a store failure (a 503) (CONV-5).
func TestFileStateStoreKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, err := NewFileStateStore(dir, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{Browser: "b", Issuer: "https://ehr/fhir", Verifier: "v", Created: time.Now(), Expires: time.Now().Add(time.Minute)}
	if err := old.Save(t.Context(), "s1", rec); err != nil {
		t.Fatal(err)
	}
	rotated, _ := NewFileStateStore(dir, bytes.Repeat([]byte{2}, 32))
	_, err = rotated.Take(t.Context(), "s1")
	if !errors.Is(err, ErrStateUnknown) {
		t.Fatalf("Take with another key: %v, want ErrStateUnknown", err)
	}
	if _, err := old.Take(t.Context(), "s1"); !errors.Is(err, ErrStateUnknown) {
		t.Errorf("the state was usable after a failed Take: %v", err)
	}
	rw := httptest.NewRecorder()
	ErrorPage(rw, httptest.NewRequest(http.MethodGet, "/callback", nil), err)
	if rw.Code != http.StatusBadRequest {
		t.Errorf("ErrorPage status %d, want 400", rw.Code)
	}
}

// TestFileStateStoreDropsAbandoned: a state whose launch was abandoned (the browser never came
// back) does not stay on disk for ever: anyone can start launches, so the directory would grow
// without bound (CONV-5 max age 10 min; STYLE: no unbounded growth from unauthenticated input).
func TestFileStateStoreDropsAbandoned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := NewFileStateStore(dir, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	abandoned := &Record{Browser: "b", Verifier: "v", Created: now.Add(-20 * time.Minute), Expires: now.Add(-10 * time.Minute)}
	if err := st.Save(t.Context(), "abandoned-state", abandoned); err != nil {
		t.Fatal(err)
	}
	pending := &Record{Browser: "b", Verifier: "v", Created: now, Expires: now.Add(10 * time.Minute)}
	if err := st.Save(t.Context(), "pending-state", pending); err != nil {
		t.Fatal(err)
	}
	// A session store sharing the directory keeps its files (an old mtime is not an expiry there).
	sessions, _ := NewFileSessionStore(dir, bytes.Repeat([]byte{7}, 32))
	if err := sessions.Save(t.Context(), "sid.handle", &TokenSet{Browser: "b", Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	sessionFile := sessions.f.path("sid.handle")
	if err := os.Chtimes(sessionFile, time.Time{}, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := range 600 { // launches that complete
		k := "done-" + strconv.Itoa(i)
		if err := st.Save(t.Context(), k, pending); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Take(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(st.f.path("abandoned-state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the abandoned state's file is still there (%v)", err)
	}
	if got, err := st.Take(t.Context(), "pending-state"); err != nil || got.Verifier != "v" {
		t.Errorf("a pending state was dropped: %v", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 || files[0].Name() != filepath.Base(sessionFile) {
		t.Errorf("files left: %v; want only the session file", files)
	}
}

// TestMemorySessionStoreCopies: callers never share a stored *TokenSet.
func TestMemorySessionStoreCopies(t *testing.T) {
	t.Parallel()
	var st MemorySessionStore
	ts := &TokenSet{Browser: "b", Token: &smart.Token{Token: &oauth2.Token{AccessToken: "a"}}}
	_ = st.Save(t.Context(), "k", ts)
	ts.Token.AccessToken = "changed"
	got, _ := st.Load(t.Context(), "k")
	if got.Token.AccessToken != "a" {
		t.Errorf("stored set aliased: %q", got.Token.AccessToken)
	}
}

// TestCookieKeyRotation: a cookie made with the old keys still opens the session after rotation to
// [new, old]; a store with only the new keys treats it as no session (not an error page).
func TestCookieKeyRotation(t *testing.T) {
	t.Parallel()
	k := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	oldKeys := [][]byte{k(1, 32), k(2, 32)}
	newKeys := [][]byte{k(3, 32), k(4, 32)}
	mk := func(keys [][]byte) *browserSessions {
		bs, err := newBrowserSessions(&Config{CookieKeys: keys}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	rec := httptest.NewRecorder()
	sid, err := mk(oldKeys).ensure(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	if got := mk(append(newKeys, oldKeys...)).get(req); got != sid {
		t.Errorf("rotated store: sid %q, want %q", got, sid)
	}
	if got := mk(newKeys).get(req); got != "" {
		t.Errorf("retired keys still accepted")
	}
	forged := httptest.NewRequest(http.MethodGet, "/", nil)
	forged.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: "forged"})
	if got := mk(oldKeys).get(forged); got != "" {
		t.Errorf("forged cookie accepted")
	}
}
