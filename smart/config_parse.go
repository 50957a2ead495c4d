package smart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// ParseConfiguration parses a .well-known/smart-configuration document (or an OpenID Connect
// configuration) read from elsewhere, a cache for instance, as Discover would: relative endpoints
// are resolved against fhirBase and every endpoint must pass the https/loopback policy. Errors wrap
// ErrNotJSON, ErrInvalidDocument, ErrMissingTokenEndpoint or ErrInsecureURL.
func ParseConfiguration(doc []byte, fhirBase string) (*Configuration, error) {
	var d Discoverer
	return d.Parse(doc, fhirBase)
}

// Parse is ParseConfiguration with the Discoverer's InsecureAllowHTTP and clock.
func (d *Discoverer) Parse(doc []byte, fhirBase string) (*Configuration, error) {
	base, err := httpx.ParseAbsURL(fhirBase, d.InsecureAllowHTTP)
	if err != nil {
		return nil, fmt.Errorf("smart: configuration: FHIR base: %w", err)
	}
	cfg, err := parseConfiguration(doc, base, d.InsecureAllowHTTP)
	if err != nil {
		return nil, fmt.Errorf("smart: configuration: %w", err)
	}
	return d.done(cfg, fhirBase), nil
}

// parseConfiguration decodes a discovery document strictly where it matters (a single JSON object
// without duplicate members; token_endpoint a string; capabilities an array of strings) and
// leniently elsewhere: an optional member of the wrong type is dropped with a warning.
func parseConfiguration(body []byte, base *url.URL, allowHTTP bool) (*Configuration, error) {
	members, err := decodeObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	c := &Configuration{raw: bytes.Clone(body)}
	dec := memberDecoder{m: members, warn: &c.Warnings}

	if raw, ok := members["token_endpoint"]; ok && json.Unmarshal(raw, &c.TokenEndpoint) != nil {
		return nil, fmt.Errorf("%w: token_endpoint is not a string", ErrInvalidDocument)
	}
	if raw, ok := members["capabilities"]; !ok || string(raw) == "null" {
		c.Warnings = append(c.Warnings, "capabilities: missing (SMART requires it); treating as none")
	} else if json.Unmarshal(raw, &c.Capabilities) != nil {
		return nil, fmt.Errorf("%w: capabilities is not an array of strings", ErrInvalidDocument)
	}
	for _, m := range []struct {
		name string
		dst  any
	}{
		{"issuer", &c.Issuer}, {"jwks_uri", &c.JWKSURI}, {"authorization_endpoint", &c.AuthorizationEndpoint},
		{"grant_types_supported", &c.GrantTypesSupported},
		{"token_endpoint_auth_methods_supported", &c.TokenEndpointAuthMethodsSupported},
		{"token_endpoint_auth_signing_alg_values_supported", &c.TokenEndpointAuthSigningAlgValuesSupported},
		{"registration_endpoint", &c.RegistrationEndpoint}, {"scopes_supported", &c.ScopesSupported},
		{"response_types_supported", &c.ResponseTypesSupported}, {"management_endpoint", &c.ManagementEndpoint},
		{"introspection_endpoint", &c.IntrospectionEndpoint}, {"revocation_endpoint", &c.RevocationEndpoint},
		{"code_challenge_methods_supported", &c.CodeChallengeMethodsSupported},
		{"authorization_response_iss_parameter_supported", &c.AuthorizationResponseIssParameterSupported},
		{"associated_endpoints", &c.AssociatedEndpoints}, {"user_access_brand_bundle", &c.UserAccessBrandBundle},
		{"smart_app_state_endpoint", &c.SMARTAppStateEndpoint},
	} {
		dec.decode(m.name, m.dst)
	}
	if raw, ok := members["user_access_brand_identifier"]; ok {
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			c.UserAccessBrandIdentifier = raw
		} else {
			c.Warnings = append(c.Warnings, "user_access_brand_identifier: not an Identifier object; ignored")
		}
	}
	for _, name := range []string{"grant_types_supported", "code_challenge_methods_supported"} {
		if _, ok := members[name]; !ok {
			c.Warnings = append(c.Warnings, name+": missing (required since SMART 2.0; tolerated for v1 servers)")
		}
	}
	if err := c.resolveEndpoints(base, allowHTTP); err != nil {
		return nil, err
	}
	if c.Supports(CapSSOOpenIDConnect) {
		if err := c.RequireOpenID(); err != nil {
			c.Warnings = append(c.Warnings, "sso-openid-connect advertised but "+strings.TrimPrefix(err.Error(), "smart: ")+"; OpenID Connect is unusable")
		}
	}
	return c, nil
}

