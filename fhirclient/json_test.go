package fhirclient

import (
	"bufio"
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// observation returns a Synthea-shaped Observation (vital signs panel with components, a lab with a
// reference range, a single vital, or smoking status), compact JSON, deterministic in i.
func observation(i int, r *rand.Rand) string {
	id := fmt.Sprintf("obs-%06d", i)
	subject := fmt.Sprintf(`"subject":{"reference":"Patient/pat-%04d"},"encounter":{"reference":"Encounter/enc-%05d"}`, i%500, i/4)
	when := fmt.Sprintf(`"effectiveDateTime":"20%02d-%02d-%02dT%02d:%02d:00-05:00","issued":"2024-03-01T10:00:00.000-05:00"`,
		10+i%14, 1+i%12, 1+i%28, i%24, i%60)
	cat := `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"%s","display":"%s"}]}]`
	meta := fmt.Sprintf(`"meta":{"versionId":"1","lastUpdated":"2024-03-01T10:00:00.000-05:00","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-%s"]}`,
		[]string{"blood-pressure", "observation-lab", "heart-rate", "smokingstatus"}[i%4])
	switch i % 4 {
	case 0:
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,%s,"status":"final",`+cat+`,"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel with all children optional"}],"text":"Blood pressure panel with all children optional"},%s,%s,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4","display":"Diastolic Blood Pressure"}],"text":"Diastolic Blood Pressure"},"valueQuantity":{"value":%d.0,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6","display":"Systolic Blood Pressure"}],"text":"Systolic Blood Pressure"},"valueQuantity":{"value":%d.%d,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
			id, meta, "vital-signs", "vital-signs", subject, when, 60+r.IntN(40), 100+r.IntN(60), r.IntN(10))
	case 1:
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,%s,"status":"final",`+cat+`,"code":{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose [Mass/volume] in Blood"}],"text":"Glucose"},%s,%s,"valueQuantity":{"value":%d.%02d,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},"referenceRange":[{"low":{"value":70,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},"high":{"value":99,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},"text":"70-99 mg/dL"}],"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}]}`,
			id, meta, "laboratory", "Laboratory", subject, when, 60+r.IntN(80), r.IntN(100))
	case 2:
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,%s,"status":"final",`+cat+`,"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},%s,%s,"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
			id, meta, "vital-signs", "vital-signs", subject, when, 50+r.IntN(60))
	default:
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,%s,"status":"final",`+cat+`,"code":{"coding":[{"system":"http://loinc.org","code":"72166-2","display":"Tobacco smoking status"}],"text":"Tobacco smoking status"},%s,%s,"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"266919005","display":"Never smoked tobacco (finding)"}],"text":"Never smoked tobacco (finding)"}}`,
			id, meta, "social-history", "Social History", subject, when)
	}
}

