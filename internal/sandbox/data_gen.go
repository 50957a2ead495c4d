package sandbox

import (
	"strconv"
	"time"
)

// patient returns patient idx's records of the given types, in a fixed order (the Patient, then
// encounters, observations, conditions, medication requests, allergies, immunizations). The
// result is valid until the generator's next call.
func (g *generator) patient(idx int, types typeSet) []record {
	g.recs, g.j.b = g.recs[:0], g.j.b[:0]
	p := g.planPatient(idx)
	if types.has(rtPatient) {
		g.emitPatient(p)
	}
	if types.has(rtEncounter) {
		for i := range p.encounters {
			g.emitEncounter(p, i)
		}
	}
	if types.has(rtObservation) {
		g.emitObservations(p)
	}
	if types.has(rtCondition) {
		for i := range p.conds {
			g.emitCondition(p, i)
		}
	}
	if types.has(rtMedicationRequest) {
		g.emitMedicationRequests(p)
	}
	if types.has(rtAllergyIntolerance) {
		for i := range p.allergies {
			g.emitAllergy(p, i)
		}
	}
	if types.has(rtImmunization) {
		for i := range p.vaccines {
			g.emitImmunization(p, i)
		}
	}
	return g.recs
}

// add appends r to the generator's records and, when encoding, opens its JSON with the common
// header (resourceType, id, meta). It returns nil when not encoding: the caller then skips the body.
func (g *generator) add(r record) *jsonBuf {
	g.recs = append(g.recs, r)
	if !g.encode {
		return nil
	}
	j := &g.j
	g.start = len(j.b)
	j.b = append(j.b, '{') // a new top-level value: no separator from the previous record
	j.str("resourceType", r.typ.String())
	j.str("id", r.id)
	j.obj("meta")
	j.str("versionId", "1")
	j.instant("lastUpdated", r.lastUpdated)
	j.end()
	return j
}

// finish closes the last record's JSON.
func (g *generator) finish() {
	g.j.end()
	g.recs[len(g.recs)-1].json = g.j.b[g.start:len(g.j.b):len(g.j.b)]
}

func (j *jsonBuf) coding(c term) {
	j.obj("")
	j.str("system", c.system)
	j.str("code", c.code)
	j.str("display", c.display)
	j.end()
}

// concept writes a CodeableConcept with one coding and its display as text, under key k ("" in
// an array).
func (j *jsonBuf) concept(k string, c term) {
	j.obj(k)
	j.arr("coding")
	j.coding(c)
	j.endArr()
	j.str("text", c.display)
	j.end()
}

// concepts writes a one-element array of CodeableConcept.
func (j *jsonBuf) concepts(k string, c term) {
	j.arr(k)
	j.concept("", c)
	j.endArr()
}

func (j *jsonBuf) ref(k, ref, display string) {
	j.obj(k)
	j.str("reference", ref)
	if display != "" {
		j.str("display", display)
	}
	j.end()
}

// quantity writes a UCUM Quantity.
func (j *jsonBuf) quantity(k string, v float64, prec int, unit string) {
	j.obj(k)
	j.num("value", v, prec)
	j.str("unit", unit)
	j.str("system", sysUCUM)
	j.str("code", unit)
	j.end()
}

func (j *jsonBuf) identifier(typ term, system, value string) {
	j.obj("")
	j.str("use", "usual")
	j.concept("type", typ)
	j.str("system", system)
	j.str("value", value)
	j.end()
}

func (j *jsonBuf) humanName(prefix string, given []string, family string) {
	j.arr("name")
	j.obj("")
	j.str("use", "official")
	j.str("family", family)
	j.arr("given")
	for _, n := range given {
		j.elem(n)
	}
	j.endArr()
	if prefix != "" {
		j.arr("prefix")
		j.elem(prefix)
		j.endArr()
	}
	j.end()
	j.endArr()
}

func (j *jsonBuf) phone(number, use string) {
	j.arr("telecom")
	j.obj("")
	j.str("system", "phone")
	j.str("value", number)
	j.str("use", use)
	j.end()
	j.endArr()
}

