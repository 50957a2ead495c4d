package smart

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Scope limits (SCOPE-16). The whole-string limit leaves room for the long granular scope strings
// that authorize-post exists for (LAUNCH-09).
const (
	MaxScopeLength  = 8 << 10   // bytes in one scope token
	MaxScopesLength = 256 << 10 // bytes in one space-delimited scope string
	MaxScopeCount   = 2000      // tokens in one scope string
)

// Errors wrapped by *ScopeError.
var (
	// ErrInvalidScope reports a scope that breaks RFC 6749 §3.3 or the SMART scope grammar.
	ErrInvalidScope = errors.New("invalid scope")
	// ErrUnknownScope reports a well-formed scope token that has no SMART or OpenID Connect meaning
	// and is not an extension scope (a full URI or a "__" prefix). Callers that must pass vendor
	// scopes through (Kaiser's "sandbox") can accept it explicitly with errors.Is.
	ErrUnknownScope = errors.New("unknown scope")
	// ErrScopeTooLong reports a scope string over MaxScopeLength, MaxScopesLength or MaxScopeCount.
	ErrScopeTooLong = errors.New("scope string too long")
	// ErrScopeNotGranted reports refresh-time scopes that were not all granted originally (SCOPE-13).
	ErrScopeNotGranted = errors.New("scope not granted")
)

// ScopeError reports a scope that cannot be used. Scope is the offending text, escaped and bounded.
type ScopeError struct {
	Scope  string
	Reason string
	Err    error // ErrInvalidScope, ErrUnknownScope, ErrScopeTooLong or ErrScopeNotGranted
}

// Error returns "smart: <sentinel> <scope>: <reason>".
func (e *ScopeError) Error() string {
	return "smart: " + e.Err.Error() + " " + strconv.Quote(sanitize(e.Scope)) + ": " + e.Reason
}

// Unwrap returns the sentinel, for errors.Is.
func (e *ScopeError) Unwrap() error { return e.Err }

// ScopeKind classifies a scope token.
type ScopeKind uint8

// Scope kinds. KindOther is the zero value: a granted scope this package does not recognise.
const (
	KindOther         ScopeKind = iota // unrecognised; only ParseScopesLenient produces it
	KindResource                       // patient/, user/ or system/ resource scope, v1 or v2
	KindOpenID                         // openid
	KindFHIRUser                       // fhirUser
	KindProfile                        // profile (SMART v1 / OpenID Connect)
	KindLaunch                         // launch (EHR launch)
	KindLaunchContext                  // launch/patient, launch/encounter, launch/<type>[?role=uri]
	KindOfflineAccess                  // offline_access
	KindOnlineAccess                   // online_access
	KindExtension                      // extension scope: a full URI or a "__" prefix
)

var kindNames = [...]string{"other", "resource", "openid", "fhirUser", "profile", "launch", "launch-context",
	"offline_access", "online_access", "extension"}

// String returns a short name of the kind.
func (k ScopeKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "ScopeKind(" + strconv.Itoa(int(k)) + ")"
}

// Scope is one parsed scope token (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).
// Compare scopes with Scopes.Covers or by their String form, never by Raw.
type Scope struct {
	// Raw is the token exactly as given.
	Raw  string
	Kind ScopeKind
	// Context is "patient", "user" or "system" (KindResource only).
	Context string
	// ResourceType is a FHIR resource type or "*" (KindResource only).
	ResourceType string
	// Perms holds the permissions; a v1 scope maps .read to rs, .write to cud and .* to cruds.
	Perms Perm
	// Query holds the granular constraint of a v2 scope (?category=…|laboratory), values verbatim,
	// or nil (SCOPE-05).
	Query url.Values
	// V1 is true for a scope written in the v1 grammar (.read, .write, .*).
	V1 bool
	// LaunchType is the FHIR type of a KindLaunchContext scope: launch/patient is "Patient",
	// launch/list is "List".
	LaunchType string
	// Role is the role URI of launch/<type>?role=<uri>, else "".
	Role string
}

// smartURIPrefix and openIDURIPrefix are the URI representations of scopes (SCOPE-14).
const (
	smartURIPrefix  = "http://smarthealthit.org/fhir/scopes/"
	openIDURIPrefix = "http://openid.net/specs/openid-connect-core-1_0#"
)

