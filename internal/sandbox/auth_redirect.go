package sandbox

import (
	"net/url"
	"slices"
)

// redirectAllowed reports whether redirectURI is one of the registered URIs, compared exactly
// (RFC 9700 §4.1.3, SEC-05) — except that a registered loopback IP literal redirect
// (http://127.0.0.1/… or http://[::1]/…) matches any port, as RFC 8252 §7.3 requires for native
// apps such as `smartfhir login`, whose listener takes a free port. Scheme, host, path and query
// must still match exactly; "localhost" gets no such allowance (RFC 8252 §8.3).
func redirectAllowed(registered []string, redirectURI string) bool {
	if slices.Contains(registered, redirectURI) {
		return true
	}
	got, err := url.Parse(redirectURI)
	if err != nil || got.Scheme != "http" || !isLoopbackLiteral(got.Hostname()) {
		return false
	}
	for _, r := range registered {
		reg, err := url.Parse(r)
		if err != nil || reg.Scheme != "http" || !isLoopbackLiteral(reg.Hostname()) {
			continue
		}
		if reg.Hostname() == got.Hostname() && reg.EscapedPath() == got.EscapedPath() &&
			reg.RawQuery == got.RawQuery && reg.Fragment == "" && got.Fragment == "" && got.User == nil {
			return true
		}
	}
	return false
}

func isLoopbackLiteral(host string) bool { return host == "127.0.0.1" || host == "::1" }
