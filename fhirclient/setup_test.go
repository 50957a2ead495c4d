package fhirclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// basePath is where setup mounts the FHIR API, so that an absolute path in the client ("/Patient")
// misses the mux and fails the test (STYLE item 16).
const basePath = "/fhir/r4"

// testToken is the bearer token the test auth transport adds; it must never appear in an error or
// reach a foreign origin.
const testToken = "tok-3f9c2a7d1e5b4c6a8d0e2f4a6b8c0d1e"

// env is one test's server and client.
type env struct {
	c      *Client
	mux    *http.ServeMux // handlers for paths under basePath, registered without the prefix
	srv    *httptest.Server
	clock  *fakeClock
	sleeps *sleepLog
}

// setup starts an httptest server whose mux is mounted under /fhir/r4/ and a Client for it whose
// transport adds "Authorization: Bearer testToken" to every request (like a naive auth client would:
// the Client itself must keep it from foreign origins). Waits are recorded, not slept.
func setup(t testing.TB) *env {
	t.Helper()
	mux := http.NewServeMux()
	root := http.NewServeMux()
	root.Handle(basePath+"/", http.StripPrefix(basePath, mux))
	root.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request outside the FHIR base: %s %s", r.Method, r.URL)
		http.Error(w, "outside base", http.StatusBadRequest)
	})
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)

	c, err := NewClient(srv.URL+basePath, authClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, mux: mux, srv: srv, clock: &fakeClock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}, sleeps: &sleepLog{}}
	c.now = e.clock.Now
	c.sleep = func(ctx context.Context, d time.Duration) error {
		e.sleeps.add(d)
		e.clock.Advance(d)
		return ctx.Err()
	}
	return e
}

// authClient wraps hc's transport so every request carries the test bearer token.
func authClient(hc *http.Client) *http.Client {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+testToken)
		return base.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// foreignServer starts a server on another origin that counts requests and Authorization headers.
type foreignServer struct {
	*httptest.Server
	requests, authorized atomic.Int64
}

func newForeignServer(t *testing.T) *foreignServer {
	t.Helper()
	f := &foreignServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if r.Header.Get("Authorization") != "" {
			f.authorized.Add(1)
		}
		writeJSON(w, http.StatusOK, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"stolen"}}]}`)
	}))
	t.Cleanup(f.Close)
	return f
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) add(d time.Duration) { s.mu.Lock(); s.d = append(s.d, d); s.mu.Unlock() }

func (s *sleepLog) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// writeJSON writes a FHIR JSON body with a status.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", MediaTypeFHIRJSON)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func testMethod(t *testing.T, r *http.Request, want string) {
	t.Helper()
	if r.Method != want {
		t.Errorf("method = %s, want %s", r.Method, want)
	}
}

func testHeader(t *testing.T, r *http.Request, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Errorf("header %s = %q, want %q", name, got, want)
	}
}

func testBody(t *testing.T, r *http.Request, want string) {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("body = %s, want %s", b, want)
	}
}

// testJSONBody compares a request body with want as JSON values.
func testJSONBody(t *testing.T, r *http.Request, want string) {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("request body is not JSON: %v: %s", err, b)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	eb, _ := json.Marshal(exp)
	if string(gb) != string(eb) {
		t.Errorf("body = %s, want %s", gb, eb)
	}
}

// fixture reads a file from the repository's testdata/fhir.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "fhir", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
