package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// DefaultExpiresIn is the lifetime assumed when a token response has no expires_in (CONV-4): short,
// so that the token is renewed early rather than cached forever.
const DefaultExpiresIn = 300 * time.Second

// ErrMalformedTokenResponse is wrapped by every *TokenResponseError.
var ErrMalformedTokenResponse = errors.New("malformed token response")

// TokenResponseError reports a token endpoint success response that breaks a MUST of SMART App Launch
// or RFC 6749 §5.1 (TOK-02, TOK-03, TOK-06, TOK-13). Field names the offending member; the value itself
// is never included because it may be a credential.
type TokenResponseError struct {
	Field  string
	Reason string
}

// Error names the member and the reason, never the value.
func (e *TokenResponseError) Error() string {
	if e.Field == "" {
		return "smart: malformed token response: " + e.Reason
	}
	return "smart: malformed token response: " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrMalformedTokenResponse) true.
func (e *TokenResponseError) Unwrap() error { return ErrMalformedTokenResponse }

// FHIRContextItem is one entry of the fhirContext launch parameter. SMART 2.0 sent bare relative
// references ("DiagnosticReport/123"), which parse into Reference; 2.1+ sends objects with at least one
// of reference, canonical or identifier. Role defaults to "launch" (SMART scopes-and-launch-context,
// fhirContext).
type FHIRContextItem struct {
	Reference  string          `json:"reference,omitempty"`
	Canonical  string          `json:"canonical,omitempty"`
	Identifier json.RawMessage `json:"identifier,omitempty"`
	Type       string          `json:"type,omitempty"`
	Role       string          `json:"role,omitempty"`
}

// LaunchContext is the launch context a SMART token response carries
// (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token).
type LaunchContext struct {
	// Patient and Encounter are bare FHIR ids, validated against the id grammar (TOK-06).
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
	// FHIRContext lists further context resources (TOK-08).
	FHIRContext []FHIRContextItem `json:"fhirContext,omitempty"`
	// NeedPatientBanner asks the app to show a patient banner (TOK-09).
	NeedPatientBanner bool `json:"need_patient_banner,omitempty"`
	// SmartStyleURL is kept only when it is an https (or loopback http) URL (TOK-09).
	SmartStyleURL string `json:"smart_style_url,omitempty"`
	// Intent and Tenant are opaque strings.
	Intent string `json:"intent,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	// Extensions keeps every member this package does not know, raw (extension context, TOK-10).
	Extensions map[string]json.RawMessage `json:"extensions,omitempty"`
}

// Token is an OAuth 2.0 token with the SMART members of the token response. It embeds *oauth2.Token,
// so it works wherever one does (oauth2.Config.Client, oauth2.StaticTokenSource); unlike
// *oauth2.Token it survives JSON persistence with nothing lost.
type Token struct {
	*oauth2.Token
	// Scope is the granted scope string exactly as returned (SCOPE-08: the truth about access).
	Scope string
	// ScopeOmitted is true when the server sent no scope member (TOK-04); Scope is then "".
	ScopeOmitted bool
	// IDToken is the raw OpenID Connect id_token. It is NOT verified here: launch verifies it.
	IDToken string
	LaunchContext
	// Warnings lists tolerated deviations (expires_in as a string, a missing expires_in, a
	// "Patient/123" reference where an id belongs…), for logging and conformance reports.
	Warnings []string
}

// GrantedScopes parses Scope leniently.
// (GrantedScopes lives in scope.go.)

var knownTokenMembers = map[string]bool{
	"access_token": true, "token_type": true, "expires_in": true, "scope": true, "refresh_token": true,
	"id_token": true, "patient": true, "encounter": true, "fhirContext": true, "need_patient_banner": true,
	"smart_style_url": true, "intent": true, "tenant": true,
}

// fhirID is the FHIR id datatype grammar.
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// IsFHIRID reports whether s matches the FHIR id grammar [A-Za-z0-9\-.]{1,64}.
func IsFHIRID(s string) bool { return fhirID.MatchString(s) }

// relativeReference is a FHIR relative reference: Type/id, optionally /_history/version.
var relativeReference = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?$`)

// isRelativeReference reports whether s is a FHIR relative reference ("DiagnosticReport/123",
// optionally ".../_history/2"), the only form fhirContext references take: never an absolute URL, a
// path with "..", or a query (TOK-08, SEC-12).
func isRelativeReference(s string) bool { return relativeReference.MatchString(s) }

// b64token is RFC 6750 §2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
var b64token = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// ValidAccessToken reports whether s can be sent in an Authorization: Bearer header (RFC 6750 b64token).
// A token with CR, LF or spaces would let a hostile server inject headers (TOK-13).
func ValidAccessToken(s string) bool { return len(s) <= 64<<10 && b64token.MatchString(s) }

