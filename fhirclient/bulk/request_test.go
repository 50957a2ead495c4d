package bulk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExportRequestQuery(t *testing.T) { // BULK-05, BULK-06, BULK-07, BULK-09
	t.Parallel()
	plus5 := time.FixedZone("", 5*3600)
	tests := []struct {
		name string
		req  ExportRequest
		want string
	}{
		{"empty", ExportRequest{}, ""},
		{"types comma-joined", ExportRequest{Types: []string{"Patient", "Observation"}}, "_type=Patient,Observation"},
		{"since keeps +05:00 as %2B", ExportRequest{Since: time.Date(2024, 1, 1, 0, 0, 0, 0, plus5)},
			"_since=2024-01-01T00%3A00%3A00%2B05%3A00"},
		{"until UTC", ExportRequest{Until: time.Date(2024, 2, 1, 12, 30, 0, 500e6, time.UTC)},
			"_until=2024-02-01T12%3A30%3A00.5Z"},
		{"typeFilter byte-exact (export.md example)", ExportRequest{TypeFilters: []string{
			"MedicationRequest?status=active",
			"MedicationRequest?status=completed&date=gt2018-07-01T00:00:00Z"}},
			"_typeFilter=MedicationRequest%3Fstatus%3Dactive&_typeFilter=MedicationRequest%3Fstatus%3Dcompleted%26date%3Dgt2018-07-01T00%3A00%3A00Z"},
		{"output format", ExportRequest{OutputFormat: "application/fhir+ndjson"}, "_outputFormat=application%2Ffhir%2Bndjson"},
		{"elements and associated data", ExportRequest{Elements: []string{"id", "Patient.name"}, IncludeAssociatedData: []string{"LatestProvenanceResources"}},
			"_elements=id,Patient.name&includeAssociatedData=LatestProvenanceResources"},
		{"organize and partial", ExportRequest{OrganizeOutputBy: "Patient", AllowPartialManifests: true},
			"organizeOutputBy=Patient&allowPartialManifests=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.req.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := tt.req.query(new(Client).typeValues(tt.req.Types)); got != tt.want {
				t.Errorf("query() = %q\nwant      %q", got, tt.want)
			}
		})
	}
}

func TestExportRequestPath(t *testing.T) { // BULK-01
	t.Parallel()
	for _, tt := range []struct {
		req  ExportRequest
		want string
	}{
		{ExportRequest{}, "$export"},
		{ExportRequest{Level: LevelPatient}, "Patient/$export"},
		{ExportRequest{GroupID: "g-1.2"}, "Group/g-1.2/$export"},
		{ExportRequest{Level: LevelGroup, GroupID: "abc"}, "Group/abc/$export"},
	} {
		if got := tt.req.path(); got != tt.want {
			t.Errorf("%+v: path() = %q, want %q", tt.req, got, tt.want)
		}
	}
}

func TestExportRequestValidateRefuses(t *testing.T) { // BULK-06, BULK-07, BULK-09
	t.Parallel()
	tests := map[string]ExportRequest{
		"lower-case type":             {Types: []string{"patient"}},
		"type with path":              {Types: []string{"Patient/../x"}},
		"type too long":               {Types: []string{"A" + strings.Repeat("a", 64)}},
		"group id with slash":         {GroupID: "a/b"},
		"group id dot-dot":            {GroupID: ".."},
		"group level without id":      {Level: LevelGroup},
		"group id at system level":    {Level: LevelSystem, GroupID: "g"},
		"unknown level":               {Level: "tenant"},
		"patient at system level":     {Patients: []string{"123"}},
		"bad patient ref":             {Level: LevelPatient, Patients: []string{"Practitioner/1"}},
		"typeFilter without ?":        {TypeFilters: []string{"Patient"}},
		"typeFilter bad type":         {TypeFilters: []string{"patient?active=true"}},
		"typeFilter _sort":            {TypeFilters: []string{"Observation?_sort=date"}},
		"typeFilter _include:iterate": {TypeFilters: []string{"Observation?_include:iterate=Observation:subject"}},
		"typeFilter _elements":        {TypeFilters: []string{"Observation?code=1&_elements=id"}},
		"elements nested":             {Elements: []string{"Patient.name.given"}},
		"elements comma":              {Elements: []string{"id,meta"}},
		"output format with space":    {OutputFormat: "application/x ndjson"},
		"until before since":          {Since: time.Unix(1000, 0), Until: time.Unix(10, 0)},
		"associated data bad code":    {IncludeAssociatedData: []string{"a b"}},
		"organize by bad type":        {OrganizeOutputBy: "patient"},
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := req.Validate()
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Validate() = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func TestExportRequestParameters(t *testing.T) { // BULK-04
	t.Parallel()
	req := ExportRequest{
		Level:       LevelPatient,
		Types:       []string{"Patient", "Condition"},
		Since:       time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", -4*3600)),
		TypeFilters: []string{"Condition?clinical-status=active"},
		Patients:    []string{"123", "Patient/456"},
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	if !req.usePOST() {
		t.Fatal("patients must force POST")
	}
	b, err := req.parameters(new(Client).typeValues(req.Types))
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var want any
	json.Unmarshal([]byte(`{"resourceType":"Parameters","parameter":[
		{"name":"_type","valueString":"Patient,Condition"},
		{"name":"_since","valueInstant":"2024-01-01T00:00:00-04:00"},
		{"name":"_typeFilter","valueString":"Condition?clinical-status=active"},
		{"name":"patient","valueReference":{"reference":"Patient/123"}},
		{"name":"patient","valueReference":{"reference":"Patient/456"}}]}`), &want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Parameters body (-want +got):\n%s", d)
	}
}

func TestExportRequestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	req := ExportRequest{GroupID: "g", Types: []string{"Patient"}, Since: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Lenient: true}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back ExportRequest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(req, back); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if got := string(b); got != `{"groupId":"g","types":["Patient"],"since":"2024-03-01T00:00:00Z","lenient":true}` {
		t.Errorf("JSON = %s", got)
	}
}
