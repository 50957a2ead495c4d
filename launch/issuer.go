package launch

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// issuerPolicy is the compiled allow-list (LAUNCH-02, SEC-03). It never touches the network.
type issuerPolicy struct {
	allowed   map[string]bool           // normalised issuer -> allowed
	settings  map[string]IssuerSettings // normalised issuer -> settings
	allowHTTP bool
}

func newIssuerPolicy(c *Config) (*issuerPolicy, error) {
	p := &issuerPolicy{allowed: map[string]bool{}, settings: map[string]IssuerSettings{}, allowHTTP: c.InsecureAllowHTTP}
	for _, s := range c.AllowedIssuers {
		n, err := normalizeIssuer(s, c.InsecureAllowHTTP)
		if err != nil {
			return nil, fmt.Errorf("%w: AllowedIssuers: %w", ErrConfig, err)
		}
		p.allowed[n] = true
	}
	for s, set := range c.Issuers {
		n, err := normalizeIssuer(s, c.InsecureAllowHTTP)
		if err != nil {
			return nil, fmt.Errorf("%w: Issuers: %w", ErrConfig, err)
		}
		if !p.allowed[n] {
			return nil, configErr("Issuers has settings for %q, which is not in AllowedIssuers", s)
		}
		for k := range set.Header {
			if httpx.IsSensitive(k) {
				return nil, configErr("Issuers[%q].Header must not carry credentials (%s)", s, k)
			}
		}
		if set.Profile != nil {
			if err := set.Profile.Validate(); err != nil {
				return nil, configErr("Issuers[%q].Profile: %v", s, err)
			}
		}
		p.settings[n] = set
	}
	return p, nil
}

// check returns the normalised form of iss when it is allowed, else an error wrapping
// ErrIssuerNotAllowed. It is pure: no DNS, no HTTP.
func (p *issuerPolicy) check(iss string) (string, error) {
	n, err := normalizeIssuer(iss, p.allowHTTP)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrIssuerNotAllowed, err)
	}
	if !p.allowed[n] {
		return "", fmt.Errorf("%w: %s", ErrIssuerNotAllowed, quote(httpx.Redact(iss)))
	}
	return n, nil
}

// normalizeIssuer returns the comparison key of a FHIR base URL: lower-case scheme and host, no
// default port, no trailing slash. The path keeps its case. Query, fragment and user info are refused,
// and so is any URL that CONV-1 forbids.
func normalizeIssuer(s string, allowHTTP bool) (string, error) {
	if len(s) > 2048 {
		return "", fmt.Errorf("issuer URL too long")
	}
	u, err := httpx.ParseAbsURL(s, allowHTTP)
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "#") {
		return "", fmt.Errorf("issuer URL %q has a query or fragment", quote(httpx.Redact(s)))
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443" || scheme == "http" && port == "80") {
		host += ":" + port
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// audience returns the aud value for iss under mode.
func audience(iss string, mode AudienceMode) string {
	switch mode {
	case AudienceTrimmed:
		return strings.TrimRight(iss, "/")
	case AudienceOmitted:
		return ""
	default:
		return iss
	}
}

// fhirBaseURL parses the FHIR base (the iss as received) for building FHIR URLs.
func fhirBaseURL(iss string) (*url.URL, error) {
	u, err := url.Parse(iss)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u, nil
}
