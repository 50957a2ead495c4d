package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// fhirEnv is a sandbox behind a real HTTP server, for the FHIR and bulk tests. Its clock is
// manual (advance moves it), so export jobs complete when a test says so.
type fhirEnv struct {
	t     *testing.T
	s     *sandbox.Server
	srv   *httptest.Server
	base  string // FHIR base URL
	clock atomic.Int64
}

func newFHIREnv(t *testing.T, opts sandbox.Options) *fhirEnv {
	t.Helper()
	e := &fhirEnv{t: t}
	e.clock.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	opts.Now = func() time.Time { return time.Unix(0, e.clock.Load()).UTC() }
	s, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.srv = httptest.NewServer(s)
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL + "/fhir"
	return e
}

// advance moves the sandbox clock forward.
func (e *fhirEnv) advance(d time.Duration) { e.clock.Add(int64(d)) }

// token mints an access token for scopes (space separated) in patient's context ("" for none).
func (e *fhirEnv) token(scopes, patient string) string {
	return e.s.IssueAccessToken(sandbox.Grant{ClientID: "fhir-test", Scopes: strings.Fields(scopes), Patient: patient,
		IssuedAt: e.s.Now(), Expiry: e.s.Now().Add(time.Hour)})
}

// systemToken reads everything.
func (e *fhirEnv) systemToken() string { return e.token("system/*.rs", "") }

// do sends a request and returns the response with its body read. Headers come in pairs.
func (e *fhirEnv) do(method, url, token string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := noRedirectClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

// get is do with GET; a path starting with "/" is relative to the FHIR base.
func (e *fhirEnv) get(path, token string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	if strings.HasPrefix(path, "/") {
		path = e.base + path
	}
	return e.do(http.MethodGet, path, token, nil, hdr...)
}

// getOK is get that insists on 200 and returns the body.
func (e *fhirEnv) getOK(path, token string, hdr ...string) []byte {
	e.t.Helper()
	resp, b := e.get(path, token, hdr...)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

var noRedirectClient = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableCompression: true},
}

// outcome decodes an OperationOutcome body, failing the test if it is not one.
func outcome(t *testing.T, b []byte) fhir.OperationOutcome {
	t.Helper()
	var peek struct{ ResourceType string }
	if err := json.Unmarshal(b, &peek); err != nil || peek.ResourceType != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %.300s", b)
	}
	oo, err := fhir.UnmarshalOperationOutcome(b)
	if err != nil || len(oo.Issue) == 0 {
		t.Fatalf("bad OperationOutcome %s: %v", b, err)
	}
	return oo
}

// wantOutcome checks status, the FHIR content type and an OperationOutcome with issue code.
func wantOutcome(t *testing.T, resp *http.Response, b []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("Content-Type %q", ct)
	}
	oo := outcome(t, b)
	if code != "" && oo.Issue[0].Code.Code() != code {
		t.Errorf("issue code %q, want %q: %s", oo.Issue[0].Code.Code(), code, b)
	}
}

// bundle decodes a Bundle and its entries' resource types and ids.
type bundleView struct {
	fhir.Bundle
	ids   []string
	types []string
}

func decodeBundle(t *testing.T, b []byte) bundleView {
	t.Helper()
	bu, err := fhir.UnmarshalBundle(b)
	if err != nil {
		t.Fatalf("not a Bundle: %v: %.300s", err, b)
	}
	v := bundleView{Bundle: bu}
	for _, en := range bu.Entry {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal(en.Resource, &head); err != nil {
			t.Fatal(err)
		}
		v.types = append(v.types, head.ResourceType)
		v.ids = append(v.ids, head.ID)
	}
	return v
}

func (v bundleView) link(rel string) string {
	for _, l := range v.Link {
		if l.Relation == rel {
			return l.Url
		}
	}
	return ""
}

// searchAll follows next links from path and returns every entry's id.
func (e *fhirEnv) searchAll(path, token string) []string {
	e.t.Helper()
	var ids []string
	seen := map[string]bool{}
	for next := path; next != ""; {
		if seen[next] {
			e.t.Fatalf("next link repeats: %s", next)
		}
		seen[next] = true
		v := decodeBundle(e.t, e.getOK(next, token))
		ids = append(ids, v.ids...)
		next = v.link("next")
	}
	return ids
}

// ndjsonLines splits NDJSON into lines (without terminators), dropping a final empty line.
func ndjsonLines(b []byte) [][]byte {
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}
