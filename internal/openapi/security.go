package openapi

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/smartfhir/smartfhir/smart"
)

// Security scheme names in components.securitySchemes.
const (
	// SchemeSMART is the oauth2 scheme: SMART App Launch (authorizationCode) and SMART Backend
	// Services (clientCredentials).
	SchemeSMART = "smart"
	// SchemeOpenID is the openIdConnect scheme, present when the server advertises sso-openid-connect.
	SchemeOpenID = "openid"
)

// ErrNoFlow is returned when a configuration offers neither a user-facing authorization code flow
// nor client_credentials, so no operation could be authorized.
var ErrNoFlow = errors.New("openapi: the SMART configuration offers no usable OAuth flow")

// security is what the server's SMART configuration allows: which flows exist and which scope
// syntaxes its requirements use. It owns the flows, so that every scope a requirement names is
// defined in the flow that can grant it.
type security struct {
	scheme         *SecurityScheme
	authCode       *OAuthFlow // patient/ and user/ scopes, identity and launch scopes
	clientCreds    *OAuthFlow // system/ scopes
	styles         []smart.ScopeStyle
	openID         *SecurityScheme
	contextsByFlow map[string]*OAuthFlow
}

// newSecurity builds the security schemes from cfg. The authorizationCode flow exists when the server
// has an authorization endpoint and (if it lists grant types) authorization_code; the clientCredentials
// flow when it lists client_credentials, or, for a v1 document without grant types, private_key_jwt.
func newSecurity(cfg *smart.Configuration) (*security, error) {
	if cfg == nil {
		return nil, errors.New("openapi: no SMART configuration")
	}
	if cfg.TokenEndpoint == "" {
		return nil, fmt.Errorf("%w: no token_endpoint", ErrNoFlow)
	}
	grants := cfg.GrantTypesSupported
	grantOK := func(g string) bool { return len(grants) == 0 || slices.Contains(grants, g) }

	s := &security{contextsByFlow: map[string]*OAuthFlow{}}
	flows := &OAuthFlows{}
	if cfg.AuthorizationEndpoint != "" && grantOK("authorization_code") {
		f := &OAuthFlow{
			AuthorizationURL: cfg.AuthorizationEndpoint,
			TokenURL:         cfg.TokenEndpoint,
			Scopes:           map[string]string{},
			UsePKCE:          "SHA-256",
		}
		f.CodeChallengeMethods = slices.Clone(cfg.CodeChallengeMethodsSupported)
		if grantOK("refresh_token") {
			f.RefreshURL = cfg.TokenEndpoint
		}
		flows.AuthorizationCode = f
		s.authCode = f
		s.contextsByFlow["patient"] = f
		s.contextsByFlow["user"] = f
	}
	backend := slices.Contains(grants, "client_credentials") ||
		len(grants) == 0 && slices.Contains(cfg.TokenEndpointAuthMethodsSupported, "private_key_jwt")
	if backend {
		f := &OAuthFlow{TokenURL: cfg.TokenEndpoint, Scopes: map[string]string{}}
		flows.ClientCredentials = f
		s.clientCreds = f
		s.contextsByFlow["system"] = f
	}
	if s.authCode == nil && s.clientCreds == nil {
		return nil, fmt.Errorf("%w: no authorization endpoint with authorization_code, and no client_credentials", ErrNoFlow)
	}

	v1, v2 := cfg.Supports("permission-v1"), cfg.Supports("permission-v2")
	if v2 || !v1 {
		s.styles = append(s.styles, smart.ScopeStyleV2)
	}
	if v1 || !v2 {
		s.styles = append(s.styles, smart.ScopeStyleV1)
	}

	for _, sc := range cfg.ScopesSupported {
		s.define(sc)
	}
	s.scheme = &SecurityScheme{
		Type:                         TypeOAuth2,
		Description:                  schemeDescription(cfg, s),
		Flows:                        flows,
		TokenEndpointAuthMethods:     slices.Clone(cfg.TokenEndpointAuthMethodsSupported),
		TokenEndpointAuthSigningAlgs: slices.Clone(cfg.TokenEndpointAuthSigningAlgValuesSupported),
		Capabilities:                 slices.Clone(cfg.Capabilities),
	}
	if cfg.Supports("sso-openid-connect") && cfg.Issuer != "" {
		s.openID = &SecurityScheme{
			Type:             TypeOpenIDConnect,
			Description:      "OpenID Connect identity (SMART sso-openid-connect): request the openid and fhirUser scopes to get an id_token naming the user's FHIR resource.",
			OpenIDConnectURL: strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration",
		}
	}
	return s, nil
}

// schemes returns components.securitySchemes.
func (s *security) schemes() map[string]*SecurityScheme {
	out := map[string]*SecurityScheme{SchemeSMART: s.scheme}
	if s.openID != nil {
		out[SchemeOpenID] = s.openID
	}
	return out
}

// define adds scope sc, with a description, to the flow that can grant it: system/ scopes to
// clientCredentials, everything else to authorizationCode. It returns false when no flow can.
func (s *security) define(sc string) bool {
	f := s.authCode
	if strings.HasPrefix(sc, "system/") {
		f = s.clientCreds
	}
	if f == nil {
		return false
	}
	if _, ok := f.Scopes[sc]; !ok {
		f.Scopes[sc] = DescribeScope(sc)
	}
	return true
}

