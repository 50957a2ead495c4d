package smart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// DefaultDiscoveryTimeout bounds a whole Discover call, fallbacks included, when the Discoverer sets
// no Timeout (DISC-14).
const DefaultDiscoveryTimeout = 30 * time.Second

// MaxCapabilityStatementBytes bounds the CapabilityStatement read by the fallback: real ones run to
// megabytes (every resource and search parameter), unlike a discovery document.
const MaxCapabilityStatementBytes = 16 << 20

// Discovery errors. Transport and status failures are *DiscoveryError; the sentinels below are
// wrapped inside it (or inside a parse error) and match with errors.Is.
var (
	// ErrNotJSON: the document is not a JSON object (an HTML login page, truncated JSON, an array).
	ErrNotJSON = errors.New("not a JSON object")
	// ErrInvalidDocument: a member has the wrong type or an endpoint URL is unusable.
	ErrInvalidDocument = errors.New("invalid discovery document")
	// ErrMissingTokenEndpoint: the document (or the CapabilityStatement's oauth-uris) has no token
	// endpoint (DISC-03, DISC-12).
	ErrMissingTokenEndpoint = errors.New("no token_endpoint")
	// ErrHTTPStatus: the server answered with a status other than 2xx.
	ErrHTTPStatus = errors.New("unexpected HTTP status")
	// ErrRedirectRefused: the server redirected to another origin, or too often (DISC-14).
	ErrRedirectRefused = errors.New("redirect refused")
	// ErrBodyTooLarge: the body exceeded its limit (DISC-14).
	ErrBodyTooLarge = httpx.ErrBodyTooLarge
	// ErrInsecureURL: a URL breaks the https/loopback policy (CONV-1, DISC-06).
	ErrInsecureURL = httpx.ErrInsecureURL
)

// DiscoveryError reports a failed fetch of a discovery document. URL has sensitive query values
// redacted; StatusCode is 0 when no response arrived.
type DiscoveryError struct {
	URL        string
	StatusCode int
	Err        error
}

// Error names the URL, the status when there was one, and the cause.
func (e *DiscoveryError) Error() string {
	msg := "smart: discovery " + e.URL
	if e.StatusCode != 0 {
		msg += ": HTTP " + strconv.Itoa(e.StatusCode)
	}
	return msg + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *DiscoveryError) Unwrap() error { return e.Err }

// Fallback is a discovery source tried when .well-known/smart-configuration is missing (a 4xx) or
// unusable.
type Fallback uint8

// Fallbacks.
const (
	// FallbackCapabilityStatement reads the oauth-uris extension of GET {base}/metadata (DISC-12).
	FallbackCapabilityStatement Fallback = iota + 1
	// FallbackOpenIDConfiguration reads {base}/.well-known/openid-configuration (MEDITECH).
	FallbackOpenIDConfiguration
)

// Discoverer fetches SMART configurations. The zero value is ready to use; its fields tune it.
type Discoverer struct {
	// HTTPClient makes the requests; nil means one with the CONV-2 timeouts. It is copied, never
	// changed; the copy refuses redirects to another origin whatever the client's CheckRedirect.
	HTTPClient *http.Client
	// Header is added to every request, for vendor headers such as Epic-Client-ID (DISC-14). An
	// Accept header here replaces the default one.
	Header http.Header
	// InsecureAllowHTTP allows plain http to hosts other than loopback. Safe only for tests and
	// private networks you control (CONV-1).
	InsecureAllowHTTP bool
	// MaxBodyBytes bounds a discovery document; 0 means 1 MiB (CONV-2).
	MaxBodyBytes int64
	// Timeout bounds the whole call; 0 means DefaultDiscoveryTimeout.
	Timeout time.Duration
	// Now is the clock for FetchedAt; nil means time.Now.
	Now func() time.Time
	// Fallbacks are tried in order when .well-known/smart-configuration answers 4xx or is unusable.
	// nil means []Fallback{FallbackCapabilityStatement}; an empty non-nil slice means none.
	Fallbacks []Fallback
}

// Discover fetches the SMART configuration of fhirBase with a default Discoverer using hc (nil for
// the default client). See Discoverer.Discover.
func Discover(ctx context.Context, hc *http.Client, fhirBase string) (*Configuration, error) {
	d := Discoverer{HTTPClient: hc}
	return d.Discover(ctx, fhirBase)
}