// observationNDJSON returns n Observations, one per line.
func observationNDJSON(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for i := range n {
		b.WriteString(observation(i, r))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// observationBundle returns a searchset page of n Observations with a next link.
func observationBundle(n int, next string) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"resourceType":"Bundle","id":"page","type":"searchset","total":%d,"link":[{"relation":"self","url":"https://ehr.example.org/fhir/Observation?_count=%d"}`, n, n)
	if next != "" {
		fmt.Fprintf(&b, `,{"relation":"next","url":%q}`, next)
	}
	b.WriteString(`],"entry":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"fullUrl":"https://ehr.example.org/fhir/Observation/obs-%06d","resource":%s,"search":{"mode":"match"}}`, i, observation(i, r))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// decodeBundleTyped decodes a Bundle and each entry into fhir.Observation with unmarshalFn, the way a
// typed search consumer does.
func decodeBundleTyped(b []byte, unmarshalFn func([]byte, any) error) ([]fhir.Observation, error) {
	var bundle fhir.Bundle
	if err := unmarshalFn(b, &bundle); err != nil {
		return nil, err
	}
	out := make([]fhir.Observation, len(bundle.Entry))
	for i, e := range bundle.Entry {
		if err := unmarshalFn(e.Resource, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeNDJSONTyped decodes each line into fhir.Observation.
func decodeNDJSONTyped(b []byte, unmarshalFn func([]byte, any) error) ([]fhir.Observation, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var out []fhir.Observation
	for sc.Scan() {
		var o fhir.Observation
		if err := unmarshalFn(sc.Bytes(), &o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, sc.Err()
}

// The chosen decoder (json.go) gives exactly what encoding/json gives: same values (compared by
// re-encoding with encoding/json), same raw bytes kept, and the same failures.
func TestDecoderEquivalence(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		data   []byte
		decode func([]byte, func([]byte, any) error) ([]fhir.Observation, error)
	}{
		{"bundle", observationBundle(400, "https://ehr.example.org/fhir/Observation?page=2"), decodeBundleTyped},
		{"ndjson", observationNDJSON(400), decodeNDJSONTyped},
	} {
		std, err := tt.decode(tt.data, stdjson.Unmarshal)
		if err != nil {
			t.Fatal(err)
		}
		chosen, err := tt.decode(tt.data, unmarshal)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := stdjson.Marshal(std)
		b, _ := stdjson.Marshal(chosen)
		if len(std) != 400 || !bytes.Equal(a, b) {
			t.Errorf("%s: decoders differ (%d vs %d bytes re-encoded)", tt.name, len(a), len(b))
		}
	}

	// Raw members (Bundle.entry.resource) keep the exact bytes with both decoders.
	fx := fixture(t, "patient-contained.json")
	raw := []byte(`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + string(fx) + `}]}`)
	for name, f := range map[string]func([]byte, any) error{"std": stdjson.Unmarshal, "chosen": unmarshal} {
		var b fhir.Bundle
		if err := f(raw, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Entry[0].Resource, bytes.TrimSpace(fx)) {
			t.Errorf("%s decoder changed a raw entry:\n%s", name, b.Entry[0].Resource)
		}
	}

	// Typed fixtures and the same failures.
	inputs := []string{
		string(fx),
		`{"resourceType":"Patient","gender":"diverse"}`,
		`{"resourceType":"Observation","status":"FINAL","code":{}}`,
		`{"resourceType":"Observation","status":null,"code":{}}`,
		`{"resourceType":"Observation","status":"final","code":{},"valueQuantity":{"value":1.50e2}}`,
		`{"resourceType":"Patient","id":"x","name":[{"fam`,
		`{"resourceType":"Patient","id":"\ud800"}`,
		`{"resourceType":"Patient","birthDate":19700101}`,
		`[]`, `null`, ``, `{}`, `{"a":1}{"b":2}`,
	}
	for _, in := range inputs {
		for _, mk := range []func() any{func() any { return new(fhir.Patient) }, func() any { return new(fhir.Observation) }} {
			vs, vc := mk(), mk()
			errS := stdjson.Unmarshal([]byte(in), vs)
			errC := unmarshal([]byte(in), vc)
			if (errS == nil) != (errC == nil) {
				t.Errorf("%.60s into %T: encoding/json err %v, chosen err %v", in, vs, errS, errC)
				continue
			}
			if errS == nil {
				a, _ := stdjson.Marshal(vs)
				b, _ := stdjson.Marshal(vc)
				if !bytes.Equal(a, b) {
					t.Errorf("%.60s into %T:\n%s\n%s", in, vs, a, b)
				}
			}
		}
	}
}

// Hostile input never panics the decoder.
func TestDecoderNoPanic(t *testing.T) {
	t.Parallel()
	base := observationBundle(3, "next")
	r := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 2000; i++ {
		b := append([]byte(nil), base...)
		switch i % 3 {
		case 0:
			b = b[:r.IntN(len(b))]
		case 1:
			for range 5 {
				b[r.IntN(len(b))] = byte(r.IntN(256))
			}
		default:
			p := r.IntN(len(b))
			b = append(b[:p], append([]byte(strings.Repeat("[", r.IntN(50))), b[p:]...)...)
		}
		var bundle fhir.Bundle
		_ = unmarshal(b, &bundle) // must not panic
		_, _ = DecodeResource(b)
	}
}

func benchmarkDecoders(b *testing.B, data []byte, decode func([]byte, func([]byte, any) error) ([]fhir.Observation, error)) {
	for _, d := range []struct {
		name string
		fn   func([]byte, any) error
	}{{"encoding-json", stdjson.Unmarshal}, {"goccy", gojson.Unmarshal}, {"chosen", unmarshal}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decode(data, d.fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeBundle: a 2,000-entry Observation searchset, decoded typed (Bundle, then each entry).
func BenchmarkDecodeBundle(b *testing.B) {
	benchmarkDecoders(b, observationBundle(2000, "next"), decodeBundleTyped)
}

// BenchmarkDecodeNDJSON: 20,000 Observation lines, decoded typed.
func BenchmarkDecodeNDJSON(b *testing.B) {
	benchmarkDecoders(b, observationNDJSON(20000), decodeNDJSONTyped)
}

// BenchmarkPeek: reading only resourceType and id, as decodeAs and DecodeResource do.
func BenchmarkPeek(b *testing.B) {
	data := []byte(observation(0, rand.New(rand.NewPCG(1, 1))))
	for _, d := range []struct {
		name string
		fn   func([]byte, any) error
	}{{"encoding-json", stdjson.Unmarshal}, {"goccy", gojson.Unmarshal}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var h resourceHeader
				if err := d.fn(data, &h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
