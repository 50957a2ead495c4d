package sandbox

import (
	"slices"
	"strings"
)

// perm is a set of SMART v2 permissions (c, r, u, d, s).
type perm uint8

const (
	permC perm = 1 << iota
	permR
	permU
	permD
	permS

	permRead  = permR | permS         // v1 .read
	permWrite = permC | permU | permD // v1 .write
	permAll   = permRead | permWrite  // v1 .*, v2 .cruds
)

const (
	permOrder = "cruds" // v2 permission letters, in the order the spec requires
	wildcard  = "*"     // any resource type
	// otherScopes are the identity, launch-context and refresh scopes the sandbox knows.
	otherScopes = "openid fhirUser profile launch launch/patient launch/encounter offline_access online_access"
)

// resourceScope is one SMART clinical scope: context/type.permissions[?query], in v1 (.read, .write,
// .*) or v2 (.cruds subsets, granular queries) syntax.
type resourceScope struct {
	context string // patient, user or system
	typ     string // a resource type or "*"
	perms   perm
	query   string // granular constraint (v2), raw
	v1      bool
}

// parseResourceScope parses a clinical scope; ok is false for any other string.
func parseResourceScope(s string) (rs resourceScope, ok bool) {
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return rs, false
	}
	typ, ps, ok := strings.Cut(rest, ".")
	if !ok || !validScopeType(typ) {
		return rs, false
	}
	rs = resourceScope{context: ctx, typ: typ}
	switch ps {
	case "read":
		rs.perms, rs.v1 = permRead, true
		return rs, true
	case "write":
		rs.perms, rs.v1 = permWrite, true
		return rs, true
	case "*":
		rs.perms, rs.v1 = permAll, true
		return rs, true
	}
	ps, rs.query, _ = strings.Cut(ps, "?")
	last := -1
	for _, c := range ps {
		i := strings.IndexRune(permOrder, c)
		if i <= last { // unknown letter, repeated or out of order
			return rs, false
		}
		last = i
		rs.perms |= 1 << i
	}
	return rs, rs.perms != 0
}

func validScopeType(t string) bool {
	if t == wildcard {
		return true
	}
	if t == "" || t[0] < 'A' || t[0] > 'Z' || len(t) > 64 {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// format writes the scope in v1 or v2 syntax. A v1 scope can only say read, write or both; ok is false
// when the permissions (or a granular query) have no v1 spelling.
func (rs resourceScope) format(v1 bool) (string, bool) {
	prefix := rs.context + "/" + rs.typ + "."
	if !v1 {
		var b strings.Builder
		b.WriteString(prefix)
		for i := range len(permOrder) {
			if rs.perms&(1<<i) != 0 {
				b.WriteByte(permOrder[i])
			}
		}
		if rs.query != "" {
			b.WriteString("?" + rs.query)
		}
		return b.String(), true
	}
	if rs.query != "" {
		return "", false
	}
	switch rs.perms {
	case permRead:
		return prefix + "read", true
	case permWrite:
		return prefix + "write", true
	case permAll:
		return prefix + "*", true
	}
	return "", false
}

// intersect returns the part of requested scope r that allowed scope a covers.
func intersect(r, a resourceScope) (resourceScope, bool) {
	if r.context != a.context {
		return r, false
	}
	out := r
	switch {
	case a.typ == wildcard:
	case r.typ == wildcard:
		out.typ = a.typ
	case r.typ != a.typ:
		return r, false
	}
	switch {
	case a.query == "":
	case r.query == "":
		out.query = a.query
	case r.query != a.query:
		return r, false
	}
	out.perms = r.perms & a.perms
	return out, out.perms != 0
}

// scopePolicy grants the part of a request that a client may have (SBX-04 scope down-grading).
type scopePolicy struct {
	allowed  string   // the client's registered scope; "" allows every scope
	contexts []string // clinical contexts on offer: patient and user for apps, system for backend
	v1Only   bool     // SMART v1 mode: answer in .read/.write/.* syntax
}

// grant returns the granted scopes in request order: identity and context scopes the client may use,
// and each clinical scope narrowed to what the client is allowed (dropped when nothing is left). A v1
// request is answered in v1 syntax when it can be; v1 mode answers in v1 syntax only. Unknown scopes
// are dropped unless the client is registered for them by name.
func (p scopePolicy) grant(requested string) []string {
	var allowedRS []resourceScope
	allowedOther := map[string]bool{}
	if p.allowed == "" {
		for _, c := range p.contexts {
			allowedRS = append(allowedRS, resourceScope{context: c, typ: wildcard, perms: permAll})
		}
		for _, s := range strings.Fields(otherScopes) {
			allowedOther[s] = true
		}
	} else {
		for _, s := range strings.Fields(p.allowed) {
			if rs, ok := parseResourceScope(s); ok {
				allowedRS = append(allowedRS, rs)
			} else {
				allowedOther[s] = true
			}
		}
	}
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range strings.Fields(requested) {
		rs, ok := parseResourceScope(s)
		if !ok {
			if allowedOther[s] {
				add(s)
			}
			continue
		}
		if !slices.Contains(p.contexts, rs.context) {
			continue
		}
		for _, a := range allowedRS {
			g, ok := intersect(rs, a)
			if !ok {
				continue
			}
			if f, ok := g.format(p.v1Only || rs.v1); ok {
				add(f)
			} else if f, ok := g.format(false); ok && !p.v1Only {
				add(f)
			}
		}
	}
	return out
}

// hasScope reports whether scopes contains s.
func hasScope(scopes []string, s string) bool { return slices.Contains(scopes, s) }

// hasContext reports whether scopes grant any clinical scope in context ("patient", "user", "system").
func hasContext(scopes []string, context string) bool {
	for _, s := range scopes {
		if rs, ok := parseResourceScope(s); ok && rs.context == context {
			return true
		}
	}
	return false
}
