package bulk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestLineSplitterChunking(t *testing.T) { // BULK-25: any chunking gives the same lines
	t.Parallel()
	input := "{\"resourceType\":\"Patient\",\"id\":\"1\"}\r\n\n   \n{\"resourceType\":\"Patient\",\"id\":\"2\"}\n{\"resourceType\":\"Patient\",\"id\":\"3\"}"
	for _, size := range []int{1, 2, 3, 7, 64, len(input)} {
		var got []string
		var lines []int64
		s := newLineSplitter(1<<10, func(b []byte, n int64) error {
			got = append(got, string(b))
			lines = append(lines, n)
			return nil
		})
		for i := 0; i < len(input); i += size {
			if _, err := s.Write([]byte(input[i:min(i+size, len(input))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		want := []string{`{"resourceType":"Patient","id":"1"}`, `{"resourceType":"Patient","id":"2"}`, `{"resourceType":"Patient","id":"3"}`}
		if d := cmp.Diff(want, got); d != "" || s.lines != 3 || fmt.Sprint(lines) != "[1 4 5]" {
			t.Errorf("chunk %d: lines %v count %d (-want +got):\n%s", size, lines, s.lines, d)
		}
	}
}

func TestLineSplitterCountOnlyKeepsNoMemory(t *testing.T) { // constant memory without validation
	t.Parallel()
	s := newLineSplitter(DefaultMaxLine, nil)
	line := []byte(`{"resourceType":"Binary","data":"` + strings.Repeat("A", 1<<20) + `"}`)
	for range 8 {
		s.Write(line)
	}
	s.Write([]byte("\n"))
	if err := s.Close(); err != nil || s.lines != 1 || cap(s.buf) != 0 {
		t.Errorf("err %v lines %d buffered %d bytes", err, s.lines, cap(s.buf))
	}
	s = newLineSplitter(100, nil)
	_, err := s.Write(bytes.Repeat([]byte("x"), 101))
	var le *LineError
	if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &le) || le.Line != 1 {
		t.Errorf("err = %v", err)
	}
	if _, err2 := s.Write([]byte("\n")); err2 == nil {
		t.Error("the error must be sticky")
	}
}

func TestCheckResource(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		line, want string
		ok         bool
	}{
		{`{"resourceType":"Patient","id":"1"}`, "Patient", true},
		{`{"id":"1","resourceType":"Patient"}`, "Patient", true},
		{`{"resourceType":"Patient"}`, "", true},
		{`{"resourceType":"Observation"}`, "Patient", false},
		{`{"resourceType":""}`, "", false},
		{`{"id":"1"}`, "", false},
		{`{"resourceType":"Patient","x":[1,}`, "Patient", false},
		{`{"resourceType":"Patient"} trailing`, "Patient", false},
		{`[{"resourceType":"Patient"}]`, "Patient", false},
		{`"Patient"`, "Patient", false},
	} {
		err := checkResource([]byte(tt.line), tt.want)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidLine)) {
			t.Errorf("checkResource(%s, %q) = %v", tt.line, tt.want, err)
		}
	}
}

func TestCheckResourceNoAllocConcurrent(t *testing.T) {
	// DecodeNoCopyString: the decoded resourceType refers to the line; concurrent use must stay
	// correct (run with -race) and allocation-free.
	line := []byte(`{"resourceType":"Observation","id":"x","status":"final"}`)
	if n := testing.AllocsPerRun(100, func() { _ = checkResource(line, "Observation") }); n > 0 && !raceEnabled {
		t.Errorf("checkResource allocates %.0f times per line", n)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			typ := []string{"Patient", "Observation", "Condition", "Encounter"}[g]
			l := []byte(`{"resourceType":"` + typ + `","id":"1"}`)
			for range 2000 {
				if err := checkResource(l, typ); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestDecodeMatchesEncodingJSON is the equivalence test behind the goccy decoder (deps.md), for
// both typed paths: Decode over ReadNDJSON, and DecodeNDJSON in one pass.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	var in bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&in, `{"resourceType":"Observation","id":"o%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":1%d.50,"unit":"mmHg"},"component":[{"code":{"text":"x"},"valueString":"a\u00e9\"%d"}]}`+"\n", i, i, i)
	}
	for name, seq := range map[string]iter.Seq2[*fhir.Observation, error]{
		"Decode":       Decode[fhir.Observation](ReadNDJSON(bytes.NewReader(in.Bytes()), "Observation", "o.ndjson")),
		"DecodeNDJSON": DecodeNDJSON[fhir.Observation](bytes.NewReader(in.Bytes()), "Observation", "o.ndjson"),
	} {
		var got []*fhir.Observation
		for o, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, o)
		}
		i := 0
		for line := range bytes.Lines(in.Bytes()) {
			var want fhir.Observation
			if err := json.Unmarshal(line, &want); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(got[i])
			if !bytes.Equal(a, b) {
				t.Fatalf("%s: line %d differs:\n%s\n%s", name, i, a, b)
			}
			i++
		}
		if i != len(got) {
			t.Errorf("%s: %d decoded, %d lines", name, len(got), i)
		}
	}
}

