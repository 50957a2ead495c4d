package smart

import (
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Profile holds what a client must do differently for one kind of server, as data (CONV-5): a SMART
// client has no per-vendor callbacks, only these settings. The zero value is the plain SMART / FHIR
// behaviour; the presets (LookupProfile, ProfileNames) fill in what real EHRs need, each setting
// citing the vendor document or public issue it comes from (/docs/profiles.md has the table).
//
// Some settings are applied by this package (scopes, discovery fallbacks, introspection); the others
// are read by the package that sends the request, through the helper methods below: launch (Audience,
// ForcePKCE, the headers), backend (AssertionAudience, AssertionIssuedAt, ShouldRetryToken),
// fhirclient (FHIRHeader, CheckOperation, RetryWait) and fhirclient/bulk (JoinTypes, RetryAfterCap,
// MinPollInterval, FileNotFoundRetries, DeleteNotFoundOK).
//
// A Profile is a value: copy it freely, but Clone it before changing its slices or maps. Its JSON form
// (MarshalJSON, ParseProfile) is what the CLI's config file and `smartfhir profiles --json` use.
type Profile struct {
	// Name is the preset or user profile name ("epic", "my-ehr").
	Name string `json:"name"`
	// Description is one line for listings.
	Description string `json:"description"`

	// Aud says how the aud authorization parameter is sent. AudienceExact (the zero value) is the
	// SMART rule (LAUNCH-05) and what athena and the SMART launcher insist on (apiserver-athenaFlex
	// #313, smart-launcher authorize.ts); AudienceOmit and AudienceTrimSlash exist for the servers in
	// fasten-sources lighthouse_endpoint_definition.go Populate (VA, NextGen, NHS… omit it;
	// CareEvolution, eClinicalWorks, Anthem… want no trailing slash).
	Aud AudienceMode `json:"aud"`
	// AssertionAud says what a client assertion's aud is: the token URL (the zero value, SMART
	// client-confidential-asymmetric) or a value from the server's CapabilityStatement, which Epic's
	// on-premises "Tesseract" backend flow needs (client-js #145: "locate the HSI value [in /metadata]
	// and use it as the aud").
	AssertionAud AssertionAudienceMode `json:"assertion_aud"`
	// ForcePKCE sends PKCE S256 even when discovery does not advertise it, or advertises a list
	// without it: athena supports S256 but does not list code_challenge_methods_supported
	// (client-js #174).
	ForcePKCE bool `json:"force_pkce"`
	// LenientDiscovery requires only token_endpoint (and authorization_endpoint for a user-facing
	// launch) from discovery, ignoring what the advertised capability and method lists leave out:
	// servers under-advertise (cumulus-fhir-support auth.py; Veradigm's incomplete
	// token_endpoint_auth_methods_supported; SMART launcher v2 lists private_key_jwt without
	// token_endpoint_auth_signing_alg_values_supported, smart-launcher #60, #63).
	LenientDiscovery bool `json:"lenient_discovery"`
	// ScopeStyle is the resource scope grammar to request: ScopeAuto (the zero value) asks for v2 when
	// the server advertises permission-v2 (DISC-16), ScopeV1 and ScopeV2 force one: some servers
	// silently drop scopes in the other grammar (SCOPE-12).
	ScopeStyle ScopeGrammar `json:"scope_style"`
	// ExtraScopes are added to every authorization and token request: the Kaiser sandbox needs a
	// "sandbox" scope (fasten-sources lighthouse_endpoint_definition.go).
	ExtraScopes []string `json:"extra_scopes"`

	// Headers are added to every request to the server, discovery and token requests included
	// (client-js #200, #146; cumulus-etl PR #249). Never credentials: Validate refuses
	// Authorization, Cookie and the like.
	Headers map[string]string `json:"headers"`
	// ClientIDHeader names a header that carries the client_id on every request: Epic wants
	// Epic-Client-ID, especially on non-OAuth flows (cumulus-fhir-support client.py).
	ClientIDHeader string `json:"client_id_header"`
	// Accept replaces Accept: application/fhir+json on FHIR API requests (not on discovery or token
	// requests): fasten sends the DSTU2 application/json+fhir to Epic and MEDITECH (fasten-sources
	// definitions/platform/epic.yaml, meditech.yaml client_headers).
	Accept string `json:"accept"`
	// TypeParam says how Bulk Data _type values are sent: TypeComma (the zero value) as one
	// comma-separated value, which the Bulk Data spec defines and Oracle Health requires (it rejects a
	// repeated _type: smart-fetch bulk_utils.py), or TypeRepeat as one parameter per type.
	TypeParam TypeParamStyle `json:"type_param"`
	// UnsupportedOperations lists FHIR operations the server does not offer, so that a call fails fast
	// with ErrUnsupportedOperation: Epic has no $everything (fasten-sources epic.yaml
	// missing_op_patient_everything).
	UnsupportedOperations []string `json:"unsupported_operations"`

	// MaxRetryAfter caps a Retry-After wait while polling a bulk export; 0 means
	// DefaultMaxRetryAfter (1 h, CONV-3). Oracle Health asks for five hours (smart-fetch
	// bulk_utils.py) while its own guidance is to poll every 10 to 30 minutes (cerner/fhir.cerner.com
	// PR #899). API calls keep their 120 s rule (CONV-3).
	MaxRetryAfter time.Duration `json:"retry_after_cap"`
	// RateLimitHeaders reads X-RateLimit-* (and RateLimit-*) headers when a 429 or 503 has no
	// Retry-After: the VA rate-limits that way (fasten-sources vahealth.yaml client_rate_limited,
	// pkg/utils/xratelimit.go). See RateLimitWait.
	RateLimitHeaders bool `json:"rate_limit_headers"`
	// MinPollInterval is the shortest wait between two bulk status polls, whatever Retry-After says;
	// CMS AB2D answers 429 when polled too often (CMSgov/ab2d PR #17). 0 means the bulk client's
	// default floor.
	MinPollInterval time.Duration `json:"min_poll_interval"`
	// FileNotFoundRetries is how many times a bulk output file that answers 404 is retried before the
	// export fails: CMS BCDA's file 404s can be transient (bulk_fhir_tools client.go GetData). 0
	// means a 404 is final (the file expired, BULK-24).
	FileNotFoundRetries int `json:"file_not_found_retries"`
	// DeleteNotFoundOK treats a 404 to the DELETE of a finished bulk job as success rather than
	// reporting it: HAPI deletes jobs itself (smart-fetch _delete_export; bulk-data-client
	// forceStandardFileNames).
	DeleteNotFoundOK bool `json:"delete_not_found_ok"`

	// DiscoveryFallbacks are tried, in order, when .well-known/smart-configuration is missing or
	// unusable (DISC-12). nil means the Discoverer's default (the CapabilityStatement); an empty,
	// non-nil list means none. MEDITECH Greenfield publishes an OpenID Connect configuration
	// (fasten-sources meditech.yaml).
	DiscoveryFallbacks []DiscoverySource `json:"discovery_fallbacks"`

	// RefreshClientID sends client_id in the form of a public client's refresh request: Keycloak and
	// OpenEMR require it (client-js PR #175; openemr #7182). Harmless elsewhere (RFC 6749 §3.2.1).
	RefreshClientID bool `json:"refresh_client_id"`
	// RefreshAssertion authenticates the refresh grant of an asymmetric client with a fresh client
	// assertion, as RFC 6749 §6 requires of confidential clients and Epic enforces for
	// private_key_jwt apps (client-js #145; fasten-sources epic.yaml).
	RefreshAssertion bool `json:"refresh_assertion"`
	// RetryBare400 retries a client_credentials token request once, with a fresh assertion, after an HTTP 400 that
	// carries no OAuth error: Epic sends such flaky 400s (cumulus-fhir-support auth.py; CONV-3).
	RetryBare400 bool `json:"retry_bare_400"`
	// AssertionBackdate sets a client assertion's iat (and nbf, when sent) this far in the past, so
	// that a server whose clock runs behind does not see it as issued in the future (Keycloak #8966
	// fails on one second; fasten uses 20 s). exp stays now + lifetime.
	AssertionBackdate time.Duration `json:"assertion_backdate"`
	// IntrospectionEndpoint replaces the discovered introspection_endpoint: Oracle Health's is
	// https://authorization.cerner.com/tokeninfo (fasten-sources
	// lighthouse_endpoint_definition.go). Its origin is not trusted with a token automatically;
	// see TrustedOrigins.
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// AudienceMode says how the aud authorization parameter is sent.
type AudienceMode string

// Audience modes.
const (
	AudienceExact     AudienceMode = "exact"      // aud = the FHIR base exactly as given (the zero value)
	AudienceTrimSlash AudienceMode = "trim-slash" // aud = the FHIR base without trailing slashes
	AudienceOmit      AudienceMode = "omit"       // no aud parameter
)

// AssertionAudienceMode says what the aud claim of a client assertion is.
type AssertionAudienceMode string

// Assertion audience modes.
const (
	AssertionAudienceTokenURL AssertionAudienceMode = "token-endpoint" // the token URL (the zero value)
	AssertionAudienceMetadata AssertionAudienceMode = "metadata"       // ServerInfo.ImplementationURL
)

// ScopeGrammar selects the resource scope grammar a profile requests.
type ScopeGrammar string

// Scope grammars.
const (
	ScopeAuto ScopeGrammar = "auto" // v2 when the server advertises permission-v2, else v1 (the zero value)
	ScopeV1   ScopeGrammar = "v1"   // patient/Observation.read
	ScopeV2   ScopeGrammar = "v2"   // patient/Observation.rs
)

// TypeParamStyle says how several Bulk Data _type values are sent.
type TypeParamStyle string

// _type styles.
const (
	TypeComma  TypeParamStyle = "comma"  // _type=Patient,Observation (the zero value)
	TypeRepeat TypeParamStyle = "repeat" // _type=Patient&_type=Observation
)

// DiscoverySource names a discovery fallback in a profile.
type DiscoverySource string

// Discovery sources.
const (
	DiscoveryCapabilityStatement DiscoverySource = "capability-statement" // FallbackCapabilityStatement
	DiscoveryOpenIDConfiguration DiscoverySource = "openid-configuration" // FallbackOpenIDConfiguration
)

// Defaults of the duration settings.
const (
	// DefaultMaxRetryAfter is the Retry-After cap of a profile that sets none: the longest bulk
	// status wait honoured (CONV-3).
	DefaultMaxRetryAfter = time.Hour
	// DefaultAssertionBackdate is the presets' AssertionBackdate: 20 s, as fasten uses with the widest
	// set of production EHRs. It absorbs the clock drift that made Keycloak refuse assertions
	// (Keycloak #8966, one second) with room to spare, while exp − iat stays 4 min 20 s with the
	// 4-minute assertion lifetime, under the 5 minutes SMART allows.
	DefaultAssertionBackdate = 20 * time.Second
	// MaxAssertionBackdate bounds AssertionBackdate: further back, servers that bound exp − iat start
	// to refuse the assertion.
	MaxAssertionBackdate = 2 * time.Minute
	// maxFileNotFoundRetries bounds FileNotFoundRetries.
	maxFileNotFoundRetries = 10
)

// Profile errors.
var (
	// ErrUnknownProfile: no preset has the name. The error lists the known names.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrInvalidProfile: a setting has a value the profile cannot use.
	ErrInvalidProfile = errors.New("invalid profile")
	// ErrUnsupportedOperation: the profile says the server does not offer the operation.
	ErrUnsupportedOperation = errors.New("operation not supported by this server")
	// ErrNoMetadataAudience: AssertionAudienceMetadata without a value from the server's metadata.
	ErrNoMetadataAudience = errors.New("no audience in the server metadata")
)

// Clone returns a deep copy of p.
func (p Profile) Clone() Profile {
	p.ExtraScopes = slices.Clone(p.ExtraScopes)
	p.Headers = maps.Clone(p.Headers)
	p.UnsupportedOperations = slices.Clone(p.UnsupportedOperations)
	p.DiscoveryFallbacks = slices.Clone(p.DiscoveryFallbacks)
	return p
}

// Audience returns the aud authorization parameter for fhirBase (LAUNCH-05), or ok false when the
// profile omits it.
func (p Profile) Audience(fhirBase string) (aud string, ok bool) {
	switch p.Aud {
	case AudienceOmit:
		return "", false
	case AudienceTrimSlash:
		return strings.TrimRight(fhirBase, "/"), true
	default:
		return fhirBase, true
	}
}

// AssertionAudience returns the aud claim of a client assertion sent to tokenURL. With
// AssertionAudienceMetadata it is info.ImplementationURL (the base URL the server states for itself in
// its CapabilityStatement); when info has none the error wraps ErrNoMetadataAudience rather than
// falling back to a value the server is known to refuse.
func (p Profile) AssertionAudience(tokenURL string, info *ServerInfo) (string, error) {
	if p.AssertionAud != AssertionAudienceMetadata {
		return tokenURL, nil
	}
	if info == nil || info.ImplementationURL == "" {
		return "", fmt.Errorf("smart: profile %q: %w (CapabilityStatement.implementation.url)", p.Name, ErrNoMetadataAudience)
	}
	return info.ImplementationURL, nil
}

// AssertionIssuedAt returns the iat (and nbf) of a client assertion signed at now:
// now − AssertionBackdate.
func (p Profile) AssertionIssuedAt(now time.Time) time.Time { return now.Add(-p.AssertionBackdate) }

// CheckLaunch checks cfg for a user-facing launch under this profile: Configuration.RequireLaunch,
// except that ForcePKCE accepts a code_challenge_methods_supported without S256 (S256 is sent anyway,
// plain never), and LenientDiscovery requires only the authorization and token endpoints.
func (p Profile) CheckLaunch(cfg *Configuration) error {
	if p.LenientDiscovery {
		switch {
		case cfg.AuthorizationEndpoint == "":
			return fmt.Errorf("smart: %w (the server does not support a user-facing launch)", ErrNoAuthorizationEndpoint)
		case cfg.TokenEndpoint == "":
			return fmt.Errorf("smart: %w", ErrMissingTokenEndpoint)
		}
		return nil
	}
	err := cfg.RequireLaunch()
	if errors.Is(err, ErrNoS256) && p.ForcePKCE {
		c := *cfg // the other checks still apply
		c.CodeChallengeMethodsSupported = nil
		return c.RequireLaunch()
	}
	return err
}

// CheckBackend checks cfg for SMART Backend Services under this profile: Configuration.RequireBackend,
// or with LenientDiscovery only a token endpoint.
func (p Profile) CheckBackend(cfg *Configuration) error {
	if p.LenientDiscovery {
		if cfg.TokenEndpoint == "" {
			return fmt.Errorf("smart: %w", ErrMissingTokenEndpoint)
		}
		return nil
	}
	return cfg.RequireBackend()
}

// ScopeStyleFor returns the scope grammar to request from the server cfg describes (cfg may be nil
// when nothing was discovered: ScopeAuto then keeps each scope as written).
func (p Profile) ScopeStyleFor(cfg *Configuration) ScopeStyle {
	switch p.ScopeStyle {
	case ScopeV1:
		return ScopeStyleV1
	case ScopeV2:
		return ScopeStyleV2
	}
	if cfg == nil {
		return ScopeStyleAsWritten
	}
	return cfg.ScopeStyle()
}

// RequestScopes returns the scopes to request: requested written in the profile's grammar for cfg
// (ScopeStyleFor), then the ExtraScopes that are not there yet, without duplicates (writing v2
// scopes as v1 can make two of them equal).
func (p Profile) RequestScopes(requested []string, cfg *Configuration) []string {
	out := ParseScopesLenient(strings.Join(requested, " ")).Strings(p.ScopeStyleFor(cfg))
	seen := make(map[string]bool, len(out)+len(p.ExtraScopes))
	res := out[:0]
	for _, s := range slices.Concat(out, p.ExtraScopes) {
		if !seen[s] {
			seen[s] = true
			res = append(res, s)
		}
	}
	return res
}

// Header returns the vendor headers for every request to the server (discovery, token, FHIR):
// Headers, and ClientIDHeader set to clientID when both are non-empty.
func (p Profile) Header(clientID string) http.Header {
	h := make(http.Header, len(p.Headers)+1)
	for k, v := range p.Headers {
		h.Set(k, v)
	}
	if p.ClientIDHeader != "" && clientID != "" {
		h.Set(p.ClientIDHeader, clientID)
	}
	return h
}

// FHIRHeader returns Header(clientID) plus the Accept override, for FHIR API requests
// (fhirclient.Client.Header).
func (p Profile) FHIRHeader(clientID string) http.Header {
	h := p.Header(clientID)
	if p.Accept != "" {
		h.Set("Accept", p.Accept)
	}
	return h
}

// ApplyHeaders adds the vendor headers (Header) to h, leaving every header h already has alone: a
// request's own value wins.
func (p Profile) ApplyHeaders(h http.Header, clientID string) {
	for k, vs := range p.Header(clientID) {
		if _, set := h[k]; !set {
			h[k] = vs
		}
	}
}

// ApplyDiscoverer sets d's fallbacks and adds the vendor headers to d.Header.
func (p Profile) ApplyDiscoverer(d *Discoverer, clientID string) {
	if p.DiscoveryFallbacks != nil {
		d.Fallbacks = p.Fallbacks()
	}
	if d.Header == nil {
		d.Header = http.Header{}
	}
	p.ApplyHeaders(d.Header, clientID)
}

// Fallbacks returns DiscoveryFallbacks as Discoverer.Fallbacks: nil when the profile sets none.
func (p Profile) Fallbacks() []Fallback {
	if p.DiscoveryFallbacks == nil {
		return nil
	}
	out := make([]Fallback, 0, len(p.DiscoveryFallbacks))
	for _, s := range p.DiscoveryFallbacks {
		switch s {
		case DiscoveryCapabilityStatement:
			out = append(out, FallbackCapabilityStatement)
		case DiscoveryOpenIDConfiguration:
			out = append(out, FallbackOpenIDConfiguration)
		}
	}
	return out
}

// JoinTypes returns the _type values to send for types: one comma-separated value (TypeComma), or
// types unchanged, one parameter each (TypeRepeat). Empty types give nil.
func (p Profile) JoinTypes(types []string) []string {
	if len(types) == 0 {
		return nil
	}
	if p.TypeParam == TypeRepeat {
		return slices.Clone(types)
	}
	return []string{strings.Join(types, ",")}
}

// CheckOperation returns an error wrapping ErrUnsupportedOperation when the profile lists op
// ("$everything", "Patient/$everything" and "everything" all name the same operation) as missing.
func (p Profile) CheckOperation(op string) error {
	name := operationName(op)
	for _, u := range p.UnsupportedOperations {
		if operationName(u) == name {
			return fmt.Errorf("smart: %w: %s (profile %q)", ErrUnsupportedOperation, "$"+name, p.Name)
		}
	}
	return nil
}

func operationName(op string) string {
	if i := strings.LastIndexByte(op, '/'); i >= 0 {
		op = op[i+1:]
	}
	return strings.TrimPrefix(op, "$")
}

// RetryAfterCap returns MaxRetryAfter, or DefaultMaxRetryAfter when it is 0.
func (p Profile) RetryAfterCap() time.Duration {
	if p.MaxRetryAfter > 0 {
		return p.MaxRetryAfter
	}
	return DefaultMaxRetryAfter
}

// RetryWait returns the wait a 429 or 503 response asks for: Retry-After in either form, else, with
// RateLimitHeaders, what the rate-limit headers say (RateLimitWait). ok is false when the response
// gives no usable hint: back off (CONV-3). The result is not capped: API calls cap it at 120 s, bulk
// polling at RetryAfterCap and MinPollInterval.
func (p Profile) RetryWait(h http.Header, now time.Time) (time.Duration, bool) {
	if d, ok := httpx.ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return d, true
	}
	if p.RateLimitHeaders {
		return RateLimitWait(h, now)
	}
	return 0, false
}

// IntrospectionURL returns IntrospectionEndpoint, or else the discovered introspection_endpoint of
// cfg (cfg may be nil).
func (p Profile) IntrospectionURL(cfg *Configuration) string {
	if p.IntrospectionEndpoint != "" {
		return p.IntrospectionEndpoint
	}
	if cfg == nil {
		return ""
	}
	return cfg.IntrospectionEndpoint
}

// TrustedOrigins lists the origins the profile itself sends credentials to (its
// IntrospectionEndpoint), for a caller to add to its trusted origins (CONV-1) when the user chose the
// profile by name. A detected profile must not widen trust: DetectProfile only guesses.
func (p Profile) TrustedOrigins() []string {
	if p.IntrospectionEndpoint == "" {
		return nil
	}
	u, err := url.Parse(p.IntrospectionEndpoint)
	if err != nil || u.Host == "" {
		return nil
	}
	return []string{httpx.Origin(u)}
}

// CanRefresh reports whether tok can be refreshed: it carries a refresh token. The granted scope is
// not consulted, because Epic issues refresh tokens without echoing offline_access (client-js #138).
func CanRefresh(tok *Token) bool { return tok != nil && tok.Token != nil && tok.RefreshToken != "" }

var (
	profileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	operationRE   = regexp.MustCompile(`^(?:[A-Z][A-Za-z]{0,63}/)?\$?[A-Za-z][A-Za-z0-9-]{0,63}$`)
)

// forbiddenHeader reports whether a profile may not set header name: credentials and what the
// transport owns.
func forbiddenHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "Host", "Content-Length", "Content-Type",
		"Transfer-Encoding", "Connection", "Accept":
		return true
	}
	return httpx.IsSensitive(name)
}

