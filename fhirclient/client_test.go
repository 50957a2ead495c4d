package fhirclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// CONV-1: the base URL policy.
func TestNewClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base    string
		want    string // BaseURL after NewClient
		wantErr error
	}{
		{base: "https://ehr.example.org/fhir/r4", want: "https://ehr.example.org/fhir/r4/"},
		{base: "https://ehr.example.org/fhir/r4/", want: "https://ehr.example.org/fhir/r4/"},
		{base: "https://ehr.example.org", want: "https://ehr.example.org/"},
		{base: "http://127.0.0.1:9090/fhir", want: "http://127.0.0.1:9090/fhir/"},
		{base: "http://localhost/fhir", want: "http://localhost/fhir/"},
		{base: "ftp://ehr.example.org/fhir", wantErr: httpx.ErrInsecureURL},
		{base: "file:///etc/passwd", wantErr: httpx.ErrInsecureURL},
		{base: "https://user:pw@ehr.example.org/fhir", wantErr: httpx.ErrInsecureURL},
		{base: "http://169.254.169.254/latest", wantErr: httpx.ErrInsecureURL},
		{base: "ehr.example.org/fhir", wantErr: httpx.ErrInsecureURL},
		{base: "https://ehr.example.org/fhir?x=1", wantErr: errAny},
		{base: "https://ehr.example.org/fhir#x", wantErr: errAny},
		{base: "https://ehr.example.org/%zz", wantErr: httpx.ErrInsecureURL},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tt.base, nil)
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("NewClient(%q) error = %v, want %v", tt.base, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("error leaks user info: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.BaseURL.String(); got != tt.want {
				t.Errorf("BaseURL = %s, want %s", got, tt.want)
			}
		})
	}
}

// errAny marks a table case that only needs some error.
var errAny = errors.New("any error")

// NewClient copies the caller's *http.Client and never changes it (STYLE 3).
func TestNewClientDoesNotMutateCallerClient(t *testing.T) {
	t.Parallel()
	hc := &http.Client{}
	c, err := NewClient("https://ehr.example.org/fhir", hc)
	if err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("NewClient set CheckRedirect on the caller's client")
	}
	if c.client == hc || c.client.CheckRedirect == nil {
		t.Error("Client should hold its own copy with a redirect check")
	}
}

// CONV-1: plain http to a non-loopback host is refused before any network traffic unless the
// InsecureAllowHTTP opt-in is set.
func TestPlainHTTPNeedsOptIn(t *testing.T) {
	t.Parallel()
	var sent atomic.Int64
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(
			`{"resourceType":"Patient","id":"1"}`)), Request: r}, nil
	})}
	c, err := NewClient("http://ehr.internal.example/fhir", hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(t.Context(), "Patient", "1", nil)
	if !errors.Is(err, httpx.ErrInsecureURL) {
		t.Fatalf("Read over plain http: err = %v, want ErrInsecureURL", err)
	}
	if sent.Load() != 0 {
		t.Fatalf("%d requests sent over plain http", sent.Load())
	}
	c.InsecureAllowHTTP = true
	if _, err := c.Read(t.Context(), "Patient", "1", nil); err != nil {
		t.Fatalf("with InsecureAllowHTTP: %v", err)
	}
	if sent.Load() != 1 {
		t.Fatalf("sent = %d, want 1", sent.Load())
	}
}

