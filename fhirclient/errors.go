package fhirclient

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Sentinel errors matched by (*Error).Is on the HTTP status, so that
// errors.Is(err, fhirclient.ErrNotFound) works whatever the server put in the body.
var (
	ErrUnauthorized       = errors.New("fhirclient: unauthorized")        // 401
	ErrForbidden          = errors.New("fhirclient: forbidden")           // 403
	ErrNotFound           = errors.New("fhirclient: not found")           // 404
	ErrConflict           = errors.New("fhirclient: conflict")            // 409
	ErrGone               = errors.New("fhirclient: gone")                // 410 (deleted resource)
	ErrPreconditionFailed = errors.New("fhirclient: precondition failed") // 412 (If-Match, conditional create)
	ErrTooManyRequests    = errors.New("fhirclient: too many requests")   // 429
	ErrUnavailable        = errors.New("fhirclient: service unavailable") // 503
)

// Errors raised by the client itself, before or after talking to the server.
var (
	// ErrInvalidPath: a request path that could leave the base URL, or an invalid resource type, id
	// or operation name (API-05).
	ErrInvalidPath = errors.New("fhirclient: invalid request path")
	// ErrMalformedResponse: a 2xx body that is not the JSON expected (truncated, HTML, wrong
	// resourceType).
	ErrMalformedResponse = errors.New("fhirclient: malformed response")
	// ErrForeignOrigin: a URL (next link, redirect, absolute path) on an origin that is neither the
	// base's nor trusted; matched by *OriginError.
	ErrForeignOrigin = errors.New("fhirclient: URL on another origin refused")
	// ErrNextLinkRepeats: a search's next link points at a page already fetched.
	ErrNextLinkRepeats = errors.New("fhirclient: next link repeats")
	// ErrTooManyPages: a search still had a next link after Client.MaxPages pages.
	ErrTooManyPages = errors.New("fhirclient: too many pages")
	// ErrUnknownResourceType: DecodeResource met a resourceType the R4 models do not define.
	ErrUnknownResourceType = errors.New("fhirclient: unknown resourceType")
)

// OriginError reports a URL refused because its origin is neither BaseURL's nor in TrustedOrigins
// (CONV-1, API-02): the bearer token would leak there. No request was sent to it.
type OriginError struct {
	What   string // "next link", "redirect", "request URL"
	Origin string // the refused origin, e.g. "https://evil.example:443"
	Base   string // the base URL's origin
}

// Error names the refused origin and the base origin.
func (e *OriginError) Error() string {
	return fmt.Sprintf("fhirclient: %s to origin %s refused: not the FHIR base origin %s nor a trusted origin (the access token would leak)",
		e.What, e.Origin, e.Base)
}

// Is matches ErrForeignOrigin.
func (e *OriginError) Is(target error) bool { return target == ErrForeignOrigin }

// statusSentinel returns the sentinel for an HTTP status, or nil.
func statusSentinel(code int) error {
	switch code {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusGone:
		return ErrGone
	case http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case http.StatusTooManyRequests:
		return ErrTooManyRequests
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// Error is a FHIR server's answer with a non-2xx status. CheckResponse builds it.
//
// When the body is an OperationOutcome, Issues always holds its issues (read leniently, so that an
// unknown issue code does not hide the message) and Outcome holds the typed resource when it also
// decodes into the samply model. Body holds at most 1 MiB of the body (MaxErrorBody); Truncated
// reports that the server sent more.
type Error struct {
	Method     string // request method, e.g. "GET"
	URL        string // request URL without query or fragment (a query may carry PHI)
	StatusCode int
	Status     string // e.g. "404 Not Found"
	Outcome    *fhir.OperationOutcome
	Issues     []Issue
	Body       []byte // capped at MaxErrorBody
	Truncated  bool
	Header     http.Header // response header, e.g. WWW-Authenticate on a 401, Retry-After on a 429
}

// Issue is one OperationOutcome issue, kept as the server sent it (codes are not validated).
type Issue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"`
	Diagnostics string `json:"diagnostics,omitempty"`
	Details     *struct {
		Text string `json:"text,omitempty"`
	} `json:"details,omitempty"`
	Expression []string `json:"expression,omitempty"`
}

// MaxErrorBody is the most CheckResponse reads of an error body (CONV-2).
const MaxErrorBody = httpx.MaxSmallBody

// Error() lists at most maxListedIssues issues, each at most maxDiagnostics bytes of text.
const (
	maxListedIssues = 10
	maxDiagnostics  = 500
)

// Error lists the status and each issue's severity, code and diagnostics, with control characters
// escaped and anything shaped like a bearer token or access_token parameter removed. A non-JSON body
// (an HTML error page) is quoted as a short snippet.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("fhirclient: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.URL + ": ")
	}
	status := e.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	b.WriteString(safeText(status))
	if len(e.Issues) > 0 {
		for i, is := range e.Issues {
			if i == maxListedIssues {
				fmt.Fprintf(&b, "; and %d more issues", len(e.Issues)-i)
				break
			}
			if i == 0 {
				b.WriteString(": ")
			} else {
				b.WriteString("; ")
			}
			b.WriteString(safeText(is.Severity) + " " + safeText(is.Code))
			msg := is.Diagnostics
			if msg == "" && is.Details != nil {
				msg = is.Details.Text
			}
			if msg != "" {
				b.WriteString(": " + safeText(clip(msg, maxDiagnostics)))
			}
		}
	} else if s := strings.TrimSpace(string(e.Body)); s != "" {
		b.WriteString(": " + e.BodySnippet())
	}
	if e.Truncated {
		b.WriteString(" (body truncated)")
	}
	if e.StatusCode == http.StatusUnauthorized {
		if wa := e.Header.Get("WWW-Authenticate"); wa != "" {
			b.WriteString(" (WWW-Authenticate: " + safeText(wa) + ")")
		}
	}
	return b.String()
}