// ParseScope parses one scope token strictly, for building a request:
//   - RFC 6749 §3.3 characters only: no space, '"' or '\' (SCOPE-01);
//   - v2 resource scopes "(patient|user|system)/(Type|*).<cruds subset in order>[?param=value&…]" and
//     v1 ones ".read", ".write", ".*" (SCOPE-02, SCOPE-03, SCOPE-05);
//   - openid, fhirUser, profile, launch, launch/patient, launch/encounter, launch/<lower-case
//     type>[?role=<uri>], offline_access, online_access, and extension scopes (SCOPE-07);
//   - the URI forms of SMART and OpenID scopes are accepted as the short forms (SCOPE-14).
//
// Errors are *ScopeError wrapping ErrInvalidScope, ErrUnknownScope or ErrScopeTooLong.
func ParseScope(s string) (Scope, error) {
	sc, reason, sentinel := parseScope(s, true)
	if reason != "" {
		return Scope{}, &ScopeError{Scope: s, Reason: reason, Err: sentinel}
	}
	return sc, nil
}

// MustParseScope is ParseScope for scope literals in programs and tests; it panics on error.
func MustParseScope(s string) Scope {
	sc, err := ParseScope(s)
	if err != nil {
		panic(err)
	}
	return sc
}

// NewResourceScope builds the v2 resource scope context/resourceType.perms in canonical form
// (SCOPE-11): NewResourceScope("patient", "Observation", PermSearch|PermRead) is
// patient/Observation.rs.
func NewResourceScope(context, resourceType string, p Perm) (Scope, error) {
	return ParseScope(context + "/" + resourceType + "." + p.String())
}

// parseScope returns the scope, or a reason and sentinel. strict false accepts permission letters in
// any order (they are normalised), for granted scopes.
func parseScope(s string, strict bool) (Scope, string, error) {
	if len(s) > MaxScopeLength {
		return Scope{}, "longer than " + strconv.Itoa(MaxScopeLength) + " bytes", ErrScopeTooLong
	}
	if s == "" {
		return Scope{}, "empty", ErrInvalidScope
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return Scope{}, "character " + strconv.QuoteRune(rune(c)) + " is not allowed in a scope (RFC 6749 §3.3)", ErrInvalidScope
		}
	}
	body := s
	if rest, ok := strings.CutPrefix(s, smartURIPrefix); ok {
		body = rest
	} else if rest, ok := strings.CutPrefix(s, openIDURIPrefix); ok {
		if rest != "openid" && rest != "profile" {
			return Scope{}, "not an OpenID Connect scope", ErrInvalidScope
		}
		body = rest
	}
	sc := Scope{Raw: s}
	switch body {
	case "openid":
		sc.Kind = KindOpenID
	case "fhirUser":
		sc.Kind = KindFHIRUser
	case "profile":
		sc.Kind = KindProfile
	case "launch":
		sc.Kind = KindLaunch
	case "offline_access":
		sc.Kind = KindOfflineAccess
	case "online_access":
		sc.Kind = KindOnlineAccess
	}
	if sc.Kind != KindOther {
		return sc, "", nil
	}
	if body != s && body == "" {
		return Scope{}, "empty after the URI prefix", ErrInvalidScope
	}
	if rest, ok := strings.CutPrefix(body, "launch/"); ok {
		return parseLaunchScope(sc, rest)
	}
	if ctx, rest, ok := strings.Cut(body, "/"); ok && (ctx == "patient" || ctx == "user" || ctx == "system") {
		return parseResourceScope(sc, ctx, rest, strict)
	}
	if body == s && (strings.HasPrefix(s, "__") || isAbsoluteURI(s)) {
		sc.Kind = KindExtension
		return sc, "", nil
	}
	if ctx, _, ok := strings.Cut(body, "/"); ok && (strings.EqualFold(ctx, "patient") || strings.EqualFold(ctx, "user") || strings.EqualFold(ctx, "system")) {
		return Scope{}, "the context must be lower-case patient, user or system", ErrInvalidScope
	}
	return Scope{}, "not a SMART, OpenID Connect or extension scope", ErrUnknownScope
}

