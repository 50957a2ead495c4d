package bulk

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Resources shaped as the sandbox and real servers write them.
const (
	obsVitals = `{"resourceType":"Observation","id":"o1","meta":{"lastUpdated":"2022-11-08T11:54:00.000Z","tag":[{"system":"urn:t","code":"x"}]},"status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"effectiveDateTime":"2022-11-08T11:49:00.000Z"}`
	obsLab = `{"resourceType":"Observation","id":"o2","status":"amended",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"effectivePeriod":{"start":"2018-06-30T22:00:00Z","end":"2018-07-01T02:00:00Z"}}`
	obsAge    = `{"resourceType":"Observation","id":"o3","status":"final","effectiveTiming":{"event":["2020-01-01"]}}`
	patient   = `{"resourceType":"Patient","id":"p1","active":true,"gender":"male","birthDate":"1957-06-13","identifier":[{"system":"urn:mrn","value":"MRN-1"}],"name":[{"family":"Johnson","given":["Michael"],"prefix":["Mr."]}]}`
	patientJo = `{"resourceType":"Patient","id":"p2","gender":"male","name":[{"family":"Núñez","given":["José"]}]}`
	medRx     = `{"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"860975"}]},"authoredOn":"1991-12-25T12:10:00.000Z"}`
	condition = `{"resourceType":"Condition","id":"c1","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"onsetDateTime":"1991-12-24T12:10:00Z","recordedDate":"1991-12-24"}`
	allergy   = `{"resourceType":"AllergyIntolerance","id":"a1","category":["food"],"criticality":"low","recordedDate":"2022-05-10T02:33:00.000Z"}`
	encounter = `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"period":{"start":"2022-11-08T11:39:00Z"}}`
)

// unknown marks a case whose answer the client cannot decide.
const unknown = "unknown"