// Is reports whether target is the sentinel for e's status code (ErrNotFound for 404, …).
func (e *Error) Is(target error) bool {
	s := statusSentinel(e.StatusCode)
	return s != nil && s == target
}

// BodySnippet returns the start of the error body for a log line or a report: anything shaped
// like a bearer token or a credential parameter removed (servers echo requests back), control
// characters escaped, at most a few hundred bytes.
func (e *Error) BodySnippet() string {
	b := bytes.TrimSpace(e.Body)
	if len(b) == 0 {
		return ""
	}
	return httpx.Snippet([]byte(scrubSecrets(string(b)))) // scrub first: a cut must not expose a token's head
}

// RetryAfter parses the response's Retry-After header (delta-seconds or HTTP-date) relative to now.
// ok is false when it is absent or implausible (negative, garbage, an epoch timestamp).
func (e *Error) RetryAfter(now time.Time) (d time.Duration, ok bool) {
	if e.Header == nil {
		return 0, false
	}
	return httpx.ParseRetryAfter(e.Header.Get("Retry-After"), now)
}

// CheckResponse returns nil for a 2xx response and an *Error otherwise. It reads at most
// MaxErrorBody bytes of an error body and puts them back on r.Body, so the caller may read them
// again. It does not close r.Body; closing the replaced r.Body closes the original, so the caller
// still frees the connection of a body longer than MaxErrorBody.
func CheckResponse(r *http.Response) error {
	if r.StatusCode >= 200 && r.StatusCode <= 299 {
		return nil
	}
	e := &Error{StatusCode: r.StatusCode, Status: r.Status, Header: r.Header}
	if r.Request != nil && r.Request.URL != nil {
		e.Method, e.URL = r.Request.Method, stripQuery(r.Request.URL)
	}
	if r.Body != nil {
		b, err := httpx.ReadLimited(r.Body, MaxErrorBody)
		e.Truncated = errors.Is(err, httpx.ErrBodyTooLarge)
		e.Body = b
		r.Body = replayBody{bytes.NewReader(b), r.Body}
	}
	e.parseOutcome()
	return e
}

// replayBody serves the bytes CheckResponse read and closes the original body.
type replayBody struct {
	io.Reader
	io.Closer
}

// parseOutcome fills Issues and Outcome when Body is an OperationOutcome. Servers often send one
// with Content-Type text/html or application/json, so the body itself decides.
func (e *Error) parseOutcome() {
	b := bytes.TrimSpace(e.Body)
	if len(b) == 0 || b[0] != '{' || e.Truncated {
		return
	}
	var lenient struct {
		ResourceType string  `json:"resourceType"`
		Issue        []Issue `json:"issue"`
	}
	if err := unmarshal(b, &lenient); err != nil || lenient.ResourceType != "OperationOutcome" {
		return
	}
	e.Issues = lenient.Issue
	var oo fhir.OperationOutcome
	if err := unmarshal(b, &oo); err == nil {
		e.Outcome = &oo
	}
}

// RetryAfterError is returned when a 429 or 503 asks for a wait longer than the client waits for in
// one call (Client.MaxRetryWait, 120 s by default; CONV-3), or when the retries are used up. Come back
// at At. errors.Is(err, ErrTooManyRequests) and errors.As(err, **Error) see the server's answer.
type RetryAfterError struct {
	Wait time.Duration // how long the server asked to wait (or the next backoff when it did not say)
	At   time.Time     // when to come back: the response time plus Wait
	Err  *Error        // the 429 or 503 response
}

// Error says how long the server asked to wait and when to come back, then the server's answer.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("fhirclient: server asked to retry after %s (at %s): %v",
		e.Wait.Round(time.Second), e.At.UTC().Format(time.RFC3339), e.Err)
}

// Unwrap returns the server's *Error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// secretPattern matches credential-shaped text a hostile or careless server might echo back.
var secretPattern = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{16,}=*|\b(access_token|refresh_token|id_token|client_assertion|client_secret)=[^&\s"'<]+`)

// scrubSecrets removes credential-shaped substrings from server text.
func scrubSecrets(s string) string {
	return secretPattern.ReplaceAllStringFunc(s, func(m string) string {
		if i := strings.IndexAny(m, " \t=\n"); i > 0 {
			return m[:i+1] + "REDACTED"
		}
		return "REDACTED"
	})
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// stripQuery renders u without user info, query or fragment: a query may carry PHI.
func stripQuery(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// safeText prepares server text for an error message: control characters escaped, secrets removed.
func safeText(s string) string { return scrubSecrets(httpx.SanitizeText(s)) }
