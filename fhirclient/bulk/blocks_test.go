package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

func header(ref string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"header","valueReference":{"reference":"` + ref + `"}}]}`
}

func res(typ, id string) string { return `{"resourceType":"` + typ + `","id":"` + id + `"}` }

// blockSummary renders blocks as "Reference: ids @ files" for comparison.
func blockSummary(t *testing.T, seq func(func(*Block, error) bool)) ([]string, error) {
	t.Helper()
	var out []string
	for b, err := range seq {
		if err != nil {
			return out, err
		}
		var ids []string
		for _, r := range b.Resources {
			var v struct{ ID string }
			if err := json.Unmarshal(r, &v); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, v.ID)
		}
		out = append(out, b.Reference+": "+strings.Join(ids, ",")+" @ "+strings.Join(b.Files, ","))
	}
	return out, nil
}

// organisedFiles is the 3-file fixture: the block of Patient/2 starts in file 1 and continues in
// files 2 and 3, each repeating its header. The manifest lists file 3 before file 2.
var organisedFiles = []struct{ name, continues, body string }{
	{"f1", "f2", strings.Join([]string{header("Patient/1"), res("Patient", "1"), res("Observation", "a"),
		header("Patient/2"), res("Patient", "2"), res("Observation", "b")}, "\n") + "\n"},
	{"f3", "", strings.Join([]string{header("Patient/2"), res("Observation", "e"),
		header("Patient/3"), res("Patient", "3"), res("Observation", "f")}, "\n")},
	{"f2", "f3", strings.Join([]string{header("Patient/2"), res("Observation", "c"), `{"resourceType":"Parameters","parameter":[{"name":"note","valueString":"x"}],"id":"d"}`}, "\r\n")},
}

var wantOrganised = []string{"Patient/1: 1,a @ F1", "Patient/2: 2,b,c,d,e @ F1,F2,F3", "Patient/3: 3,f @ F3"}

// organisedFake serves the fixture as organised output (outputOrganizedBy Patient, no types).
func organisedFake(t *testing.T) *fake {
	f := newFake(t)
	for _, of := range organisedFiles {
		f.add("output", "Patient", of.name, []byte(of.body))
	}
	f.manifestExtra = func(m map[string]any) {
		m["outputOrganizedBy"] = "Patient"
		for i, o := range m["output"].([]any) {
			item := o.(map[string]any)
			delete(item, "type")
			if c := organisedFiles[i].continues; c != "" {
				item["continuesInFile"] = f.fileSrv.URL + "/files/" + c
			}
		}
	}
	return f
}

func TestBlocksFromServer(t *testing.T) { // BULK-29: 3-file fixture with continuation
	t.Parallel()
	f := organisedFake(t)
	c, m, _ := manifestOf(t, f)
	got, err := blockSummary(t, c.Blocks(t.Context(), m))
	if err != nil {
		t.Fatal(err)
	}
	base := f.fileSrv.URL + "/files/"
	want := strings.NewReplacer("F1", base+"f1", "F2", base+"f2", "F3", base+"f3")
	if diff := cmp.Diff(strings.Split(want.Replace(strings.Join(wantOrganised, "\n")), "\n"), got); diff != "" {
		t.Error(diff)
	}
}

func TestBlocksFromExportDir(t *testing.T) { // BULK-29: the same fixture through an Exporter directory
	t.Parallel()
	f := organisedFake(t)
	e, _ := exporterFor(t, f)
	if _, err := e.Start(t.Context(), ExportRequest{OrganizeOutputBy: "Patient"}); err != nil {
		t.Fatal(err)
	}
	got, err := blockSummary(t, (&Exporter{Dir: e.Dir}).Blocks())
	if err != nil {
		t.Fatal(err)
	}
	// Files are named after the organising type, in manifest order: f1, f3, f2.
	want := strings.NewReplacer("F1", "Patient.1.ndjson", "F2", "Patient.3.ndjson", "F3", "Patient.2.ndjson")
	if diff := cmp.Diff(strings.Split(want.Replace(strings.Join(wantOrganised, "\n")), "\n"), got); diff != "" {
		t.Error(diff)
	}
}

// memFile is an in-memory organised output file.
func memFile(name, continues string, lines ...string) blockFile {
	return blockFile{name: name, key: name, continues: continues,
		resources: ReadNDJSON(strings.NewReader(strings.Join(lines, "\n")), "", name)}
}

func TestBlocksHostile(t *testing.T) { // BULK-29, SEC-12: broken organised output fails clearly
	t.Parallel()
	h1, h2, p1 := header("Patient/1"), header("Patient/2"), res("Patient", "1")
	tests := []struct {
		name  string
		by    string
		files []blockFile
		limit int64
		want  string // error text, or "" for success
	}{
		{"resource before header", "Patient", []blockFile{memFile("a", "", p1, h1)}, 0, "a resource before the first block header"},
		{"continuation changes block", "Patient", []blockFile{memFile("a", "b", h1, p1), memFile("b", "", h2, p1)}, 0, "continues the block of Patient/1 but starts with the header of Patient/2"},
		{"continuation without header", "Patient", []blockFile{memFile("a", "b", h1, p1), memFile("b", "", res("Observation", "x"), h2)}, 0, ""},
		{"continues nowhere", "Patient", []blockFile{memFile("a", "zz", h1)}, 0, "not an output file"},
		{"cycle", "Patient", []blockFile{memFile("a", "b", h1), memFile("b", "a", h1)}, 0, "cycle"},
		{"self", "Patient", []blockFile{memFile("a", "a", h1)}, 0, "from itself"},
		{"two into one", "Patient", []blockFile{memFile("a", "c", h1), memFile("b", "c", h2), memFile("c", "", h1)}, 0, "from two files"},
		{"too large", "Patient", []blockFile{memFile("a", "", h1, p1, p1, p1)}, 70, "larger than 70 bytes"},
		{"wrong type", "Group", []blockFile{memFile("a", "", h1, p1)}, 0, "names Patient/1, not a Group"},
		{"header without reference", "Patient", []blockFile{memFile("a", "", `{"resourceType":"Parameters","parameter":[{"name":"header","valueString":"x"}]}`)}, 0, "without a valueReference"},
		{"absolute reference", "Patient", []blockFile{memFile("a", "", header("https://ehr.example.org/fhir/Patient/7/_history/2"), p1)}, 0, ""},
		{"not organised", "", []blockFile{memFile("a", "", h1)}, 0, "not organised"},
		{"bad line", "Patient", []blockFile{memFile("a", "", h1, "[1]")}, 0, "a:2: invalid NDJSON line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := blockSummary(t, readBlocks(tt.by, tt.files, intOr(tt.limit, DefaultMaxBlock)))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			case tt.want != "" && tt.by != "" && tt.name != "bad line" && !errors.Is(err, ErrBadBlock):
				t.Errorf("%v does not wrap ErrBadBlock", err)
			}
		})
	}
}

func TestBlocksStopEarly(t *testing.T) {
	t.Parallel()
	n := 0
	for range readBlocks("Patient", []blockFile{memFile("a", "", header("Patient/1"), header("Patient/2"), header("Patient/3"))}, DefaultMaxBlock) {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("%d blocks", n)
	}
}

func TestSandboxOrganisedOutput(t *testing.T) { // BULK-29 against the sandbox's organizeOutputBy=Patient
	t.Parallel()
	const patients = 6
	e := newSandboxEnv(t, patients, sandbox.FHIRSettings{ExportDuration: -1, FileResources: 40}, 50*time.Millisecond)
	x := &Exporter{Client: e.c, Dir: filepath.Join(t.TempDir(), "out"), Validate: true, KeepJob: true}
	res, err := x.Start(t.Context(), ExportRequest{OrganizeOutputBy: "Patient"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) < 2 {
		t.Fatalf("want several files, got %d", len(res.Files))
	}
	var local []string
	var resources int64
	for b, err := range x.Blocks() {
		if err != nil {
			t.Fatal(err)
		}
		local = append(local, b.Reference)
		resources += int64(len(b.Resources)) + 1
		var first struct{ ResourceType, ID string }
		json.Unmarshal(b.Resources[0], &first)
		if "Patient/"+first.ID != b.Reference {
			t.Errorf("block %s starts with %s/%s", b.Reference, first.ResourceType, first.ID)
		}
	}
	if len(local) != patients || resources != res.Resources {
		t.Errorf("%d blocks %v with %d resources; export has %d", len(local), local, resources, res.Resources)
	}
	// The same blocks straight from the server.
	m, err := res.Job.Wait(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var remote []string
	for b, err := range e.c.Blocks(t.Context(), m) {
		if err != nil {
			t.Fatal(err)
		}
		remote = append(remote, b.Reference)
	}
	if fmt.Sprint(remote) != fmt.Sprint(local) {
		t.Errorf("remote %v, local %v", remote, local)
	}
}