// API-05, API-02: paths stay under the base; absolute URLs only on the base origin or a trusted one.
func TestNewRequestURL(t *testing.T) {
	t.Parallel()
	c, err := NewClient("https://ehr.example.org/fhir/r4", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.TrustedOrigins = []string{"https://files.example.org"}
	tests := []struct {
		path    string
		want    string
		wantErr error
	}{
		{path: "Patient/123", want: "https://ehr.example.org/fhir/r4/Patient/123"},
		{path: "", want: "https://ehr.example.org/fhir/r4/"},
		{path: "Observation?code=8867-4&patient=1", want: "https://ehr.example.org/fhir/r4/Observation?code=8867-4&patient=1"},
		{path: "metadata", want: "https://ehr.example.org/fhir/r4/metadata"},
		{path: "https://ehr.example.org/fhir/r4/Patient?page=2", want: "https://ehr.example.org/fhir/r4/Patient?page=2"},
		{path: "https://ehr.example.org:443/other", want: "https://ehr.example.org:443/other"},
		{path: "https://files.example.org/b/1", want: "https://files.example.org/b/1"},
		{path: "../admin", wantErr: ErrInvalidPath},
		{path: "Patient/../../admin", wantErr: ErrInvalidPath},
		{path: "Patient/./1", wantErr: ErrInvalidPath},
		{path: "%2e%2e/admin", wantErr: ErrInvalidPath},
		{path: `Patient\..\..\admin`, wantErr: ErrInvalidPath},
		{path: "/Patient/1", wantErr: ErrInvalidPath},
		{path: "https://evil.example/steal", wantErr: ErrForeignOrigin},
		{path: "//evil.example/steal", wantErr: ErrForeignOrigin},
		{path: "https://ehr.example.org:8443/fhir/r4/Patient", wantErr: ErrForeignOrigin},
		{path: "http://ehr.example.org/fhir/r4/Patient", wantErr: httpx.ErrInsecureURL},
		{path: "javascript:alert(1)", wantErr: httpx.ErrInsecureURL},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			req, err := c.NewRequest(t.Context(), http.MethodGet, tt.path, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NewRequest(%q) error = %v, want %v", tt.path, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := req.URL.String(); got != tt.want {
				t.Errorf("URL = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewRequestHeadersAndBodies(t *testing.T) {
	t.Parallel()
	c, err := NewClient("https://ehr.example.org/fhir", nil)
	if err != nil {
		t.Fatal(err)
	}
	gender := fhir.AdministrativeGenderFemale
	tests := []struct {
		name        string
		body        any
		contentType string
		wantBody    string
	}{
		{name: "none", body: nil},
		{name: "raw", body: json.RawMessage(`{"resourceType":"Basic"}`), contentType: MediaTypeFHIRJSON, wantBody: `{"resourceType":"Basic"}`},
		{name: "bytes", body: []byte(`{"a":1}`), contentType: MediaTypeFHIRJSON, wantBody: `{"a":1}`},
		{name: "form", body: url.Values{"name": {"Shaw"}, "_count": {"5"}}, contentType: "application/x-www-form-urlencoded", wantBody: "_count=5&name=Shaw"},
		{name: "typed", body: fhir.Patient{Gender: &gender}, contentType: MediaTypeFHIRJSON, wantBody: `{"gender":"female","resourceType":"Patient"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := c.NewRequest(t.Context(), http.MethodPost, "Patient", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			testHeader(t, req, "Accept", MediaTypeFHIRJSON)
			testHeader(t, req, "Content-Type", tt.contentType)
			testHeader(t, req, "User-Agent", "smartfhir-fhirclient")
			if tt.body == nil {
				if req.Body != nil && req.Body != http.NoBody {
					t.Error("request without body has one")
				}
				return
			}
			testBody(t, req, tt.wantBody)
			if req.GetBody == nil {
				t.Error("body is not replayable (GetBody nil): retries would be impossible")
			}
		})
	}
}

// Client.Header adds vendor headers and may replace Accept (Epic: Epic-Client-ID, application/json+fhir).
func TestClientHeader(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.Header = http.Header{"Epic-Client-ID": {"my-client"}, "Accept": {"application/json+fhir"}}
	e.c.UserAgent = "myapp/1.0"
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Epic-Client-ID", "my-client")
		testHeader(t, r, "Accept", "application/json+fhir")
		testHeader(t, r, "User-Agent", "myapp/1.0")
		writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
	})
	if _, err := e.c.Read(t.Context(), "Patient", "1", nil); err != nil {
		t.Fatal(err)
	}

	// A legacy Content-Type replaces the FHIR JSON one, not a form's or a JSON Patch's.
	e.c.Header.Set("Content-Type", "application/json+fhir")
	e.mux.HandleFunc("POST /Patient", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", "application/json+fhir")
		writeJSON(w, 201, `{"resourceType":"Patient","id":"2"}`)
	})
	e.mux.HandleFunc("POST /Patient/_search", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", "application/x-www-form-urlencoded")
		writeJSON(w, 200, `{"resourceType":"Bundle","type":"searchset"}`)
	})
	e.mux.HandleFunc("PATCH /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", MediaTypeJSONPatch)
		writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
	})
	if _, err := e.c.Create(t.Context(), json.RawMessage(`{"resourceType":"Patient"}`), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.SearchPost(t.Context(), "Patient", url.Values{"name": {"x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Patch(t.Context(), "Patient", "1", []PatchOp{{Op: "remove", Path: "/active"}}, "", nil); err != nil {
		t.Fatal(err)
	}
}

func TestDoDestinations(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const body = `{"resourceType":"Patient","id":"1","gender":"other"}`
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, body) })
	e.mux.HandleFunc("GET /empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	do := func(path string, v any) {
		t.Helper()
		req, err := e.c.NewRequest(t.Context(), http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.Do(req, v); err != nil {
			t.Fatalf("Do(%T): %v", v, err)
		}
	}
	var p fhir.Patient
	do("Patient/1", &p)
	if p.Id == nil || *p.Id != "1" || p.Gender == nil || *p.Gender != fhir.AdministrativeGenderOther {
		t.Errorf("typed decode = %+v", p)
	}
	var raw json.RawMessage
	do("Patient/1", &raw)
	if string(raw) != body {
		t.Errorf("raw = %s", raw)
	}
	var buf bytes.Buffer
	do("Patient/1", &buf)
	if buf.String() != body {
		t.Errorf("streamed = %s", buf.String())
	}
	var m map[string]any
	do("Patient/1", &m)
	if m["gender"] != "other" {
		t.Errorf("map decode = %v", m)
	}
	do("Patient/1", nil)
	untouched := fhir.Patient{Id: new(string)}
	do("empty", &untouched)
	if untouched.Id == nil {
		t.Error("empty body changed v")
	}
}

// CONV-2: body caps, for typed, raw and streamed destinations.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.MaxBodySize = 64
	e.mux.HandleFunc("GET /Binary/big", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Binary","id":"big","data":"`+strings.Repeat("A", 1000)+`"}`)
	})
	for _, v := range []any{new(fhir.Binary), new(json.RawMessage), new(bytes.Buffer)} {
		_, err := e.c.Read(t.Context(), "Binary", "big", v)
		if !errors.Is(err, httpx.ErrBodyTooLarge) {
			t.Errorf("Read into %T: err = %v, want ErrBodyTooLarge", v, err)
		}
	}
}

// API-02, CONV-1: a redirect on the base origin is followed; to another origin it is refused and
// the other origin gets nothing.
func TestRedirects(t *testing.T) {
	t.Parallel()
	e := setup(t)
	foreign := newForeignServer(t)
	var hits atomic.Int64
	e.mux.HandleFunc("GET /Patient/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, basePath+"/Patient/1", http.StatusMovedPermanently)
	})
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
	})
	e.mux.HandleFunc("GET /Patient/away", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, foreign.URL+"/Patient/stolen", http.StatusFound)
	})
	var p fhir.Patient
	if _, err := e.c.Read(t.Context(), "Patient", "moved", &p); err != nil || *p.Id != "1" {
		t.Fatalf("same-origin redirect: %v", err)
	}
	_, err := e.c.Read(t.Context(), "Patient", "away", &p)
	var oe *OriginError
	if !errors.As(err, &oe) || !errors.Is(err, ErrForeignOrigin) {
		t.Fatalf("foreign redirect: err = %v, want *OriginError", err)
	}
	if oe.Origin != httpx.Origin(mustParse(t, foreign.URL)) || !strings.Contains(err.Error(), oe.Origin) {
		t.Errorf("error should name the foreign origin %s: %v", foreign.URL, err)
	}
	if foreign.requests.Load() != 0 {
		t.Errorf("foreign origin got %d requests", foreign.requests.Load())
	}
	if hits.Load() != 1 {
		t.Errorf("refused redirect was retried: %d requests", hits.Load())
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error leaks the token: %v", err)
	}

	// A trusted origin may be redirected to.
	e.c.TrustedOrigins = []string{foreign.URL}
	if _, err := e.c.Read(t.Context(), "Patient", "away", nil); err != nil {
		t.Fatalf("redirect to a trusted origin: %v", err)
	}
	if foreign.requests.Load() != 1 {
		t.Errorf("trusted origin got %d requests, want 1", foreign.requests.Load())
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The Response carries the FHIR headers.
func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `W/"7"`)
		w.Header().Set("Last-Modified", "Sat, 21 Nov 2026 08:00:00 GMT")
		w.Header().Set("Content-Location", e.srv.URL+basePath+"/Patient/1/_history/7")
		writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
	})
	resp, err := e.c.Read(t.Context(), "Patient", "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ETag != `W/"7"` || resp.VersionID != "7" || !strings.HasSuffix(resp.Location, "/Patient/1/_history/7") ||
		resp.LastModified.Day() != 21 {
		t.Errorf("Response = ETag %q VersionID %q Location %q LastModified %v", resp.ETag, resp.VersionID, resp.Location, resp.LastModified)
	}
}

func TestVersionFromETag(t *testing.T) {
	t.Parallel()
	for etag, want := range map[string]string{
		`W/"3"`: "3", `"3"`: "3", `3`: "3", ``: "", `W/"a/b"`: "", `W/"` + strings.Repeat("x", 65) + `"`: "",
	} {
		if got := versionFromETag(etag); got != want {
			t.Errorf("versionFromETag(%q) = %q, want %q", etag, got, want)
		}
	}
}

// A Client literal (not from NewClient) fails cleanly instead of panicking.
func TestZeroClient(t *testing.T) {
	t.Parallel()
	u := mustParse(t, "https://ehr.example.org/fhir/")
	for _, c := range []*Client{{}, {BaseURL: u}} {
		if _, err := c.Read(t.Context(), "Patient", "1", nil); err == nil {
			t.Errorf("%+v: Read succeeded", c)
		}
	}
}