// memberDecoder decodes optional members, dropping a member of the wrong type with a warning.
type memberDecoder struct {
	m    map[string]json.RawMessage
	warn *[]string
}

func (d memberDecoder) decode(name string, dst any) {
	raw, ok := d.m[name]
	if !ok || string(raw) == "null" {
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		// Unmarshal may have filled part of dst: reset it through a fresh decode of null.
		_ = json.Unmarshal([]byte("null"), dst)
		*d.warn = append(*d.warn, name+": wrong type; ignored")
	}
}

// resolveEndpoints makes every endpoint absolute, resolving relative ones against the FHIR base
// (DISC-06), and applies the https/loopback policy. An endpoint that would receive a credential or
// drive the flow must pass or the configuration is refused; a purely informational one
// (management_endpoint, the brand bundle, associated endpoints) is dropped with a warning.
func (c *Configuration) resolveEndpoints(base *url.URL, allowHTTP bool) error {
	if c.TokenEndpoint == "" {
		return ErrMissingTokenEndpoint
	}
	dir := *base
	if !strings.HasSuffix(dir.Path, "/") {
		dir.Path += "/"
		if dir.RawPath != "" {
			dir.RawPath += "/"
		}
	}
	resolve := func(name string, p *string, required bool) error {
		if *p == "" {
			return nil
		}
		ref, err := url.Parse(*p)
		if err == nil && !ref.IsAbs() {
			c.Warnings = append(c.Warnings, name+": relative URL resolved against the FHIR base (SMART 2.1+ requires absolute URLs)")
			ref = dir.ResolveReference(ref)
		}
		if err == nil {
			err = httpx.CheckURL(ref, allowHTTP)
		}
		if err != nil {
			if required {
				return fmt.Errorf("%w: %s: %w", ErrInvalidDocument, name, err)
			}
			c.Warnings = append(c.Warnings, name+": "+sanitize(err.Error())+"; ignored")
			*p = ""
			return nil
		}
		*p = ref.String()
		return nil
	}
	for _, e := range []struct {
		name     string
		p        *string
		required bool
	}{
		{"token_endpoint", &c.TokenEndpoint, true},
		{"authorization_endpoint", &c.AuthorizationEndpoint, true},
		{"jwks_uri", &c.JWKSURI, true},
		{"registration_endpoint", &c.RegistrationEndpoint, true},
		{"introspection_endpoint", &c.IntrospectionEndpoint, true},
		{"revocation_endpoint", &c.RevocationEndpoint, true},
		{"smart_app_state_endpoint", &c.SMARTAppStateEndpoint, true},
		{"management_endpoint", &c.ManagementEndpoint, false},
		{"user_access_brand_bundle", &c.UserAccessBrandBundle, false},
	} {
		if err := resolve(e.name, e.p, e.required); err != nil {
			return err
		}
	}
	kept := c.AssociatedEndpoints[:0]
	for i := range c.AssociatedEndpoints {
		ae := c.AssociatedEndpoints[i]
		_ = resolve("associated_endpoints["+fmt.Sprint(i)+"].url", &ae.URL, false)
		if ae.URL != "" {
			kept = append(kept, ae)
		}
	}
	if len(kept) == 0 {
		kept = nil
	}
	c.AssociatedEndpoints = kept
	return nil
}