// Discover fetches {fhirBase}/.well-known/smart-configuration (SMART conformance, "Using
// Well-Known"):
//   - the path of the base is kept and no double slash is produced (DISC-01);
//   - Accept: application/json is sent; application/json with or without parameters is accepted and
//     anything else (an HTML login page) is ErrNotJSON (DISC-02);
//   - the body is capped (ErrBodyTooLarge), redirects to another origin are refused
//     (ErrRedirectRefused), and the call is bounded by ctx and Timeout (DISC-14);
//   - relative endpoint URLs are resolved against the base and every endpoint must then pass the
//     https/loopback policy (DISC-06);
//   - on a 4xx or an unusable document the Fallbacks are tried (DISC-12).
//
// The result is not yet trusted for credentials: check its endpoints with CheckEndpointOrigins
// (DISC-07), and with RequireLaunch, RequireBackend or RequireOpenID for the flow at hand.
func (d *Discoverer) Discover(ctx context.Context, fhirBase string) (*Configuration, error) {
	base, ctx, hc, done, err := d.start(ctx, fhirBase, "discovery")
	if err != nil {
		return nil, err
	}
	defer done()

	cfg, err := d.fetchDocument(ctx, hc, base, wellKnownPath, false)
	if err == nil {
		return d.done(cfg, fhirBase), nil
	}
	errs := []error{err}
	fallbacks := d.Fallbacks
	if fallbacks == nil {
		fallbacks = []Fallback{FallbackCapabilityStatement}
	}
	for _, fb := range fallbacks {
		if !canFallBack(errs[len(errs)-1]) {
			break
		}
		switch fb {
		case FallbackCapabilityStatement:
			cfg, err = d.fetchCapabilityStatement(ctx, hc, base)
		case FallbackOpenIDConfiguration:
			cfg, err = d.fetchDocument(ctx, hc, base, openIDPath, true)
		default:
			continue
		}
		if err == nil {
			cfg.Warnings = append(cfg.Warnings, "discovery: "+wellKnownPath+" unusable ("+sanitize(errs[0].Error())+"); used "+cfg.DocumentURL)
			return d.done(cfg, fhirBase), nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// start begins a call for fhirBase: the parsed base (CONV-1, no query or fragment), ctx bounded by
// Timeout, the HTTP client, and done, which the caller defers. what names the call in errors.
func (d *Discoverer) start(ctx context.Context, fhirBase, what string) (*url.URL, context.Context, *http.Client, func(), error) {
	base, err := httpx.ParseAbsURL(fhirBase, d.InsecureAllowHTTP)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("smart: %s: FHIR base: %w", what, err)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.Opaque != "" {
		return nil, nil, nil, nil, fmt.Errorf("smart: %s: FHIR base %q: %w: a base URL has no query or fragment", what, httpx.Redact(fhirBase), ErrInsecureURL)
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultDiscoveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	hc := d.client()
	done := func() {
		cancel()
		if d.HTTPClient == nil {
			hc.CloseIdleConnections()
		}
	}
	return base, ctx, hc, done, nil
}

const (
	wellKnownPath = ".well-known/smart-configuration"
	openIDPath    = ".well-known/openid-configuration"
)

func (d *Discoverer) done(cfg *Configuration, fhirBase string) *Configuration {
	cfg.FHIRBase = fhirBase
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	cfg.FetchedAt = now()
	return cfg
}

// canFallBack reports whether err means "no usable document here" rather than a transport,
// security or size failure that must stop discovery.
func canFallBack(err error) bool {
	var de *DiscoveryError
	if errors.As(err, &de) && de.StatusCode >= 400 && de.StatusCode < 500 {
		return true
	}
	return errors.Is(err, ErrNotJSON) || errors.Is(err, ErrInvalidDocument) || errors.Is(err, ErrMissingTokenEndpoint)
}

// client returns a copy of the HTTP client that never follows a redirect to another origin.
func (d *Discoverer) client() *http.Client {
	if d.HTTPClient == nil {
		return httpx.NewClient(0)
	}
	c := *d.HTTPClient
	prev := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := httpx.SameOriginRedirects(req, via); err != nil {
			return err
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &c
}

// wellKnownURL returns base + "/" + rel, keeping the base path and never doubling a slash (DISC-01).
func wellKnownURL(base *url.URL, rel string) *url.URL {
	u := *base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + rel
	if u.RawPath != "" {
		u.RawPath = strings.TrimRight(u.RawPath, "/") + "/" + rel
	}
	return &u
}

// fetchDocument GETs a discovery document (SMART or OpenID Connect) below base and parses it.
func (d *Discoverer) fetchDocument(ctx context.Context, hc *http.Client, base *url.URL, rel string, legacy bool) (*Configuration, error) {
	u := wellKnownURL(base, rel)
	limit := d.MaxBodyBytes
	if limit <= 0 {
		limit = httpx.MaxSmallBody
	}
	resp, err := d.get(ctx, hc, u, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, limit)
	if err != nil {
		return nil, d.errorf(u, resp.StatusCode, err)
	}
	if err := checkJSONMediaType(resp.Header.Get("Content-Type"), body); err != nil {
		return nil, d.errorf(u, resp.StatusCode, err)
	}
	cfg, err := parseConfiguration(body, base, d.InsecureAllowHTTP)
	if err != nil {
		return nil, d.errorf(u, resp.StatusCode, err)
	}
	cfg.DocumentURL = u.String()
	cfg.Legacy = legacy
	return cfg, nil
}

// get sends one GET and returns a 2xx response (body open) or a *DiscoveryError.
func (d *Discoverer) get(ctx context.Context, hc *http.Client, u *url.URL, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, d.errorf(u, 0, err)
	}
	for k, vs := range d.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var re *httpx.RedirectError
		if errors.As(err, &re) {
			return nil, d.errorf(u, 0, fmt.Errorf("%w: %w", ErrRedirectRefused, re))
		}
		return nil, d.errorf(u, 0, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil, d.errorf(u, resp.StatusCode, ErrHTTPStatus)
	}
	return resp, nil
}

func (d *Discoverer) errorf(u *url.URL, status int, err error) error {
	return &DiscoveryError{URL: httpx.Redact(u.String()), StatusCode: status, Err: err}
}

// checkJSONMediaType accepts application/json with any parameters, any +json type and the DSTU2
// application/json+fhir; a missing Content-Type is accepted when the body looks like an object.
func checkJSONMediaType(ct string, body []byte) error {
	if ct == "" {
		if s := strings.TrimLeft(string(body[:min(len(body), 64)]), " \t\r\n"); strings.HasPrefix(s, "{") {
			return nil
		}
		return fmt.Errorf("%w: no Content-Type and the body is not a JSON object", ErrNotJSON)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "text/json" || mt == "application/json+fhir" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return fmt.Errorf("%w: Content-Type %q", ErrNotJSON, sanitize(ct))
}
