package bulk

import (
	"iter"
	"strconv"
	"strings"
)

// paramKind is the FHIR search parameter type of a filter parameter the client evaluates.
type paramKind uint8

const (
	kindToken paramKind = iota
	kindDate
	kindString
)

// filterParam is a search parameter the client evaluates: its kind and the element path it
// reads, by resource type ("" for every type: the elements every resource has). A type missing
// from paths is not evaluated, so that a parameter FHIR does not define for a type (which a
// server would refuse) never drops resources.
type filterParam struct {
	kind  paramKind
	paths map[string]string
}

// on maps each of types to path; with no types, every type.
func on(path string, types ...string) map[string]string {
	if len(types) == 0 {
		return map[string]string{"": path}
	}
	m := make(map[string]string, len(types))
	for _, t := range types {
		m[t] = path
	}
	return m
}

// join merges path maps.
func join(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// filterParams are the FHIR R4 search parameters the client evaluates in _typeFilter queries,
// with the paths of their R4 expressions.
var filterParams = map[string]filterParam{
	"_id":          {kindToken, on("id")},
	"_tag":         {kindToken, on("meta.tag")},
	"_security":    {kindToken, on("meta.security")},
	"_profile":     {kindToken, on("meta.profile")},
	"_lastUpdated": {kindDate, on("meta.lastUpdated")},
	"status": {kindToken, on("status", "Observation", "Encounter", "MedicationRequest", "MedicationAdministration",
		"MedicationDispense", "MedicationStatement", "Immunization", "Procedure", "DiagnosticReport", "CarePlan",
		"CareTeam", "DocumentReference", "ServiceRequest", "Task", "Claim", "Coverage", "EpisodeOfCare", "Flag",
		"Composition", "Consent", "DeviceRequest", "ExplanationOfBenefit", "List", "NutritionOrder", "Appointment",
		"Communication", "CommunicationRequest", "QuestionnaireResponse", "Specimen", "SupplyRequest", "ImagingStudy",
		"Media", "RiskAssessment", "FamilyMemberHistory")},
	"category": {kindToken, on("category", "Observation", "Condition", "AllergyIntolerance", "MedicationRequest",
		"MedicationStatement", "DiagnosticReport", "CarePlan", "CareTeam", "Procedure", "ServiceRequest",
		"DocumentReference", "Composition", "Consent", "Communication", "Flag", "Goal")},
	"code": {kindToken, join(
		on("code", "Observation", "Condition", "Procedure", "DiagnosticReport", "AllergyIntolerance", "ServiceRequest",
			"List", "Medication"),
		on("medication[x]", "MedicationRequest", "MedicationAdministration", "MedicationDispense", "MedicationStatement"))},
	"clinical-status":     {kindToken, on("clinicalStatus", "Condition", "AllergyIntolerance")},
	"verification-status": {kindToken, on("verificationStatus", "Condition", "AllergyIntolerance")},
	"intent": {kindToken, on("intent", "MedicationRequest", "ServiceRequest", "CarePlan", "DeviceRequest",
		"NutritionOrder", "Task", "RequestGroup")},
	"priority":    {kindToken, on("priority", "ServiceRequest", "MedicationRequest", "Task", "Communication", "CommunicationRequest")},
	"criticality": {kindToken, on("criticality", "AllergyIntolerance")},
	"severity":    {kindToken, on("severity", "Condition")},
	"gender":      {kindToken, on("gender", "Patient", "Practitioner", "RelatedPerson", "Person")},
	"active":      {kindToken, on("active", "Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Person")},
	"identifier": {kindToken, on("identifier", "Patient", "Practitioner", "PractitionerRole", "Organization",
		"Location", "Group", "Device", "Encounter", "Observation", "Condition", "Procedure", "MedicationRequest",
		"Immunization", "DiagnosticReport", "DocumentReference", "AllergyIntolerance", "ServiceRequest", "Coverage",
		"Claim", "CarePlan", "EpisodeOfCare", "Specimen")},
	"class":        {kindToken, on("class", "Encounter")},
	"type":         {kindToken, on("type", "Encounter", "AllergyIntolerance", "DocumentReference", "Composition", "EpisodeOfCare", "Location", "Organization")},
	"vaccine-code": {kindToken, on("vaccineCode", "Immunization")},
	"date": {kindDate, join(
		on("recordedDate", "AllergyIntolerance"),
		on("period", "CarePlan", "CareTeam", "Encounter", "EpisodeOfCare", "Flag"),
		on("date", "ClinicalImpression", "Composition", "DocumentReference", "FamilyMemberHistory", "List"),
		on("dateTime", "Consent"),
		on("effective[x]", "DiagnosticReport", "Observation"),
		on("occurrence[x]", "Immunization", "RiskAssessment"),
		on("performed[x]", "Procedure"),
		on("authoredOn", "SupplyRequest"))},
	"authoredon":     {kindDate, on("authoredOn", "MedicationRequest", "ServiceRequest", "DeviceRequest")},
	"effective":      {kindDate, on("effective[x]", "MedicationStatement")},
	"issued":         {kindDate, on("issued", "Observation", "DiagnosticReport")},
	"onset-date":     {kindDate, on("onset[x]", "Condition")},
	"abatement-date": {kindDate, on("abatement[x]", "Condition")},
	"recorded-date":  {kindDate, on("recordedDate", "Condition")},
	"birthdate":      {kindDate, on("birthDate", "Patient", "Person", "RelatedPerson")},
	"name": {kindString, on("name", "Patient", "Practitioner", "RelatedPerson", "Person", "Organization",
		"Location", "HealthcareService")}, // HumanName parts, or a plain string
	"family":       {kindString, on("name.family", "Patient", "Practitioner")},
	"given":        {kindString, on("name.given", "Patient", "Practitioner")},
	"address-city": {kindString, on("address.city", "Patient", "Practitioner", "Organization", "Location", "Person", "RelatedPerson")},
}

// compileCond compiles one parameter occurrence key=value of a query on type typ, which reads
// the element at path; ok is false when the client cannot evaluate it.
func compileCond(typ, key, value string) (filterCond, string, bool) {
	name, modifier, _ := strings.Cut(key, ":")
	p, known := filterParams[name]
	path := p.paths[typ]
	if path == "" {
		path = p.paths[""]
	}
	if !known || path == "" {
		return nil, "", false
	}
	values := splitValues(value)
	if modifier == "missing" {
		if value != "true" && value != "false" {
			return nil, "", false
		}
		want := value == "true"
		return func(r resourceFields) tri { return triOf((len(r.values(path)) == 0) == want) }, path, true
	}
	var match func(values []any, v string) tri
	switch {
	case p.kind == kindToken && (modifier == "" || modifier == "not"):
		match = matchToken
	case p.kind == kindDate && modifier == "":
		params := make([]dateParam, len(values))
		for i, v := range values {
			dp, ok := parseDateParam(v)
			if !ok {
				return nil, "", false
			}
			params[i] = dp
		}
		return func(r resourceFields) tri {
			got := r.values(path)
			return anyOf(len(params), func(i int) tri { return params[i].match(got) })
		}, path, true
	case p.kind == kindString && (modifier == "" || modifier == "exact" || modifier == "contains"):
		match = stringMatcher(modifier)
	default:
		return nil, "", false
	}
	cond := func(r resourceFields) tri {
		got := r.values(path)
		return anyOf(len(values), func(i int) tri { return match(got, values[i]) })
	}
	if modifier == "not" {
		return func(r resourceFields) tri { return cond(r).not() }, path, true
	}
	return cond, path, true
}

// anyOf is the three-valued OR of n alternatives.
func anyOf(n int, alt func(i int) tri) tri {
	result := triFalse
	for i := range n {
		switch alt(i) {
		case triTrue:
			return triTrue
		case triUnknown:
			result = triUnknown
		}
	}
	return result
}

// splitValues splits a parameter value at commas not escaped with a backslash, unescaping "\,"
// (FHIR search escaping).
func splitValues(v string) []string {
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

// matchToken matches a token search value against element values: a code (string, boolean), a
// Coding, a CodeableConcept or an Identifier. "code" matches any system, "system|code" and "|code"
// (no system) match Codings and Identifiers; a plain code has an implicit system the client does
// not know, so a value with a system is unknown for it.
func matchToken(values []any, v string) tri {
	sys, code, hasSys := strings.Cut(v, "|")
	if !hasSys {
		code = v
	}
	result := triFalse
	for _, val := range values {
		for tok := range tokens(val) {
			switch {
			case tok.plain && hasSys:
				result = triUnknown
			case hasSys && code == "":
				if tok.system == sys {
					return triTrue
				}
			case tok.code == code && (!hasSys || tok.system == sys):
				return triTrue
			}
		}
	}
	return result
}

// token is one coded value of an element.
type token struct {
	system, code string
	plain        bool // a primitive code, string, uri or boolean: no system of its own
}

// tokens yields the coded values of a token element.
func tokens(v any) iter.Seq[token] {
	return func(yield func(token) bool) {
		var visit func(leaf any) bool
		visit = func(leaf any) bool {
			switch leaf := leaf.(type) {
			case string:
				return yield(token{code: leaf, plain: true})
			case bool:
				return yield(token{code: strconv.FormatBool(leaf), plain: true})
			case map[string]any:
				sys, _ := leaf["system"].(string)
				if codings, ok := leaf["coding"]; ok { // CodeableConcept
					return eachLeaf(codings, visit)
				}
				if code, ok := leaf["code"].(string); ok { // Coding
					return yield(token{system: sys, code: code})
				}
				if value, ok := leaf["value"].(string); ok { // Identifier
					return yield(token{system: sys, code: value})
				}
			}
			return true
		}
		eachLeaf(v, visit)
	}
}

// eachLeaf calls visit on v, unwrapping a choice value and flattening arrays, until visit
// returns false.
func eachLeaf(v any, visit func(leaf any) bool) bool {
	switch v := v.(type) {
	case choice:
		return eachLeaf(v.v, visit)
	case []any:
		for _, e := range v {
			if !eachLeaf(e, visit) {
				return false
			}
		}
		return true
	}
	return visit(v)
}

// stringMatcher returns the match of a string search value: FHIR's default (case-insensitive,
// at the start of the value or of one of its words, which covers every part of a HumanName),
// :exact or :contains. Case folding is only decided for ASCII text; accents and other scripts
// give unknown, since servers also ignore accents.
func stringMatcher(modifier string) func(values []any, v string) tri {
	return func(values []any, v string) tri {
		result := triFalse
		for _, val := range values {
			for s := range stringsOf(val) {
				if modifier == "exact" {
					if s == v {
						return triTrue
					}
					continue
				}
				if !isASCII(s) || !isASCII(v) {
					result = triUnknown
					continue
				}
				ls, lv := strings.ToLower(s), strings.ToLower(v)
				if modifier == "contains" && strings.Contains(ls, lv) {
					return triTrue
				}
				if modifier == "" && wordPrefix(ls, lv) {
					return triTrue
				}
			}
		}
		return result
	}
}

func wordPrefix(s, prefix string) bool {
	if strings.HasPrefix(s, prefix) {
		return true
	}
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// stringsOf yields the text of a string element: a string, or every string part of a HumanName
// or Address (text, family, given, prefix, suffix, line, city…).
func stringsOf(v any) iter.Seq[string] {
	return func(yield func(string) bool) {
		var visit func(leaf any) bool
		visit = func(leaf any) bool {
			switch leaf := leaf.(type) {
			case string:
				return yield(leaf)
			case map[string]any:
				for _, k := range []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country"} {
					if e, ok := leaf[k]; ok && !eachLeaf(e, visit) {
						return false
					}
				}
			}
			return true
		}
		eachLeaf(v, visit)
	}
}