// TestDecodeNDJSONMatchesTwoPass: the one-pass typed reader accepts and rejects exactly the lines
// Decode(ReadNDJSON) does, with the values encoding/json gives, whether or not it skips the
// resourceType check (BULK-25).
func TestDecodeNDJSONMatchesTwoPass(t *testing.T) {
	t.Parallel()
	const obs = `"status":"final","code":{"text":"x"}`
	for _, tt := range []struct {
		line, want string
		fast, ok   bool // fast: leadsWithType skips checkResource
	}{
		{`{"resourceType":"Observation","id":"1",` + obs + `}`, "Observation", true, true},
		{`{"resourceType":"Observation"}`, "Observation", true, true},
		{`{"id":"1","resourceType":"Observation",` + obs + `}`, "Observation", false, true},
		{`{ "resourceType": "Observation",` + obs + `}`, "Observation", false, true},
		{`{"resourceType":"Observation",` + obs + `}`, "", false, true},
		{`{"resourceType":"Observation",` + obs + `,"note":[{"text":"a\"b"}]}`, "Observation", false, true},
		{`{"resourceType":"Observation",` + obs + `,"display":"Systolic"}`, "Observation", true, true},
		{`{"resourceType":"Observation",` + obs + `,"valueString":"ResourceType"}`, "Observation", false, true},
		// a second member that decoders take for resourceType (last one wins): rejected either way
		{`{"resourceType":"Observation",` + obs + `,"resourceType":"Patient"}`, "Observation", false, false},
		{`{"resourceType":"Observation",` + obs + `,"RESOURCETYPE":"Patient"}`, "Observation", false, false},
		{`{"resourceType":"Observation",` + obs + `,"re\u017fourceType":"Patient"}`, "Observation", false, false},
		{`{"resourceType":"Observation",` + obs + `,"reſourceType":"Patient"}`, "Observation", false, false},
		{`{"resourceType":"Observation",` + obs + `,"resourc\u0065Type":"Patient"}`, "Observation", false, false},
		{`{"resourceType":"Patient","id":"1"}`, "Observation", false, false},
		{`{"resourceType":"ObservationX","id":"1"}`, "Observation", false, false},
		{`{"resourceType":"Observation","id":"1",` + obs + `} trailing`, "Observation", true, false},
		{`{"resourceType":"Observation","id":"1","x":[1,}`, "Observation", true, false},
		{`{"resourceType":"Observation","id":"1","x":tru}`, "Observation", true, false},
		{`{"resourceType":"Observation","id":"1"`, "Observation", true, false},
		{`{"resourceType":"Observation","status":"FINAL"}`, "Observation", true, false},
		{`{"resourceType":"Observation","id":7}`, "Observation", true, false},
		{`[{"resourceType":"Observation"}]`, "Observation", false, false},
	} {
		if got := leadsWithType([]byte(tt.line), tt.want); got != tt.fast {
			t.Errorf("leadsWithType(%s, %q) = %v", tt.line, tt.want, got)
		}
		var two, one []*fhir.Observation
		var errTwo, errOne error
		for o, err := range Decode[fhir.Observation](ReadNDJSON(strings.NewReader(tt.line), tt.want, "f")) {
			two, errTwo = append(two, o), err
		}
		for o, err := range DecodeNDJSON[fhir.Observation](strings.NewReader(tt.line), tt.want, "f") {
			one, errOne = append(one, o), err
		}
		var le *LineError
		if (errOne == nil) != tt.ok || (errTwo == nil) != tt.ok ||
			(!tt.ok && (!errors.Is(errOne, ErrInvalidLine) || !errors.As(errOne, &le) || le.Line != 1 || le.File != "f")) {
			t.Errorf("%s: one pass err %v, two passes err %v, want ok %v", tt.line, errOne, errTwo, tt.ok)
			continue
		}
		if tt.ok {
			var want fhir.Observation
			if err := json.Unmarshal([]byte(tt.line), &want); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(one[0])
			c, _ := json.Marshal(two[0])
			if !bytes.Equal(a, b) || !bytes.Equal(a, c) {
				t.Errorf("%s:\nencoding/json %s\none pass      %s\ntwo passes    %s", tt.line, a, b, c)
			}
		}
	}
}