// ParseTokenResponse parses a token endpoint success body (RFC 6749 §5.1 plus the SMART launch
// context) received at now. It is strict where security depends on it and lenient, with a Warning,
// where real servers deviate harmlessly:
//   - the body must be one JSON object without duplicate member names (TOK-13);
//   - an "error" member makes it an *oauth2.RetrieveError even with status 200 ("error": null does not);
//   - "scope": null counts as omitted (ScopeOmitted), not as an empty grant (TOK-04);
//   - access_token must be a non-empty RFC 6750 b64token (TOK-02, TOK-13);
//   - token_type must be "bearer" in any case (TOK-02);
//   - expires_in may be a number or a numeric string; absent means DefaultExpiresIn; negative is an
//     error (TOK-03, CONV-4);
//   - patient and encounter must be FHIR ids; "Patient/123" is normalised with a warning, anything else
//     (paths, queries) is an error (TOK-06);
//   - fhirContext accepts SMART 2.0 strings and 2.1+ objects; bad items are dropped with a warning (TOK-08);
//   - need_patient_banner must be a boolean; "true"/"false" strings are accepted with a warning (TOK-09);
//   - smart_style_url is kept only if https or loopback http (TOK-09);
//   - unknown members are kept in Extensions (TOK-10).
func ParseTokenResponse(body []byte, now time.Time) (*Token, error) {
	members, err := decodeObject(body)
	if err != nil {
		return nil, &TokenResponseError{Reason: err.Error()}
	}
	// A null member is an absent one: "error": null is not an error response, and "scope": null is
	// an omitted scope (TOK-04), not an empty grant.
	if raw, ok := members["error"]; ok && !isNull(raw) {
		var e struct {
			Code string `json:"error"`
			Desc string `json:"error_description"`
			URI  string `json:"error_uri"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Code == "" {
			e.Code = strings.Trim(string(raw), `"`)
		}
		if e.Code == "" {
			// (*oauth2.RetrieveError).Error dereferences a nil Response when ErrorCode is empty.
			e.Code = "server_error"
		}
		return nil, &oauth2.RetrieveError{ErrorCode: sanitize(e.Code), ErrorDescription: sanitize(e.Desc), ErrorURI: sanitize(e.URI)}
	}
	t := &Token{Token: &oauth2.Token{}}
	raw := map[string]any{}

	access, err := stringMember(members, "access_token", true)
	if err != nil {
		return nil, err
	}
	if !ValidAccessToken(access) {
		return nil, &TokenResponseError{Field: "access_token", Reason: "contains characters outside RFC 6750 b64token (CR, LF, spaces…)"}
	}
	t.AccessToken = access

	tt, err := stringMember(members, "token_type", true)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(tt, "bearer") {
		return nil, &TokenResponseError{Field: "token_type", Reason: fmt.Sprintf("%q is not bearer", sanitize(tt))}
	}
	t.TokenType = "Bearer"

	expiresIn, warn, err := parseExpiresIn(members["expires_in"])
	if err != nil {
		return nil, err
	}
	if warn != "" {
		t.Warnings = append(t.Warnings, warn)
	}
	t.ExpiresIn = int64(expiresIn / time.Second)
	t.Expiry = now.Add(expiresIn)

	if raw, ok := members["scope"]; !ok || isNull(raw) {
		t.ScopeOmitted = true
		t.Warnings = append(t.Warnings, "scope: missing (SMART requires it; treat granted access as unknown)")
	} else if t.Scope, err = stringMember(members, "scope", false); err != nil {
		return nil, err
	}
	if t.RefreshToken, err = stringMember(members, "refresh_token", false); err != nil {
		return nil, err
	}
	if strings.ContainsAny(t.RefreshToken, "\r\n\x00") {
		return nil, &TokenResponseError{Field: "refresh_token", Reason: "contains control characters"}
	}
	if t.IDToken, err = stringMember(members, "id_token", false); err != nil {
		return nil, err
	}
	if err := t.parseContext(members); err != nil {
		return nil, err
	}
	for k, v := range members {
		var x any
		_ = json.Unmarshal(v, &x)
		raw[k] = x
		if !knownTokenMembers[k] {
			if t.Extensions == nil {
				t.Extensions = map[string]json.RawMessage{}
			}
			t.Extensions[k] = v
		}
	}
	t.Token = t.Token.WithExtra(raw)
	return t, nil
}

