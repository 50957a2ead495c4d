package smart

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseScopeAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Scope
	}{
		// SCOPE-02: v2 resource scopes.
		{"patient/Observation.rs", Scope{Kind: KindResource, Context: "patient", ResourceType: "Observation", Perms: PermRead | PermSearch}},
		{"user/*.cruds", Scope{Kind: KindResource, Context: "user", ResourceType: "*", Perms: PermAll}},
		{"system/Encounter.cud", Scope{Kind: KindResource, Context: "system", ResourceType: "Encounter", Perms: PermV1Write}},
		{"patient/Patient.r", Scope{Kind: KindResource, Context: "patient", ResourceType: "Patient", Perms: PermRead}},
		{"user/Appointment.s", Scope{Kind: KindResource, Context: "user", ResourceType: "Appointment", Perms: PermSearch}},
		// SCOPE-03: v1 scopes map to v2 permissions.
		{"patient/*.read", Scope{Kind: KindResource, Context: "patient", ResourceType: "*", Perms: PermV1Read, V1: true}},
		{"user/Observation.write", Scope{Kind: KindResource, Context: "user", ResourceType: "Observation", Perms: PermV1Write, V1: true}},
		{"system/*.*", Scope{Kind: KindResource, Context: "system", ResourceType: "*", Perms: PermAll, V1: true}},
		// SCOPE-05: granular scopes, values verbatim (| and : kept).
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			Scope{Kind: KindResource, Context: "patient", ResourceType: "Observation", Perms: PermRead | PermSearch,
				Query: map[string][]string{"category": {"http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}}}},
		{"patient/Observation.rs?code:in=http://valueset.example.org/ValueSet/diabetes&category=vital-signs",
			Scope{Kind: KindResource, Context: "patient", ResourceType: "Observation", Perms: PermRead | PermSearch,
				Query: map[string][]string{"code:in": {"http://valueset.example.org/ValueSet/diabetes"}, "category": {"vital-signs"}}}},
		// SCOPE-07: non-resource scopes.
		{"openid", Scope{Kind: KindOpenID}},
		{"fhirUser", Scope{Kind: KindFHIRUser}},
		{"profile", Scope{Kind: KindProfile}},
		{"launch", Scope{Kind: KindLaunch}},
		{"launch/patient", Scope{Kind: KindLaunchContext, LaunchType: "Patient"}},
		{"launch/encounter", Scope{Kind: KindLaunchContext, LaunchType: "Encounter"}},
		{"launch/list?role=https://example.org/med-list-at-home", Scope{Kind: KindLaunchContext, LaunchType: "List", Role: "https://example.org/med-list-at-home"}},
		{"launch/diagnosticreport", Scope{Kind: KindLaunchContext, LaunchType: "DiagnosticReport"}},
		{"launch/futuretype", Scope{Kind: KindLaunchContext, LaunchType: "Futuretype"}},
		{"offline_access", Scope{Kind: KindOfflineAccess}},
		{"online_access", Scope{Kind: KindOnlineAccess}},
		{"__custom.scope", Scope{Kind: KindExtension}}, // DISC-13
		{"https://ehr.example.org/scopes/dark-mode", Scope{Kind: KindExtension}},
		{"urn:example:scope", Scope{Kind: KindExtension}},
		// SCOPE-14: URI forms are the short forms.
		{"http://smarthealthit.org/fhir/scopes/patient/*.r", Scope{Kind: KindResource, Context: "patient", ResourceType: "*", Perms: PermRead}},
		{"http://smarthealthit.org/fhir/scopes/launch/patient", Scope{Kind: KindLaunchContext, LaunchType: "Patient"}},
		{"http://openid.net/specs/openid-connect-core-1_0#openid", Scope{Kind: KindOpenID}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScope(tt.in)
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			tt.want.Raw = tt.in
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseScope(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseScopeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
	}{
		{"patient/Observation.dus", ErrInvalidScope},   // SCOPE-02: out of cruds order
		{"patient/Observation.sr", ErrInvalidScope},    // SCOPE-02/11: strictly in order
		{"patient/Observation.rr", ErrInvalidScope},    // repetition
		{"patient/Observation.", ErrInvalidScope},      // empty permissions
		{"patient/Observation.x", ErrInvalidScope},     // not cruds
		{"patient/Observation", ErrInvalidScope},       // no dot
		{"Patient/Observation.r", ErrInvalidScope},     // SCOPE-02: context is case-sensitive
		{"USER/Observation.r", ErrInvalidScope},        // idem
		{"patient/observation.r", ErrInvalidScope},     // SCOPE-02: lower-case type
		{"patient/Obs3rvation.r", ErrInvalidScope},     // type is letters only
		{"patient/Observation/1.r", ErrInvalidScope},   // a path, not a type
		{"patient/.rs", ErrInvalidScope},               // no type
		{"patient/*.read?category=x", ErrInvalidScope}, // v1 takes no query
		{"patient/Observation.rs?", ErrInvalidScope},   // empty query
		{"patient/Observation.rs?category", ErrInvalidScope},
		{"patient/Observation.rs?category=", ErrInvalidScope},
		{"patient/Observation.rs?=x", ErrInvalidScope},
		{"launch/List", ErrInvalidScope},                // SCOPE-07: must be lower-case
		{"launch/", ErrInvalidScope},                    //
		{"launch/list?role=", ErrInvalidScope},          //
		{"launch/list?role=not-a-uri", ErrInvalidScope}, // role is a URI
		{"launch/list?foo=https://x.example", ErrInvalidScope},
		{"launch/list?role=https://a.example&role=https://b.example", ErrInvalidScope},
		{"launch/pat1ent", ErrInvalidScope},
		{`patient/Observation.rs?code="x"`, ErrInvalidScope}, // SCOPE-01: '"' not allowed
		{`__a\b`, ErrInvalidScope},                           // '\' not allowed
		{"open id", ErrInvalidScope},                         // space inside one token
		{"openid\x00", ErrInvalidScope},
		{"ścope", ErrInvalidScope}, // non-ASCII
		{"", ErrInvalidScope},
		{"http://openid.net/specs/openid-connect-core-1_0#fhirUser", ErrInvalidScope},
		{"http://smarthealthit.org/fhir/scopes/", ErrInvalidScope},
		{"sandbox", ErrUnknownScope}, // vendor scope: well-formed but unknown
		{"OpenID", ErrUnknownScope},
		{"patient", ErrUnknownScope},
		{strings.Repeat("a", MaxScopeLength+1), ErrScopeTooLong}, // SCOPE-16
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseScope(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseScope(%q) = %v, want %v", tt.in, err, tt.want)
			}
			var se *ScopeError
			if !errors.As(err, &se) || se.Reason == "" {
				t.Fatalf("error %v is not a *ScopeError with a reason", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "smart: ") || strings.ContainsAny(msg, "\x00\n") || len(msg) > 400 {
				t.Errorf("error message %q is not prefixed, escaped and bounded", msg)
			}
		})
	}
}

// SCOPE-11: canonical shortest form, whatever the input order.
func TestScopeCanonicalForm(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"patient/Observation.sr", "patient/Observation.rs"},
		{"patient/Observation.sdurc", "patient/Observation.cruds"},
		{"patient/Observation.rs?code=b&category=a", "patient/Observation.rs?category=a&code=b"},
		{"http://smarthealthit.org/fhir/scopes/patient/*.r", "patient/*.r"},
		{"patient/*.read", "patient/*.read"},
	}
	for _, tt := range tests {
		if got := ParseScopesLenient(tt.in).String(); got != tt.want {
			t.Errorf("ParseScopesLenient(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
	s, err := NewResourceScope("patient", "Observation", PermSearch|PermRead)
	if err != nil || s.String() != "patient/Observation.rs" {
		t.Errorf("NewResourceScope = %q, %v; want patient/Observation.rs", s, err)
	}
	if _, err := NewResourceScope("patient", "observation", PermRead); !errors.Is(err, ErrInvalidScope) {
		t.Errorf("NewResourceScope with a lower-case type: %v, want ErrInvalidScope", err)
	}
	if _, err := NewResourceScope("patient", "Observation", 0); !errors.Is(err, ErrInvalidScope) {
		t.Errorf("NewResourceScope without permissions: %v, want ErrInvalidScope", err)
	}
}

func TestPermString(t *testing.T) {
	t.Parallel()
	for p, want := range map[Perm]string{
		0: "", PermAll: "cruds", PermSearch | PermRead: "rs", PermDelete | PermCreate: "cd", PermV1Write: "cud",
	} {
		if got := p.String(); got != want {
			t.Errorf("Perm(%d).String() = %q, want %q", p, got, want)
		}
	}
	if !PermAll.Has(PermV1Read) || PermV1Read.Has(PermCreate) {
		t.Error("Perm.Has is wrong")
	}
}

// SCOPE-01: space-delimited, runs of spaces, dedupe, order kept.
func TestParseScopes(t *testing.T) {
	t.Parallel()
	got, err := ParseScopes("patient/Patient.r  openid  patient/Patient.r launch/patient")
	if err != nil {
		t.Fatal(err)
	}
	if s := got.String(); s != "patient/Patient.r openid launch/patient" {
		t.Errorf("String() = %q", s)
	}
	if ss, err := ParseScopes(""); err != nil || len(ss) != 0 {
		t.Errorf("ParseScopes(\"\") = %v, %v", ss, err)
	}
	if _, err := ParseScopes(`openid fhir"User`); !errors.Is(err, ErrInvalidScope) {
		t.Errorf("a token with '\"': %v, want ErrInvalidScope", err)
	}
	if _, err := ParseScopes("openid\tfhirUser"); !errors.Is(err, ErrInvalidScope) {
		t.Errorf("a tab separator in a request: %v, want ErrInvalidScope", err)
	}
	if _, err := ParseScopes("openid sandbox"); !errors.Is(err, ErrUnknownScope) {
		t.Errorf("an unknown scope: %v, want ErrUnknownScope", err)
	}
}

// SCOPE-16: bounded input, no hang.
func TestParseScopesBounded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("patient/Observation.rs ", 1<<20/23+1) // > 1 MB
	if _, err := ParseScopes(huge); !errors.Is(err, ErrScopeTooLong) {
		t.Errorf("1 MB scope string: %v, want ErrScopeTooLong", err)
	}
	var b strings.Builder
	for i := range MaxScopeCount + 1 {
		b.WriteString("__s")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(string(rune('a' + i/26%26)))
		b.WriteString(string(rune('a' + i/676%26)))
		b.WriteByte(' ')
	}
	if _, err := ParseScopes(b.String()); !errors.Is(err, ErrScopeTooLong) {
		t.Errorf("%d distinct scopes: %v, want ErrScopeTooLong", MaxScopeCount+1, err)
	}
	if got := ParseScopesLenient(b.String()); len(got) != MaxScopeCount {
		t.Errorf("lenient parse kept %d scopes, want the first %d", len(got), MaxScopeCount)
	}
	lenient := ParseScopesLenient(huge + " patient/Patient.cruds")
	if lenient.Allows("patient", "Patient", PermCreate) {
		t.Error("a scope past MaxScopesLength was honoured")
	}
	if !lenient.Allows("patient", "Observation", PermRead) {
		t.Error("the scopes within the limit were lost")
	}
	var ss Scopes
	if err := ss.UnmarshalText([]byte(huge)); !errors.Is(err, ErrScopeTooLong) {
		t.Errorf("UnmarshalText of 1 MB: %v, want ErrScopeTooLong", err)
	}
}

// SCOPE-09: granted scopes echoing launch scopes or unknown ones parse with no error and grant
// nothing beyond their resource scopes.
func TestParseScopesLenient(t *testing.T) {
	t.Parallel()
	got := ParseScopesLenient("launch/patient user/Observation.read openid fhirUser launch/List sandbox\tpatient/Observation.sr Patient/Observation.r")
	kinds := make([]ScopeKind, len(got))
	for i, s := range got {
		kinds[i] = s.Kind
	}
	want := []ScopeKind{KindLaunchContext, KindResource, KindOpenID, KindFHIRUser, KindOther, KindOther, KindResource, KindOther}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	if !got.Allows("user", "Observation", PermRead|PermSearch) {
		t.Error("user/Observation.read should allow rs")
	}
	if got.Allows("patient", "Patient", PermRead) {
		t.Error("Patient/Observation.r (KindOther) must grant nothing")
	}
	if s := got.String(); !strings.Contains(s, "launch/List") || !strings.Contains(s, "patient/Observation.rs") {
		t.Errorf("String() = %q: unknown scopes must be kept, known ones canonical", s)
	}
	// Round trip through text keeps everything (granted scopes persisted by a caller).
	b, _ := got.MarshalText()
	var back Scopes
	if err := back.UnmarshalText(b); err != nil || back.String() != got.String() {
		t.Errorf("text round trip: %q, %v; want %q", back, err, got)
	}
}

// SCOPE-04, SCOPE-06, SCOPE-15.
func TestScopesAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		granted, ctx, typ string
		p                 Perm
		want              bool
	}{
		{"user/Observation.rs", "patient", "Observation", PermRead, false}, // SCOPE-04
		{"patient/Observation.rs", "user", "Observation", PermRead, false}, // SCOPE-04
		{"system/*.rs", "user", "Observation", PermRead, false},            // SCOPE-04
		{"user/Observation.rs", "user", "Observation", PermRead, true},
		{"patient/Observation.c", "patient", "Observation", PermRead, false},   // SCOPE-06: write never implies read
		{"patient/Observation.r", "patient", "Observation", PermSearch, false}, // SCOPE-06: r and s are separate
		{"patient/*.rs", "patient", "Condition", PermRead | PermSearch, true},  // SCOPE-06: wildcard
		{"patient/*.rs", "patient", "Condition", PermCreate, false},
		{"patient/Observation.rs patient/Observation.cud", "patient", "Observation", PermAll, true}, // split grant
		{"patient/Observation.rs?category=laboratory", "patient", "Observation", PermRead, false},   // granular only
		{"patient/*.read", "patient", "Observation", PermRead | PermSearch, true},                   // SCOPE-03
		{"patient/*.write", "patient", "Observation", PermRead, false},
		{"patient/Observation.rs", "patient", "*", PermRead, false},         // a type does not cover every type
		{"patient/*.cruds", "patient", "AllergyIntolerance", PermAll, true}, // SCOPE-15: wider grant
		{"launch openid fhirUser", "patient", "Patient", PermRead, false},
		{"patient/*.cruds", "patient", "Observation", 0, false},
	}
	for _, tt := range tests {
		if got := ParseScopesLenient(tt.granted).Allows(tt.ctx, tt.typ, tt.p); got != tt.want {
			t.Errorf("%q.Allows(%s, %s, %s) = %v, want %v", tt.granted, tt.ctx, tt.typ, tt.p, got, tt.want)
		}
	}
}

func TestScopesMatching(t *testing.T) {
	t.Parallel()
	g := ParseScopesLenient("patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs patient/*.c user/Observation.rs patient/Condition.rs")
	got := g.Matching("patient", "Observation", PermRead).String()
	if want := "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs"; got != want {
		t.Errorf("Matching read = %q, want %q", got, want)
	}
	if got := g.Matching("patient", "Observation", PermCreate).String(); got != "patient/*.c" {
		t.Errorf("Matching create = %q", got)
	}
	if got := g.Matching("system", "Observation", PermAll); len(got) != 0 {
		t.Errorf("Matching in another context = %q", got)
	}
}

// SCOPE-05, SCOPE-06, SCOPE-03, SCOPE-04: coverage.
func TestScopesCovers(t *testing.T) {
	t.Parallel()
	const lab = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	tests := []struct {
		granted, requested string
		want               bool
	}{
		{"patient/Observation.rs", lab, true},  // SCOPE-05
		{lab, "patient/Observation.rs", false}, // SCOPE-05: reverse
		{lab, lab, true},
		{lab, "patient/Observation.r?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true},
		{"patient/Observation.rs?category=a,b", "patient/Observation.rs?category=a", true},                    // OR list ⊇
		{"patient/Observation.rs?category=a", "patient/Observation.rs?category=a,b", false},                   //
		{"patient/Observation.rs?category=a", "patient/Observation.rs?category=a&code=x", true},               // narrower request
		{"patient/Observation.rs?category=a&code=x", "patient/Observation.rs?category=a", false},              //
		{"patient/Observation.r?category=a patient/Observation.s", "patient/Observation.rs?category=a", true}, // per permission
		{"patient/*.read", "patient/*.rs", true},                                                              // SCOPE-03
		{"patient/*.rs", "patient/*.read", true},                                                              // SCOPE-03
		{"patient/*.r", "patient/*.read", false},
		{"patient/*.rs", "patient/Observation.r", true},
		{"patient/Observation.rs", "patient/*.r", false},
		{"user/*.cruds", "patient/Observation.r", false}, // SCOPE-04
		{"launch/patient openid", "launch/patient", true},
		{"launch/patient", "launch", false},
		{"launch/list?role=https://a.example", "launch/list", false},
		{"http://openid.net/specs/openid-connect-core-1_0#openid", "openid", true}, // SCOPE-14
		{"__x", "__x", true},
		{"sandbox", "sandbox", true},
		{"", "openid", false},
	}
	for _, tt := range tests {
		req := ParseScopesLenient(tt.requested)
		if len(req) != 1 {
			t.Fatalf("fixture %q", tt.requested)
		}
		if got := ParseScopesLenient(tt.granted).Covers(req[0]); got != tt.want {
			t.Errorf("%q covers %q = %v, want %v", tt.granted, tt.requested, got, tt.want)
		}
	}
	if !MustParseScope("patient/*.cruds").Covers(MustParseScope("patient/Observation.c")) {
		t.Error("Scope.Covers")
	}
	g := ParseScopesLenient("offline_access patient/*.rs")
	if !g.Has("offline_access") || !g.Has("patient/Observation.rs") || g.Has("online_access") || g.Has("sandbox") {
		t.Error("Scopes.Has")
	}
	if !g.HasKind(KindOfflineAccess) || g.HasKind(KindOpenID) || !g.HasContext("patient") || g.HasContext("user") {
		t.Error("Scopes.HasKind / HasContext") // TOK-07 helper
	}
}

// SCOPE-08, SCOPE-10, SCOPE-15: the granted-scope table of the spec, from testdata.
func TestGrantedScopeTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "scopes", "granted-table.json"))
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Requested string
		Rows      []struct{ Granted, Allergy, Observation, Missing string }
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 8 {
		t.Fatalf("table has %d rows, the spec has 8", len(table.Rows))
	}
	requested := MustParseScopes(table.Requested)
	for _, row := range table.Rows {
		t.Run(row.Granted, func(t *testing.T) {
			tok := &Token{Scope: row.Granted}
			granted := tok.GrantedScopes()
			for typ, want := range map[string]string{"AllergyIntolerance": row.Allergy, "Observation": row.Observation} {
				var have Perm
				for _, p := range []Perm{PermCreate, PermRead, PermUpdate, PermDelete, PermSearch} {
					if granted.Allows("patient", typ, p) {
						have |= p
					}
				}
				if have.String() != want {
					t.Errorf("%s permissions = %q, want %q", typ, have, want)
				}
			}
			if got := Diff(requested, granted).String(); got != row.Missing {
				t.Errorf("Diff = %q, want %q", got, row.Missing)
			}
			err := CheckSubset(requested, granted)
			if (err == nil) != (row.Missing == "") {
				t.Errorf("CheckSubset = %v", err)
			}
		})
	}
}

