package sandbox

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Search parameters. One parser serves the REST search, bulk _typeFilter queries and granular
// SMART scopes (patient/Observation.rs?category=…), so the three agree on what a query means.

type paramKind uint8

const (
	kindToken paramKind = iota
	kindString
	kindDate
	kindReference
)

// paramDef describes a search parameter: its kind, the types that support it and the record
// field it reads.
type paramDef struct {
	kind  paramKind
	types typeSet
	token func(*record) term
	str   func(*record) string
	date  func(*record) (lo, hi time.Time)
}

var (
	clinicalTypes = setOf(rtEncounter, rtObservation, rtCondition, rtMedicationRequest, rtAllergyIntolerance,
		rtImmunization)
	subjectTypes = setOf(rtEncounter, rtObservation, rtCondition, rtMedicationRequest)
	personTypes  = setOf(rtPatient, rtPractitioner)
)

func instantRange(t time.Time) (time.Time, time.Time) { return t, t.Add(time.Millisecond) }

var searchParams = map[string]paramDef{
	"_id": {kind: kindToken, types: allTypes, token: func(r *record) term { return term{code: r.id} }},
	"_lastUpdated": {kind: kindDate, types: allTypes,
		date: func(r *record) (time.Time, time.Time) { return instantRange(r.lastUpdated) }},
	"patient": {kind: kindReference, types: clinicalTypes},
	"subject": {kind: kindReference, types: subjectTypes},
	"category": {kind: kindToken, types: setOf(rtObservation, rtCondition, rtMedicationRequest, rtAllergyIntolerance),
		token: func(r *record) term { return r.category }},
	"code": {kind: kindToken, types: setOf(rtObservation, rtCondition, rtMedicationRequest, rtAllergyIntolerance),
		token: func(r *record) term { return r.code }},
	"vaccine-code": {kind: kindToken, types: setOf(rtImmunization), token: func(r *record) term { return r.code }},
	"type":         {kind: kindToken, types: setOf(rtEncounter), token: func(r *record) term { return r.code }},
	"status": {kind: kindToken, types: setOf(rtEncounter, rtObservation, rtMedicationRequest, rtImmunization),
		token: func(r *record) term { return term{code: r.status} }},
	"clinical-status": {kind: kindToken, types: setOf(rtCondition, rtAllergyIntolerance),
		token: func(r *record) term { return term{code: r.status} }},
	"date": {kind: kindDate, types: setOf(rtEncounter, rtObservation, rtAllergyIntolerance, rtImmunization),
		date: func(r *record) (time.Time, time.Time) { return instantRange(r.date) }},
	"authoredon": {kind: kindDate, types: setOf(rtMedicationRequest),
		date: func(r *record) (time.Time, time.Time) { return instantRange(r.date) }},
	"onset-date": {kind: kindDate, types: setOf(rtCondition),
		date: func(r *record) (time.Time, time.Time) { return instantRange(r.date) }},
	"name":   {kind: kindString, types: setOf(rtPatient, rtPractitioner, rtOrganization), str: func(r *record) string { return r.name }},
	"family": {kind: kindString, types: personTypes, str: func(r *record) string { return r.family }},
	"gender": {kind: kindToken, types: personTypes, token: func(r *record) term { return term{code: r.gender} }},
	"birthdate": {kind: kindDate, types: setOf(rtPatient), date: func(r *record) (time.Time, time.Time) {
		lo, hi, _ := parseDateRange(r.birthDate)
		return lo, hi
	}},
	"identifier": {kind: kindToken, types: setOf(rtPatient, rtPractitioner, rtOrganization),
		token: func(r *record) term { return r.identifier }},
}