func (j *jsonBuf) address(use, line string, city int) {
	c := cities[city]
	j.arr("address")
	j.obj("")
	j.str("use", use)
	j.arr("line")
	j.elem(line)
	j.endArr()
	j.str("city", c.city)
	j.str("state", c.state)
	j.str("postalCode", c.zip)
	j.str("country", "US")
	j.end()
	j.endArr()
}

var (
	idTypeMRN = term{sysV2ID, "MR", "Medical Record Number"}
	idTypeNPI = term{sysV2ID, "NPI", "National provider identifier"}
	idTypePRN = term{sysV2ID, "PRN", "Provider number"}
)

func mrn(idx int) string { return "MRN-" + pad(100000+idx, 7) }

func (g *generator) emitPatient(p *patientPlan) {
	j := g.add(record{typ: rtPatient, id: p.id, patient: p.idx, lastUpdated: p.updated,
		name: p.displayName(), family: p.family, gender: p.gender(), birthDate: p.birth.Format(time.DateOnly),
		identifier: term{system: sysMRN, code: mrn(p.idx)}})
	if j == nil {
		return
	}
	j.arr("identifier")
	j.identifier(idTypeMRN, sysMRN, mrn(p.idx))
	j.endArr()
	j.bool("active", true)
	j.humanName(choose(p.female, "Ms.", "Mr."), p.given, p.family)
	j.phone(p.phone, "home")
	j.str("gender", p.gender())
	j.date("birthDate", p.birth)
	j.address("home", p.street, p.city)
	j.arr("generalPractitioner")
	g.practitionerRef("", p.gp)
	j.endArr()
	j.ref("managingOrganization", "Organization/"+g.d.organizations[p.org].id, g.d.organizations[p.org].name)
	g.finish()
}

func (g *generator) practitionerRef(k string, i int) {
	pr := &g.d.practitioners[i]
	g.j.ref(k, "Practitioner/"+pr.id, "Dr. "+pr.name)
}

func (g *generator) patientRef(k string, p *patientPlan) {
	g.j.ref(k, "Patient/"+p.id, p.displayName())
}

func (g *generator) emitEncounter(p *patientPlan, i int) {
	e := &p.encounters[i]
	kind := encounterTypes[e.kind]
	id := resourceID(rtEncounter, p.idx, i)
	j := g.add(record{typ: rtEncounter, id: id, patient: p.idx, lastUpdated: e.end.Add(time.Hour),
		status: "finished", code: kind.typ, date: e.start})
	if j == nil {
		return
	}
	j.str("status", "finished")
	j.obj("class")
	j.str("system", kind.class.system)
	j.str("code", kind.class.code)
	j.str("display", kind.class.display)
	j.end()
	j.concepts("type", kind.typ)
	g.patientRef("subject", p)
	j.arr("participant")
	j.obj("")
	j.concepts("type", term{"http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF", "primary performer"})
	g.practitionerRef("individual", e.prac)
	j.end()
	j.endArr()
	j.obj("period")
	j.instant("start", e.start)
	j.instant("end", e.end)
	j.end()
	j.ref("serviceProvider", "Organization/"+g.d.organizations[p.org].id, g.d.organizations[p.org].name)
	g.finish()
}

// emitObservations writes each encounter's vital signs (BP panel, heart rate, weight, height,
// BMI) and, for some encounters, a lab panel (glucose, HbA1c, creatinine, cholesterol).
func (g *generator) emitObservations(p *patientPlan) {
	n := 0
	next := func() int { n++; return n - 1 }
	vitals, labs := g.vitals.at(g.d, p.idx, secVitals), g.labs.at(g.d, p.idx, secLabs)
	for i := range p.encounters {
		g.emitVitals(p, i, vitals, next)
		if p.encounters[i].labs {
			g.emitLabs(p, i, labs, next)
		}
	}
}