// requirements returns the alternative security requirements of a read-only operation on
// resourceType: one requirement per context the flows offer and per scope syntax the server accepts,
// each naming one scope, which define adds to its flow. The scope is the one clients request for
// read access, .rs in SMART v2 and .read in v1 (which means rs): a narrower v2 scope (.r for a read,
// .s for a search) works too, which x-smart-access says.
func (s *security) requirements(resourceType string, contexts ...string) ([]SecurityRequirement, []string) {
	const p = smart.PermV1Read
	var reqs []SecurityRequirement
	var offered []string
	for _, ctx := range contexts {
		if s.contextsByFlow[ctx] == nil {
			continue
		}
		offered = append(offered, ctx)
		sc, err := smart.NewResourceScope(ctx, resourceType, p)
		if err != nil {
			continue
		}
		seen := map[string]bool{}
		for _, st := range s.styles {
			str := sc.Format(st)
			if seen[str] || !s.define(str) {
				continue
			}
			seen[str] = true
			reqs = append(reqs, SecurityRequirement{SchemeSMART: {str}})
		}
	}
	return reqs, offered
}

// schemeDescription explains the scheme in plain words, including what OpenAPI cannot express:
// PKCE, the aud parameter and how clients authenticate.
func schemeDescription(cfg *smart.Configuration, s *security) string {
	var b strings.Builder
	b.WriteString("SMART on FHIR authorization (SMART App Launch 2.2).")
	if s.authCode != nil {
		b.WriteString(" authorizationCode: a SMART standalone or EHR launch. PKCE with S256 is required on every authorization request (code_challenge_method=S256; plain is never used), and aud must be the FHIR base URL.")
		if len(cfg.CodeChallengeMethodsSupported) > 0 && !slices.Contains(cfg.CodeChallengeMethodsSupported, "S256") {
			b.WriteString(" WARNING: this server does not advertise S256 in code_challenge_methods_supported.")
		}
	}
	if s.clientCreds != nil {
		b.WriteString(" clientCredentials: SMART Backend Services; the client authenticates with a private_key_jwt client assertion")
		if algs := cfg.TokenEndpointAuthSigningAlgValuesSupported; len(algs) > 0 {
			b.WriteString(" signed with " + strings.Join(algs, " or "))
		} else {
			b.WriteString(" (RS384 or ES384)")
		}
		b.WriteString(" and asks for system/ scopes.")
	}
	if methods := cfg.TokenEndpointAuthMethodsSupported; len(methods) > 0 {
		b.WriteString(" Token endpoint client authentication: " + strings.Join(methods, ", ") + ".")
	}
	return b.String()
}

// DescribeScope explains a SMART or OpenID Connect scope in a few words, for the scopes map of an
// OAuth flow. Unknown scopes are described as advertised by the server.
func DescribeScope(s string) string {
	ss := smart.ParseScopesLenient(s)
	if len(ss) != 1 {
		return "scope advertised by the server"
	}
	sc := ss[0]
	switch sc.Kind {
	case smart.KindResource:
		return describeResourceScope(sc)
	case smart.KindOpenID:
		return "OpenID Connect: an id_token that identifies the user"
	case smart.KindFHIRUser:
		return "the user's own FHIR resource (fhirUser claim in the id_token)"
	case smart.KindProfile:
		return "SMART v1 alias of fhirUser (deprecated)"
	case smart.KindLaunch:
		return "EHR launch: receive the launch context of the launch parameter"
	case smart.KindLaunchContext:
		if sc.Role != "" {
			return "standalone launch: the user picks the " + sc.LaunchType + " in context (role " + sc.Role + ")"
		}
		return "standalone launch: the user picks the " + sc.LaunchType + " in context"
	case smart.KindOfflineAccess:
		return "a refresh token that outlives the user's session"
	case smart.KindOnlineAccess:
		return "a refresh token valid while the user's session lasts"
	case smart.KindExtension:
		return "extension scope"
	default:
		return "scope advertised by the server"
	}
}

func describeResourceScope(sc smart.Scope) string {
	var verbs []string
	for _, v := range []struct {
		p    smart.Perm
		word string
	}{{smart.PermCreate, "create"}, {smart.PermRead, "read"}, {smart.PermUpdate, "update"}, {smart.PermDelete, "delete"}, {smart.PermSearch, "search"}} {
		if sc.Perms.Has(v.p) {
			verbs = append(verbs, v.word)
		}
	}
	what := sc.ResourceType + " resources"
	if sc.ResourceType == "*" {
		what = "resources of any type"
	}
	var whose string
	switch sc.Context {
	case "patient":
		whose = " of the patient in context"
	case "user":
		whose = " that the user may access"
	case "system":
		whose = " the client is pre-authorized for (backend services)"
	}
	out := strings.Join(verbs, ", ") + " " + what + whose
	if len(sc.Query) > 0 {
		out += ", limited to " + sc.Query.Encode()
	}
	if sc.V1 {
		out += " (SMART v1 syntax)"
	}
	return out
}
