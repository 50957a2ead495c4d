package smart

// Perm is a set of SMART v2 resource permissions (scopes-and-launch-context, "FHIR Resource Scope
// Syntax"): c create, r read (including vread and history), u update (including patch), d delete,
// s search (including type and system history). r and s are separate rights, and no write right
// implies read (SCOPE-06).
type Perm uint8

// The five permissions, in their canonical cruds order.
const (
	PermCreate Perm = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch

	// PermAll is cruds, the v2 equivalent of a v1 ".*" scope.
	PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
	// PermV1Read is rs, the v2 equivalent of a v1 ".read" scope (SCOPE-03).
	PermV1Read = PermRead | PermSearch
	// PermV1Write is cud, the v2 equivalent of a v1 ".write" scope (SCOPE-03).
	PermV1Write = PermCreate | PermUpdate | PermDelete
)

const permLetters = "cruds"

// String returns the permissions as letters in cruds order, the canonical shortest form
// (SCOPE-11): PermSearch|PermRead is "rs", never "sr". The empty set is "".
func (p Perm) String() string {
	var b [5]byte
	n := 0
	for i := range permLetters {
		if p&(1<<i) != 0 {
			b[n] = permLetters[i]
			n++
		}
	}
	return string(b[:n])
}

// Has reports whether p includes every permission of q.
func (p Perm) Has(q Perm) bool { return q&^p == 0 }

// parsePerms parses v2 permission letters. Strictly, the letters must be a non-empty subset of cruds
// in that order without repetition (SCOPE-02); with ordered false, any order and repetition is
// accepted (lenient parsing of granted scopes) but every letter must still be one of cruds.
func parsePerms(s string, ordered bool) (Perm, string) {
	if s == "" {
		return 0, "no permissions after the dot"
	}
	var p Perm
	last := -1
	for i := 0; i < len(s); i++ {
		idx := -1
		for j := range permLetters {
			if s[i] == permLetters[j] {
				idx = j
				break
			}
		}
		if idx < 0 {
			return 0, "permissions must be letters of cruds"
		}
		if ordered && idx <= last {
			return 0, "permissions must be in cruds order without repetition (write " + permString(s) + ")"
		}
		last = idx
		p |= 1 << idx
	}
	return p, ""
}

// permString returns the canonical form of letters known to be from cruds.
func permString(s string) string {
	p, _ := parsePerms(s, false)
	return p.String()
}
