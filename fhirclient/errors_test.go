package fhirclient

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

const notFoundOutcome = `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"Resource Patient/nope is not known"}]}`

// Every error shape a FHIR server sends becomes an *Error matched by status.
func TestCheckResponse(t *testing.T) {
	t.Parallel()
	multi := string(fixture(t, "operationoutcome-multi.json"))
	html := string(fixture(t, "error-500.html"))
	tests := []struct {
		name        string
		status      int
		header      http.Header
		body        string
		is          error
		issues      int
		typed       bool     // Outcome decoded into the samply model
		contains    []string // in Error()
		notContains []string
	}{
		{name: "404 outcome", status: 404, body: notFoundOutcome, is: ErrNotFound, issues: 1, typed: true,
			contains: []string{"404 Not Found", "error not-found: Resource Patient/nope is not known"}},
		{name: "410 deleted", status: 410, body: `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"deleted"}]}`,
			is: ErrGone, issues: 1, typed: true, contains: []string{"information deleted"}},
		{name: "409", status: 409, body: ``, is: ErrConflict},
		{name: "412", status: 412, body: ``, is: ErrPreconditionFailed},
		{name: "403", status: 403, body: `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"scope"}]}`, is: ErrForbidden, issues: 1, typed: true},
		{name: "429", status: 429, is: ErrTooManyRequests},
		{name: "401 with WWW-Authenticate", status: 401,
			header: http.Header{"Www-Authenticate": {`Bearer realm="ehr", error="invalid_token", error_description="The access token expired"`}},
			is:     ErrUnauthorized, contains: []string{`WWW-Authenticate: Bearer realm="ehr", error="invalid_token"`}},
		{name: "several issues", status: 400, body: multi, issues: 3, typed: true,
			contains: []string{
				`error invalid: Unknown search parameter "colour" for resource Patient`,
				"error not-supported: Chained search is not supported",
				`warning processing: Token Bearer REDACTED was \u001b[31mlogged`,
			},
			notContains: []string{"eyJhbGciOiJSUzM4NCJ9", "\x1b"}},
		{name: "unknown issue code kept leniently", status: 422,
			body:   `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"vendor-specific","diagnostics":"x"}]}`,
			issues: 1, typed: false, contains: []string{"fatal vendor-specific: x"}},
		{name: "HTML 500", status: 500, body: html, contains: []string{"500 Internal Server Error", "<h1>Internal Server Error</h1>"}},
		{name: "plain text with token", status: 502, body: "upstream said: access_token=abc.def.ghi&x=1 Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
			contains: []string{"access_token=REDACTED", "Bearer REDACTED"}, notContains: []string{"abc.def.ghi", "abcdefghijklmnopqrstuvwxyz0123"}},
		{name: "JSON that is not an outcome", status: 400, body: `{"error":"bad"}`, contains: []string{`{"error":"bad"}`}},
		{name: "many long issues are listed briefly", status: 400, body: manyIssues(25), issues: 25, typed: true,
			contains: []string{"error invalid: issue 9 " + strings.Repeat("x", 100), "; and 15 more issues"}, notContains: []string{"issue 10 ", strings.Repeat("x", 600)}},
		{name: "truncated outcome", status: 400, body: `{"resourceType":"OperationOutcome","issue":[{"severity":"err`,
			contains: []string{`"severity":"err`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, "https://ehr.example.org/fhir/Patient?name=Secret+Patient", nil)
			hdr := tt.header
			if hdr == nil {
				hdr = http.Header{}
			}
			resp := &http.Response{StatusCode: tt.status, Status: statusLine(tt.status), Header: hdr,
				Body: io.NopCloser(strings.NewReader(tt.body)), Request: req}
			err := CheckResponse(resp)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("CheckResponse = %v, want *Error", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			for _, other := range []error{ErrNotFound, ErrGone, ErrConflict, ErrPreconditionFailed, ErrUnauthorized, ErrForbidden, ErrTooManyRequests} {
				if other != tt.is && errors.Is(err, other) {
					t.Errorf("error also matches %v", other)
				}
			}
			if len(fe.Issues) != tt.issues {
				t.Errorf("Issues = %d, want %d", len(fe.Issues), tt.issues)
			}
			if (fe.Outcome != nil) != tt.typed {
				t.Errorf("Outcome = %v, want typed=%v", fe.Outcome, tt.typed)
			}
			if fe.Outcome != nil && len(fe.Outcome.Issue) != tt.issues {
				t.Errorf("Outcome has %d issues, want %d", len(fe.Outcome.Issue), tt.issues)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "fhirclient: GET https://ehr.example.org/fhir/Patient: ") {
				t.Errorf("message prefix: %s", msg)
			}
			for _, s := range append(tt.notContains, "Secret", "name=") {
				if strings.Contains(msg, s) {
					t.Errorf("Error() contains %q: %s", s, msg)
				}
			}
			for _, s := range tt.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("Error() lacks %q: %s", s, msg)
				}
			}
			// The body is put back for the caller.
			if b, _ := io.ReadAll(resp.Body); string(b) != tt.body {
				t.Errorf("resp.Body after CheckResponse = %q", b)
			}
		})
	}
}

