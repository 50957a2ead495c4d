package smart

import (
	"maps"
	"slices"
	"strings"
)

// ScopeStyle selects the resource scope grammar to emit (SCOPE-12, DISC-16): some servers silently
// drop scopes written in the other one.
type ScopeStyle uint8

// Scope styles. The zero value keeps each scope in the grammar it was written in.
const (
	ScopeStyleAsWritten ScopeStyle = iota
	ScopeStyleV1                   // patient/Observation.read
	ScopeStyleV2                   // patient/Observation.rs
)

// String returns "v1", "v2" or "as-written".
func (st ScopeStyle) String() string {
	switch st {
	case ScopeStyleV1:
		return "v1"
	case ScopeStyleV2:
		return "v2"
	default:
		return "as-written"
	}
}

// String returns the scope in canonical form (SCOPE-11): permissions in cruds order, granular query
// parameters sorted by name (values in their original order), a v1 scope in v1 form, and a launch
// type in lower case. A KindOther or KindExtension scope is returned as written.
func (s Scope) String() string { return s.Format(ScopeStyleAsWritten) }

// Format returns the scope in the given style. Only resource scopes change:
//   - ScopeStyleV2 writes v1 scopes as v2 (.read ⇒ rs, .write ⇒ cud, .* ⇒ cruds; SCOPE-03);
//   - ScopeStyleV1 writes the narrowest v1 scope that covers the permissions: any subset of rs is
//     .read, any subset of cud is .write, anything else .*; a granular query is dropped because v1
//     has none. The result may grant more than the v2 scope: v1 cannot say less.
func (s Scope) Format(style ScopeStyle) string {
	switch s.Kind {
	case KindResource:
	case KindOpenID:
		return "openid"
	case KindFHIRUser:
		return "fhirUser"
	case KindProfile:
		return "profile"
	case KindLaunch:
		return "launch"
	case KindOfflineAccess:
		return "offline_access"
	case KindOnlineAccess:
		return "online_access"
	case KindLaunchContext:
		out := "launch/" + strings.ToLower(s.LaunchType)
		if s.Role != "" {
			out += "?role=" + s.Role
		}
		return out
	default:
		return s.Raw
	}
	v1 := s.V1
	switch style {
	case ScopeStyleV1:
		v1 = true
	case ScopeStyleV2:
		v1 = false
	}
	prefix := s.Context + "/" + s.ResourceType + "."
	if v1 {
		switch {
		case PermV1Read.Has(s.Perms):
			return prefix + "read"
		case PermV1Write.Has(s.Perms):
			return prefix + "write"
		default:
			return prefix + "*"
		}
	}
	return prefix + s.Perms.String() + encodeScopeQuery(s.Query)
}

// encodeScopeQuery writes "?name=value&…" with names sorted and values verbatim, or "".
func encodeScopeQuery(q map[string][]string) string {
	if len(q) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(q)) {
		for _, v := range q[k] {
			if b.Len() == 0 {
				b.WriteByte('?')
			} else {
				b.WriteByte('&')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// URI returns the URI representation of the scope (SCOPE-14, scopes-and-launch-context "Appendix:
// URI representation of scopes"): openid and profile get the OpenID Connect prefix
// http://openid.net/specs/openid-connect-core-1_0#, the other SMART scopes the prefix
// http://smarthealthit.org/fhir/scopes/. Extension and unrecognised scopes are returned unchanged.
// ParseScope accepts both prefixes back.
func (s Scope) URI() string {
	switch s.Kind {
	case KindOpenID, KindProfile:
		return openIDURIPrefix + s.String()
	case KindOther, KindExtension:
		return s.Raw
	default:
		return smartURIPrefix + s.String()
	}
}

// Format returns the scopes in the given style, space-separated, without duplicates (two v2 scopes
// may become one v1 scope).
func (ss Scopes) Format(style ScopeStyle) string {
	return strings.Join(ss.formatted(style), " ")
}

// Strings returns the scopes in the given style without duplicates, ready for oauth2.Config.Scopes.
func (ss Scopes) Strings(style ScopeStyle) []string { return ss.formatted(style) }

func (ss Scopes) formatted(style ScopeStyle) []string {
	out := make([]string, 0, len(ss))
	seen := make(map[string]bool, len(ss))
	for _, s := range ss {
		if f := s.Format(style); !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
