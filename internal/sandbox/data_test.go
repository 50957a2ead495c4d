package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// samplyRoundTrip decodes b with the samply model of its type and encodes it again.
func samplyRoundTrip(t rtype, b []byte) ([]byte, error) {
	var v any
	var err error
	switch t {
	case rtPatient:
		v, err = fhir.UnmarshalPatient(b)
	case rtEncounter:
		v, err = fhir.UnmarshalEncounter(b)
	case rtObservation:
		v, err = fhir.UnmarshalObservation(b)
	case rtCondition:
		v, err = fhir.UnmarshalCondition(b)
	case rtMedicationRequest:
		v, err = fhir.UnmarshalMedicationRequest(b)
	case rtAllergyIntolerance:
		v, err = fhir.UnmarshalAllergyIntolerance(b)
	case rtImmunization:
		v, err = fhir.UnmarshalImmunization(b)
	case rtPractitioner:
		v, err = fhir.UnmarshalPractitioner(b)
	case rtOrganization:
		v, err = fhir.UnmarshalOrganization(b)
	case rtGroup:
		v, err = fhir.UnmarshalGroup(b)
	default:
		return nil, fmt.Errorf("no samply model for %v", t)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonTree decodes b generically, keeping numbers as text.
func jsonTree(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %.200s: %v", b, err)
	}
	return v
}

// allRecords generates every resource of a small data set (records own their JSON).
func allRecords(d *dataset) []record {
	var out []record
	g := d.newGenerator(true)
	for idx := range d.patients {
		for _, r := range g.patient(idx, allTypes) {
			out = append(out, r.clone())
		}
	}
	for _, t := range []rtype{rtPractitioner, rtOrganization, rtGroup} {
		out = append(out, d.shared(t, true)...)
	}
	return out
}

// pruneEmpty drops empty objects and strings, which samply invents on marshal for required
// non-pointer choice fields (MedicationRequest.medicationReference, Immunization.occurrenceString)
// when the other choice is used. The generator never writes either.
func pruneEmpty(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if m, ok := e.(map[string]any); (ok && len(m) == 0) || e == "" {
				delete(x, k)
				continue
			}
			x[k] = pruneEmpty(e)
		}
	case []any:
		for i := range x {
			x[i] = pruneEmpty(x[i])
		}
	}
	return v
}

