package sandbox

import (
	"strings"
	"testing"
)

func TestParseResourceScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		ok    bool
		want  resourceScope
		v2out string
	}{
		{"patient/*.read", true, resourceScope{context: "patient", typ: "*", perms: permRead, v1: true}, "patient/*.rs"},
		{"user/Observation.write", true, resourceScope{context: "user", typ: "Observation", perms: permWrite, v1: true}, "user/Observation.cud"},
		{"system/*.*", true, resourceScope{context: "system", typ: "*", perms: permAll, v1: true}, "system/*.cruds"},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true,
			resourceScope{context: "patient", typ: "Observation", perms: permRead, query: "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}, ""},
		{"patient/*.c", true, resourceScope{context: "patient", typ: "*", perms: permC}, "patient/*.c"},
		{"patient/*.sr", false, resourceScope{}, ""},
		{"patient/*.rr", false, resourceScope{}, ""},
		{"patient/*.x", false, resourceScope{}, ""},
		{"patient/*.", false, resourceScope{}, ""},
		{"patient/observation.rs", false, resourceScope{}, ""},
		{"group/*.rs", false, resourceScope{}, ""},
		{"openid", false, resourceScope{}, ""},
		{"launch/patient", false, resourceScope{}, ""},
	}
	for _, tt := range tests {
		got, ok := parseResourceScope(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("parseResourceScope(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			continue
		}
		if ok && tt.v2out != "" {
			if s, _ := got.format(false); s != tt.v2out {
				t.Errorf("format(%q) = %q, want %q", tt.in, s, tt.v2out)
			}
		}
	}
}

func TestScopePolicyGrant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		policy    scopePolicy
		requested string
		want      string
	}{
		{"wildcard narrowed to allowed types",
			scopePolicy{allowed: "patient/Observation.rs patient/Condition.r", contexts: []string{"patient"}},
			"patient/*.rs", "patient/Observation.rs patient/Condition.r"},
		{"granular allowed scope narrows an open request",
			scopePolicy{allowed: "patient/Observation.rs?category=laboratory", contexts: []string{"patient"}},
			"patient/Observation.rs", "patient/Observation.rs?category=laboratory"},
		{"different granular query refused",
			scopePolicy{allowed: "patient/Observation.rs?category=laboratory", contexts: []string{"patient"}},
			"patient/Observation.rs?category=vital-signs", ""},
		{"duplicates merged", scopePolicy{contexts: []string{"patient"}}, "patient/*.rs patient/*.rs openid openid", "patient/*.rs openid"},
		{"named extension scope", scopePolicy{allowed: "__custom.scope", contexts: []string{"patient"}}, "__custom.scope other", "__custom.scope"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.policy.grant(tt.requested), " "); got != tt.want {
			t.Errorf("%s: grant(%q) = %q, want %q", tt.name, tt.requested, got, tt.want)
		}
	}
}

// FuzzParseResourceScope: whatever parses formats back to a scope that parses to the same value.
func FuzzParseResourceScope(f *testing.F) {
	for _, s := range []string{"patient/*.read", "user/Observation.cruds?code=x", "system/*.*", "patient/A.rs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, ok := parseResourceScope(s)
		if !ok {
			return
		}
		out, ok := rs.format(false)
		if !ok {
			t.Fatalf("format(%q) failed", s)
		}
		again, ok := parseResourceScope(out)
		again.v1 = rs.v1
		if !ok || again != rs {
			t.Fatalf("%q → %q → %+v, want %+v", s, out, again, rs)
		}
	})
}
