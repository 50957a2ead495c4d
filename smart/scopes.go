package smart

import (
	"slices"
	"strconv"
	"strings"
)

// Scopes is a space-delimited scope string, parsed (RFC 6749 §3.3). Order is kept for display;
// duplicates are removed. It implements encoding.TextMarshaler and encoding.TextUnmarshaler, so it
// works in JSON, flags and forms.
type Scopes []Scope

// ParseScopes parses a space-delimited scope string strictly, for building a request: every token
// must pass ParseScope, runs of spaces are one separator (SCOPE-01), duplicates (after
// canonicalisation) are removed, and the string is bounded by MaxScopesLength and MaxScopeCount
// (SCOPE-16). The empty string yields no scopes.
func ParseScopes(s string) (Scopes, error) {
	if len(s) > MaxScopesLength {
		return nil, &ScopeError{Scope: s[:64], Reason: "scope string longer than " + strconv.Itoa(MaxScopesLength) + " bytes", Err: ErrScopeTooLong}
	}
	var out Scopes
	seen := map[string]bool{}
	for tok := range strings.SplitSeq(s, " ") {
		if tok == "" {
			continue
		}
		sc, err := ParseScope(tok)
		if err != nil {
			return nil, err
		}
		if k := sc.String(); !seen[k] {
			if len(out) == MaxScopeCount {
				return nil, &ScopeError{Scope: tok, Reason: "more than " + strconv.Itoa(MaxScopeCount) + " scopes", Err: ErrScopeTooLong}
			}
			seen[k] = true
			out = append(out, sc)
		}
	}
	return out, nil
}

// MustParseScopes is ParseScopes for scope literals in programs and tests; it panics on error.
func MustParseScopes(s string) Scopes {
	ss, err := ParseScopes(s)
	if err != nil {
		panic(err)
	}
	return ss
}

// ParseScopesLenient parses a granted scope string (the token response's scope) and never fails
// (SCOPE-08, SCOPE-09): tokens the strict grammar refuses are kept as KindOther and grant nothing;
// permission letters out of order are accepted and normalised; any whitespace separates tokens.
// Past MaxScopesLength bytes or MaxScopeCount tokens the rest is dropped, which can only lose
// rights, never add them (SCOPE-16).
func ParseScopesLenient(s string) Scopes {
	if len(s) > MaxScopesLength {
		s = s[:MaxScopesLength]
		if i := strings.LastIndexAny(s, " \t\r\n"); i >= 0 {
			s = s[:i]
		} else {
			s = ""
		}
	}
	var out Scopes
	seen := map[string]bool{}
	for tok := range strings.FieldsSeq(s) {
		sc, reason, _ := parseScope(tok, false)
		if reason != "" {
			sc = Scope{Raw: tok}
		}
		if k := sc.String(); !seen[k] {
			if len(out) == MaxScopeCount {
				break
			}
			seen[k] = true
			out = append(out, sc)
		}
	}
	return out
}

// String returns the scopes in canonical form, space-separated.
func (ss Scopes) String() string { return ss.Format(ScopeStyleAsWritten) }

