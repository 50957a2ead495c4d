package bulk

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Defaults for the Client fields (CONV-2, CONV-3). A zero field means its default.
const (
	DefaultPollFloor           = time.Second      // shortest wait between two status polls
	DefaultPollCap             = time.Hour        // longest Retry-After honoured while polling
	DefaultBackoffCap          = time.Minute      // longest wait when the server gave no Retry-After
	DefaultKickoffWaitCap      = httpx.MaxAPIWait // longest kick-off 429 wait before giving up
	DefaultMaxKickoffRetries   = 5                // kick-off 429s ("an export is already running")
	DefaultMaxRateLimited      = 30               // consecutive 429s on status polls
	DefaultMaxTransient        = 10               // consecutive transient status errors
	DefaultMaxManifestBody     = 64 << 20         // one manifest page
	DefaultMaxManifestPages    = 10000            // link[next] pages followed
	DefaultMaxFiles            = 100000           // files in one export
	DefaultStallTimeout        = 60 * time.Second // download fails over after this long without a byte
	DefaultMaxDownloadRetries  = 5                // attempts per file without progress
	DefaultMaxCompressionRatio = 200              // decoded/compressed bytes of a gzip body
	DefaultMaxLine             = httpx.MaxNDJSONLine
	DefaultMaxBlock            = 256 << 20 // resources of one organised-output block held in memory
	DefaultMaxAttachment       = 1 << 30   // one attachment body
)

// Client talks to one FHIR server's Bulk Data endpoints. Build it with NewClient, then adjust its
// fields before first use; it is safe for concurrent use afterwards.
type Client struct {
	// BaseURL is the FHIR base, e.g. https://ehr.example.org/fhir/r4.
	BaseURL *url.URL
	// HTTPClient sends requests that carry the access token (kick-off, status, DELETE, manifest
	// pages, files with requiresAccessToken true). It is typically backend.Config.Client or an
	// oauth2 client. It is only ever used for the BaseURL origin and TrustedOrigins.
	HTTPClient *http.Client
	// PlainClient fetches files that must not carry the token (requiresAccessToken false,
	// pre-signed URLs) and files on foreign origins. It must not add credentials.
	PlainClient *http.Client
	// TrustedOrigins lists extra origins (URLs) allowed to receive the access token, e.g. a
	// separate file server of the same EHR (CONV-1 --trust-origin).
	TrustedOrigins []string
	// InsecureAllowHTTP allows plain http to non-loopback hosts. DANGER: the token travels in
	// clear text. Only for private test networks.
	InsecureAllowHTTP bool
	// UserAgent is sent on every request (default "smartfhir-bulk").
	UserAgent string

	// PollFloor and PollCap bound each status-poll wait taken from Retry-After (default 1 s and
	// 1 h: Oracle Health asks for five hours). BackoffCap bounds the exponential backoff used
	// when the server gives no usable Retry-After (default 1 min).
	PollFloor, PollCap, BackoffCap time.Duration
	// KickoffWaitCap is the longest kick-off 429 wait honoured (default 120 s); longer waits
	// return a *fhirclient.RetryAfterError saying when to come back.
	KickoffWaitCap time.Duration
	// MaxKickoffRetries, MaxRateLimited and MaxTransient bound kick-off 429 retries, consecutive
	// status 429s and consecutive transient status errors.
	MaxKickoffRetries, MaxRateLimited, MaxTransient int
	// MaxManifestBody, MaxManifestPages and MaxFiles bound the manifest (BULK-31).
	MaxManifestBody            int64
	MaxManifestPages, MaxFiles int

	// StallTimeout is how long a download may go without receiving a byte before it fails over
	// and resumes (default 60 s).
	StallTimeout time.Duration
	// MaxDownloadRetries bounds the attempts per file that make no progress (default 5).
	MaxDownloadRetries int
	// MaxCompressionRatio bounds decoded/compressed bytes of a gzip body (default 200).
	MaxCompressionRatio int64
	// MaxLine bounds one NDJSON line (default 64 MiB; a 5 MB Binary line is normal).
	MaxLine int64
	// MaxBlock bounds the bytes of one organised-output block, which Blocks holds in memory
	// (default 256 MiB).
	MaxBlock int64
	// MaxAttachment bounds one attachment body fetched by FetchAttachment (default 1 GiB).
	MaxAttachment int64
	// DisableCompression asks for files uncompressed (Accept-Encoding: identity) instead of gzip:
	// for fast local links where CPU, not bandwidth, is the bottleneck. gzip bodies are still
	// decoded if a server sends them anyway.
	DisableCompression bool

	// FileNotFoundRetries is how many times an output file that answers 404 is fetched again, with
	// backoff, before the export fails with ErrFileExpired: CMS BCDA's 404s can be transient
	// (bulk_fhir_tools client.go GetData). 0 means a 404 is final (BULK-24); a 410 always is.
	FileNotFoundRetries int

	// Now and Sleep replace the clock in tests. Sleep must return ctx.Err() when ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	profile *smart.Profile // SetProfile
}