func manyIssues(n int) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"OperationOutcome","issue":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"severity":"error","code":"invalid","diagnostics":"issue %d %s"}`, i, strings.Repeat("x", 1000))
	}
	b.WriteString("]}")
	return b.String()
}

func statusLine(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

func TestCheckResponseSuccess(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 201, 202, 204, 299} {
		if err := CheckResponse(&http.Response{StatusCode: code, Body: http.NoBody}); err != nil {
			t.Errorf("CheckResponse(%d) = %v", code, err)
		}
	}
}

// CONV-2: error bodies are capped at 1 MiB; the rest is never read.
func TestCheckResponseTruncates(t *testing.T) {
	t.Parallel()
	big := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"too-costly","diagnostics":"` +
		strings.Repeat("x", 2<<20) + `"}]}`
	r := &countingReader{r: strings.NewReader(big)}
	err := CheckResponse(&http.Response{StatusCode: 500, Header: http.Header{}, Body: io.NopCloser(r)})
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatal(err)
	}
	if !fe.Truncated || len(fe.Body) != MaxErrorBody {
		t.Errorf("Truncated = %v, len(Body) = %d", fe.Truncated, len(fe.Body))
	}
	if r.n > MaxErrorBody+64<<10 {
		t.Errorf("read %d bytes of the error body", r.n)
	}
	if msg := err.Error(); len(msg) > 2000 || !strings.Contains(msg, "(body truncated)") {
		t.Errorf("message (%d bytes) = %.200s", len(msg), msg)
	}
}

// CONV-2: CheckResponse puts the error body back on r.Body, and closing that closes the original:
// a caller that closes resp.Body after CheckResponse must free the connection of a body too long
// to have been read to its end (before the fix the original body was unreachable and leaked).
func TestCheckResponseBodyCloseReachesOriginal(t *testing.T) {
	t.Parallel()
	orig := &closeTracker{Reader: strings.NewReader(strings.Repeat("x", 2<<20))}
	resp := &http.Response{StatusCode: 404, Header: http.Header{}, Body: orig}
	if err := CheckResponse(resp); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if b, _ := io.ReadAll(resp.Body); len(b) != MaxErrorBody {
		t.Errorf("replayed %d bytes, want %d", len(b), MaxErrorBody)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if !orig.closed {
		t.Error("closing resp.Body after CheckResponse did not close the original body")
	}
}

// CONV-4: a token a server echoes in its error body never reaches an error string or a log, not
// even its head where the quoted snippet is cut (before the fix the snippet was cut first and then
// scrubbed, so a token straddling the cut kept its first characters).
func TestErrorBodyNeverQuotesToken(t *testing.T) {
	t.Parallel()
	const token = "tok3nSECRETabcdefghijklmnopqrstuvwxyz0123"
	for _, pad := range []int{0, 100, 497, 500, 503, 505} {
		body := strings.Repeat("x", pad) + " Bearer " + token + " was refused"
		err := CheckResponse(&http.Response{StatusCode: 401, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))})
		var fe *Error
		if !errors.As(err, &fe) {
			t.Fatal(err)
		}
		for name, s := range map[string]string{"Error()": err.Error(), "BodySnippet()": fe.BodySnippet()} {
			if strings.Contains(s, token[:5]) {
				t.Errorf("pad %d: %s quotes the token: %q", pad, name, s[max(0, len(s)-80):])
			}
		}
		if !strings.Contains(fe.BodySnippet(), "xxx") && pad > 0 {
			t.Errorf("pad %d: BodySnippet lost the body: %q", pad, fe.BodySnippet())
		}
	}
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// The errors reach the caller of an operation with the request's method and query-free URL.
func TestOperationErrors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/nope", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, notFoundOutcome)
	})
	e.mux.HandleFunc("GET /Patient/gone", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusGone, `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"deleted"}]}`)
	})
	var p fhir.Patient
	_, err := e.c.Read(t.Context(), "Patient", "nope", &p)
	var fe *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &fe) || fe.Outcome == nil {
		t.Fatalf("err = %v", err)
	}
	if fe.Outcome.Issue[0].Code != fhir.IssueTypeNotFound {
		t.Errorf("issue code = %v", fe.Outcome.Issue[0].Code)
	}
	if !strings.Contains(err.Error(), "GET "+e.srv.URL+basePath+"/Patient/nope") {
		t.Errorf("message lacks the request: %v", err)
	}
	if _, err := e.c.Read(t.Context(), "Patient", "gone", &p); !errors.Is(err, ErrGone) {
		t.Errorf("deleted resource: err = %v, want ErrGone", err)
	}
}

func TestScrubSecrets(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"basic validation failed":                       "basic validation failed",
		"Authorization: Basic dXNlcjpwYXNzd29yZDEyMzQ=": "Authorization: Basic REDACTED",
		"bearer abcdefghijklmnop":                       "bearer REDACTED",
		"?refresh_token=r1&client_secret=s2":            "?refresh_token=REDACTED&client_secret=REDACTED",
		"code=1234-5 is unknown":                        "code=1234-5 is unknown",
	}
	for in, want := range tests {
		if got := scrubSecrets(in); got != want {
			t.Errorf("scrubSecrets(%q) = %q, want %q", in, got, want)
		}
	}
}