// parseResourceScope parses "Type.perms[?query]" after the context.
func parseResourceScope(sc Scope, ctx, rest string, strict bool) (Scope, string, error) {
	sc.Kind, sc.Context = KindResource, ctx
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, "missing '.' and permissions after the resource type", ErrInvalidScope
	}
	if reason := checkResourceType(typ); reason != "" {
		return Scope{}, reason, ErrInvalidScope
	}
	sc.ResourceType = typ
	switch perms {
	case "read":
		sc.Perms, sc.V1 = PermV1Read, true
	case "write":
		sc.Perms, sc.V1 = PermV1Write, true
	case "*":
		sc.Perms, sc.V1 = PermAll, true
	default:
		p, reason := parsePerms(perms, strict)
		if reason != "" {
			return Scope{}, reason, ErrInvalidScope
		}
		sc.Perms = p
	}
	if hasQuery {
		if sc.V1 {
			return Scope{}, "a v1 scope (.read, .write, .*) takes no query", ErrInvalidScope
		}
		q, reason := parseScopeQuery(query)
		if reason != "" {
			return Scope{}, reason, ErrInvalidScope
		}
		sc.Query = q
	}
	return sc, "", nil
}

// checkResourceType accepts "*" and FHIR resource type names ([A-Z][A-Za-z]{0,63}).
func checkResourceType(t string) string {
	if t == "*" {
		return ""
	}
	if t == "" {
		return "missing resource type"
	}
	if len(t) > 64 {
		return "resource type too long"
	}
	if t[0] < 'A' || t[0] > 'Z' {
		return "the resource type must start with an upper-case letter (FHIR type names are case-sensitive)"
	}
	for i := 1; i < len(t); i++ {
		if c := t[i] | 0x20; c < 'a' || c > 'z' {
			return "the resource type must be letters only"
		}
	}
	return ""
}

// parseScopeQuery parses the granular constraint "param=value&…". Values are kept verbatim (they
// hold system|code tokens and URLs); names may carry modifiers and chains, which are experimental
// and passed through (SCOPE-05).
func parseScopeQuery(q string) (url.Values, string) {
	if q == "" {
		return nil, "empty query after '?'"
	}
	v := url.Values{}
	for part := range strings.SplitSeq(q, "&") {
		name, value, ok := strings.Cut(part, "=")
		if !ok || name == "" || value == "" {
			return nil, "query parameters must be name=value with both non-empty"
		}
		v[name] = append(v[name], value)
	}
	return v, ""
}

// parseLaunchScope parses what follows "launch/".
func parseLaunchScope(sc Scope, rest string) (Scope, string, error) {
	typ, query, hasQuery := strings.Cut(rest, "?")
	if typ == "" {
		return Scope{}, "missing type after launch/", ErrInvalidScope
	}
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; c < 'a' || c > 'z' {
			if c >= 'A' && c <= 'Z' {
				return Scope{}, "the type in launch/<type> must be lower-case (write launch/" + strings.ToLower(typ) + ")", ErrInvalidScope
			}
			return Scope{}, "the type in launch/<type> must be letters only", ErrInvalidScope
		}
	}
	if len(typ) > 64 {
		return Scope{}, "launch type too long", ErrInvalidScope
	}
	sc.Kind, sc.LaunchType = KindLaunchContext, canonicalResourceType(typ)
	if hasQuery {
		role, ok := strings.CutPrefix(query, "role=")
		if !ok || role == "" || strings.Contains(role, "&") {
			return Scope{}, "launch/<type> takes only a single ?role=<uri>", ErrInvalidScope
		}
		if !isAbsoluteURI(role) {
			return Scope{}, "the role must be an absolute URI", ErrInvalidScope
		}
		sc.Role = role
	}
	return sc, "", nil
}

// isAbsoluteURI reports whether s has an RFC 3986 scheme followed by a non-empty remainder
// ("https://…", "urn:…").
func isAbsoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && (u.Opaque != "" || u.Host != "")
}

// GrantedScopes parses the granted scope string leniently (SCOPE-08, SCOPE-09): what the server
// granted, never what was requested. It is empty when the server sent no scope (see ScopeOmitted).
func (t *Token) GrantedScopes() Scopes { return ParseScopesLenient(t.Scope) }
