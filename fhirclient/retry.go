package fhirclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// RetryPolicy says when Do sends a request again (CONV-3). Its zero value is the default:
//
//   - 429 and 503: wait as Retry-After says (delta-seconds or HTTP-date); when it is absent or
//     implausible (negative, garbage, an epoch timestamp) back off 1 s, 2 s, 4 s with ±20 % jitter. A
//     single wait longer than MaxWait is not waited for: Do returns a *RetryAfterError saying when to
//     come back. These are retried for every method: the server did not act on the request.
//   - 500, 502 and 504 on an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE, POST …/_search):
//     one retry after about 1 s.
//   - Network errors (no response) on an idempotent request: retried with the same backoff.
//   - At most MaxTries tries per call, all within MaxElapsed; every wait ends early when the
//     request's context is done.
//
// A 401 is never retried here: the auth transport refreshes the token and retries once.
type RetryPolicy struct {
	MaxTries   int           // tries per call, the first included (default 3; 1 disables retries)
	MaxWait    time.Duration // longest single wait (default 120 s)
	MaxElapsed time.Duration // longest call, waits and tries included (default 150 s)
}

func (p RetryPolicy) maxTries() int {
	if p.MaxTries > 0 {
		return p.MaxTries
	}
	return 3
}

func (p RetryPolicy) maxWait() time.Duration {
	if p.MaxWait > 0 {
		return p.MaxWait
	}
	return httpx.MaxAPIWait
}

func (p RetryPolicy) maxElapsed() time.Duration {
	if p.MaxElapsed > 0 {
		return p.MaxElapsed
	}
	return 150 * time.Second
}

// do runs attempt until it succeeds or the policy says stop.
func (c *Client) do(req *http.Request, handle func(*Response) error) (*Response, error) {
	if c.client == nil {
		return nil, errors.New("fhirclient: Client not built with NewClient")
	}
	ctx := req.Context()
	start := c.now()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	serverRetried := false
	for try := 1; ; try++ {
		resp, err := c.attempt(req, handle, start.Add(c.Retry.maxElapsed()))
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return resp, fmt.Errorf("fhirclient: %s %s: %w", req.Method, redactedURL(req), context.Cause(ctx))
		}
		wait, retry, final := c.classify(req, err, try, replayable, &serverRetried)
		if retry && c.now().Sub(start)+wait > c.Retry.maxElapsed() {
			retry = false
		}
		if !retry {
			return resp, final
		}
		if err := c.sleep(ctx, wait); err != nil {
			return resp, fmt.Errorf("fhirclient: waiting to retry %s %s: %w", req.Method, redactedURL(req), err)
		}
	}
}

// classify decides whether err (from try number try) is retried, after how long, and otherwise
// which error the call returns.
func (c *Client) classify(req *http.Request, err error, try int, replayable bool, serverRetried *bool) (wait time.Duration, retry bool, final error) {
	triesLeft := replayable && try < c.Retry.maxTries()
	var te *transportError
	var fe *Error
	switch {
	case errors.As(err, &te):
		final = fmt.Errorf("fhirclient: %w", te.err) // a *url.Error: names the method and URL
		return httpx.Backoff(try, 0), triesLeft && idempotent(req) && retryableTransport(te.err), final
	case errors.As(err, &fe) && (fe.StatusCode == http.StatusTooManyRequests || fe.StatusCode == http.StatusServiceUnavailable):
		now := c.now()
		wait, ok := c.retryWait(fe, now)
		if !ok {
			wait = httpx.Backoff(try, 0)
		}
		rae := &RetryAfterError{Wait: wait, At: now.Add(wait), Err: fe}
		if wait > c.Retry.maxWait() {
			return 0, false, rae
		}
		return wait, triesLeft, rae
	case errors.As(err, &fe) && (fe.StatusCode == http.StatusInternalServerError ||
		fe.StatusCode == http.StatusBadGateway || fe.StatusCode == http.StatusGatewayTimeout):
		if triesLeft && idempotent(req) && !*serverRetried {
			*serverRetried = true
			return httpx.Backoff(1, 0), true, err
		}
	}
	return 0, false, err
}

// idempotent reports whether sending req twice has the effect of sending it once.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		return len(req.URL.Path) >= 8 && req.URL.Path[len(req.URL.Path)-8:] == "/_search"
	}
	return false
}

// retryableTransport reports whether a transport error may go away on its own. Refused redirects,
// URL policy errors and certificate failures will not.
func retryableTransport(err error) bool {
	var oe *OriginError
	var re *httpx.RedirectError
	var cve *tls.CertificateVerificationError
	return !errors.As(err, &oe) && !errors.As(err, &re) && !errors.As(err, &cve) &&
		!errors.Is(err, httpx.ErrInsecureURL)
}

// redactedURL is req's URL without its query (which may carry PHI), for error messages.
func redactedURL(req *http.Request) string { return stripQuery(req.URL) }