// MarshalText implements encoding.TextMarshaler with String.
func (ss Scopes) MarshalText() ([]byte, error) { return []byte(ss.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It parses like ParseScopesLenient, so that any
// Scopes value (granted scopes included) survives a round trip, but refuses text over
// MaxScopesLength. Validate scopes you are about to request with ParseScopes.
func (ss *Scopes) UnmarshalText(b []byte) error {
	if len(b) > MaxScopesLength {
		return &ScopeError{Scope: string(b[:64]), Reason: "scope string longer than " + strconv.Itoa(MaxScopesLength) + " bytes", Err: ErrScopeTooLong}
	}
	*ss = ParseScopesLenient(string(b))
	return nil
}

// Allows reports whether the scopes grant every permission of p on resourceType in context
// ("patient", "user" or "system") without any granular constraint. Permissions may come from
// several scopes (.rs and .cud together allow cruds). Contexts never imply each other (SCOPE-04):
// user/Observation.rs does not allow reading in the patient context. p must not be zero.
func (ss Scopes) Allows(context, resourceType string, p Perm) bool {
	if p == 0 {
		return false
	}
	var have Perm
	for _, g := range ss {
		if g.Kind == KindResource && len(g.Query) == 0 && g.Context == context && typeCovers(g.ResourceType, resourceType) {
			have |= g.Perms
		}
	}
	return have.Has(p)
}

// Matching returns the resource scopes in context that apply to resourceType and grant any
// permission of p, granular ones included, so that a server can filter results by their queries.
func (ss Scopes) Matching(context, resourceType string, p Perm) Scopes {
	var out Scopes
	for _, g := range ss {
		if g.Kind == KindResource && g.Context == context && typeCovers(g.ResourceType, resourceType) && g.Perms&p != 0 {
			out = append(out, g)
		}
	}
	return out
}

// Covers reports whether the scopes grant everything s asks for (SCOPE-05, SCOPE-06, SCOPE-15):
//   - a resource scope is covered permission by permission, each by some scope of the same context
//     whose type is the same or "*" and whose granular query is absent or no narrower than s's
//     (patient/Observation.rs covers patient/Observation.rs?category=…|laboratory, not the reverse);
//     v1 and v2 forms are interchangeable (patient/*.read covers patient/*.rs);
//   - any other scope is covered by an equal one.
func (ss Scopes) Covers(s Scope) bool {
	if s.Kind != KindResource {
		k := s.String()
		for _, g := range ss {
			if g.Kind == s.Kind && g.String() == k {
				return true
			}
		}
		return false
	}
	return s.Perms != 0 && ss.coveredPerms(s) == s.Perms
}

// Covers reports whether s alone grants everything o asks for; see Scopes.Covers.
func (s Scope) Covers(o Scope) bool { return Scopes{s}.Covers(o) }

// Has reports whether the scopes cover scope, parsed leniently (Has("offline_access"),
// Has("patient/Observation.rs")).
func (ss Scopes) Has(scope string) bool {
	sc, reason, _ := parseScope(scope, false)
	if reason != "" {
		sc = Scope{Raw: scope}
	}
	return ss.Covers(sc)
}

// HasKind reports whether any scope is of kind k.
func (ss Scopes) HasKind(k ScopeKind) bool {
	for _, s := range ss {
		if s.Kind == k {
			return true
		}
	}
	return false
}

// HasContext reports whether any resource scope is in context ("patient", "user" or "system"); a
// granted patient/ scope requires a patient in the launch context (TOK-07).
func (ss Scopes) HasContext(context string) bool {
	for _, s := range ss {
		if s.Kind == KindResource && s.Context == context {
			return true
		}
	}
	return false
}

// coveredPerms returns the permissions of the resource scope r that the scopes grant.
func (ss Scopes) coveredPerms(r Scope) Perm {
	var have Perm
	for _, g := range ss {
		if g.Kind == KindResource && g.Context == r.Context && typeCovers(g.ResourceType, r.ResourceType) &&
			queryCovers(g.Query, r.Query) {
			have |= g.Perms & r.Perms
		}
	}
	return have
}

// Diff returns what requested asks for and granted lacks (SCOPE-10), so that an app can degrade
// gracefully: a partly granted resource scope yields a scope with only the missing permissions
// (request patient/AllergyIntolerance.cruds, grant .rs: missing patient/AllergyIntolerance.cud).
// Diff(granted, requested) returns the extra rights instead.
func Diff(requested, granted Scopes) Scopes {
	var missing Scopes
	for _, r := range requested {
		if r.Kind != KindResource {
			if !granted.Covers(r) {
				missing = append(missing, r)
			}
			continue
		}
		lack := r.Perms &^ granted.coveredPerms(r)
		if lack == 0 {
			continue
		}
		m := r
		m.Perms, m.V1 = lack, false
		m.Raw = m.String()
		missing = append(missing, m)
	}
	return missing
}

// CheckSubset returns nil when granted covers every scope of requested, else a *ScopeError
// wrapping ErrScopeNotGranted that lists what is missing. A refresh request may only narrow the
// original grant (SCOPE-13, app-launch "Refresh access token"): check before sending it.
func CheckSubset(requested, granted Scopes) error {
	if missing := Diff(requested, granted); len(missing) > 0 {
		return &ScopeError{Scope: missing.String(), Reason: "not within the granted scopes", Err: ErrScopeNotGranted}
	}
	return nil
}

// typeCovers reports whether a scope on grantType applies to resourceType.
func typeCovers(grantType, resourceType string) bool {
	return grantType == "*" || grantType == resourceType
}

// queryCovers reports whether a granular constraint g is no narrower than r: every g parameter must
// appear in r with a value whose alternatives (comma-separated, FHIR search OR) are among g's.
// An absent g constrains nothing; an absent r is covered only by an absent g.
func queryCovers(g, r map[string][]string) bool {
	for name, gvs := range g {
		for _, gv := range gvs {
			found := false
			for _, rv := range r[name] {
				if alternativesSubset(rv, gv) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// alternativesSubset reports whether every comma-separated alternative of a (FHIR search OR) is
// one of b's. (A scope cannot hold the "\," escape: RFC 6749 forbids '\' in scopes.)
func alternativesSubset(a, b string) bool {
	if a == b {
		return true
	}
	bs := strings.Split(b, ",")
	for x := range strings.SplitSeq(a, ",") {
		if !slices.Contains(bs, x) {
			return false
		}
	}
	return true
}
