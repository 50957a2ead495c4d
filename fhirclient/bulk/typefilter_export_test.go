package bulk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// idsByType reads the output files of an export directory: resource ids by type.
func idsByType(t *testing.T, dir string, res *Result) map[string][]string {
	t.Helper()
	ids := map[string][]string{}
	forEachOutput(t, dir, res, func(f FileEvent, raw json.RawMessage) {
		var r struct{ ID string }
		json.Unmarshal(raw, &r)
		ids[f.Type] = append(ids[f.Type], r.ID)
	})
	for _, v := range ids {
		slices.Sort(v)
	}
	return ids
}

func mismatchWarnings(events []Event) int {
	n := 0
	for _, ev := range events {
		if ev.Kind == EventWarning && ev.File != nil && strings.Contains(ev.Message, "do not match the _typeFilter") {
			n++
		}
	}
	return n
}

func TestSandboxIgnoredTypeFilter(t *testing.T) { // BULK-08: sandbox fault bulk_ignore_typefilter
	t.Parallel()
	e := newSandboxEnv(t, 12, sandbox.FHIRSettings{ExportDuration: -1}, 50*time.Millisecond)
	req := ExportRequest{
		Types: []string{"Patient", "Observation", "Condition", "MedicationRequest"},
		TypeFilters: []string{
			"Observation?category=vital-signs&date=ge2022-01-01",
			"Observation?code=http://loinc.org|2345-7",
			"Condition?clinical-status=active&onset-date=lt2000",
			"MedicationRequest?status=active,completed&authoredon=gt2010-06",
		},
	}
	run := func(t *testing.T, fault string, filter bool) (*Result, []Event, string) {
		t.Helper()
		if fault != "" {
			e.srv.Fault(fault, 1)
		}
		c := *e.c
		x := &Exporter{Client: &c, Dir: filepath.Join(t.TempDir(), "out"), Validate: true, Filter: filter}
		var events []Event
		x.OnEvent = func(ev Event) { events = append(events, ev) }
		res, err := x.Start(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res, events, x.Dir
	}

	// The server applies the filter: the client's evaluation agrees on every resource.
	honoured, events, dir := run(t, "", false)
	if honoured.Mismatches != 0 || mismatchWarnings(events) != 0 {
		t.Fatalf("the client disagrees with the server's filtering: %d mismatches", honoured.Mismatches)
	}
	want := idsByType(t, dir, honoured)
	if len(want["Observation"]) == 0 || len(want["Condition"]) == 0 || len(want["MedicationRequest"]) == 0 {
		t.Fatalf("the filters leave nothing to compare: %v", want)
	}

	// The server ignores it: warn by default (counts per file, an event and a log record)…
	ignored, events, dir := run(t, "bulk_ignore_typefilter", false)
	got := idsByType(t, dir, ignored)
	if ignored.Mismatches == 0 || ignored.Dropped != 0 || mismatchWarnings(events) != 3 {
		t.Fatalf("mismatches %d dropped %d warnings %d", ignored.Mismatches, ignored.Dropped, mismatchWarnings(events))
	}
	for _, typ := range []string{"Observation", "Condition", "MedicationRequest"} {
		var fe *FileEvent
		for i := range ignored.Files {
			if ignored.Files[i].Type == typ {
				fe = &ignored.Files[i]
			}
		}
		if int(fe.Resources-fe.Mismatches) != len(want[typ]) || len(got[typ]) != int(fe.Resources) {
			t.Errorf("%s: %d resources, %d mismatches; the server's filter keeps %d", typ, fe.Resources, fe.Mismatches, len(want[typ]))
		}
	}
	if !slices.Equal(got["Patient"], want["Patient"]) {
		t.Error("unfiltered type changed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, LogFile)); bytes.Count(b, []byte(`"eventId":"typefilter_mismatch"`)) != 3 {
		t.Errorf("log.ndjson lacks the typefilter_mismatch records:\n%s", b)
	}

	// …and with Filter the files hold exactly what the server would have sent.
	filtered, events, dir := run(t, "bulk_ignore_typefilter", true)
	got = idsByType(t, dir, filtered)
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("filtered output differs from the server's filtering:\n got %v\nwant %v", got, want)
	}
	if filtered.Dropped != ignored.Mismatches || filtered.Mismatches != ignored.Mismatches || mismatchWarnings(events) != 3 {
		t.Errorf("dropped %d of %d (want %d)", filtered.Dropped, filtered.Mismatches, ignored.Mismatches)
	}
	if filtered.Resources != honoured.Resources || filtered.Bytes != honoured.Bytes {
		t.Errorf("result: %d resources %d bytes, want %d and %d", filtered.Resources, filtered.Bytes, honoured.Resources, honoured.Bytes)
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, "*"+partSuffix)); len(parts) != 0 {
		t.Errorf("left behind: %v", parts)
	}
	for _, f := range filtered.Files {
		if fi, err := os.Stat(filepath.Join(dir, f.Name)); err != nil || fi.Size() != f.Bytes || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v (reported %d bytes)", f.Name, err, f.Bytes)
		}
	}
}

