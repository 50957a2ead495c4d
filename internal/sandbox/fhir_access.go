package sandbox

import (
	"slices"
	"strings"

	"github.com/smartfhir/smartfhir/smart"
)

// accessRule is one way a grant reaches resources of a type: within one patient's compartment or
// everywhere, optionally narrowed by a granular scope's query (SMART v2
// `patient/Observation.rs?category=…`).
type accessRule struct {
	patient int    // patient index, or -1 for every patient (system/ and user/ scopes)
	filter  *query // nil: no restriction
}

// access is the union of a grant's rules for one type and permission; empty means forbidden.
type access []accessRule

// allows reports whether any rule reaches r. Patient-context rules reach the patient's
// compartment and the shared reference data (Practitioner, Organization) but not groups, which
// list other patients.
func (a access) allows(r *record) bool {
	for _, rule := range a {
		if rule.patient >= 0 {
			if r.typ.inCompartment() && r.patient != rule.patient || r.typ == rtGroup {
				continue
			}
		}
		if rule.filter != nil && !rule.filter.matches(r) {
			continue
		}
		return true
	}
	return false
}

// candidates returns the only patients the rules can reach, or nil when they reach every patient.
func (a access) candidates() []int {
	out := []int{}
	for _, rule := range a {
		if rule.patient < 0 {
			return nil
		}
		out = append(out, rule.patient)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// access returns the rules by which grant g may use perm on resources of type t. It reads v1
// (.read) and v2 (.rs, .cruds) scopes and granular ones through smart.Scopes (SBX-09): system/
// and user/ scopes reach every patient (the sandbox has no per-user policy), patient/ scopes the
// grant's patient only. Granted scopes are parsed leniently: tokens the grammar refuses grant nothing. A granular query the sandbox cannot evaluate grants nothing (fail closed).
func (f *fhirState) access(g *Grant, t rtype, perm smart.Perm) access {
	scopes := smart.ParseScopesLenient(strings.Join(g.Scopes, " "))
	var rules access
	for _, context := range []string{"system", "user", "patient"} {
		patient := -1
		if context == "patient" {
			idx, ok := f.data.patientRef(g.Patient)
			if !ok {
				continue
			}
			patient = idx
		}
		for _, sc := range scopes.Matching(context, t.String(), perm) {
			rule := accessRule{patient: patient}
			if len(sc.Query) > 0 {
				q, err := f.data.parseQuery(t, sc.Query, false)
				if err != nil {
					continue
				}
				rule.filter = &q
			}
			rules = append(rules, rule)
		}
	}
	return rules
}