var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// TestDataRoundTripsThroughSamply proves every generated resource is valid R4 as the samply models
// see it: it decodes (enums, types) and re-encodes to the same JSON tree, so no element is unknown.
func TestDataRoundTripsThroughSamply(t *testing.T) {
	t.Parallel()
	d := newDataset(7, 20)
	seen := map[rtype]int{}
	for _, r := range allRecords(d) {
		seen[r.typ]++
		out, err := samplyRoundTrip(r.typ, r.json)
		if err != nil {
			t.Fatalf("%v/%s does not decode: %v\n%s", r.typ, r.id, err, r.json)
		}
		if diff := cmp.Diff(jsonTree(t, r.json), pruneEmpty(jsonTree(t, out))); diff != "" {
			t.Fatalf("%v/%s changes through samply (-generated +re-encoded):\n%s", r.typ, r.id, diff)
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Meta         struct {
				LastUpdated string `json:"lastUpdated"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(r.json, &head); err != nil {
			t.Fatal(err)
		}
		if head.ResourceType != r.typ.String() || head.ID != r.id || !fhirID.MatchString(r.id) {
			t.Errorf("header %+v for record %v/%q", head, r.typ, r.id)
		}
		if lu, err := time.Parse(time.RFC3339Nano, head.Meta.LastUpdated); err != nil || !lu.Equal(r.lastUpdated) {
			t.Errorf("%s: meta.lastUpdated %q, index %v (%v)", r.id, head.Meta.LastUpdated, r.lastUpdated, err)
		}
	}
	for ty := range numTypes {
		if seen[ty] == 0 {
			t.Errorf("no %v generated", ty)
		}
	}
}

// TestDataIsDeterministic: the same seed gives the same bytes; a type subset gives exactly the
// records of the full generation (what lets a bulk file of one type be regenerated alone).
func TestDataIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := allRecords(newDataset(3, 12)), allRecords(newDataset(3, 12))
	if len(a) != len(b) {
		t.Fatalf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].json, b[i].json) {
			t.Fatalf("record %d differs:\n%s\n%s", i, a[i].json, b[i].json)
		}
	}
	other := allRecords(newDataset(4, 12))
	if bytes.Equal(a[0].json, other[0].json) {
		t.Error("seeds 3 and 4 generate the same first patient")
	}
	d := newDataset(3, 12)
	full, part := d.newGenerator(true), d.newGenerator(true)
	for idx := range 12 {
		var want [][]byte
		for _, r := range full.patient(idx, allTypes) {
			if r.typ == rtObservation || r.typ == rtImmunization {
				want = append(want, bytes.Clone(r.json))
			}
		}
		got := part.patient(idx, setOf(rtObservation, rtImmunization))
		if len(got) != len(want) {
			t.Fatalf("patient %d: %d records alone, %d in full", idx, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i].json, want[i]) {
				t.Fatalf("patient %d record %d differs when generated alone", idx, i)
			}
		}
	}
}

// TestDataCountingMatchesEncoding: the counting pass (no JSON) sees the same index fields as the
// encoding pass, so manifest counts equal file lines.
func TestDataCountingMatchesEncoding(t *testing.T) {
	t.Parallel()
	d := newDataset(9, 15)
	enc, cnt := d.newGenerator(true), d.newGenerator(false)
	for idx := range 15 {
		a := enc.patient(idx, allTypes)
		var full []record
		for _, r := range a {
			r.json = nil
			full = append(full, r)
		}
		b := cnt.patient(idx, allTypes)
		if diff := cmp.Diff(full, b, cmp.AllowUnexported(record{}, term{})); diff != "" {
			t.Fatalf("patient %d: counting pass differs:\n%s", idx, diff)
		}
	}
}

// TestDataIsClinicallyShaped checks the vital signs and labs: LOINC codes, UCUM units, categories,
// BP components and lab reference ranges.
func TestDataIsClinicallyShaped(t *testing.T) {
	t.Parallel()
	d := newDataset(1, 20)
	byCode := map[string]fhir.Observation{}
	for _, r := range allRecords(d) {
		if r.typ != rtObservation {
			continue
		}
		o, err := fhir.UnmarshalObservation(r.json)
		if err != nil {
			t.Fatal(err)
		}
		byCode[*o.Code.Coding[0].Code] = o
		if *o.Code.Coding[0].System != sysLOINC || o.Status != fhir.ObservationStatusFinal {
			t.Errorf("%s: code %v status %v", r.id, o.Code.Coding[0], o.Status)
		}
		if o.Subject == nil || *o.Subject.Reference != "Patient/"+patientID(r.patient) {
			t.Errorf("%s: subject %v", r.id, o.Subject)
		}
	}
	bp, ok := byCode["85354-9"]
	if !ok || len(bp.Component) != 2 || *bp.Component[0].Code.Coding[0].Code != "8480-6" ||
		*bp.Component[1].Code.Coding[0].Code != "8462-4" || *bp.Component[0].ValueQuantity.Code != "mm[Hg]" {
		t.Errorf("blood pressure panel: %+v", bp.Component)
	}
	if *bp.Category[0].Coding[0].Code != "vital-signs" {
		t.Errorf("BP category %v", bp.Category)
	}
	wantUnits := map[string]string{"8867-4": "/min", "29463-7": "kg", "8302-2": "cm", "39156-5": "kg/m2",
		"2339-0": "mg/dL", "4548-4": "%", "2160-0": "mg/dL"}
	for loinc, unit := range wantUnits {
		o, ok := byCode[loinc]
		if !ok {
			t.Errorf("no observation %s", loinc)
			continue
		}
		if q := o.ValueQuantity; q == nil || *q.Code != unit || *q.System != sysUCUM {
			t.Errorf("%s: valueQuantity %+v", loinc, q)
		}
	}
	glucose := byCode["2339-0"]
	if *glucose.Category[0].Coding[0].Code != "laboratory" || len(glucose.ReferenceRange) != 1 ||
		glucose.ReferenceRange[0].High == nil {
		t.Errorf("glucose: category %v reference range %+v", glucose.Category, glucose.ReferenceRange)
	}
}

// TestDataIDsParse: every compartment id names its patient.
func TestDataIDsParse(t *testing.T) {
	t.Parallel()
	d := newDataset(1, 30)
	for _, r := range allRecords(d) {
		if !r.typ.inCompartment() {
			continue
		}
		if idx, ok := d.parsePatientIndex(r.typ, r.id); !ok || idx != r.patient {
			t.Errorf("%v/%s parses to %d, %v; want %d", r.typ, r.id, idx, ok, r.patient)
		}
	}
	for _, bad := range []string{"", "pt-", "pt-30", "pt--1", "pt-01", "obs-1", "obs-x-1", "pt-1-2", "../pt-1"} {
		if _, ok := d.parsePatientIndex(rtPatient, bad); ok && bad != "pt-1-2" {
			t.Errorf("parsePatientIndex(%q) accepted", bad)
		}
	}
}

func TestServerSummaries(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Patients: 25, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	ps := s.Patients()
	if len(ps) != 25 || ps[0].ID != "pt-0" || ps[24].ID != "pt-24" {
		t.Fatalf("patients %v", ps)
	}
	for _, p := range ps {
		if p.Name == "" || (p.Gender != "female" && p.Gender != "male") {
			t.Errorf("summary %+v", p)
		}
		if _, err := time.Parse(time.DateOnly, p.BirthDate); err != nil {
			t.Errorf("birth date %q", p.BirthDate)
		}
	}
	pr := s.Practitioners()
	if len(pr) != 5 || pr[0].ID != "prac-0" || pr[0].Name == "" {
		t.Fatalf("practitioners %v", pr)
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", `quo"te`, `back\slash`, "ctl\x00\x1f\n\t\r", "Müller Zoë", "bad\xffutf8", "</div>"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want := string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
		if got != want {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

// BenchmarkGeneratePatient measures generation with JSON (the bulk streaming path).
func BenchmarkGeneratePatient(b *testing.B) {
	d := newDataset(1, 1_000_000)
	g := d.newGenerator(true)
	var n int64
	for i := 0; b.Loop(); i++ {
		for _, r := range g.patient(i, allTypes) {
			n += int64(len(r.json)) + 1
		}
	}
	b.SetBytes(n / int64(b.N))
}

// BenchmarkNewDataset20 measures preparing the default data set of 20 patients (patients are
// generated lazily, on request).
func BenchmarkNewDataset20(b *testing.B) {
	for b.Loop() {
		newDataset(1, 20)
	}
}
