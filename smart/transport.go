package smart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// ErrInvalidAccessToken is wrapped when a token source hands the Transport a token that cannot be put
// in an Authorization header (not a bearer token, or characters outside RFC 6750 b64token).
var ErrInvalidAccessToken = errors.New("access token unusable in an Authorization header")

// Invalidator is implemented by token sources that can drop a token the resource server refused.
type Invalidator interface {
	Invalidate(*oauth2.Token)
}

// ContextTokenSource is implemented by token sources whose fetch can be bounded by a per-call
// context. Transport prefers it to Token, so a request's context also bounds its token fetch.
type ContextTokenSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// Transport is an http.RoundTripper that adds "Authorization: Bearer" to requests whose origin
// (scheme, host and port) is trusted, and only to those (CONV-1, API-02, BS-09):
//   - the check runs on every hop, because http.Client calls RoundTrip again for each redirect: a
//     redirect to another origin, even the same host on another port, leaves without the token;
//   - a token with characters outside RFC 6750 b64token, or not a bearer token, is refused before
//     it reaches a header (CONV-4);
//   - the caller's request is never modified;
//   - a 401 to a request that carried a token invalidates it (when the source is an Invalidator),
//     so that no later request reuses it, and, if the body can be replayed, fetches a new one and
//     retries once; a second 401, or the 401 to a request with a one-shot body, is returned as is,
//     with the server's WWW-Authenticate header for the caller to report (CONV-3).
//
// Plain http is allowed only to loopback hosts unless the Transport was built with
// TransportOptions.InsecureAllowHTTP (CONV-1): a non-loopback http trusted origin is refused by the
// constructor, and a request to a non-loopback http URL, trusted or not (a redirect included), fails
// with an error wrapping httpx.ErrInsecureURL before anything is sent.
type Transport struct {
	src       oauth2.TokenSource
	base      http.RoundTripper
	trusted   httpx.Origins
	allowHTTP bool
}

var _ http.RoundTripper = (*Transport)(nil)

// TransportOptions configures NewTransportWithOptions; its zero value (plus trusted origins) is what
// NewTransport builds.
type TransportOptions struct {
	// Base carries the requests; nil means a transport with the CONV-2 timeouts.
	Base http.RoundTripper
	// TrustedOrigins are the origins the token is sent to ("https://ehr.example", or any URL, whose
	// path is ignored). At least one is required.
	TrustedOrigins []string
	// InsecureAllowHTTP allows plain http to hosts other than loopback, as trusted origins and as
	// request URLs. The bearer token then crosses the network in clear text: for test rigs only,
	// never in production (CONV-1).
	InsecureAllowHTTP bool
}

// NewTransport returns a Transport sending tokens from src to trustedOrigins ("https://ehr.example",
// or any URL, whose path is ignored) over base (nil: a transport with the CONV-2 timeouts). A plain
// http origin must be loopback; use NewTransportWithOptions and InsecureAllowHTTP for any other.
func NewTransport(src oauth2.TokenSource, base http.RoundTripper, trustedOrigins ...string) (*Transport, error) {
	return NewTransportWithOptions(src, TransportOptions{Base: base, TrustedOrigins: trustedOrigins})
}

// NewTransportWithOptions returns a Transport sending tokens from src as configured by o.
func NewTransportWithOptions(src oauth2.TokenSource, o TransportOptions) (*Transport, error) {
	if src == nil {
		return nil, errors.New("smart: transport: nil token source")
	}
	trusted, err := httpx.NewOrigins(o.TrustedOrigins...)
	if err != nil {
		return nil, fmt.Errorf("smart: transport: %w", err)
	}
	if len(trusted.List()) == 0 {
		return nil, errors.New("smart: transport: no trusted origin to send the token to")
	}
	for _, s := range o.TrustedOrigins {
		if u, _ := url.Parse(s); u != nil { // NewOrigins parsed every non-empty entry
			if err := checkHTTP(u, o.InsecureAllowHTTP); err != nil {
				return nil, fmt.Errorf("smart: transport: trusted origin: %w", err)
			}
		}
	}
	base := o.Base
	if base == nil {
		base = httpx.NewTransport()
	}
	return &Transport{src: src, base: base, trusted: trusted, allowHTTP: o.InsecureAllowHTTP}, nil
}

// checkHTTP refuses plain http to a host other than loopback unless allowHTTP (CONV-1).
func checkHTTP(u *url.URL, allowHTTP bool) error {
	if allowHTTP || !strings.EqualFold(u.Scheme, "http") || httpx.IsLoopbackHost(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w: plain http to %s (only loopback may use http without InsecureAllowHTTP)",
		httpx.ErrInsecureURL, httpx.Origin(u))
}

// NewClient returns an *http.Client whose Transport is NewTransport(src, nil, trustedOrigins...).
// It follows redirects like http.DefaultClient; the token only travels on hops to trusted origins.
// Plain http is for loopback only; build the client from NewTransportWithOptions to opt out.
func NewClient(src oauth2.TokenSource, trustedOrigins ...string) (*http.Client, error) {
	t, err := NewTransport(src, nil, trustedOrigins...)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t}, nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("smart: transport: request without a URL")
	}
	if err := checkHTTP(req.URL, t.allowHTTP); err != nil {
		closeBody(req)
		return nil, fmt.Errorf("smart: transport: %w", err)
	}
	if !t.trusted.Allows(req.URL) {
		return t.base.RoundTrip(req)
	}
	tok, err := t.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("smart: token for %s: %w", httpx.Origin(req.URL), err)
	}
	resp, err := t.base.RoundTrip(withToken(req, req.Body, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	inv, ok := t.src.(Invalidator)
	if !ok {
		return resp, nil
	}
	// The server refused tok: drop it even when this request cannot be replayed, or every later
	// request would be sent with it again until it expires.
	inv.Invalidate(tok)
	if !replayable(req) {
		return resp, nil
	}
	fresh, err := t.token(req.Context())
	if err != nil {
		discard(resp)
		return nil, fmt.Errorf("smart: new token for %s after a 401: %w", httpx.Origin(req.URL), err)
	}
	if fresh.AccessToken == tok.AccessToken {
		return resp, nil // the source has nothing better: report the 401
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	discard(resp)
	return t.base.RoundTrip(withToken(req, body, fresh))
}

// CloseIdleConnections closes idle connections of the base transport when it supports it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// token gets a token from the source, bounded by ctx when the source allows it, and checks that it
// can go into a header.
func (t *Transport) token(ctx context.Context) (*oauth2.Token, error) {
	var tok *oauth2.Token
	var err error
	if cs, ok := t.src.(ContextTokenSource); ok {
		tok, err = cs.TokenContext(ctx)
	} else {
		tok, err = t.src.Token()
	}
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, ErrNoToken
	}
	if !strings.EqualFold(tok.Type(), "Bearer") || !ValidAccessToken(tok.AccessToken) {
		return nil, ErrInvalidAccessToken
	}
	return tok, nil
}

// withToken returns a copy of req with body and the bearer token; req itself is left untouched.
func withToken(req *http.Request, body io.ReadCloser, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return r
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// discard drains a little of resp's body, so the connection can be reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}
