package fhirclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Media types used on the wire.
const (
	MediaTypeFHIRJSON  = "application/fhir+json"
	MediaTypeJSONPatch = "application/json-patch+json"
	mediaTypeForm      = "application/x-www-form-urlencoded"
)

// Defaults for the zero values of Client's limits (CONV-2).
const (
	DefaultMaxBodySize = httpx.MaxFHIRBody    // one FHIR JSON response: 64 MiB
	DefaultMaxPages    = httpx.MaxSearchPages // pages followed by one search: 10,000
	DefaultTimeout     = 60 * time.Second     // one request including its body
	defaultUserAgent   = "smartfhir-fhirclient"
)

// Client talks to one FHIR R4 server. Authentication is the *http.Client's job (see NewClient); the
// Client never sees a token.
//
// Set the exported fields before the first request and do not change them afterwards; a configured
// Client is safe for concurrent use.
type Client struct {
	// BaseURL is the FHIR base, always with a trailing slash ("https://ehr.example.org/fhir/r4/").
	// Request paths are resolved under it; only its origin (and TrustedOrigins) is ever contacted.
	BaseURL *url.URL

	// Header is added to every request, replacing the defaults of the same name: Epic-Client-ID, or
	// Accept (and Content-Type) application/json+fhir for servers that want the legacy media type.
	// A Content-Type here replaces only application/fhir+json, not a form's or a JSON Patch's. Do
	// not put credentials here: authentication belongs to the *http.Client.
	Header http.Header

	// UserAgent is sent as User-Agent (default "smartfhir-fhirclient").
	UserAgent string

	// MaxBodySize caps one successful response body (default 64 MiB). Error bodies are capped at
	// MaxErrorBody (1 MiB).
	MaxBodySize int64

	// MaxPages caps the pages one SearchIter or Pages call follows (default 10,000).
	MaxPages int

	// Timeout bounds one attempt of one request, body included (default 60 s; negative: none).
	// Every attempt also ends with the call's budget, Retry.MaxElapsed (CONV-2).
	Timeout time.Duration

	// Retry is the retry policy (CONV-3); the zero value is the default.
	Retry RetryPolicy

	// InsecureAllowHTTP allows plain http to hosts other than loopback. It is for test networks
	// only: a bearer token sent over http can be read by anyone on the path (CONV-1).
	InsecureAllowHTTP bool

	// TrustedOrigins lists origins besides BaseURL's that redirects, next links and absolute request
	// URLs may reach ("https://files.ehr.example.org"). Whether a token goes there is decided by the
	// auth transport's own list (smart.NewTransport), not by this field.
	TrustedOrigins []string

	client  *http.Client
	profile *smart.Profile // SetProfile
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
}

// NewClient returns a Client for the FHIR base URL. The base must be absolute, without user info,
// query or fragment, and pass CONV-1 (https, or http on a loopback host; any other plain-http host is
// refused on every request unless InsecureAllowHTTP is set). A trailing slash is added.
//
// hc carries authentication, for example the client from smart.NewTransport, backend.Config.Client or
// oauth2.Config.Client; nil means an unauthenticated client with the CONV-2 timeouts. hc is copied,
// never modified; the copy refuses redirects that leave BaseURL's origin (and TrustedOrigins).
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("fhirclient: base URL: %w", errors.Join(httpx.ErrInsecureURL, err))
	}
	if err := httpx.CheckURL(u, true); err != nil {
		return nil, fmt.Errorf("fhirclient: base URL: %w", err)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("fhirclient: base URL %q must not have a query or fragment", httpx.Redact(baseURL))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	if hc == nil {
		hc = httpx.NewClient(0)
	}
	c := &Client{
		BaseURL: u,
		now:     time.Now,
		sleep:   sleepContext,
	}
	cp := *hc
	callerCheck := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := c.checkRedirect(req, via); err != nil {
			return err
		}
		if callerCheck != nil {
			return callerCheck(req, via)
		}
		return nil
	}
	c.client = &cp
	return c, nil
}

// checkRedirect allows at most 5 redirects, each to an allowed target (checkTarget).
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return &httpx.RedirectError{From: httpx.Origin(via[0].URL), To: httpx.Origin(req.URL), Reason: "too many redirects"}
	}
	if err := c.checkTarget(req.URL, "redirect"); err != nil {
		return err
	}
	return nil
}