func TestTypeFilterMatch(t *testing.T) { // BULK-08
	t.Parallel()
	tests := []struct {
		name     string
		filters  []string
		resource string
		want     any // true, false or unknown
	}{
		// Tokens: code, system|code, |code, system|, :not, :missing.
		{"status", []string{"Observation?status=final"}, obsVitals, true},
		{"status other", []string{"Observation?status=final"}, obsLab, false},
		{"status alternatives", []string{"Observation?status=preliminary,amended"}, obsLab, true},
		{"category code", []string{"Observation?category=vital-signs"}, obsVitals, true},
		{"category system|code", []string{"Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}, obsVitals, true},
		{"category other system", []string{"Observation?category=http://example.org|vital-signs"}, obsVitals, false},
		{"category no system", []string{"Observation?category=|vital-signs"}, obsVitals, false},
		{"category system|", []string{"Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|"}, obsLab, true},
		{"code and category", []string{"Observation?category=vital-signs&code=http://loinc.org|2345-7"}, obsVitals, false},
		{"status:not", []string{"Observation?status:not=final"}, obsLab, true},
		{"category:missing", []string{"Observation?category:missing=true"}, obsAge, true},
		{"plain code with a system", []string{"Observation?status=http://hl7.org/fhir/observation-status|final"}, obsVitals, unknown},
		{"plain code array", []string{"AllergyIntolerance?category=food"}, allergy, true},
		{"coding element", []string{"Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"}, encounter, true},
		{"identifier", []string{"Patient?identifier=urn:mrn|MRN-1"}, patient, true},
		{"boolean", []string{"Patient?active=false"}, patient, false},
		{"medication[x]", []string{"MedicationRequest?code=860975"}, medRx, true},
		{"_tag", []string{"Observation?_tag=urn:t|x"}, obsVitals, true},
		{"_id", []string{"Observation?_id=o9,o1"}, obsVitals, true},
		// Dates: prefixes on ranges; choice elements; Periods; precision.
		{"date gt", []string{"Observation?date=gt2018-07-01T00:00:00Z"}, obsVitals, true},
		{"date lt", []string{"Observation?date=lt2018-07-01"}, obsVitals, false},
		{"date eq day", []string{"Observation?date=2022-11-08"}, obsVitals, true},
		{"date eq ms", []string{"Observation?date=eq2022-11-08T11:49:00.000Z"}, obsVitals, true},
		{"date eq other second", []string{"Observation?date=2022-11-08T11:49:01Z"}, obsVitals, false},
		{"date zone offset", []string{"Observation?date=2022-11-08T12:49:00%2B01:00"}, obsVitals, true},
		{"period eq day: spans two days", []string{"Observation?date=2018-07-01"}, obsLab, false},
		{"period ge", []string{"Observation?date=ge2018-07-01"}, obsLab, true},
		{"period le", []string{"Observation?date=le2018-06-30"}, obsLab, true},
		{"period sa", []string{"Observation?date=sa2018-06-29"}, obsLab, true},
		{"period eb", []string{"Observation?date=eb2018-07-02"}, obsLab, true},
		{"period ne", []string{"Observation?date=ne2018"}, obsLab, false},
		{"open period", []string{"Encounter?date=gt2030-01-01"}, encounter, true},
		{"timing is unknown", []string{"Observation?date=ge2019"}, obsAge, unknown},
		{"date missing", []string{"Observation?date=ge2019"}, `{"resourceType":"Observation","status":"final"}`, false},
		{"birthdate year", []string{"Patient?birthdate=1957"}, patient, true},
		{"authoredon", []string{"MedicationRequest?authoredon=ge1991-12-25"}, medRx, true},
		{"onset-date", []string{"Condition?onset-date=lt1990"}, condition, false},
		{"recorded-date day", []string{"Condition?recorded-date=1991-12"}, condition, true},
		{"_lastUpdated", []string{"Observation?_lastUpdated=gt2022-01-01"}, obsVitals, true},
		// Strings: default starts-with (any word), :exact, :contains; non-ASCII is undecided.
		{"name prefix", []string{"Patient?name=john"}, patient, true},
		{"name given", []string{"Patient?name=mic"}, patient, true},
		{"name middle", []string{"Patient?name=ohn"}, patient, false},
		{"family exact", []string{"Patient?family:exact=Johnson"}, patient, true},
		{"family exact case", []string{"Patient?family:exact=johnson"}, patient, false},
		{"given contains", []string{"Patient?given:contains=CHAE"}, patient, true},
		{"name accents", []string{"Patient?name=jose"}, patientJo, unknown},
		// Queries: AND within, OR across, other types untouched, unknown parameters.
		{"OR across queries", []string{"Observation?status=final", "Observation?category=laboratory"}, obsLab, true},
		{"type not filtered", []string{"Observation?status=final"}, patient, true},
		{"unknown parameter", []string{"Observation?patient=Patient/1"}, obsVitals, unknown},
		{"unknown parameter, known part false", []string{"Observation?patient=Patient/1&status=final"}, obsLab, false},
		{"unknown modifier", []string{"Observation?code:text=heart"}, obsVitals, unknown},
		{"parameter not defined for the type", []string{"Patient?status=active"}, patient, unknown},
		{"ap prefix", []string{"Observation?date=ap2022"}, obsVitals, unknown},
		{"chained", []string{"Observation?subject.name=john"}, obsVitals, unknown},
		{"spec example", []string{"MedicationRequest?status=active", "MedicationRequest?status=completed&date=gt2018-07-01T00:00:00Z"}, medRx, true},
		{"not JSON", []string{"Observation?status=final"}, `{"resourceType":`, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := NewTypeFilter(tt.filters)
			if err != nil {
				t.Fatal(err)
			}
			match, ok := f.Match([]byte(tt.resource))
			var got any = match
			if !ok {
				got = unknown
				if !match {
					t.Error("an undecided resource must count as a match (never dropped)")
				}
			}
			if got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTypeFilterUnsupported(t *testing.T) { // BULK-08: unknown parameters are listed once
	t.Parallel()
	f, err := NewTypeFilter([]string{"Observation?patient=1&status=final", "Observation?patient=2", "Patient?status=x", "Observation?code:text=a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Observation.code:text", "Observation.patient", "Patient.status"}
	if got := f.Unsupported(); !slices.Equal(got, want) {
		t.Errorf("Unsupported = %q, want %q", got, want)
	}
	if !f.Filters("Observation") || f.Filters("Condition") {
		t.Error("Filters")
	}
}

func TestTypeFilterRefusesMalformed(t *testing.T) { // BULK-07
	t.Parallel()
	for _, q := range []string{"Observation", "observation?status=x", "Observation?_sort=date", "Observation?%zz"} {
		if _, err := NewTypeFilter([]string{q}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%q: %v", q, err)
		}
	}
}

func TestParseFHIRDatePrecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		span time.Duration
		ok   bool
	}{
		{"2024", 366 * 24 * time.Hour, true},
		{"2024-02", 29 * 24 * time.Hour, true},
		{"2024-02-03", 24 * time.Hour, true},
		{"2024-02-03T10:00Z", time.Minute, true},
		{"2024-02-03T10:00:00+05:00", time.Second, true},
		{"2024-02-03T10:00:00.5Z", 100 * time.Millisecond, true},
		{"2024-02-03T10:00:00.123", time.Millisecond, true},
		{"2024-13-03", 0, false},
		{"yesterday", 0, false},
	}
	for _, tt := range tests {
		lo, hi, ok := parseFHIRDate(tt.in)
		if ok != tt.ok || (ok && hi.Sub(lo) != tt.span) {
			t.Errorf("%s: [%v, %v) ok=%v; want span %v ok=%v", tt.in, lo, hi, ok, tt.span, tt.ok)
		}
	}
	lo, _, _ := parseFHIRDate("2024-02-03T10:00:00+05:00")
	if !lo.Equal(time.Date(2024, 2, 3, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("zone: %v", lo)
	}
}

func BenchmarkTypeFilterMatch(b *testing.B) {
	f, err := NewTypeFilter([]string{"Observation?category=vital-signs&date=ge2020-01-01", "Observation?status=amended"})
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(obsVitals)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if m, ok := f.Match(line); !m || !ok {
			b.Fatal("no match")
		}
	}
}
