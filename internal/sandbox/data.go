package sandbox

import (
	"strconv"
	"strings"
	"time"
)

// The synthetic data set. Nothing is stored per patient: every patient's resources are a pure
// function of (seed, patient index), generated when a request needs them. A search or a bulk file
// of any size therefore runs in constant memory, and a file's bytes are identical on every request
// (which is what makes a resumed download correct). Practitioners and organizations are few and
// generated once at start; groups are generated on demand (the all-patients group grows with
// Options.Patients).

// rtype is a resource type the sandbox serves.
type rtype uint8

const (
	rtPatient rtype = iota
	rtEncounter
	rtObservation
	rtCondition
	rtMedicationRequest
	rtAllergyIntolerance
	rtImmunization
	rtPractitioner
	rtOrganization
	rtGroup
	numTypes
)

var typeNames = [numTypes]string{"Patient", "Encounter", "Observation", "Condition", "MedicationRequest",
	"AllergyIntolerance", "Immunization", "Practitioner", "Organization", "Group"}

// String returns the FHIR resource type name.
func (t rtype) String() string { return typeNames[t] }

// typeByName returns the rtype named name.
func typeByName(name string) (rtype, bool) {
	for i, n := range typeNames {
		if n == name {
			return rtype(i), true
		}
	}
	return 0, false
}

// inCompartment reports whether resources of type t belong to a patient's compartment.
func (t rtype) inCompartment() bool { return t <= rtImmunization }

// typeSet is a set of resource types.
type typeSet uint16

const (
	allTypes         typeSet = 1<<numTypes - 1
	compartmentTypes typeSet = 1<<(rtImmunization+1) - 1
)

func setOf(ts ...rtype) typeSet {
	var s typeSet
	for _, t := range ts {
		s |= 1 << t
	}
	return s
}

func (s typeSet) has(t rtype) bool { return s&(1<<t) != 0 }

// types lists the members of s in rtype order.
func (s typeSet) types() []rtype {
	var out []rtype
	for t := range numTypes {
		if s.has(t) {
			out = append(out, t)
		}
	}
	return out
}

// record is one generated resource: its JSON and the fields search and export filters read.
type record struct {
	typ         rtype
	id          string
	patient     int // patient index of the compartment the resource is in; -1 outside compartments
	lastUpdated time.Time
	status      string
	category    term      // system and code (category of Observation, Condition, MedicationRequest, AllergyIntolerance)
	code        term      // main code (Observation, Condition, MedicationRequest, AllergyIntolerance, Immunization)
	date        time.Time // clinical date (effective, period start, authoredOn, recorded, occurrence)
	name        string    // all name parts, space separated (Patient, Practitioner, Organization, Group)
	family      string
	gender      string
	birthDate   string
	identifier  term // system and value
	json        []byte
}

// dataEpoch is "now" in the synthetic world: every clinical date lies before it.
var dataEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// dataset is the synthetic data of one Server. It is immutable after newDataset.
type dataset struct {
	seed          uint64
	patients      int
	practitioners []record
	organizations []record
}

// Group ids (realistic registry names; see groupMember).
const (
	groupAll      = "all-patients"
	groupDiabetes = "diabetes-registry"
)

func newDataset(seed int64, patients int) *dataset {
	d := &dataset{seed: uint64(seed), patients: patients}
	g := d.newGenerator(true)
	for i := range numPractitioners(patients) {
		d.practitioners = append(d.practitioners, g.practitioner(i).clone())
	}
	for i := range orgNames {
		d.organizations = append(d.organizations, g.organization(i).clone())
	}
	return d
}

// numPractitioners scales the practitioners with the patients: one per 50, at least 5, at most 500.
func numPractitioners(patients int) int { return min(max(5, patients/50), 500) }

// clone returns r with its own copy of the JSON (generator records share a reused buffer).
func (r record) clone() record {
	r.json = append([]byte(nil), r.json...)
	return r
}

// shared returns the records of a type outside patient compartments (Practitioner,
// Organization, Group), generated with or without JSON.
func (d *dataset) shared(t rtype, encode bool) []record {
	switch t {
	case rtPractitioner:
		return d.practitioners
	case rtOrganization:
		return d.organizations
	case rtGroup:
		g := d.newGenerator(encode)
		return []record{g.group(groupAll).clone(), g.group(groupDiabetes).clone()}
	}
	return nil
}

// groupMember reports whether patient idx is a member of group id. The diabetes registry holds
// the patients the generator gives type 2 diabetes.
func groupMember(id string, idx int) bool {
	switch id {
	case groupAll:
		return true
	case groupDiabetes:
		return hasDiabetes(idx)
	}
	return false
}

func knownGroup(id string) bool { return id == groupAll || id == groupDiabetes }

// Resource ids. A compartment resource's id names its patient, so a read generates one patient.
var idPrefix = [numTypes]string{"pt", "enc", "obs", "cond", "medrx", "alg", "imm", "prac", "org", ""}

func patientID(idx int) string { return "pt-" + strconv.Itoa(idx) }

func resourceID(t rtype, idx, n int) string {
	return idPrefix[t] + "-" + strconv.Itoa(idx) + "-" + strconv.Itoa(n)
}

// parsePatientIndex returns the patient index of a compartment resource id of type t.
func (d *dataset) parsePatientIndex(t rtype, id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, idPrefix[t]+"-")
	if !ok || !t.inCompartment() {
		return 0, false
	}
	if t != rtPatient {
		rest, _, ok = strings.Cut(rest, "-")
		if !ok {
			return 0, false
		}
	}
	idx, err := strconv.Atoi(rest)
	if err != nil || idx < 0 || idx >= d.patients || strconv.Itoa(idx) != rest {
		return 0, false
	}
	return idx, true
}

// patientRef parses a patient reference ("Patient/pt-3", "pt-3", or an absolute URL ending in
// Patient/pt-3) into a patient index.
func (d *dataset) patientRef(ref string) (int, bool) {
	if i := strings.LastIndex(ref, "Patient/"); i >= 0 {
		ref = ref[i+len("Patient/"):]
	}
	return d.parsePatientIndex(rtPatient, ref)
}

// PatientSummary and PractitionerSummary feed the launch simulator and the patient picker.
type PatientSummary struct{ ID, Name, BirthDate, Gender string }

// PractitionerSummary names a generated practitioner.
type PractitionerSummary struct{ ID, Name string }

// Patients lists the generated patients in a stable order.
func (s *Server) Patients() []PatientSummary {
	d := s.fhir.data
	g := d.newGenerator(false)
	out := make([]PatientSummary, d.patients)
	for i := range out {
		p := g.planPatient(i)
		out[i] = PatientSummary{ID: p.id, Name: p.displayName(), BirthDate: p.birth.Format(time.DateOnly),
			Gender: p.gender()}
	}
	return out
}

// Practitioners lists the generated practitioners in a stable order.
func (s *Server) Practitioners() []PractitionerSummary {
	out := make([]PractitionerSummary, len(s.fhir.data.practitioners))
	for i, r := range s.fhir.data.practitioners {
		out[i] = PractitionerSummary{ID: r.id, Name: r.name}
	}
	return out
}
