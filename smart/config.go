package smart

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Configuration is a server's SMART configuration: the members of .well-known/smart-configuration
// (https://hl7.org/fhir/smart-app-launch/conformance.html#metadata, all of SMART 2.2 including the
// optional and deprecated ones, DISC-15), endpoint URLs resolved to absolute ones. Discover fills it;
// for a server without discovery, build a literal. Marshalled to JSON it is the discovery document.
type Configuration struct {
	// Issuer is the OpenID Connect issuer; required with sso-openid-connect (DISC-11).
	Issuer string `json:"issuer,omitempty"`
	// JWKSURI is the server's JSON Web Key Set; required with sso-openid-connect (DISC-11).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// AuthorizationEndpoint is required for a user-facing launch only (DISC-03).
	AuthorizationEndpoint string `json:"authorization_endpoint,omitempty"`
	// TokenEndpoint is always required.
	TokenEndpoint                              string   `json:"token_endpoint"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	// ScopesSupported is a hint, never exhaustive (DISC-13).
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported []string `json:"response_types_supported,omitempty"`
	ManagementEndpoint     string   `json:"management_endpoint,omitempty"`
	IntrospectionEndpoint  string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint     string   `json:"revocation_endpoint,omitempty"`
	// Capabilities lists the SMART capabilities as sent, unknown ones included (DISC-08).
	Capabilities                  []string `json:"capabilities"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported,omitempty"`
	// AuthorizationResponseIssParameterSupported is RFC 9207's flag: the callback then carries iss.
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// AssociatedEndpoints (deprecated in 2.2) lists other endpoints sharing this authorization server.
	AssociatedEndpoints []AssociatedEndpoint `json:"associated_endpoints,omitempty"`
	// UserAccessBrandBundle is the URL of a user-access brands Bundle.
	UserAccessBrandBundle string `json:"user_access_brand_bundle,omitempty"`
	// UserAccessBrandIdentifier is the FHIR Identifier of this server's brand, raw.
	UserAccessBrandIdentifier json.RawMessage `json:"user_access_brand_identifier,omitempty"`
	// SMARTAppStateEndpoint is the experimental (deprecated in 2.2) app-state endpoint.
	SMARTAppStateEndpoint string `json:"smart_app_state_endpoint,omitempty"`

	// FHIRBase is the FHIR base URL the configuration was discovered for, as given.
	FHIRBase string `json:"-"`
	// DocumentURL is the URL the configuration was read from.
	DocumentURL string `json:"-"`
	// Legacy is true when the configuration came from a fallback (a FHIR CapabilityStatement or an
	// OpenID Connect configuration), which lists no SMART capabilities (DISC-12).
	Legacy bool `json:"-"`
	// FetchedAt is when the document was read, for callers that cache it (DISC-14).
	FetchedAt time.Time `json:"-"`
	// Warnings lists tolerated deviations (a relative endpoint, a missing required member of a v1
	// server, a member of the wrong type that was ignored), for logging and conformance reports.
	Warnings []string `json:"-"`

	raw json.RawMessage
}

// AssociatedEndpoint is one entry of associated_endpoints.
type AssociatedEndpoint struct {
	URL          string   `json:"url"`
	Capabilities []string `json:"capabilities"`
}

// Errors of the configuration checks, wrapped with details.
var (
	// ErrNoAuthorizationEndpoint: a launch needs authorization_endpoint (DISC-03).
	ErrNoAuthorizationEndpoint = errors.New("no authorization_endpoint")
	// ErrNoS256: code_challenge_methods_supported is present without S256 (DISC-04, DISC-05).
	ErrNoS256 = errors.New("PKCE S256 not supported")
	// ErrGrantTypeNotSupported: grant_types_supported lacks the grant a flow needs.
	ErrGrantTypeNotSupported = errors.New("grant type not supported")
	// ErrAuthMethodNotSupported: no token endpoint auth method of the client is supported (DISC-10).
	ErrAuthMethodNotSupported = errors.New("token endpoint auth method not supported")
	// ErrSigningAlgNotSupported: no JWS algorithm of the client is supported (DISC-10, BS-01).
	ErrSigningAlgNotSupported = errors.New("signing algorithm not supported")
	// ErrOpenIDConfig: sso-openid-connect is advertised without issuer or jwks_uri (DISC-11).
	ErrOpenIDConfig = errors.New("incomplete OpenID Connect configuration")
	// ErrUntrustedEndpoint: an endpoint that would receive a credential is on an origin the caller
	// does not trust (DISC-07, AUTH-09).
	ErrUntrustedEndpoint = errors.New("endpoint on an untrusted origin")
)