// typeFilterFake is a fake server that ignores _typeFilter, with Observations of two statuses.
func typeFilterFake(t *testing.T) (*fake, []byte) {
	t.Helper()
	f := newFake(t)
	var b bytes.Buffer
	for i := range 40 {
		status := "final"
		if i%4 == 0 {
			status = "cancelled"
		}
		fmt.Fprintf(&b, `{"resourceType":"Observation","id":"o%d","status":%q,"subject":{"reference":"Patient/%d"}}`+"\r\n", i, status, i%3)
	}
	f.add("output", "Observation", "o", b.Bytes())
	f.add("output", "Patient", "p", ndjson("Patient", 3))
	return f, b.Bytes()
}

func TestExporterTypeFilterUnsupportedNeverDrops(t *testing.T) { // BULK-08: unknown parameters → one warning
	t.Parallel()
	f, body := typeFilterFake(t)
	e, events := exporterFor(t, f)
	e.Filter = true
	res, err := e.Start(t.Context(), ExportRequest{TypeFilters: []string{"Observation?subject=Patient/1", "Observation?subject:Patient.name=x&status=final"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range *events {
		if ev.Kind == EventWarning && strings.Contains(ev.Message, "cannot evaluate") {
			n++
			if !strings.Contains(ev.Message, "Observation.subject, Observation.subject:Patient.name") {
				t.Errorf("warning %q", ev.Message)
			}
		}
	}
	got, _ := os.ReadFile(filepath.Join(e.Dir, "Observation.ndjson"))
	if n != 1 || res.Mismatches != 0 || !bytes.Equal(got, body) {
		t.Errorf("%d warnings, %d mismatches, file intact %v", n, res.Mismatches, bytes.Equal(got, body))
	}
	if b, _ := os.ReadFile(filepath.Join(e.Dir, LogFile)); !bytes.Contains(b, []byte(`"eventId":"typefilter_unsupported"`)) {
		t.Error("no typefilter_unsupported log record")
	}
}

func TestExporterTypeFilterOffWithoutValidate(t *testing.T) { // BULK-08: the check rides on the per-line pass
	t.Parallel()
	f, _ := typeFilterFake(t)
	e, _ := exporterFor(t, f)
	e.Validate = false
	res, err := e.Start(t.Context(), ExportRequest{TypeFilters: []string{"Observation?status=final"}})
	if err != nil || res.Mismatches != 0 || res.Resources != 43 {
		t.Errorf("%v: %+v", err, res)
	}
}

func TestExporterFilterResumeBeforeStateUpdate(t *testing.T) { // BULK-08, BULK-32: crash between filter and state
	t.Parallel()
	f, body := typeFilterFake(t)
	e, _ := exporterFor(t, f)
	e.Filter, e.KeepJob = true, true
	req := ExportRequest{TypeFilters: []string{"Observation?status=final"}}
	first, err := e.Start(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(e.Dir, "Observation.ndjson"))
	if first.Dropped != 10 || bytes.Contains(want, []byte("cancelled")) || bytes.Count(want, []byte("\n")) != 30 {
		t.Fatalf("dropped %d:\n%s", first.Dropped, want)
	}
	// The process died after the filtered file was renamed into place, before the state said so:
	// the whole download is still in the .part.
	st, err := loadState(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range st.Files {
		if fs.Type == "Observation" {
			fs.Done, fs.Dropped, fs.Mismatches = false, false, 0
		}
	}
	st.Complete = false
	b, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(e.Dir, StateFile), b, 0o600)
	os.WriteFile(filepath.Join(e.Dir, "Observation.ndjson"+partSuffix), body, 0o600)
	served := f.served.Load()
	res, err := e.Resume(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(e.Dir, "Observation.ndjson"))
	if !bytes.Equal(got, want) || res.Dropped != 10 || res.Resources != first.Resources || f.served.Load()-served > 100 {
		t.Errorf("resumed: dropped %d, resources %d, served again %d, file ok %v", res.Dropped, res.Resources, f.served.Load()-served, bytes.Equal(got, want))
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "Observation.ndjson"+partSuffix)); !os.IsNotExist(err) {
		t.Errorf(".part left: %v", err)
	}
}
