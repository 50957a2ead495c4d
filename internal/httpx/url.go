package httpx

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrInsecureURL is returned (wrapped) for a URL whose scheme or host is refused by CONV-1.
var ErrInsecureURL = errors.New("insecure or forbidden URL")

// IsLoopbackHost reports whether host (without port) is a loopback name or address:
// localhost, 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// forbiddenHost reports hosts that must never be contacted: link-local (including the cloud metadata
// address 169.254.169.254), unspecified addresses and well-known metadata names.
func forbiddenHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	switch h {
	case "metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal":
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(h, "[]"))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip == netip.MustParseAddr("fd00:ec2::254")
}

// CheckURL applies CONV-1 to an absolute URL: https always; http only for loopback hosts unless
// allowHTTP; never file:, data:, ftp: or any other scheme; never link-local or metadata hosts; no
// user info (credentials in URLs leak into logs).
func CheckURL(u *url.URL, allowHTTP bool) error {
	if u == nil {
		return fmt.Errorf("%w: empty URL", ErrInsecureURL)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		if scheme == "" {
			return fmt.Errorf("%w: %q is not an absolute URL", ErrInsecureURL, Redact(u.String()))
		}
		return fmt.Errorf("%w: scheme %q is not allowed", ErrInsecureURL, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: %q has no host", ErrInsecureURL, Redact(u.String()))
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL with user info", ErrInsecureURL)
	}
	host := u.Hostname()
	if forbiddenHost(host) {
		return fmt.Errorf("%w: host %q is link-local or a metadata service", ErrInsecureURL, host)
	}
	if scheme == "http" && !allowHTTP && !IsLoopbackHost(host) {
		return fmt.Errorf("%w: plain http to %s (only loopback may use http; opt in with InsecureAllowHTTP / --insecure-http)", ErrInsecureURL, Origin(u))
	}
	return nil
}

// ParseAbsURL parses s and applies CheckURL.
func ParseAbsURL(s string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInsecureURL, err)
	}
	if err := CheckURL(u, allowHTTP); err != nil {
		return nil, err
	}
	return u, nil
}

// Origin returns the RFC 6454 origin of u: lower-case scheme and host, and the port made explicit
// (443 for https, 80 for http), e.g. "https://ehr.example.org:443".
func Origin(u *url.URL) string {
	if u == nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// SameOrigin reports whether a and b share scheme, host and port.
func SameOrigin(a, b *url.URL) bool { return a != nil && b != nil && Origin(a) == Origin(b) }

// Origins is a set of origins allowed to receive a credential (CONV-1). The zero value allows nothing.
type Origins struct{ set map[string]bool }

// NewOrigins builds a set from URLs or bare origins ("https://h", "https://h:8443/any/path").
// Unparseable entries are reported.
func NewOrigins(urls ...string) (Origins, error) {
	o := Origins{set: map[string]bool{}}
	for _, s := range urls {
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return Origins{}, fmt.Errorf("httpx: trusted origin %q is not an absolute URL", s)
		}
		o.set[Origin(u)] = true
	}
	return o, nil
}

// Add adds the origin of u.
func (o *Origins) Add(u *url.URL) {
	if o.set == nil {
		o.set = map[string]bool{}
	}
	o.set[Origin(u)] = true
}

// Allows reports whether u's origin is in the set.
func (o Origins) Allows(u *url.URL) bool { return u != nil && o.set[Origin(u)] }

// List returns the origins, for error messages.
func (o Origins) List() []string {
	out := make([]string, 0, len(o.set))
	for k := range o.set {
		out = append(out, k)
	}
	return out
}