// Token endpoint authentication methods (RFC 8414 §2, SMART conformance).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodPrivateKeyJWT     = "private_key_jwt"
)

// Claims decodes the raw discovery document into v, for vendor members this type does not model.
// A configuration built as a literal or from a CapabilityStatement has no document: v is left as is.
func (c *Configuration) Claims(v any) error {
	if len(c.raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.raw, v); err != nil {
		return fmt.Errorf("smart: configuration claims: %w", err)
	}
	return nil
}

// Endpoint returns the endpoints for an oauth2.Config. AuthStyle is always explicit, never
// auto-detected (auto-detection retries a failed code exchange, a replay): AuthStyleInHeader
// (client_secret_basic, SMART's symmetric profile) unless the server advertises
// client_secret_post and not client_secret_basic. Public clients, which send client_id in the
// body, set AuthStyleInParams themselves.
func (c *Configuration) Endpoint() oauth2.Endpoint {
	style := oauth2.AuthStyleInHeader
	if m := c.TokenEndpointAuthMethodsSupported; slices.Contains(m, AuthMethodClientSecretPost) && !slices.Contains(m, AuthMethodClientSecretBasic) {
		style = oauth2.AuthStyleInParams
	}
	return oauth2.Endpoint{AuthURL: c.AuthorizationEndpoint, TokenURL: c.TokenEndpoint, AuthStyle: style}
}

// RequireLaunch checks what a user-facing launch (EHR or standalone) needs: an authorization
// endpoint (DISC-03), and PKCE S256 when code_challenge_methods_supported is present; a server
// listing only plain is refused, while a v1 server (or athena) that omits the member is tolerated and
// S256 is sent anyway (DISC-04, DISC-05). Callers that must talk to a plain-only legacy server
// opt in by ignoring ErrNoS256 explicitly; plain is never sent either way.
func (c *Configuration) RequireLaunch() error {
	if c.AuthorizationEndpoint == "" {
		return fmt.Errorf("smart: %w (the server does not support a user-facing launch)", ErrNoAuthorizationEndpoint)
	}
	if m := c.CodeChallengeMethodsSupported; len(m) > 0 && !slices.Contains(m, "S256") {
		return fmt.Errorf("smart: %w: code_challenge_methods_supported is %q; plain is never used", ErrNoS256, sanitize(strings.Join(m, " ")))
	}
	if m := c.GrantTypesSupported; len(m) > 0 && !slices.Contains(m, "authorization_code") {
		return fmt.Errorf("smart: %w: authorization_code is not in grant_types_supported", ErrGrantTypeNotSupported)
	}
	return nil
}

// RequireBackend checks what SMART Backend Services needs (BS-01): lists the server advertises
// must include client_credentials, private_key_jwt and RS384 or ES384. Absent lists are tolerated,
// because servers rarely advertise them completely. authorization_endpoint is not needed.
func (c *Configuration) RequireBackend() error {
	if c.TokenEndpoint == "" {
		return fmt.Errorf("smart: %w", ErrMissingTokenEndpoint)
	}
	if m := c.GrantTypesSupported; len(m) > 0 && !slices.Contains(m, "client_credentials") {
		return fmt.Errorf("smart: %w: client_credentials is not in grant_types_supported", ErrGrantTypeNotSupported)
	}
	if _, err := c.PickAuthMethod(AuthMethodPrivateKeyJWT); err != nil {
		return err
	}
	_, err := c.PickSigningAlg("ES384", "RS384")
	return err
}

// RequireOpenID checks that a server advertising sso-openid-connect names its issuer and JWKS, which
// id_token validation needs (DISC-11). Without them the OpenID Connect flow must not be used.
func (c *Configuration) RequireOpenID() error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("smart: %w: issuer is missing", ErrOpenIDConfig)
	case c.JWKSURI == "":
		return fmt.Errorf("smart: %w: jwks_uri is missing", ErrOpenIDConfig)
	}
	return nil
}