// paramNames lists the search parameters of type t, sorted (for the CapabilityStatement).
func paramNames(t rtype) []string {
	var out []string
	for name, def := range searchParams {
		if def.types.has(t) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// paramError is a search parameter the server cannot honour: 400 with an OperationOutcome whose
// issue code is invalid (bad value) or not-supported (unknown parameter or modifier).
type paramError struct {
	param, code, msg string
}

func (e *paramError) Error() string {
	return "sandbox: search parameter " + quoteText(e.param) + ": " + e.msg
}

// writeParamError answers 400 with an OperationOutcome: the *paramError's code, else invalid.
func writeParamError(w http.ResponseWriter, err error) {
	var pe *paramError
	if errors.As(err, &pe) {
		writeOutcome(w, http.StatusBadRequest, issue{"error", pe.code, pe.Error()})
		return
	}
	writeOutcome(w, http.StatusBadRequest, issue{"error", "invalid", err.Error()})
}

func badParam(param, msg string) *paramError { return &paramError{param, "invalid", msg} }

func unsupportedParam(param, msg string) *paramError { return &paramError{param, "not-supported", msg} }

// query is a parsed search: every condition must hold; within a condition, any value may match.
type query struct{ conds []cond }

type cond struct {
	match    func(*record) bool
	patients []int // non-nil: only these patients can match
}

func (q query) matches(r *record) bool {
	for _, c := range q.conds {
		if !c.match(r) {
			return false
		}
	}
	return true
}

// candidates returns the patients that can match, sorted and unique, or nil for all.
func (q query) candidates() []int {
	var best []int
	for _, c := range q.conds {
		if c.patients != nil && (best == nil || len(c.patients) < len(best)) {
			best = c.patients
		}
	}
	if best == nil {
		return nil
	}
	out := slices.Clone(best)
	slices.Sort(out)
	return slices.Compact(out)
}

// parseQuery parses the filter parameters of a search on type t. With lenient, unknown parameters
// are ignored (Prefer: handling=lenient); otherwise they are a *paramError.
func (d *dataset) parseQuery(t rtype, params url.Values, lenient bool) (query, error) {
	var q query
	for _, key := range slices.Sorted(maps.Keys(params)) {
		name, modifier, _ := strings.Cut(key, ":")
		def, ok := searchParams[name]
		if !ok || !def.types.has(t) {
			if lenient {
				continue
			}
			return query{}, unsupportedParam(key, "not supported for "+t.String())
		}
		for _, v := range params[key] {
			if v == "" {
				continue
			}
			c, err := d.parseCond(t, def, name, modifier, v)
			if err != nil {
				return query{}, err
			}
			q.conds = append(q.conds, c)
		}
	}
	return q, nil
}

// parseCond parses one occurrence of a parameter: comma-separated alternatives.
func (d *dataset) parseCond(t rtype, def paramDef, name, modifier, value string) (cond, error) {
	values := splitValues(value)
	key := name
	if modifier != "" {
		key += ":" + modifier
	}
	switch def.kind {
	case kindToken:
		c, err := tokenCond(def, key, modifier, values)
		if name == "_id" && modifier == "" {
			c.patients = d.idPatients(t, values)
		}
		return c, err
	case kindString:
		return stringCond(def, key, modifier, values)
	case kindDate:
		return dateCond(def, key, modifier, values)
	default:
		return d.referenceCond(key, modifier, values)
	}
}

func tokenCond(def paramDef, key, modifier string, values []string) (cond, error) {
	if modifier != "" && modifier != "not" {
		return cond{}, unsupportedParam(key, "modifier not supported")
	}
	not := modifier == "not"
	return cond{match: func(r *record) bool {
		c := def.token(r)
		return slices.ContainsFunc(values, func(v string) bool { return matchToken(v, c) }) != not
	}}, nil
}

// matchToken matches a token value: "code", "system|code", "|code" (no system) or "system|".
func matchToken(v string, c term) bool {
	sys, val, bar := strings.Cut(v, "|")
	switch {
	case !bar:
		return c.code == v
	case val == "":
		return c.system == sys
	default:
		return c.system == sys && c.code == val
	}
}

func stringCond(def paramDef, key, modifier string, values []string) (cond, error) {
	var match func(s, v string) bool
	switch modifier {
	case "":
		match = matchStringPrefix
	case "exact":
		match = func(s, v string) bool { return s == v || slices.Contains(strings.Fields(s), v) }
	case "contains":
		match = func(s, v string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(v)) }
	default:
		return cond{}, unsupportedParam(key, "modifier not supported")
	}
	return cond{match: func(r *record) bool {
		s := def.str(r)
		return slices.ContainsFunc(values, func(v string) bool { return match(s, v) })
	}}, nil
}

// matchStringPrefix is FHIR's default string match: case-insensitive, at the start of the value
// or of any of its words.
func matchStringPrefix(s, v string) bool {
	if hasPrefixFold(s, v) {
		return true
	}
	for _, w := range strings.Fields(s) {
		if hasPrefixFold(w, v) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func dateCond(def paramDef, key, modifier string, values []string) (cond, error) {
	if modifier != "" {
		return cond{}, unsupportedParam(key, "modifier not supported")
	}
	params := make([]dateParam, len(values))
	for i, v := range values {
		p, err := parseDateParam(v)
		if err != nil {
			return cond{}, badParam(key, err.Error())
		}
		params[i] = p
	}
	return cond{match: func(r *record) bool {
		lo, hi := def.date(r)
		if lo.IsZero() {
			return false
		}
		return slices.ContainsFunc(params, func(p dateParam) bool { return p.matches(lo, hi) })
	}}, nil
}

// referenceCond matches the patient a resource belongs to (patient=, subject=). A reference to
// anything but one of the sandbox's patients matches nothing.
func (d *dataset) referenceCond(key, modifier string, values []string) (cond, error) {
	if modifier != "" && modifier != "Patient" {
		return cond{}, unsupportedParam(key, "modifier not supported")
	}
	patients := []int{}
	for _, v := range values {
		if idx, ok := d.patientRef(v); ok {
			patients = append(patients, idx)
		}
	}
	return cond{patients: patients, match: func(r *record) bool { return slices.Contains(patients, r.patient) }}, nil
}

// idPatients returns the patients whose compartments hold the given ids of type t (nil: any).
func (d *dataset) idPatients(t rtype, ids []string) []int {
	if !t.inCompartment() {
		return nil
	}
	patients := []int{}
	for _, id := range ids {
		if idx, ok := d.parsePatientIndex(t, id); ok {
			patients = append(patients, idx)
		}
	}
	return patients
}

// splitValues splits a parameter value at commas not escaped with a backslash, unescaping "\,".
func splitValues(v string) []string {
	if !strings.Contains(v, `\`) {
		return strings.Split(v, ",")
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}
