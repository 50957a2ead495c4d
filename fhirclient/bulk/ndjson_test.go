package bulk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// TestDecodeMatchesEncodingJSON is the equivalence test behind the goccy decoder (deps.md).
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	var in bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&in, `{"resourceType":"Observation","id":"o%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":1%d.50,"unit":"mmHg"},"component":[{"code":{"text":"x"},"valueString":"a\u00e9\"%d"}]}`+"\n", i, i, i)
	}
	var got []*fhir.Observation
	for o, err := range Decode[fhir.Observation](ReadNDJSON(bytes.NewReader(in.Bytes()), "Observation", "o.ndjson")) {
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
			t.Fatalf("line %d differs:\n%s\n%s", i, a, b)
		}
		i++
	}
	if i != len(got) {
		t.Errorf("%d decoded, %d lines", len(got), i)
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
// encoding/json).
func BenchmarkDecodeTyped(b *testing.B) {
	var in bytes.Buffer
	for i := range 2000 {
		fmt.Fprintf(&in, `{"resourceType":"Observation","id":"o%d","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"2020-01-01T00:00:00Z","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120.5,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mmHg"}}]}`+"\n", i, i)
	}
	data := in.Bytes()
	b.Run("goccy", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			for _, err := range Decode[fhir.Observation](ReadNDJSON(bytes.NewReader(data), "Observation", "")) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			for raw, err := range ReadNDJSON(bytes.NewReader(data), "Observation", "") {
				if err != nil {
					b.Fatal(err)
				}
				var o fhir.Observation
				if err := json.Unmarshal(raw, &o); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