// obsHeader adds an Observation record and writes everything up to its value.
func (g *generator) obsHeader(p *patientPlan, enc, n int, cat, c term, effective, issued time.Time) *jsonBuf {
	j := g.add(record{typ: rtObservation, id: resourceID(rtObservation, p.idx, n), patient: p.idx,
		lastUpdated: issued, status: "final", category: cat, code: c, date: effective})
	if j == nil {
		return nil
	}
	j.str("status", "final")
	j.concepts("category", cat)
	j.concept("code", c)
	g.patientRef("subject", p)
	j.ref("encounter", "Encounter/"+resourceID(rtEncounter, p.idx, enc), "")
	j.instant("effectiveDateTime", effective)
	j.instant("issued", issued)
	j.arr("performer")
	g.practitionerRef("", p.encounters[enc].prac)
	j.endArr()
	return j
}

func (g *generator) emitVitals(p *patientPlan, enc int, r *stream, next func() int) {
	e := &p.encounters[enc]
	at := e.start.Add(10 * time.Minute)
	issued := at.Add(5 * time.Minute)
	hyper := 0.0
	for _, c := range p.conds {
		if c.def.term == conditions[0].term { // hypertension
			hyper = 1
		}
	}
	sys := round(clamp(normal(r.Rand, 118+16*hyper, 10), 85, 200), 0)
	dia := round(clamp(normal(r.Rand, 76+9*hyper, 7), 50, 120), 0)
	hr := round(clamp(normal(r.Rand, 72, 9), 45, 140), 0)
	weight := round(clamp(p.weightKg+normal(r.Rand, 0, 1.5), 40, 200), 1)
	height := round(p.heightCm, 1)
	bmi := round(weight/(height/100*height/100), 1)

	if j := g.obsHeader(p, enc, next(), catVitalSigns, loincBPPanel, at, issued); j != nil {
		j.arr("component")
		for _, c := range []struct {
			term
			v float64
		}{{loincSystolic, sys}, {loincDiastolic, dia}} {
			j.obj("")
			j.concept("code", c.term)
			j.quantity("valueQuantity", c.v, 0, "mm[Hg]")
			j.end()
		}
		j.endArr()
		g.finish()
	}
	for _, v := range []struct {
		term
		v    float64
		prec int
		unit string
	}{{loincHeartRate, hr, 0, "/min"}, {loincWeight, weight, 1, "kg"}, {loincHeight, height, 1, "cm"},
		{loincBMI, bmi, 1, "kg/m2"}} {
		if j := g.obsHeader(p, enc, next(), catVitalSigns, v.term, at, issued); j != nil {
			j.quantity("valueQuantity", v.v, v.prec, v.unit)
			g.finish()
		}
	}
}

func (g *generator) emitLabs(p *patientPlan, enc int, r *stream, next func() int) {
	e := &p.encounters[enc]
	drawn := e.start.Add(20 * time.Minute)
	issued := drawn.Add(time.Duration(2+r.IntN(46)) * time.Hour)
	diabetic := hasDiabetes(p.idx)
	for i, t := range labTests {
		mu := t.mean
		if diabetic && i <= 1 { // glucose, HbA1c
			mu *= 1.45
		}
		v := round(clamp(normal(r.Rand, mu, t.sd), t.mean/4, t.mean*4), t.prec)
		j := g.obsHeader(p, enc, next(), catLaboratory, t.term, drawn, issued)
		if j == nil {
			continue
		}
		j.quantity("valueQuantity", v, t.prec, t.unit)
		interp := term{sysInterp, "N", "Normal"}
		switch {
		case v > t.hi:
			interp = term{sysInterp, "H", "High"}
		case v < t.low:
			interp = term{sysInterp, "L", "Low"}
		}
		j.concepts("interpretation", interp)
		j.arr("referenceRange")
		j.obj("")
		if t.low > 0 {
			j.quantity("low", t.low, t.prec, t.unit)
		}
		j.quantity("high", t.hi, t.prec, t.unit)
		j.end()
		j.endArr()
		g.finish()
	}
}