// SCOPE-10: Diff both ways; SCOPE-13: refresh subset.
func TestDiffAndCheckSubset(t *testing.T) {
	t.Parallel()
	req := MustParseScopes("launch/patient openid patient/AllergyIntolerance.cruds patient/*.read")
	got := MustParseScopes("launch/patient patient/AllergyIntolerance.rs patient/*.r patient/Condition.rs")
	if d := Diff(req, got).String(); d != "openid patient/AllergyIntolerance.cud patient/*.s" {
		t.Errorf("missing = %q", d)
	}
	if d := Diff(got, req).String(); d != "" {
		t.Errorf("extra = %q (everything granted is covered by the request's wildcard)", d)
	}
	if d := Diff(MustParseScopes("patient/*.rs"), MustParseScopes("patient/Observation.rs")).String(); d != "patient/*.rs" {
		t.Errorf("a specific grant must not satisfy a wildcard request: %q", d)
	}

	err := CheckSubset(MustParseScopes("patient/*.cruds"), MustParseScopes("patient/*.rs offline_access"))
	if !errors.Is(err, ErrScopeNotGranted) || !strings.Contains(err.Error(), "patient/*.cud") {
		t.Errorf("SCOPE-13 widening at refresh: %v", err)
	}
	if err := CheckSubset(MustParseScopes("patient/Observation.r"), MustParseScopes("patient/*.rs")); err != nil {
		t.Errorf("SCOPE-13 narrowing at refresh: %v", err)
	}
}