// NewClient returns a Client for the FHIR base URL. hc carries the access token (nil: no
// authentication, for open servers). The base must be https, or http on a loopback host (CONV-1);
// plain http to another host parses, but every request refuses it unless InsecureAllowHTTP is set.
// file:, data:, link-local and metadata URLs are refused here.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := httpx.ParseAbsURL(baseURL, true)
	if err != nil {
		return nil, fmt.Errorf("bulk: FHIR base URL: %w", err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("bulk: FHIR base URL %q must not have a query or fragment", httpx.Redact(baseURL))
	}
	plain := httpx.NewClient(0)
	if hc == nil {
		hc = plain
	}
	return &Client{BaseURL: u, HTTPClient: hc, PlainClient: plain}, nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func intOr[T int | int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// sleep waits d or until ctx ends. Each call owns its timer and stops it before returning, so a
// polling loop never piles up timers (STYLE "no defer cancel in a loop").
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// base returns the FHIR base URL with a trailing slash, ready for ResolveReference.
func (c *Client) base() (*url.URL, error) {
	if c.BaseURL == nil {
		return nil, fmt.Errorf("bulk: Client.BaseURL is nil (use NewClient)")
	}
	if err := httpx.CheckURL(c.BaseURL, c.InsecureAllowHTTP); err != nil {
		return nil, fmt.Errorf("bulk: FHIR base URL: %w", err)
	}
	u := *c.BaseURL
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return &u, nil
}

// trusted reports whether u's origin may receive the access token: the FHIR base origin or one of
// TrustedOrigins.
func (c *Client) trusted(u *url.URL) bool {
	if c.BaseURL != nil && httpx.SameOrigin(u, c.BaseURL) {
		return true
	}
	for _, s := range c.TrustedOrigins {
		t, err := url.Parse(s)
		if err == nil && httpx.SameOrigin(u, t) {
			return true
		}
	}
	return false
}

// checkTokenURL applies CONV-1 to a URL that needs the access token (status, manifest page,
// DELETE, protected file): allowed scheme and host, and a trusted origin.
func (c *Client) checkTokenURL(u *url.URL, what string) error {
	if err := httpx.CheckURL(u, c.InsecureAllowHTTP); err != nil {
		return fmt.Errorf("bulk: %s URL: %w", what, err)
	}
	if !c.trusted(u) {
		return fmt.Errorf("%w: %s URL is on %s, not the FHIR server's origin %s (add it to TrustedOrigins / --trust-origin if it belongs to the server)",
			ErrUntrustedOrigin, what, httpx.Origin(u), httpx.Origin(c.BaseURL))
	}
	return nil
}

// resolveTokenURL resolves s (absolute, or relative to ref) and applies checkTokenURL.
func (c *Client) resolveTokenURL(ref *url.URL, s, what string) (*url.URL, error) {
	rel, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("bulk: %s URL: %w", what, err)
	}
	u := ref.ResolveReference(rel)
	if err := c.checkTokenURL(u, what); err != nil {
		return nil, err
	}
	return u, nil
}

// maxHops bounds redirects followed by one request.
const maxHops = 5

// errTooManyRedirects ends a request that was redirected more than maxHops times.
var errTooManyRedirects = fmt.Errorf("bulk: more than %d redirects", maxHops)

// do sends one request. With auth it uses HTTPClient, which the caller has checked may receive the
// token (checkTokenURL); redirects are followed only within trusted origins, and a redirect
// elsewhere is returned to the caller as a 3xx (see get). Without auth it uses PlainClient, and
// every redirect hop must pass CONV-1 (no link-local or metadata hosts, no file:).
func (c *Client) do(ctx context.Context, method string, u *url.URL, hdr http.Header, body io.Reader, auth bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.userAgent())
	resp, err := c.client(auth).Do(req)
	if err != nil {
		return nil, fmt.Errorf("bulk: %s %s: %w", method, redactURL(u), sanitized{err})
	}
	return resp, nil
}

// sanitized escapes control characters in a transport error's text: Go quotes a malformed header
// line, server bytes included, in its error.
type sanitized struct{ err error }

func (e sanitized) Error() string { return httpx.SanitizeText(e.err.Error()) }
func (e sanitized) Unwrap() error { return e.err }

func (c *Client) userAgent() string {
	if c.UserAgent != "" {
		return c.UserAgent
	}
	return "smartfhir-bulk"
}

// client returns a shallow copy of HTTPClient or PlainClient with our redirect policy; the
// caller's client is never modified.
func (c *Client) client(auth bool) *http.Client {
	var hc http.Client
	if auth && c.HTTPClient != nil {
		hc = *c.HTTPClient
	} else if !auth && c.PlainClient != nil {
		hc = *c.PlainClient
	}
	if auth {
		hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxHops {
				return errTooManyRedirects
			}
			if httpx.CheckURL(req.URL, c.InsecureAllowHTTP) != nil || !c.trusted(req.URL) {
				return http.ErrUseLastResponse // the caller decides; the token never follows
			}
			return nil
		}
	} else {
		hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxHops {
				return errTooManyRedirects
			}
			return httpx.CheckURL(req.URL, c.InsecureAllowHTTP)
		}
	}
	return &hc
}

// redactURL renders u for errors and logs without its query (pre-signed URLs carry signatures)
// or user info.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	v := *u
	v.RawQuery, v.Fragment, v.RawFragment, v.User = "", "", "", nil
	return v.String()
}

// redactURLString is redactURL for a string; unparseable input is replaced by a placeholder.
func redactURLString(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	return redactURL(u)
}

// readBody reads at most limit bytes of resp.Body and closes it.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	return httpx.ReadLimited(resp.Body, limit)
}

// drain discards a little of an unwanted body so the connection can be reused, then closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}