// TestDecodeNDJSONOwnsStrings: decoded strings refer to a copy of each line, never to the line
// reader's buffer, which the next line overwrites (run with -race).
func TestDecodeNDJSONOwnsStrings(t *testing.T) {
	t.Parallel()
	var got []*fhir.Patient
	for p, err := range DecodeNDJSON[fhir.Patient](bytes.NewReader(ndjson("Patient", 500)), "Patient", "p") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	var want []*fhir.Patient
	for p, err := range Decode[fhir.Patient](ReadNDJSON(bytes.NewReader(ndjson("Patient", 500)), "Patient", "p")) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if len(got) != 500 || !cmp.Equal(want, got) {
		t.Errorf("%d patients; differ: %s", len(got), cmp.Diff(want, got))
	}
}

func TestDecodeResources(t *testing.T) { // BULK-24: the one-pass typed reader of a manifest file
	t.Parallel()
	f := newFake(t)
	f.add("output", "Patient", "p", ndjson("Patient", 300))
	f.add("output", "Patient", "bad", []byte(`{"resourceType":"Patient","id":"a"}`+"\n"+`{"resourceType":"Patient","gender":"diverse"}`+"\n"))
	c, m, _ := manifestOf(t, f)
	var want, got []*fhir.Patient
	for p, err := range Decode[fhir.Patient](c.Resources(t.Context(), m, m.Output[0])) {
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	for p, err := range DecodeResources[fhir.Patient](t.Context(), c, m, m.Output[0]) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if len(got) != 300 || !cmp.Equal(want, got) {
		t.Errorf("%d patients; differ: %s", len(got), cmp.Diff(want, got))
	}
	n := 0
	for range DecodeResources[fhir.Patient](t.Context(), c, m, m.Output[0]) {
		if n++; n == 2 {
			break // stopping early is not an error, and yields nothing more
		}
	}
	var le *LineError
	for p, err := range DecodeResources[fhir.Patient](t.Context(), c, m, m.Output[1]) {
		if err != nil && (!errors.Is(err, ErrInvalidLine) || !errors.As(err, &le) || le.Line != 2 || le.File == "") {
			t.Errorf("err = %v", err)
		}
		if err == nil && *p.Id != "a" {
			t.Errorf("id = %s", *p.Id)
		}
	}
	if le == nil {
		t.Error("the bad line was not reported")
	}
}

func BenchmarkLineSplitter(b *testing.B) {
	data := ndjson("Observation", 10000)
	for _, validate := range []bool{false, true} {
		b.Run(fmt.Sprintf("validate=%v", validate), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var on func([]byte, int64) error
				if validate {
					on = func(l []byte, _ int64) error { return checkResource(l, "Observation") }
				}
				s := newLineSplitter(DefaultMaxLine, on)
				for i := 0; i < len(data); i += 256 << 10 {
					s.Write(data[i:min(i+256<<10, len(data))])
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeTyped compares typed NDJSON decoding into samply models (CONV-9: goccy ≥ 3×
// encoding/json): goccy is Decode over ReadNDJSON, goccy-onepass is DecodeNDJSON; encoding-json is
// ReadNDJSON then json.Unmarshal, and encoding-json-plain the least encoding/json can do: the same
// line reader, json.Unmarshal of each line in place, no check, no copy.
func BenchmarkDecodeTyped(b *testing.B) {
	var in bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&in, `{"resourceType":"Observation","id":"o%d","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"2020-01-01T00:00:00Z","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120.5,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg"}}]}`+"\n", i, i)
	}
	data := in.Bytes()
	for _, bm := range []struct {
		name string
		run  func() error
	}{
		{"goccy", func() error {
			for _, err := range Decode[fhir.Observation](ReadNDJSON(bytes.NewReader(data), "Observation", "")) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"goccy-onepass", func() error {
			for _, err := range DecodeNDJSON[fhir.Observation](bytes.NewReader(data), "Observation", "") {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"encoding-json", func() error {
			for raw, err := range ReadNDJSON(bytes.NewReader(data), "Observation", "") {
				if err != nil {
					return err
				}
				var o fhir.Observation
				if err := json.Unmarshal(raw, &o); err != nil {
					return err
				}
			}
			return nil
		}},
		{"encoding-json-plain", func() error {
			return readLines(bytes.NewReader(data), DefaultMaxLine, "", func(line []byte, _ int64) error {
				return json.Unmarshal(line, new(fhir.Observation))
			})
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if err := bm.run(); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the process (GC included) per op: steadier than ns/op on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the user and system CPU time of the process so far, in nanoseconds (0 where
// unavailable).
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
