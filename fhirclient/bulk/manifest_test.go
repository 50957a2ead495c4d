package bulk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bulk", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseManifestFixtures(t *testing.T) { // BULK-17
	t.Parallel()
	tests := []struct {
		file                    string
		outputs, errs, deleted  int
		request, organizedBy    string
		extensionArray, hasNext bool
	}{
		{"manifest-v3.json", 3, 1, 1, "https://example.com/fhir/Patient/$export?_type=Patient,Observation", "", false, false},
		{"manifest-v4-ballot.json", 3, 1, 1, "", "", true, false},
		{"manifest-minimal.json", 1, 0, 0, "", "", false, false},
		{"manifest-organized.json", 3, 1, 1, "", "Patient", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest(readFixture(t, tt.file), false)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Output) != tt.outputs || len(m.Error) != tt.errs || len(m.Deleted) != tt.deleted {
				t.Errorf("output/error/deleted = %d/%d/%d, want %d/%d/%d", len(m.Output), len(m.Error), len(m.Deleted), tt.outputs, tt.errs, tt.deleted)
			}
			if m.Request != tt.request || m.OutputOrganizedBy != tt.organizedBy || !m.RequiresAccessToken {
				t.Errorf("request %q organizedBy %q requiresAccessToken %v", m.Request, m.OutputOrganizedBy, m.RequiresAccessToken)
			}
			if tt.extensionArray != strings.HasPrefix(string(m.Extension), "[") {
				t.Errorf("extension kept raw: %s", m.Extension)
			}
			if (m.Next() != "") != tt.hasNext {
				t.Errorf("Next() = %q", m.Next())
			}
			for _, f := range m.Error {
				if f.Type != "OperationOutcome" {
					t.Errorf("error type %q, want OperationOutcome (implicit in the 4.0 ballot)", f.Type)
				}
			}
			for _, f := range m.Deleted {
				if f.Type != "Bundle" {
					t.Errorf("deleted type %q, want Bundle", f.Type)
				}
			}
			if _, err := m.Time(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestParseManifestHostile(t *testing.T) { // BULK-18, SEC-12
	t.Parallel()
	const head = `{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":true,`
	tests := []struct {
		name, body string
		also       error
	}{
		{"file URL", head + `"output":[{"type":"Patient","url":"file:///etc/passwd"}]}`, httpx.ErrInsecureURL},
		{"metadata address", head + `"output":[{"type":"Patient","url":"http://169.254.169.254/latest/meta-data"}]}`, httpx.ErrInsecureURL},
		{"link-local v6", head + `"output":[{"type":"Patient","url":"https://[fe80::1]/x"}]}`, httpx.ErrInsecureURL},
		{"data URL", head + `"output":[{"type":"Patient","url":"data:application/fhir+ndjson,{}"}]}`, httpx.ErrInsecureURL},
		{"plain http remote", head + `"output":[{"type":"Patient","url":"http://files.example.org/p.ndjson"}]}`, httpx.ErrInsecureURL},
		{"relative URL", head + `"output":[{"type":"Patient","url":"/files/p.ndjson"}]}`, httpx.ErrInsecureURL},
		{"user info", head + `"output":[{"type":"Patient","url":"https://u:p@example.org/p.ndjson"}]}`, httpx.ErrInsecureURL},
		{"error entry file URL", head + `"output":[],"error":[{"type":"OperationOutcome","url":"file:///etc/shadow"}]}`, httpx.ErrInsecureURL},
		{"output object", head + `"output":{}}`, nil},
		{"output missing", head + `"error":[]}`, nil},
		{"error object", head + `"output":[],"error":{"url":"x"}}`, nil},
		{"type with path", head + `"output":[{"type":"../../etc/passwd","url":"https://e.org/x"}]}`, nil},
		{"type missing", head + `"output":[{"url":"https://e.org/x"}]}`, nil},
		{"count string", head + `"output":[{"type":"Patient","url":"https://e.org/x","count":"5"}]}`, nil},
		{"count negative", head + `"output":[{"type":"Patient","url":"https://e.org/x","count":-1}]}`, nil},
		{"requiresAccessToken string", `{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":"false","output":[]}`, nil},
		{"requiresAccessToken missing", `{"transactionTime":"2024-01-01T00:00:00Z","output":[]}`, nil},
		{"transactionTime missing", `{"requiresAccessToken":true,"output":[]}`, nil},
		{"transactionTime not instant", `{"transactionTime":"yesterday","requiresAccessToken":true,"output":[]}`, nil},
		{"not JSON", `<html>oops</html>`, nil},
		{"organizedBy bad", head + `"outputOrganizedBy":"../x","output":[]}`, nil},
		{"next link without url", head + `"output":[],"link":[{"relation":"next"}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest([]byte(tt.body), false)
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("ParseManifest = %+v, %v; want ErrBadManifest", m, err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("error %v does not wrap %v", err, tt.also)
			}
		})
	}
}

func TestParseManifestLenient(t *testing.T) { // BULK-17: unknown members, empty output, loopback http
	t.Parallel()
	body := `{"transactionTime":"2024-01-01T00:00:00.123+05:30","requiresAccessToken":false,"output":[
		{"type":"Patient","url":"http://127.0.0.1:8080/p.ndjson","count":3,"vendorField":{"x":1}}],
		"error":null,"somethingNew":true}`
	m, err := ParseManifest([]byte(body), false)
	if err != nil {
		t.Fatal(err)
	}
	if m.RequiresAccessToken || len(m.Output) != 1 || *m.Output[0].Count != 3 || len(m.Error) != 0 {
		t.Errorf("got %+v", m)
	}
	if _, err := ParseManifest([]byte(`{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":true,"output":[]}`), false); err != nil {
		t.Errorf("empty output: %v", err)
	}
	// InsecureAllowHTTP opens plain http to other hosts, never file: or metadata.
	if _, err := ParseManifest([]byte(`{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":true,"output":[{"type":"Patient","url":"http://files.internal/p"}]}`), true); err != nil {
		t.Errorf("allowHTTP: %v", err)
	}
	if _, err := ParseManifest([]byte(`{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":true,"output":[{"type":"Patient","url":"http://169.254.169.254/"}]}`), true); !errors.Is(err, httpx.ErrInsecureURL) {
		t.Errorf("allowHTTP metadata: %v", err)
	}
}

func TestPlanFiles(t *testing.T) { // CONV-6 file names
	t.Parallel()
	m, err := ParseManifest(readFixture(t, "manifest-v3.json"), false)
	if err != nil {
		t.Fatal(err)
	}
	m2 := &Manifest{Output: []File{{Type: "Patient", URL: "https://example.com/p3"}, {Type: "Encounter", URL: "https://example.com/e"}}}
	files, err := planFiles([]*Manifest{m, m2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		if err := checkName(f.Name); err != nil {
			t.Error(err)
		}
	}
	want := "Patient.1.ndjson Patient.2.ndjson Observation.ndjson error/OperationOutcome.ndjson deleted/Bundle.ndjson Patient.3.ndjson Encounter.ndjson"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("names = %s\nwant    %s", got, want)
	}
	// SEC-12, CONV-6: types differing only in case get numbered names, so that no two files share
	// a name on a case-insensitive file system.
	m3 := &Manifest{Output: []File{{Type: "Patient", URL: "https://example.com/a"}, {Type: "PATIENT", URL: "https://example.com/b"},
		{Type: "Observation", URL: "https://example.com/c"}}}
	files, err = planFiles([]*Manifest{m3})
	if err != nil {
		t.Fatal(err)
	}
	folded := map[string]bool{}
	for _, f := range files {
		if folded[strings.ToLower(f.Name)] {
			t.Errorf("%s shares its name with another file on a case-insensitive file system", f.Name)
		}
		folded[strings.ToLower(f.Name)] = true
	}
	if got, want := files[0].Name+" "+files[1].Name+" "+files[2].Name, "Patient.1.ndjson PATIENT.2.ndjson Observation.ndjson"; got != want {
		t.Errorf("names = %s, want %s", got, want)
	}
	for _, bad := range []string{"../Patient.ndjson", "/etc/passwd", "Patient.ndjson/../../x", "error/../../x.ndjson", "patient.ndjson", "Patient.0.ndjson"} {
		if checkName(bad) == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}