// SCOPE-12, SCOPE-14: styles and URI form.
func TestScopeFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		v1, v2 string
	}{
		{"patient/*.read", "patient/*.read", "patient/*.rs"},
		{"patient/*.write", "patient/*.write", "patient/*.cud"},
		{"patient/*.*", "patient/*.*", "patient/*.cruds"},
		{"patient/Observation.rs", "patient/Observation.read", "patient/Observation.rs"},
		{"patient/Observation.r", "patient/Observation.read", "patient/Observation.r"},
		{"patient/Observation.c", "patient/Observation.write", "patient/Observation.c"},
		{"patient/Observation.cr", "patient/Observation.*", "patient/Observation.cr"},
		{"patient/Observation.rs?category=a", "patient/Observation.read", "patient/Observation.rs?category=a"},
		{"launch/patient", "launch/patient", "launch/patient"},
		{"openid", "openid", "openid"},
	}
	for _, tt := range tests {
		s := MustParseScope(tt.in)
		if got := s.Format(ScopeStyleV1); got != tt.v1 {
			t.Errorf("%q v1 = %q, want %q", tt.in, got, tt.v1)
		}
		if got := s.Format(ScopeStyleV2); got != tt.v2 {
			t.Errorf("%q v2 = %q, want %q", tt.in, got, tt.v2)
		}
		if got := s.Format(ScopeStyleAsWritten); got != tt.in {
			t.Errorf("%q as written = %q", tt.in, got)
		}
	}
	ss := MustParseScopes("patient/Observation.r patient/Observation.s launch/patient")
	if got := ss.Format(ScopeStyleV1); got != "patient/Observation.read launch/patient" {
		t.Errorf("Scopes.Format(v1) = %q (duplicates must collapse)", got)
	}
	if got := ss.Strings(ScopeStyleV2); len(got) != 3 {
		t.Errorf("Strings = %q", got)
	}

	uris := map[string]string{
		"patient/*.r":    "http://smarthealthit.org/fhir/scopes/patient/*.r",
		"launch/patient": "http://smarthealthit.org/fhir/scopes/launch/patient",
		"fhirUser":       "http://smarthealthit.org/fhir/scopes/fhirUser",
		"openid":         "http://openid.net/specs/openid-connect-core-1_0#openid",
		"profile":        "http://openid.net/specs/openid-connect-core-1_0#profile",
		"__ext":          "__ext",
	}
	for short, uri := range uris {
		if got := MustParseScope(short).URI(); got != uri {
			t.Errorf("%q.URI() = %q, want %q", short, got, uri)
		}
		if got := MustParseScope(uri).String(); got != short {
			t.Errorf("ParseScope(%q).String() = %q, want %q", uri, got, short)
		}
	}
	for _, st := range []ScopeStyle{ScopeStyleAsWritten, ScopeStyleV1, ScopeStyleV2} {
		if st.String() == "" {
			t.Error("ScopeStyle.String")
		}
	}
	if KindLaunchContext.String() != "launch-context" || ScopeKind(200).String() != "ScopeKind(200)" {
		t.Error("ScopeKind.String")
	}
}

func TestScopesJSON(t *testing.T) {
	t.Parallel()
	type cfg struct{ Scopes Scopes }
	var c cfg
	if err := json.Unmarshal([]byte(`{"Scopes":"patient/Observation.sr  openid"}`), &c); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil || string(b) != `{"Scopes":"patient/Observation.rs openid"}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
}

func TestMustParsePanics(t *testing.T) {
	t.Parallel()
	for _, f := range []func(){func() { MustParseScope("bad scope") }, func() { MustParseScopes("Patient/X.r") }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

func BenchmarkParseScopesLenient(b *testing.B) {
	const s = "launch/patient openid fhirUser offline_access patient/*.rs patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory user/Practitioner.r"
	b.ReportAllocs()
	for b.Loop() {
		_ = ParseScopesLenient(s)
	}
}

func BenchmarkScopesAllows(b *testing.B) {
	g := ParseScopesLenient("launch/patient openid fhirUser offline_access patient/Condition.rs patient/Observation.rs patient/*.c")
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Allows("patient", "Observation", PermRead)
	}
}
