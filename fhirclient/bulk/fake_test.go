package bulk

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests run the client against real HTTP servers: this small fake Bulk Data server (httptest)
// for the cases the sandbox cannot express, and the in-process sandbox elsewhere.

const testToken = "test-access-token-123"

// bearerTransport adds the token to EVERY request, whatever the host: a careless authenticated
// client. The package must still keep the token on the FHIR origin (CONV-1).
type bearerTransport struct{ base http.RoundTripper }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+testToken)
	return b.base.RoundTrip(r)
}

// testTransport returns a transport of the test's own: httptest.Server.Close in a parallel test
// closes the idle connections of http.DefaultTransport, which broke requests of others at random
// ("transport connection broken: http: CloseIdleConnections called").
func testTransport(t *testing.T) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// fakeFile is one output file of the fake server.
type fakeFile struct {
	kind, typ, name string
	body            []byte
}

// fake is a configurable Bulk Data server. Hooks return true when they wrote the response.
type fake struct {
	t   *testing.T
	srv *httptest.Server
	// files is served by fileSrv (default: srv itself).
	fileSrv *httptest.Server

	mu            sync.Mutex
	files         []fakeFile
	inProgress    int  // 202 answers before the manifest
	requiresToken bool // manifest requiresAccessToken; also whether files check the token
	gzip          bool // serve gzip when asked
	noRange       bool // ignore Range headers
	manifestExtra func(m map[string]any)
	metadata      []byte // the CapabilityStatement at [base]/metadata (nil: 404)
	kickoffHook   func(w http.ResponseWriter, r *http.Request, n int) bool
	statusHook    func(w http.ResponseWriter, r *http.Request, n int) bool
	fileHook      func(w http.ResponseWriter, r *http.Request, name string, n int) bool

	kickoffs, polls, deletes atomic.Int32
	fileGets                 map[string]int
	served                   atomic.Int64 // file body bytes written
	requests                 []string     // "METHOD RequestURI"
	kickoffBody              []byte
	kickoffHeader            http.Header
	fileAuth                 []string // Authorization header of every file request
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, fileGets: map[string]int{}, requiresToken: true}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.fileSrv = f.srv
	t.Cleanup(f.srv.Close)
	return f
}

// foreignFiles serves the files from a second server: another origin.
func (f *fake) foreignFiles() {
	fs := httptest.NewServer(http.HandlerFunc(f.serveFile))
	f.t.Cleanup(fs.Close)
	f.fileSrv = fs
}

func (f *fake) base() string { return f.srv.URL + "/fhir" }

func (f *fake) add(kind, typ, name string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files = append(f.files, fakeFile{kind, typ, name, body})
}

// client returns a Client whose authenticated HTTP client sends the token everywhere, with a
// Sleep that records waits and returns at once.
func (f *fake) client(t *testing.T) (*Client, *[]time.Duration) {
	t.Helper()
	c, err := NewClient(f.base(), &http.Client{Transport: bearerTransport{testTransport(t)}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return c, waits
}

func (f *fake) manifest() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]any{
		"transactionTime":     "2024-05-01T10:00:00.000+02:00",
		"request":             f.base() + "/$export",
		"requiresAccessToken": f.requiresToken,
		"output":              []any{},
		"error":               []any{},
	}
	for _, ff := range f.files {
		k := ff.kind
		if m[k] == nil {
			m[k] = []any{}
		}
		m[k] = append(m[k].([]any), map[string]any{"type": ff.typ, "url": f.fileSrv.URL + "/files/" + ff.name})
	}
	if f.manifestExtra != nil {
		f.manifestExtra(m)
	}
	return m
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.RequestURI)
	f.mu.Unlock()
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/files/"):
		f.serveFile(w, r)
	case p == "/fhir/metadata":
		if f.metadata == nil {
			writeOutcome(w, http.StatusNotFound, "not-found", "no metadata")
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write(f.metadata)
	case strings.HasSuffix(p, "/$export"):
		n := int(f.kickoffs.Add(1))
		body := new(bytes.Buffer)
		body.ReadFrom(r.Body)
		f.mu.Lock()
		f.kickoffBody, f.kickoffHeader = body.Bytes(), r.Header.Clone()
		f.mu.Unlock()
		if !f.authorized(w, r) {
			return
		}
		if f.kickoffHook != nil && f.kickoffHook(w, r, n) {
			return
		}
		w.Header().Set("Content-Location", f.srv.URL+"/status/1")
		w.WriteHeader(http.StatusAccepted)
	case p == "/status/1" && r.Method == http.MethodDelete:
		f.deletes.Add(1)
		if !f.authorized(w, r) {
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case p == "/status/1" || strings.HasPrefix(p, "/manifest/"):
		n := int(f.polls.Add(1))
		if !f.authorized(w, r) {
			return
		}
		if f.statusHook != nil && f.statusHook(w, r, n) {
			return
		}
		if n <= f.inProgress {
			w.Header().Set("X-Progress", fmt.Sprintf("%d%% done", n*10))
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(f.manifest())
	default:
		http.NotFound(w, r)
	}
}

func (f *fake) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		writeOutcome(w, http.StatusUnauthorized, "login", "no token")
		return false
	}
	return true
}

func (f *fake) serveFile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/files/")
	f.mu.Lock()
	f.fileGets[name]++
	n := f.fileGets[name]
	f.fileAuth = append(f.fileAuth, r.Header.Get("Authorization"))
	var body []byte
	found := false
	for _, ff := range f.files {
		if ff.name == name {
			body, found = ff.body, true
		}
	}
	f.mu.Unlock()
	if f.fileHook != nil && f.fileHook(w, r, name, n) {
		return
	}
	if !found {
		writeOutcome(w, http.StatusNotFound, "not-found", "no such file")
		return
	}
	if f.requiresToken && !f.authorized(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	cw := &countingWriter{ResponseWriter: w, n: &f.served}
	if f.gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(cw)
		zw.Write(body)
		zw.Close()
		return
	}
	if f.noRange {
		r.Header.Del("Range")
	}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(body))
}

// countingWriter counts body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Flush() {
	if fl, ok := c.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func writeOutcome(w http.ResponseWriter, status int, code, diag string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":%q,"diagnostics":%q}]}`, code, diag)
}

// ndjson builds n lines of resources of type typ.
func ndjson(typ string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"resourceType":%q,"id":"%s-%d","meta":{"versionId":"1"},"text":{"status":"generated","div":"<div>%d</div>"}}`+"\n", typ, strings.ToLower(typ), i, i)
	}
	return b.Bytes()
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
