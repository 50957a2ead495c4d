package httpx

import (
	"net"
	"net/http"
	"time"
)

// Default timeouts (CONV-2).
const (
	ConnectTimeout        = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
)

// NewTransport returns an *http.Transport with the CONV-2 timeouts. Certificates are always verified.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// NewClient returns an *http.Client on NewTransport with the given overall timeout (0 = none; use
// contexts) that refuses to follow redirects to another origin.
func NewClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: NewTransport(), Timeout: timeout, CheckRedirect: SameOriginRedirects}
}

// SameOriginRedirects is an http.Client CheckRedirect that follows at most 5 redirects, all within the
// origin of the first request, so that an Authorization header or form credential never reaches
// another origin (CONV-1: Go keeps Authorization on a redirect to the same host on another port).
func SameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return &RedirectError{From: Origin(via[0].URL), To: Origin(req.URL), Reason: "too many redirects"}
	}
	if !SameOrigin(req.URL, via[0].URL) {
		return &RedirectError{From: Origin(via[0].URL), To: Origin(req.URL), Reason: "redirect to another origin refused"}
	}
	return nil
}

// RedirectError reports a refused redirect. From and To are origins (never full URLs with queries).
type RedirectError struct{ From, To, Reason string }

func (e *RedirectError) Error() string { return e.Reason + ": " + e.From + " -> " + e.To }