// Validate checks every setting and returns an error wrapping ErrInvalidProfile that names the first
// bad one by its JSON key.
func (p Profile) Validate() error {
	bad := func(key, format string, a ...any) error {
		name := ""
		if p.Name != "" && key != "name" {
			name = fmt.Sprintf(" %q", p.Name)
		}
		return fmt.Errorf("smart: profile%s: %w: %s: %s", name, ErrInvalidProfile, key, fmt.Sprintf(format, a...))
	}
	if p.Name != "" && !profileNameRE.MatchString(p.Name) {
		return bad("name", "%q: use letters, digits, '.', '_' or '-' (at most 64)", sanitize(p.Name))
	}
	enums := []struct {
		key, val string
		ok       []string
	}{
		{"aud", string(p.Aud), []string{"", string(AudienceExact), string(AudienceTrimSlash), string(AudienceOmit)}},
		{"assertion_aud", string(p.AssertionAud), []string{"", string(AssertionAudienceTokenURL), string(AssertionAudienceMetadata)}},
		{"scope_style", string(p.ScopeStyle), []string{"", string(ScopeAuto), string(ScopeV1), string(ScopeV2)}},
		{"type_param", string(p.TypeParam), []string{"", string(TypeComma), string(TypeRepeat)}},
	}
	for _, e := range enums {
		if !slices.Contains(e.ok, e.val) {
			return bad(e.key, "%q: want one of %s", sanitize(e.val), strings.Join(e.ok[1:], ", "))
		}
	}
	for _, s := range p.ExtraScopes {
		if _, err := ParseScope(s); err != nil && !errors.Is(err, ErrUnknownScope) {
			return bad("extra_scopes", "%v", err)
		}
	}
	for k, v := range p.Headers {
		if err := checkHeader(k, v); err != nil {
			return bad("headers", "%v", err)
		}
	}
	if p.ClientIDHeader != "" {
		if err := checkHeader(p.ClientIDHeader, "x"); err != nil {
			return bad("client_id_header", "%v", err)
		}
	}
	if p.Accept != "" && !isMediaTypeList(p.Accept) {
		return bad("accept", "%q is not a media type list", sanitize(p.Accept))
	}
	for _, op := range p.UnsupportedOperations {
		if !operationRE.MatchString(op) {
			return bad("unsupported_operations", "%q is not an operation name like $everything", sanitize(op))
		}
	}
	for _, d := range []struct {
		key      string
		val, max time.Duration
	}{
		{"retry_after_cap", p.MaxRetryAfter, 24 * time.Hour},
		{"min_poll_interval", p.MinPollInterval, time.Hour},
		{"assertion_backdate", p.AssertionBackdate, MaxAssertionBackdate},
	} {
		if d.val < 0 || d.val > d.max {
			return bad(d.key, "%v is outside 0…%v", d.val, d.max)
		}
	}
	if p.MinPollInterval > p.RetryAfterCap() {
		return bad("min_poll_interval", "%v is above retry_after_cap %v", p.MinPollInterval, p.RetryAfterCap())
	}
	if p.FileNotFoundRetries < 0 || p.FileNotFoundRetries > maxFileNotFoundRetries {
		return bad("file_not_found_retries", "%d is outside 0…%d", p.FileNotFoundRetries, maxFileNotFoundRetries)
	}
	seen := map[DiscoverySource]bool{}
	for _, s := range p.DiscoveryFallbacks {
		if s != DiscoveryCapabilityStatement && s != DiscoveryOpenIDConfiguration || seen[s] {
			return bad("discovery_fallbacks", "%q: want distinct values among %s, %s", sanitize(string(s)), DiscoveryCapabilityStatement, DiscoveryOpenIDConfiguration)
		}
		seen[s] = true
	}
	if p.IntrospectionEndpoint != "" {
		u, err := httpx.ParseAbsURL(p.IntrospectionEndpoint, false)
		if err != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return bad("introspection_endpoint", "%q must be an https URL without query, fragment or user info", httpx.Redact(p.IntrospectionEndpoint))
		}
	}
	return nil
}

// checkHeader refuses a header name that is not an RFC 9110 token, a credential or transport header,
// and a value with control characters.
func checkHeader(name, value string) error {
	if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isTChar(r) }) >= 0 {
		return fmt.Errorf("%q is not a header name", sanitize(name))
	}
	if forbiddenHeader(name) {
		return fmt.Errorf("%s cannot be set by a profile (credentials and transport headers are not profile data; Accept has its own setting)", name)
	}
	if strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return fmt.Errorf("the value of %s has control characters", name)
	}
	return nil
}

// isMediaTypeList reports whether s is an Accept value: comma-separated media types with parameters.
func isMediaTypeList(s string) bool {
	if strings.ContainsAny(s, "\r\n\x00") {
		return false
	}
	for part := range strings.SplitSeq(s, ",") {
		if mt, _, err := mime.ParseMediaType(part); err != nil || !strings.Contains(mt, "/") {
			return false
		}
	}
	return true
}

// isTChar reports whether r may appear in an RFC 9110 token.
func isTChar(r rune) bool {
	return r < 0x7f && r > 0x20 && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
}