func (g *generator) emitCondition(p *patientPlan, i int) {
	c := &p.conds[i]
	status := "active"
	updated := c.onset.Add(26 * time.Hour)
	if !c.resolved.IsZero() {
		status, updated = "resolved", c.resolved.Add(time.Hour)
	}
	j := g.add(record{typ: rtCondition, id: resourceID(rtCondition, p.idx, i), patient: p.idx,
		lastUpdated: updated, status: status, category: catProblem, code: c.def.term, date: c.onset})
	if j == nil {
		return
	}
	j.concept("clinicalStatus", term{sysCondClin, status, titleCase(status)})
	j.concept("verificationStatus", term{sysCondVer, "confirmed", "Confirmed"})
	j.concepts("category", catProblem)
	j.concept("code", c.def.term)
	g.patientRef("subject", p)
	j.instant("onsetDateTime", c.onset)
	if !c.resolved.IsZero() {
		j.instant("abatementDateTime", c.resolved)
	}
	j.instant("recordedDate", c.onset.Add(2*time.Hour))
	g.practitionerRef("recorder", p.gp)
	g.finish()
}

// emitMedicationRequests writes one order per condition that has a treatment.
func (g *generator) emitMedicationRequests(p *patientPlan) {
	n := 0
	for ci, c := range p.conds {
		if c.def.med == nil {
			continue
		}
		status, updated := "active", c.onset.Add(25*time.Hour)
		if !c.resolved.IsZero() {
			status, updated = "completed", c.resolved.Add(time.Hour)
		}
		authored := c.onset.Add(24 * time.Hour)
		j := g.add(record{typ: rtMedicationRequest, id: resourceID(rtMedicationRequest, p.idx, n), patient: p.idx,
			lastUpdated: updated, status: status, category: catCommunity, code: *c.def.med, date: authored})
		n++
		if j == nil {
			continue
		}
		j.str("status", status)
		j.str("intent", "order")
		j.concepts("category", catCommunity)
		j.concept("medicationCodeableConcept", *c.def.med)
		g.patientRef("subject", p)
		j.instant("authoredOn", authored)
		g.practitionerRef("requester", p.gp)
		j.arr("reasonReference")
		j.ref("", "Condition/"+resourceID(rtCondition, p.idx, ci), c.def.display)
		j.endArr()
		j.arr("dosageInstruction")
		j.obj("")
		j.int("sequence", 1)
		j.str("text", "Take as directed, once daily")
		j.obj("timing")
		j.obj("repeat")
		j.int("frequency", 1)
		j.num("period", 1, 0)
		j.str("periodUnit", "d")
		j.end()
		j.end()
		j.end()
		j.endArr()
		g.finish()
	}
}

func (g *generator) emitAllergy(p *patientPlan, i int) {
	a := allergies[p.allergies[i].i]
	recorded := p.allergies[i].date
	j := g.add(record{typ: rtAllergyIntolerance, id: resourceID(rtAllergyIntolerance, p.idx, i), patient: p.idx,
		lastUpdated: recorded.Add(3 * time.Hour), status: "active", category: term{code: a.category}, code: a.term,
		date: recorded})
	if j == nil {
		return
	}
	j.concept("clinicalStatus", term{sysAllerClin, "active", "Active"})
	j.concept("verificationStatus", term{sysAllerVer, "confirmed", "Confirmed"})
	j.str("type", "allergy")
	j.arr("category")
	j.elem(a.category)
	j.endArr()
	criticality := "low"
	if a.reaction.code == "39579001" { // anaphylaxis
		criticality = "high"
	}
	j.str("criticality", criticality)
	j.concept("code", a.term)
	g.patientRef("patient", p)
	j.instant("recordedDate", recorded)
	j.arr("reaction")
	j.obj("")
	j.concepts("manifestation", a.reaction)
	severity := "mild"
	if criticality == "high" {
		severity = "severe"
	}
	j.str("severity", severity)
	j.end()
	j.endArr()
	g.finish()
}

func (g *generator) emitImmunization(p *patientPlan, i int) {
	v := vaccines[p.vaccines[i].i]
	when := p.vaccines[i].date
	j := g.add(record{typ: rtImmunization, id: resourceID(rtImmunization, p.idx, i), patient: p.idx,
		lastUpdated: when.Add(time.Hour), status: "completed", code: v, date: when})
	if j == nil {
		return
	}
	j.str("status", "completed")
	j.concept("vaccineCode", v)
	g.patientRef("patient", p)
	j.instant("occurrenceDateTime", when)
	j.bool("primarySource", true)
	j.str("lotNumber", "LOT"+strconv.Itoa(100000+(p.idx*7+i*13)%900000))
	g.finish()
}