// checkTarget applies CONV-1 to a URL about to be requested: the scheme and host policy, and an
// origin that is BaseURL's or trusted.
func (c *Client) checkTarget(u *url.URL, what string) error {
	if err := httpx.CheckURL(u, c.InsecureAllowHTTP); err != nil {
		return fmt.Errorf("fhirclient: %s: %w", what, err)
	}
	if c.BaseURL == nil {
		return errors.New("fhirclient: Client has no BaseURL; use NewClient")
	}
	if httpx.SameOrigin(u, c.BaseURL) {
		return nil
	}
	if len(c.TrustedOrigins) > 0 {
		trusted, err := httpx.NewOrigins(c.TrustedOrigins...)
		if err != nil {
			return fmt.Errorf("fhirclient: TrustedOrigins: %w", err)
		}
		if trusted.Allows(u) {
			return nil
		}
	}
	return &OriginError{What: what, Origin: httpx.Origin(u), Base: httpx.Origin(c.BaseURL)}
}

// NewRequest builds a request for urlStr, which is either relative to BaseURL ("Patient/123",
// "Observation?code=x", "" for the base itself) or an absolute URL on BaseURL's origin or a trusted
// one (a next link). A relative path may not start with "/" or contain "." or ".." segments or
// backslashes, so it cannot climb out of the base.
//
// body may be nil, []byte or json.RawMessage (sent as is), url.Values (sent as a form), or any value
// that encodes to JSON (a samply resource). Accept and Content-Type are application/fhir+json unless
// Client.Header says otherwise.
func (c *Client) NewRequest(ctx context.Context, method, urlStr string, body any) (*http.Request, error) {
	u, err := c.resolve(urlStr)
	if err != nil {
		return nil, err
	}
	var (
		rd          io.Reader
		contentType string
	)
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, contentType = strings.NewReader(b.Encode()), mediaTypeForm
	case json.RawMessage:
		rd, contentType = bytes.NewReader(b), MediaTypeFHIRJSON
	case []byte:
		rd, contentType = bytes.NewReader(b), MediaTypeFHIRJSON
	default:
		buf, err := marshal(body)
		if err != nil {
			return nil, fmt.Errorf("fhirclient: encoding request body: %w", err)
		}
		rd, contentType = bytes.NewReader(buf), MediaTypeFHIRJSON
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("fhirclient: %w", err)
	}
	req.Header.Set("Accept", MediaTypeFHIRJSON)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	ua := c.UserAgent
	if ua == "" {
		ua = defaultUserAgent
	}
	req.Header.Set("User-Agent", ua)
	for k, vs := range c.Header {
		k = http.CanonicalHeaderKey(k)
		if k == "Content-Type" && contentType != MediaTypeFHIRJSON {
			continue // a legacy FHIR media type replaces only the FHIR one, never a form's
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	return req, nil
}

// resolve turns urlStr into an absolute URL that checkTarget allows.
func (c *Client) resolve(urlStr string) (*url.URL, error) {
	if c.BaseURL == nil {
		return nil, errors.New("fhirclient: Client has no BaseURL; use NewClient")
	}
	if !strings.HasSuffix(c.BaseURL.Path, "/") {
		return nil, fmt.Errorf("fhirclient: BaseURL must have a trailing slash, but %q does not", c.BaseURL.Redacted())
	}
	ref, err := url.Parse(urlStr)
	if err != nil {
		return nil, fmt.Errorf("fhirclient: %w: %w", ErrInvalidPath, err)
	}
	if !ref.IsAbs() && ref.Host == "" {
		if err := checkRelativePath(ref); err != nil {
			return nil, err
		}
	}
	u := c.BaseURL.ResolveReference(ref) // an absolute ref (or "//host/…") keeps its own origin
	if err := c.checkTarget(u, "request URL"); err != nil {
		return nil, err
	}
	return u, nil
}

// checkRelativePath refuses paths that could climb out of the base URL (API-05).
func checkRelativePath(ref *url.URL) error {
	if strings.HasPrefix(ref.Path, "/") {
		return fmt.Errorf("%w: %q starts with a slash; paths are relative to BaseURL", ErrInvalidPath, ref.Path)
	}
	if strings.Contains(ref.Path, `\`) {
		return fmt.Errorf("%w: %q contains a backslash", ErrInvalidPath, ref.Path)
	}
	for seg := range strings.SplitSeq(ref.Path, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q contains a dot segment", ErrInvalidPath, ref.Path)
		}
	}
	return nil
}

// Do sends req, retrying as the Retry policy allows (CONV-3), and handles the response body:
//
//   - a non-2xx status returns an *Error (or a *RetryAfterError for a 429/503 that asks for too long a
//     wait or outlasts the retries);
//   - v == nil discards the body;
//   - an io.Writer v receives the body as it streams;
//   - a *json.RawMessage or *[]byte v receives the bytes exactly as sent (checked to be JSON);
//   - any other v is decoded from JSON. An empty body leaves v unchanged.
//
// The body is capped at MaxBodySize. The returned Response's Body is closed, except after an *Error,
// where it holds the (capped) error body.
//
// Do does not retry a 401: token refresh on 401 is the auth transport's job (smart.NewTransport
// invalidates the token and retries once). A 401 surfaces as an *Error matching ErrUnauthorized, with
// the WWW-Authenticate header in Error.Header.
func (c *Client) Do(req *http.Request, v any) (*Response, error) {
	return c.do(req, func(resp *Response) error { return c.decodeBody(resp.Body, "", false, v) })
}

// attempt sends one copy of req and passes a 2xx response to handle, all within one Timeout and
// before deadline, the end of the whole call (RetryPolicy.MaxElapsed, CONV-2).
func (c *Client) attempt(req *http.Request, handle func(*Response) error, deadline time.Time) (*Response, error) {
	ctx := req.Context()
	t := c.timeout() // negative: no limit per attempt
	if rem := deadline.Sub(c.now()); t < 0 || rem < t {
		t = max(rem, time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	r := req.Clone(ctx)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("fhirclient: %w", err)
		}
		r.Body = body
	}
	hr, err := c.client.Do(r)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error quotes the whole URL; the query may carry PHI.
			err = &url.Error{Op: ue.Op, URL: redactedURL(r), Err: ue.Err}
		}
		return nil, &transportError{err}
	}
	defer hr.Body.Close()
	resp := newResponse(hr)
	if err := CheckResponse(hr); err != nil {
		return resp, err
	}
	if err := handle(resp); err != nil {
		return resp, err
	}
	return resp, nil
}

var errEmptyBody = fmt.Errorf("%w: empty body", ErrMalformedResponse)

// transportError marks an error from the HTTP client (no response), which may be retried.
type transportError struct{ err error }

func (e *transportError) Error() string { return "fhirclient: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// decodeBody reads a 2xx body into v (see Do). When want is set, a body must be a resource of
// that type, whatever v is; an io.Writer v is streamed unchecked. With needBody, an empty body is an
// error (unless v is nil).
func (c *Client) decodeBody(body io.Reader, want string, needBody bool, v any) error {
	limit := c.maxBody()
	switch v := v.(type) {
	case nil:
		_, err := io.Copy(io.Discard, io.LimitReader(body, limit))
		return err
	case io.Writer:
		n, err := io.Copy(v, io.LimitReader(body, limit+1))
		if err != nil {
			return fmt.Errorf("fhirclient: reading response: %w", err)
		}
		if n > limit {
			return fmt.Errorf("fhirclient: %w (limit %d bytes)", httpx.ErrBodyTooLarge, limit)
		}
		if n == 0 && needBody {
			return errEmptyBody
		}
		return nil
	}
	b, err := httpx.ReadLimited(body, limit)
	if err != nil {
		return fmt.Errorf("fhirclient: reading response: %w", err)
	}
	if needBody && len(bytes.TrimSpace(b)) == 0 {
		return errEmptyBody
	}
	var raw *[]byte
	switch v := v.(type) {
	case *json.RawMessage:
		raw = (*[]byte)(v)
	case *[]byte:
		raw = v
	default:
		return decodeAs(b, want, v)
	}
	if len(b) == 0 {
		return nil
	}
	if !valid(b) {
		return malformed(b, errors.New("invalid JSON"))
	}
	if want != "" {
		if err := checkType(b, want); err != nil {
			return err
		}
	}
	*raw = b
	return nil
}

func (c *Client) maxBody() int64 {
	if c.MaxBodySize > 0 {
		return c.MaxBodySize
	}
	return DefaultMaxBodySize
}

func (c *Client) maxPages() int {
	if c.MaxPages > 0 {
		return c.MaxPages
	}
	return DefaultMaxPages
}

func (c *Client) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// sleepContext waits for d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
