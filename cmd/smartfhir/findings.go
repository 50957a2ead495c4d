package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Requirement levels and outcomes of a finding.
const (
	levelMust   = "MUST"
	levelShould = "SHOULD"
	levelMay    = "MAY"

	statusPass = "pass"
	statusWarn = "warn" // a SHOULD or MAY not met, or a tolerated deviation
	statusFail = "fail" // a MUST not met: check exits 1
	statusSkip = "skip" // not checked, and why
	statusInfo = "info"
)

// finding is one line of a conformance report, named by its checklist ID
// (/work/shared/spec/checklist.md). Detail never holds a credential.
type finding struct {
	ID     string `json:"id"`
	Level  string `json:"level"`
	Status string `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
}

// report is an ordered list of findings.
type report struct {
	Findings []finding `json:"findings"`
}

// check adds a finding that passes when ok; otherwise it fails for a MUST and warns for the rest.
func (r *report) check(id, level, title string, ok bool, detail string) {
	st := statusPass
	if !ok {
		st = statusWarn
		if level == levelMust {
			st = statusFail
		}
	}
	r.add(id, level, st, title, detail)
}

func (r *report) add(id, level, status, title, detail string) {
	r.Findings = append(r.Findings, finding{ID: id, Level: level, Status: status, Title: title, Detail: oneLine(detail)})
}

// failed reports whether a MUST failed.
func (r *report) failed() bool {
	return slices.ContainsFunc(r.Findings, func(f finding) bool { return f.Status == statusFail })
}

// count returns the number of findings with status st.
func (r *report) count(st string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == st {
			n++
		}
	}
	return n
}

// rawDocument is a discovery document as members, for checks the parsed Configuration cannot
// answer (a relative URL was resolved, a missing list is nil, a wrong type was dropped).
type rawDocument map[string]json.RawMessage

func (d rawDocument) has(name string) bool { _, ok := d[name]; return ok }

func (d rawDocument) str(name string) (string, bool) {
	var s string
	if json.Unmarshal(d[name], &s) != nil {
		return "", false
	}
	return s, true
}

func (d rawDocument) strings(name string) ([]string, bool) {
	var s []string
	if json.Unmarshal(d[name], &s) != nil || d[name] == nil {
		return nil, false
	}
	return s, true
}

// endpointMembers are the URL members of a discovery document.
var endpointMembers = []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "introspection_endpoint",
	"revocation_endpoint", "management_endpoint", "jwks_uri", "user_access_brand_bundle", "smart_app_state_endpoint"}

// credentialEndpoints receive a secret, an assertion, a code or a token.
var credentialEndpoints = []string{"token_endpoint", "registration_endpoint", "introspection_endpoint", "revocation_endpoint"}

// capabilityInfo explains the SMART 2.2 capabilities in a few words.
var capabilityInfo = map[string]string{
	"launch-ehr":                     "apps can be launched from inside the EHR",
	"launch-standalone":              "apps can be launched on their own (log in from outside the EHR)",
	"authorize-post":                 "the authorize request may be sent by POST (long scope lists)",
	"client-public":                  "public clients (no secret, e.g. browser or native apps)",
	"client-confidential-symmetric":  "confidential clients with a client secret (HTTP Basic)",
	"client-confidential-asymmetric": "confidential clients with a signed JWT (private_key_jwt)",
	"sso-openid-connect":             "OpenID Connect: an id_token names the user (fhirUser)",
	"context-banner":                 "tells the app whether to show a patient banner",
	"context-style":                  "passes the EHR's styling to the app",
	"context-passthrough-banner":     "tells the app whether to show a patient banner (same as context-banner)",
	"context-passthrough-style":      "passes the EHR's styling to the app (same as context-style)",
	"context-ehr-patient":            "EHR launch passes the patient in context",
	"context-ehr-encounter":          "EHR launch passes the encounter in context",
	"context-standalone-patient":     "standalone launch lets the user pick a patient (launch/patient)",
	"context-standalone-encounter":   "standalone launch lets the user pick an encounter",
	"permission-offline":             "refresh tokens that outlive the session (offline_access)",
	"permission-online":              "refresh tokens while the user is online (online_access)",
	"permission-patient":             "patient-level scopes (patient/...)",
	"permission-user":                "user-level scopes (user/...)",
	"permission-v1":                  "SMART v1 scope syntax (patient/*.read)",
	"permission-v2":                  "SMART v2 scope syntax (patient/*.rs, granular scopes)",
	"smart-app-state":                "app state storage (experimental)",
}

// lintConfiguration checks a discovery document against the SMART 2.2 server rules and adds one
// finding per rule (DISC-03…11, 13, 15, 16). raw is the document as sent (nil when it came from a
// CapabilityStatement); trusted are the origins besides the FHIR base's that may get credentials.
func lintConfiguration(r *report, cfg *smart.Configuration, raw rawDocument, trusted []string) {
	caps := cfg.Capabilities
	v2 := cfg.Supports(smart.CapPermissionV2)
	legacy := raw == nil

	// DISC-03: token_endpoint and capabilities; authorization_endpoint for user-facing launches.
	var missing []string
	if cfg.TokenEndpoint == "" {
		missing = append(missing, "token_endpoint")
	}
	if !legacy {
		if _, ok := raw.strings("capabilities"); !ok {
			missing = append(missing, "capabilities (an array of strings)")
		}
	}
	launches := cfg.Supports(smart.CapLaunchEHR) || cfg.Supports(smart.CapLaunchStandalone)
	if launches && cfg.AuthorizationEndpoint == "" {
		missing = append(missing, "authorization_endpoint (needed with launch-ehr/launch-standalone)")
	}
	detail := "token_endpoint and capabilities present"
	if launches {
		detail += "; authorization_endpoint present for user-facing launches"
	}
	if len(missing) > 0 {
		detail = "missing: " + strings.Join(missing, ", ")
	}
	if legacy {
		detail += " (from the CapabilityStatement, which lists no capabilities)"
	}
	r.check("DISC-03", levelMust, "required members present", len(missing) == 0, detail)

	// DISC-04, DISC-05: PKCE S256, and the members SMART 2.x requires.
	methods := cfg.CodeChallengeMethodsSupported
	switch {
	case len(methods) > 0 && !slices.Contains(methods, "S256"):
		r.check("DISC-04", levelMust, "PKCE S256 supported", false, fmt.Sprintf("code_challenge_methods_supported is %q: S256 is missing; SMART clients will refuse to launch", methods))
	case len(methods) == 0 && v2:
		r.check("DISC-04", levelMust, "PKCE S256 supported", false, "code_challenge_methods_supported is missing (required since SMART 2.0; permission-v2 is advertised)")
	case len(methods) == 0:
		r.add("DISC-04", levelMust, statusWarn, "PKCE S256 supported", "code_challenge_methods_supported is missing: tolerated from a SMART v1 server; clients send S256 anyway")
	default:
		r.check("DISC-04", levelMust, "PKCE S256 supported", true, "code_challenge_methods_supported includes S256")
	}
	if raw != nil && !raw.has("grant_types_supported") {
		st := statusWarn
		if v2 {
			st = statusFail
		}
		r.add("DISC-04", levelMust, st, "grant_types_supported present", "grant_types_supported is missing (required since SMART 2.0)")
	}
	noPlain := !slices.Contains(methods, "plain")
	r.check("DISC-05", levelMust, "PKCE plain not offered", noPlain, pick(noPlain, "plain is not listed",
		"code_challenge_methods_supported lists plain, which SMART servers SHALL NOT support (clients never use it)"))

	// DISC-06: endpoint URLs absolute, https (or loopback http).
	var bad []string
	for _, m := range endpointMembers {
		if legacy {
			break
		}
		s, ok := raw.str(m)
		if !ok || s == "" {
			continue
		}
		u, err := url.Parse(s)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s does not parse", m))
		case !u.IsAbs() || u.Host == "":
			bad = append(bad, fmt.Sprintf("%s is relative (%q); SMART 2.1+ requires absolute URLs", m, s))
		default:
			if err := httpx.CheckURL(u, false); err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", m, err))
			}
		}
	}
	r.check("DISC-06", levelMust, "endpoint URLs absolute and https (http only on loopback)", len(bad) == 0,
		firstNonEmpty(strings.Join(bad, "; "), "all endpoint URLs are absolute"))

	// DISC-07: credential endpoints on the FHIR base's origin, else named for --trust-origin.
	set, _ := httpx.NewOrigins(append([]string{cfg.FHIRBase}, trusted...)...)
	var foreign []string
	for _, e := range []struct{ name, url string }{
		{"token_endpoint", cfg.TokenEndpoint}, {"registration_endpoint", cfg.RegistrationEndpoint},
		{"introspection_endpoint", cfg.IntrospectionEndpoint}, {"revocation_endpoint", cfg.RevocationEndpoint},
		{"authorization_endpoint", cfg.AuthorizationEndpoint},
	} {
		if u, err := url.Parse(e.url); err == nil && e.url != "" && !set.Allows(u) {
			foreign = append(foreign, e.name+" is on "+httpx.Origin(u))
		}
	}
	detail = "every endpoint is on the FHIR base's origin"
	if len(foreign) > 0 {
		detail = strings.Join(foreign, "; ") + ": not the FHIR base's origin; smartfhir sends credentials there only with --trust-origin"
	}
	r.check("DISC-07", levelShould, "credential endpoints on a trusted origin", len(foreign) == 0, detail)

	// DISC-08: unknown capabilities are ignored; synonyms noted.
	var unknown, synonyms []string
	for _, c := range caps {
		switch {
		case c == "context-passthrough-banner" || c == "context-passthrough-style":
			synonyms = append(synonyms, c)
		case capabilityInfo[c] == "":
			unknown = append(unknown, c)
		}
	}
	detail = fmt.Sprintf("%d capabilities", len(caps))
	if len(unknown) > 0 {
		detail += "; unknown (ignored): " + strings.Join(unknown, ", ")
	}
	if len(synonyms) > 0 {
		detail += "; read as context-banner/context-style: " + strings.Join(synonyms, ", ")
	}
	r.add("DISC-08", levelMust, statusInfo, "capabilities understood", detail)

	// DISC-09: the four capability sets.
	var sets []string
	for _, s := range cfg.CapabilitySets() {
		sets = append(sets, string(s))
	}
	r.add("DISC-09", levelShould, statusInfo, "capability sets supported", firstNonEmpty(strings.Join(sets, ", "), "none of the four capability sets is complete"))

	// DISC-10: client authentication advertised consistently.
	am, algs := cfg.TokenEndpointAuthMethodsSupported, cfg.TokenEndpointAuthSigningAlgValuesSupported
	asym := cfg.Supports(smart.CapClientConfidentialAsymmetric) || slices.Contains(am, smart.AuthMethodPrivateKeyJWT)
	var problems []string
	if asym && len(am) > 0 && !slices.Contains(am, smart.AuthMethodPrivateKeyJWT) {
		problems = append(problems, "client-confidential-asymmetric is advertised but private_key_jwt is not in token_endpoint_auth_methods_supported")
	}
	if asym && len(algs) == 0 {
		problems = append(problems, "asymmetric client authentication is advertised without token_endpoint_auth_signing_alg_values_supported")
	} else if asym && !slices.Contains(algs, "RS384") && !slices.Contains(algs, "ES384") {
		problems = append(problems, fmt.Sprintf("token_endpoint_auth_signing_alg_values_supported %q has neither RS384 nor ES384", algs))
	}
	if cfg.Supports(smart.CapClientConfidentialSymmetric) && len(am) > 0 && !slices.Contains(am, smart.AuthMethodClientSecretBasic) {
		problems = append(problems, "client-confidential-symmetric is advertised but client_secret_basic is not in token_endpoint_auth_methods_supported")
	}
	detail = "methods: " + firstNonEmpty(strings.Join(am, ", "), "not advertised (clients assume client_secret_basic)")
	if len(algs) > 0 {
		detail += "; signing algorithms: " + strings.Join(algs, ", ")
	}
	if len(problems) > 0 {
		detail = strings.Join(problems, "; ")
	}
	r.check("DISC-10", levelMust, "client authentication advertised consistently", len(problems) == 0, detail)

	// DISC-11: OpenID Connect needs issuer and jwks_uri.
	if cfg.Supports(smart.CapSSOOpenIDConnect) {
		err := cfg.RequireOpenID()
		r.check("DISC-11", levelMust, "issuer and jwks_uri for sso-openid-connect", err == nil,
			firstNonEmpty(errText(err), "issuer "+cfg.Issuer+", jwks_uri "+cfg.JWKSURI))
	} else {
		r.add("DISC-11", levelMust, statusSkip, "issuer and jwks_uri for sso-openid-connect", "sso-openid-connect is not advertised")
	}

	// DISC-13: scopes_supported is a recommended hint.
	n := len(cfg.ScopesSupported)
	r.check("DISC-13", levelShould, "scopes_supported advertised", n > 0,
		pick(n > 0, fmt.Sprintf("%d scopes (a hint, never exhaustive)", n), "scopes_supported is missing (RECOMMENDED)"))

	// DISC-15: optional endpoints.
	var optional []string
	for _, e := range []struct{ name, url string }{
		{"registration", cfg.RegistrationEndpoint}, {"introspection", cfg.IntrospectionEndpoint},
		{"revocation", cfg.RevocationEndpoint}, {"management", cfg.ManagementEndpoint},
	} {
		if e.url != "" {
			optional = append(optional, e.name)
		}
	}
	r.add("DISC-15", levelMay, statusInfo, "optional endpoints", firstNonEmpty(strings.Join(optional, ", "), "none advertised"))

	// DISC-16: scope syntax.
	v1 := cfg.Supports(smart.CapPermissionV1)
	r.check("DISC-16", levelShould, "scope syntax advertised (permission-v1/permission-v2)", v1 || v2,
		pick(v1 || v2, "clients will request "+cfg.ScopeStyle().String()+" scopes",
			"neither permission-v1 nor permission-v2: clients must guess the scope syntax (they use v1)"))
}

// pick returns yes when ok, else no.
func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