// practitioner returns practitioner i (shared index space, its own stream).
func (g *generator) practitioner(i int) record {
	g.recs, g.j.b = g.recs[:0], g.j.b[:0]
	r := g.vitals.at(g.d, i, secPractitioner)
	female := r.IntN(2) == 0
	names := choose(female, givenFemale, givenMale)
	given, family := pick(r.Rand, names), pick(r.Rand, familyNames)
	npi := "1" + pad(r.IntN(1_000_000_000), 9)
	id := idPrefix[rtPractitioner] + "-" + strconv.Itoa(i)
	j := g.add(record{typ: rtPractitioner, id: id, patient: -1, lastUpdated: dataEpoch.AddDate(0, -1, -i),
		name: given + " " + family, family: family, gender: choose(female, "female", "male"),
		identifier: term{system: sysNPI, code: npi}})
	if j != nil {
		j.arr("identifier")
		j.identifier(idTypeNPI, sysNPI, npi)
		j.endArr()
		j.bool("active", true)
		j.humanName("Dr.", []string{given}, family)
		j.phone("555-"+pad(r.IntN(1000), 3)+"-"+pad(r.IntN(10000), 4), "work")
		j.str("gender", choose(female, "female", "male"))
		j.arr("qualification")
		j.obj("")
		j.concept("code", term{"http://terminology.hl7.org/CodeSystem/v2-0360", "MD", "Doctor of Medicine"})
		j.end()
		j.endArr()
		g.finish()
	}
	return g.recs[0]
}

// organization returns organization i.
func (g *generator) organization(i int) record {
	g.recs, g.j.b = g.recs[:0], g.j.b[:0]
	r := g.vitals.at(g.d, i, secOrganization)
	id := idPrefix[rtOrganization] + "-" + strconv.Itoa(i)
	ident := "ORG" + pad(1000+i, 5)
	j := g.add(record{typ: rtOrganization, id: id, patient: -1, lastUpdated: dataEpoch.AddDate(0, -2, -i),
		name: orgNames[i], identifier: term{system: sysOrgID, code: ident}})
	if j != nil {
		j.arr("identifier")
		j.identifier(idTypePRN, sysOrgID, ident)
		j.endArr()
		j.bool("active", true)
		j.concepts("type", term{sysOrgType, "prov", "Healthcare Provider"})
		j.str("name", orgNames[i])
		j.phone("555-"+pad(r.IntN(1000), 3)+"-"+pad(r.IntN(10000), 4), "work")
		j.address("work", strconv.Itoa(1+r.IntN(999))+" "+pick(r.Rand, streets), r.IntN(len(cities)))
		g.finish()
	}
	return g.recs[0]
}

// group returns a Group resource listing its members (all patients for groupAll).
func (g *generator) group(id string) record {
	g.recs, g.j.b = g.recs[:0], g.j.b[:0]
	name := "All patients"
	if id == groupDiabetes {
		name = "Diabetes registry"
	}
	members := 0
	for i := range g.d.patients {
		if groupMember(id, i) {
			members++
		}
	}
	j := g.add(record{typ: rtGroup, id: id, patient: -1, lastUpdated: dataEpoch.AddDate(0, 0, -7), name: name})
	if j == nil {
		return g.recs[0]
	}
	j.str("type", "person")
	j.bool("actual", true)
	j.str("name", name)
	j.int("quantity", members)
	if id == groupDiabetes {
		j.arr("characteristic")
		j.obj("")
		j.concept("code", condDiabetes.term)
		j.bool("valueBoolean", true)
		j.bool("exclude", false)
		j.end()
		j.endArr()
	}
	if members > 0 {
		j.arr("member")
		for i := range g.d.patients {
			if groupMember(id, i) {
				j.obj("")
				j.ref("entity", "Patient/"+patientID(i), "")
				j.end()
			}
		}
		j.endArr()
	}
	g.finish()
	return g.recs[0]
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