// PickAuthMethod returns the first of the client's methods, in its order of preference, that the
// server supports (DISC-10). Without token_endpoint_auth_methods_supported the server is taken to
// support client_secret_basic (RFC 8414 §2), and private_key_jwt and none too, because servers
// under-advertise. A client that offers private_key_jwt is never downgraded to a secret: if the
// server does not support it, the result is ErrAuthMethodNotSupported.
func (c *Configuration) PickAuthMethod(clientMethods ...string) (string, error) {
	adv := c.TokenEndpointAuthMethodsSupported
	supported := func(m string) bool {
		if len(adv) == 0 {
			return m == AuthMethodClientSecretBasic || m == AuthMethodPrivateKeyJWT || m == AuthMethodNone
		}
		return slices.Contains(adv, m) || m == AuthMethodNone
	}
	if slices.Contains(clientMethods, AuthMethodPrivateKeyJWT) {
		if supported(AuthMethodPrivateKeyJWT) {
			return AuthMethodPrivateKeyJWT, nil
		}
		return "", fmt.Errorf("smart: %w: private_key_jwt is not in token_endpoint_auth_methods_supported %q (no downgrade to a secret)",
			ErrAuthMethodNotSupported, sanitize(strings.Join(adv, " ")))
	}
	for _, m := range clientMethods {
		if supported(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("smart: %w: none of %q is in token_endpoint_auth_methods_supported %q",
		ErrAuthMethodNotSupported, strings.Join(clientMethods, " "), sanitize(strings.Join(adv, " ")))
}

// PickSigningAlg returns the first of the client's JWS algorithms (e.g. "ES384", "RS384") that
// token_endpoint_auth_signing_alg_values_supported lists, or the first one when the server lists
// none (DISC-10, BS-01).
func (c *Configuration) PickSigningAlg(clientAlgs ...string) (string, error) {
	adv := c.TokenEndpointAuthSigningAlgValuesSupported
	for _, a := range clientAlgs {
		if len(adv) == 0 || slices.Contains(adv, a) {
			return a, nil
		}
	}
	return "", fmt.Errorf("smart: %w: none of %q is in token_endpoint_auth_signing_alg_values_supported %q",
		ErrSigningAlgNotSupported, strings.Join(clientAlgs, " "), sanitize(strings.Join(adv, " ")))
}

// TokenEndpointOrigin returns the origin (scheme, host and port) of the token endpoint, the one
// origin besides the FHIR base's that may receive a credential (CONV-1, DISC-07).
func (c *Configuration) TokenEndpointOrigin() string {
	u, err := url.Parse(c.TokenEndpoint)
	if err != nil || u.Host == "" {
		return ""
	}
	return httpx.Origin(u)
}

// CheckEndpointOrigins checks that every endpoint that would receive a credential (token,
// registration, introspection, revocation, and smart_app_state, which takes the access token) is on the FHIR base's origin or one of trusted (URLs or
// bare origins), so that a discovery document cannot send a secret, an assertion or a code to a host
// the caller did not choose (DISC-07, AUTH-09). The error wraps ErrUntrustedEndpoint and names the
// endpoint and its origin.
func (c *Configuration) CheckEndpointOrigins(trusted ...string) error {
	set, err := httpx.NewOrigins(append([]string{c.FHIRBase}, trusted...)...)
	if err != nil {
		return fmt.Errorf("smart: %w", err)
	}
	for _, e := range []struct{ name, url string }{
		{"token_endpoint", c.TokenEndpoint},
		{"registration_endpoint", c.RegistrationEndpoint},
		{"introspection_endpoint", c.IntrospectionEndpoint},
		{"revocation_endpoint", c.RevocationEndpoint},
		{"smart_app_state_endpoint", c.SMARTAppStateEndpoint},
	} {
		if e.url == "" {
			continue
		}
		u, err := url.Parse(e.url)
		if err != nil || !set.Allows(u) {
			origin := "?"
			if err == nil {
				origin = httpx.Origin(u)
			}
			return fmt.Errorf("smart: %w: %s is on %s, trusted are %s", ErrUntrustedEndpoint, e.name, origin, strings.Join(slices.Sorted(slices.Values(set.List())), ", "))
		}
	}
	return nil
}
