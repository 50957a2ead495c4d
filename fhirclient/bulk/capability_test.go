package bulk

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// CapabilityStatements shaped after real servers.
const (
	// capsSystemPatient declares system and patient export (HAPI style: operations named
	// "export" on rest and on Patient), no group export, and marks one type and one search
	// parameter operation-not-supported.
	capsSystemPatient = `{"resourceType":"CapabilityStatement","status":"active","kind":"instance","fhirVersion":"4.0.1",
		"instantiates":["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
		"rest":[{"mode":"server",
			"operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export|2.0.0"}],
			"resource":[
				{"type":"Patient","operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}]},
				{"type":"Group","interaction":[{"code":"read"}]},
				{"type":"Binary","extension":[{"url":"http://hl7.org/fhir/uv/bulkdata/Extension/operation-not-supported","valueCanonical":"http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"}]},
				{"type":"AllergyIntolerance","searchParam":[{"name":"clinical-status","type":"token","extension":[
					{"url":"http://hl7.org/fhir/uv/bulkdata/Extension/operation-not-supported","valueCanonical":"http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"}]}]},
				{"type":"Device","extension":[{"url":"http://hl7.org/fhir/uv/bulkdata/Extension/operation-not-supported","valueCanonical":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]}
			]}]}`
	// capsNoExport documents no export operation at all.
	capsNoExport = `{"resourceType":"CapabilityStatement","rest":[{"mode":"server","resource":[{"type":"Patient"}]}]}`
	// capsGroupOnly declares group export by its definition under a vendor name.
	capsGroupOnly = `{"resourceType":"CapabilityStatement","rest":[{"mode":"client","operation":[{"name":"export"}]},{"mode":"server",
		"resource":[{"type":"Group","operation":[{"name":"vendor-bulk","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]}]}]}`
)

func TestCapabilitiesCheck(t *testing.T) { // BULK-34
	t.Parallel()
	tests := []struct {
		name, caps string
		req        ExportRequest
		err        error
		warning    string
	}{
		{"system declared", capsSystemPatient, ExportRequest{}, nil, ""},
		{"patient declared", capsSystemPatient, ExportRequest{Level: LevelPatient}, nil, ""},
		{"group not declared", capsSystemPatient, ExportRequest{GroupID: "g1"}, ErrNotSupported, ""},
		{"no information", capsNoExport, ExportRequest{GroupID: "g1"}, nil, ""},
		{"group by definition", capsGroupOnly, ExportRequest{GroupID: "g1"}, nil, ""},
		{"client rest ignored", capsGroupOnly, ExportRequest{}, ErrNotSupported, ""},
		{"type not supported", capsSystemPatient, ExportRequest{Types: []string{"Patient", "Binary"}}, ErrNotSupported, ""},
		{"type not supported for another level", capsSystemPatient, ExportRequest{Types: []string{"Device"}}, nil, ""},
		{"search parameter not supported", capsSystemPatient, ExportRequest{TypeFilters: []string{"AllergyIntolerance?clinical-status=active"}}, nil, "AllergyIntolerance.clinical-status is not supported in a _typeFilter"},
		{"filter on an unsupported type", capsSystemPatient, ExportRequest{TypeFilters: []string{"Binary?_id=1"}}, nil, "Binary is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			caps, err := ParseCapabilities([]byte(tt.caps))
			if err != nil {
				t.Fatal(err)
			}
			warnings, err := caps.Check(tt.req)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.err)
			}
			if tt.warning == "" && len(warnings) > 0 || tt.warning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tt.warning)) {
				t.Errorf("warnings %q, want %q", warnings, tt.warning)
			}
		})
	}
	caps, _ := ParseCapabilities([]byte(capsSystemPatient))
	_, err := caps.Check(ExportRequest{GroupID: "g1"})
	if err == nil || !strings.Contains(err.Error(), "no group-level export ([base]/Group/[id]/$export), only system, patient") {
		t.Errorf("message: %v", err)
	}
}

func TestParseCapabilitiesRefuses(t *testing.T) {
	t.Parallel()
	for _, b := range []string{`{"resourceType":"OperationOutcome"}`, `[]`, `{"resourceType":"CapabilityStatement","rest":{}}`, "<html>"} {
		if _, err := ParseCapabilities([]byte(b)); err == nil {
			t.Errorf("%s: no error", b)
		}
	}
}

func TestExporterRefusesUndeclaredGroupExport(t *testing.T) { // BULK-34: httptest server without group export
	t.Parallel()
	f := newFake(t)
	f.metadata = []byte(capsSystemPatient)
	f.add("output", "Patient", "p", ndjson("Patient", 2))
	e, _ := exporterFor(t, f)
	e.CheckCapabilities = true
	_, err := e.Start(t.Context(), ExportRequest{GroupID: "diabetes"})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "group-level") {
		t.Fatalf("err = %v, want ErrNotSupported naming the level", err)
	}
	if f.kickoffs.Load() != 0 {
		t.Error("the kick-off was sent")
	}
	if _, err := os.Stat(e.Dir); !os.IsNotExist(err) {
		t.Errorf("the output directory was created: %v", err)
	}
	// The same server, system level: allowed.
	if _, err := e.Start(t.Context(), ExportRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestExporterCapabilitiesUnavailable(t *testing.T) { // BULK-34: absent information → proceed, with a warning
	t.Parallel()
	f := newFake(t) // no metadata: 404
	f.add("output", "Patient", "p", ndjson("Patient", 2))
	e, events := exporterFor(t, f)
	e.CheckCapabilities = true
	if _, err := e.Start(t.Context(), ExportRequest{GroupID: "g"}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(*events, func(ev Event) bool {
		return ev.Kind == EventWarning && strings.Contains(ev.Message, "CapabilityStatement could not be read") && strings.Contains(ev.Message, "404")
	}) {
		t.Errorf("no warning: %+v", *events)
	}
}

func TestSandboxCapabilitiesDeclareAllLevels(t *testing.T) { // BULK-34: the sandbox declares all three
	t.Parallel()
	e := newSandboxEnv(t, 2, sandbox.FHIRSettings{ExportDuration: -1}, 50*time.Millisecond)
	caps, err := e.c.Capabilities(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []Level{LevelSystem, LevelPatient, LevelGroup} {
		if !slices.Contains(caps.Levels, l) {
			t.Errorf("levels %v lack %s", caps.Levels, l)
		}
	}
	for _, req := range []ExportRequest{{}, {Level: LevelPatient}, {GroupID: "diabetes-registry"}} {
		x := &Exporter{Client: e.c, Dir: filepath.Join(t.TempDir(), "out"), CheckCapabilities: true}
		if _, err := x.Start(t.Context(), req); err != nil {
			t.Errorf("%s: %v", req.level(), err)
		}
	}
}