func (t *Token) parseContext(m map[string]json.RawMessage) error {
	for _, f := range []struct {
		name string
		dst  *string
		typ  string
	}{{"patient", &t.Patient, "Patient"}, {"encounter", &t.Encounter, "Encounter"}} {
		v, err := stringMember(m, f.name, false)
		if err != nil {
			return err
		}
		if v == "" {
			// Absent and null mean no context; an empty string is not a FHIR id.
			if raw, present := m[f.name]; present && string(raw) != "null" {
				return &TokenResponseError{Field: f.name, Reason: "empty"}
			}
			continue
		}
		if id, ok := strings.CutPrefix(v, f.typ+"/"); ok && IsFHIRID(id) {
			t.Warnings = append(t.Warnings, fmt.Sprintf("%s: a reference %q where a bare id belongs; normalised", f.name, sanitize(v)))
			v = id
		}
		if !IsFHIRID(v) {
			return &TokenResponseError{Field: f.name, Reason: fmt.Sprintf("%q is not a FHIR id", sanitize(v))}
		}
		*f.dst = v
	}
	if raw, ok := m["fhirContext"]; ok {
		items, warns := parseFHIRContext(raw)
		t.FHIRContext = items
		t.Warnings = append(t.Warnings, warns...)
	}
	if raw, ok := m["need_patient_banner"]; ok {
		switch s := strings.TrimSpace(string(raw)); s {
		case "true", `"true"`:
			t.NeedPatientBanner = true
		case "false", `"false"`, "null":
		default:
			t.Warnings = append(t.Warnings, "need_patient_banner: not a boolean; ignored")
		}
		if strings.HasPrefix(strings.TrimSpace(string(raw)), `"`) {
			t.Warnings = append(t.Warnings, "need_patient_banner: a string where a boolean belongs")
		}
	}
	if s, err := stringMember(m, "smart_style_url", false); err == nil && s != "" {
		if u, err := url.Parse(s); err == nil && (u.Scheme == "https" || u.Scheme == "http" && httpx.IsLoopbackHost(u.Hostname())) && u.Host != "" {
			t.SmartStyleURL = s
		} else {
			t.Warnings = append(t.Warnings, "smart_style_url: not an https URL; ignored")
		}
	}
	var err error
	if t.Intent, err = stringMember(m, "intent", false); err != nil {
		return err
	}
	if t.Tenant, err = stringMember(m, "tenant", false); err != nil {
		return err
	}
	return nil
}

func parseFHIRContext(raw json.RawMessage) ([]FHIRContextItem, []string) {
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil {
		return nil, []string{"fhirContext: not an array; ignored"}
	}
	var out []FHIRContextItem
	var warns []string
	for i, el := range arr {
		var s string
		if json.Unmarshal(el, &s) == nil {
			if !isRelativeReference(s) {
				warns = append(warns, fmt.Sprintf("fhirContext[%d]: not a relative reference; dropped", i))
				continue
			}
			out = append(out, FHIRContextItem{Reference: s, Role: "launch"})
			continue
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(el, &obj) != nil {
			warns = append(warns, fmt.Sprintf("fhirContext[%d]: neither a string nor an object; dropped", i))
			continue
		}
		var it FHIRContextItem
		if err := json.Unmarshal(el, &it); err != nil {
			warns = append(warns, fmt.Sprintf("fhirContext[%d]: %v; dropped", i, err))
			continue
		}
		if it.Reference == "" && it.Canonical == "" && len(it.Identifier) == 0 {
			warns = append(warns, fmt.Sprintf("fhirContext[%d]: none of reference, canonical, identifier; dropped", i))
			continue
		}
		if it.Reference != "" && !isRelativeReference(it.Reference) {
			warns = append(warns, fmt.Sprintf("fhirContext[%d]: reference is not a relative reference; dropped", i))
			continue
		}
		if r, present := obj["role"]; present {
			if it.Role == "" || string(r) == "null" {
				warns = append(warns, fmt.Sprintf("fhirContext[%d]: empty role; dropped", i))
				continue
			}
		} else {
			it.Role = "launch"
		}
		out = append(out, it)
	}
	return out, warns
}

func parseExpiresIn(raw json.RawMessage) (time.Duration, string, error) {
	if raw == nil || string(raw) == "null" {
		return DefaultExpiresIn, "expires_in: missing; assuming 300 s", nil
	}
	s := string(raw)
	warn := ""
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, "", &TokenResponseError{Field: "expires_in", Reason: "not a number"}
		}
		warn = "expires_in: a string where a number belongs"
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "", &TokenResponseError{Field: "expires_in", Reason: "not a number"}
	}
	if f < 0 {
		return 0, "", &TokenResponseError{Field: "expires_in", Reason: "negative"}
	}
	const maxLife = 10 * 365 * 24 * time.Hour
	if f > maxLife.Seconds() {
		f = maxLife.Seconds()
	}
	return time.Duration(f) * time.Second, warn, nil
}

// decodeObject decodes a JSON object into its members, refusing duplicates and trailing data.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("truncated JSON: %w", err)
		}
		k := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("truncated JSON: %w", err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("duplicate member %q", sanitize(k))
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("truncated JSON: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the JSON object")
	}
	return m, nil
}

// stringMember returns member name as a string. A non-string value is an error; a missing one is an
// error only when required.
// isNull reports whether a decoded member is the JSON literal null.
func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func stringMember(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", &TokenResponseError{Field: name, Reason: "missing"}
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &TokenResponseError{Field: name, Reason: "not a string"}
	}
	if required && s == "" {
		return "", &TokenResponseError{Field: name, Reason: "empty"}
	}
	return s, nil
}

// sanitize bounds and escapes server text quoted in errors.
func sanitize(s string) string {
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
