package httpx

import (
	"fmt"
	"net"
	"net/http"
	"syscall"
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
		DialContext:           (&net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second, Control: refuseForbiddenAddr}).DialContext,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// refuseForbiddenAddr is a net.Dialer Control function: it refuses to connect to a link-local,
// unspecified or multicast address after DNS resolution, so that a host name that resolves to the
// cloud metadata service (169.254.169.254, fd00:ec2::254) is refused like the literal address
// (CONV-1). CheckURL only sees the name as written.
func refuseForbiddenAddr(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	if forbiddenHost(host) {
		return fmt.Errorf("%w: %s resolves to a link-local or metadata address", ErrInsecureURL, host)
	}
	return nil
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
