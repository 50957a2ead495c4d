package sandbox_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// TestExportLifecycle follows a system export: 202 + absolute Content-Location, in-progress polls
// with Retry-After and X-Progress, then a manifest with Expires, files of the right type and count
// that decode with the samply models, and DELETE (BULK-01, 10, 12, 13, 17, 20, 22, 25; SBX-10).
func TestExportLifecycle(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	e.s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: 10 * time.Second, RetryAfter: 2 * time.Second})
	tok := e.systemToken()
	status := e.kickoff("/$export", tok)

	resp, b := e.get(status, tok)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Retry-After") != "2" || len(b) != 0 {
		t.Fatalf("in progress: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if p := resp.Header.Get("X-Progress"); !strings.Contains(p, "0%") || len(p) >= 100 {
		t.Errorf("X-Progress %q", p)
	}
	e.advance(5 * time.Second)
	if resp, _ := e.get(status, tok); resp.StatusCode != 202 || !strings.Contains(resp.Header.Get("X-Progress"), "50%") {
		t.Errorf("half way: %d %q", resp.StatusCode, resp.Header.Get("X-Progress"))
	}
	e.advance(5 * time.Second)
	m, resp := e.manifest(status, tok)
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("manifest Content-Type %q", resp.Header.Get("Content-Type"))
	}
	if exp, err := http.ParseTime(resp.Header.Get("Expires")); err != nil || !exp.After(e.s.Now()) {
		t.Errorf("Expires %q", resp.Header.Get("Expires"))
	}
	if tt, err := time.Parse(time.RFC3339, m.TransactionTime); err != nil || !tt.Equal(e.s.Now().Add(-10*time.Second)) {
		t.Errorf("transactionTime %q", m.TransactionTime)
	}
	if m.Request != e.base+"/$export" || !m.RequiresAccessToken || m.Error == nil || len(m.Error) != 0 {
		t.Errorf("manifest %+v", m)
	}
	var types []string
	for _, o := range m.Output {
		types = append(types, o.Type)
	}
	want := []string{"Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "AllergyIntolerance",
		"Immunization", "Practitioner", "Organization", "Group"}
	if !slices.Equal(types, want) {
		t.Errorf("output types %v", types)
	}
	ids := e.checkOutput(m, tok)
	if len(ids["Patient"]) != 20 || len(ids["Group"]) != 2 {
		t.Errorf("%d patients, %d groups", len(ids["Patient"]), len(ids["Group"]))
	}
	for _, o := range m.Output {
		for _, line := range ndjsonLines(e.download(o.URL, tok)) {
			if _, err := decodeAs(o.Type, line); err != nil {
				t.Fatalf("%s line does not decode: %v", o.Type, err)
			}
		}
	}

	resp, b = e.do(http.MethodDelete, status, tok, nil)
	wantOutcome(t, resp, b, http.StatusAccepted, "informational")
	resp, b = e.get(status, tok)
	wantOutcome(t, resp, b, http.StatusNotFound, "not-found")
	resp, b = e.get(m.Output[0].URL, tok)
	wantOutcome(t, resp, b, http.StatusNotFound, "not-found")
}

func decodeAs(typ string, b []byte) (any, error) {
	switch typ {
	case "Patient":
		return fhir.UnmarshalPatient(b)
	case "Observation":
		return fhir.UnmarshalObservation(b)
	case "Group":
		return fhir.UnmarshalGroup(b)
	case "OperationOutcome":
		return fhir.UnmarshalOperationOutcome(b)
	case "Bundle":
		return fhir.UnmarshalBundle(b)
	case "Parameters":
		return fhir.UnmarshalParameters(b)
	}
	var v map[string]any
	return v, json.Unmarshal(b, &v)
}

// TestExportKickoffVariants: the three endpoints, GET and POST (Parameters), _type as a comma list
// or repeated, _outputFormat synonyms (BULK-01, 04, 06, 09).
func TestExportKickoffVariants(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	quickExports(e.s)
	tok := e.systemToken()
	outTypes := func(m exportManifest) []string {
		var out []string
		for _, o := range m.Output {
			out = append(out, o.Type)
		}
		return out
	}
	comma := outTypes(e.export("/$export?_type=Patient,Observation", tok))
	repeated := outTypes(e.export("/$export?_type=Observation&_type=Patient", tok))
	if !slices.Equal(comma, []string{"Patient", "Observation"}) || !slices.Equal(comma, repeated) {
		t.Errorf("comma %v repeated %v", comma, repeated)
	}
	for _, f := range []string{"application/fhir+ndjson", "application/ndjson", "ndjson"} {
		e.export("/Patient/$export?_type=Patient&_outputFormat="+url.QueryEscape(f), tok)
	}
	pat := outTypes(e.export("/Patient/$export", tok))
	if slices.Contains(pat, "Practitioner") || !slices.Contains(pat, "Immunization") {
		t.Errorf("patient-level types %v", pat)
	}
	group := e.export("/Group/diabetes-registry/$export?_type=Patient", tok)
	ids := e.checkOutput(group, tok)
	for _, id := range ids["Patient"] {
		n, _ := strconv.Atoi(strings.TrimPrefix(id, "pt-"))
		if n%4 != 1 {
			t.Errorf("group export includes %s", id)
		}
	}
	if len(ids["Patient"]) != 5 {
		t.Errorf("diabetes registry export: %v", ids["Patient"])
	}

	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Condition"},
		{"name":"patient","valueReference":{"reference":"Patient/pt-2"}},
		{"name":"patient","valueReference":{"reference":"Patient/pt-7"}},
		{"name":"_since","valueInstant":"2000-01-01T00:00:00Z"}]}`
	resp, b := e.do(http.MethodPost, e.base+"/Patient/$export", tok, strings.NewReader(body),
		"Content-Type", "application/fhir+json", "Accept", "application/fhir+json", "Prefer", "respond-async")
	if resp.StatusCode != 202 {
		t.Fatalf("POST kick-off: %d %s", resp.StatusCode, b)
	}
	m, _ := e.manifest(resp.Header.Get("Content-Location"), tok)
	if m.Request != e.base+"/Patient/$export" {
		t.Errorf("POST manifest request %q", m.Request)
	}
	posted := e.checkOutput(m, tok)
	if !slices.Equal(posted["Patient"], []string{"pt-2", "pt-7"}) {
		t.Errorf("patient= export: %v", posted)
	}
	for _, id := range posted["Condition"] {
		if !strings.HasPrefix(id, "cond-2-") && !strings.HasPrefix(id, "cond-7-") {
			t.Errorf("condition %s of another patient", id)
		}
	}
	if len(m.Deleted) != 1 || m.Deleted[0].Type != "Bundle" {
		t.Fatalf("deleted %+v", m.Deleted)
	}
	del, err := fhir.UnmarshalBundle(ndjsonLines(e.download(m.Deleted[0].URL, tok))[0])
	if err != nil || del.Type != fhir.BundleTypeTransaction || del.Entry[0].Request.Method != fhir.HTTPVerbDELETE {
		t.Errorf("deleted bundle %+v %v", del, err)
	}
}

// TestExportFilters: _since, _until, _typeFilter (v3 repeated and v2 comma-joined, OR-ed) and
// _elements (BULK-05, 07, 09).
func TestExportFilters(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	quickExports(e.s)
	tok := e.systemToken()
	count := func(m exportManifest) int {
		n := 0
		for _, o := range m.Output {
			n += o.Count
		}
		return n
	}
	all := count(e.export("/$export?_type=Observation", tok))
	since := count(e.export("/$export?_type=Observation&_since=2024-01-01T00:00:00%2B05:00", tok))
	until := count(e.export("/$export?_type=Observation&_until=2024-01-01T00:00:00%2B05:00", tok))
	if since == 0 || until == 0 || since+until != all {
		t.Errorf("all %d, since %d, until %d", all, since, until)
	}
	if m := e.export("/$export?_type=Observation&_since=2030-01-01T00:00:00Z", tok); len(m.Output) != 0 {
		t.Errorf("_since in the future exported %+v", m.Output)
	}

	lab := url.QueryEscape("Observation?category=laboratory")
	hr := url.QueryEscape("Observation?code=http://loinc.org|8867-4")
	v3 := e.checkOutput(e.export("/$export?_type=Observation&_typeFilter="+lab+"&_typeFilter="+hr, tok), tok)
	v2 := e.checkOutput(e.export("/$export?_type=Observation&_typeFilter="+lab+","+hr, tok), tok)
	labOnly := e.checkOutput(e.export("/$export?_type=Observation&_typeFilter="+lab, tok), tok)
	if !slices.Equal(v3["Observation"], v2["Observation"]) || len(v3["Observation"]) <= len(labOnly["Observation"]) ||
		len(labOnly["Observation"]) == 0 || len(v3["Observation"]) >= all {
		t.Errorf("v3 %d, v2 %d, lab %d, all %d", len(v3["Observation"]), len(v2["Observation"]), len(labOnly["Observation"]), all)
	}
	spec := "MedicationRequest%3Fstatus%3Dactive,MedicationRequest%3Fstatus%3Dcompleted%26authoredon%3Dgt2018-07-01T00%3A00%3A00Z"
	e.export("/$export?_type=MedicationRequest&_typeFilter="+spec, tok)

	m := e.export("/$export?_type=Patient&_elements=gender,Patient.birthDate", tok)
	line := ndjsonLines(e.download(m.Output[0].URL, tok))[0]
	var p map[string]any
	if err := json.Unmarshal(line, &p); err != nil {
		t.Fatal(err)
	}
	_, hasName := p["name"]
	if hasName || p["gender"] == nil || p["birthDate"] == nil || !strings.Contains(string(line), "SUBSETTED") {
		t.Errorf("_elements line %s", line)
	}
}

// TestExportKickoffErrors: invalid parameters and headers get 400/404 OperationOutcomes
// (BULK-02, 05, 06, 09, 11).
func TestExportKickoffErrors(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	for _, tc := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"since with space", "/$export?_since=2024-01-01T00:00:00+05:00", 400, "invalid"},
		{"since without zone", "/$export?_since=2024-01-01T00:00:00", 400, "invalid"},
		{"bad type syntax", "/$export?_type=patient", 400, "invalid"},
		{"unknown type", "/$export?_type=Basic", 400, "not-supported"},
		{"bad output format", "/$export?_outputFormat=text/csv", 400, "not-supported"},
		{"unknown parameter", "/$export?_count=5", 400, "not-supported"},
		{"typeFilter syntax", "/$export?_typeFilter=category%3Dlaboratory", 400, "invalid"},
		{"typeFilter sort", "/$export?_typeFilter=" + url.QueryEscape("Observation?_sort=date"), 400, "not-supported"},
		{"typeFilter bad param", "/$export?_typeFilter=" + url.QueryEscape("Observation?shoe=9"), 400, "not-supported"},
		{"organizeOutputBy", "/$export?organizeOutputBy=Encounter", 400, "not-supported"},
		{"patient at system level", "/$export?patient=Patient/pt-1", 400, "invalid"},
		{"unknown patient", "/Patient/$export?patient=Patient/pt-99", 400, "not-found"},
		{"unknown group", "/Group/nope/$export", 404, "not-found"},
		{"type outside compartment", "/Patient/$export?_type=Practitioner", 400, "not-supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, b := e.get(tc.path, tok, kickoffHeaders...)
			wantOutcome(t, resp, b, tc.status, tc.code)
		})
	}
	e.kickoff("/$export?_type=Patient,Basic&shoe=1", tok, "Prefer", "handling=lenient")

	v1 := newFHIREnv(t, sandbox.Options{Version: "v1"})
	vt := v1.systemToken()
	for _, hdr := range [][]string{{"Accept", "application/fhir+json"}, {"Prefer", "respond-async"}} {
		resp, b := v1.get("/$export", vt, hdr...)
		wantOutcome(t, resp, b, http.StatusBadRequest, "invalid")
	}
	v1.kickoff("/$export", vt)
	e.kickoff("/$export", tok, "Accept", "application/json") // tolerated outside v1 mode
}

// TestExportScopes: an export reads with the token's scopes: patient/ tokens export their
// compartment, a type requested without scope is 403, no scope at all is 403 (SBX-09).
func TestExportScopes(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	quickExports(e.s)
	pt := e.token("patient/Patient.rs patient/Observation.rs?category=laboratory", "pt-5")
	ids := e.checkOutput(e.export("/Patient/$export", pt), pt)
	if !slices.Equal(ids["Patient"], []string{"pt-5"}) || len(ids["Observation"]) == 0 || len(ids) != 2 {
		t.Errorf("patient export %v", ids)
	}
	for _, id := range ids["Observation"] {
		if !strings.HasPrefix(id, "obs-5-") {
			t.Errorf("observation %s", id)
		}
	}
	resp, b := e.get("/$export?_type=Condition", pt, kickoffHeaders...)
	wantOutcome(t, resp, b, http.StatusForbidden, "forbidden")
	none := e.token("openid fhirUser", "")
	resp, b = e.get("/$export", none, kickoffHeaders...)
	wantOutcome(t, resp, b, http.StatusForbidden, "forbidden")
}

// TestExportFileTransfer: gzip when asked (identical content), Range resumption with the same
// bytes, 416 past the end, HEAD, and the bulk_file_bytes counter (BULK-24, 32).
func TestExportFileTransfer(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	quickExports(e.s)
	tok := e.systemToken()
	m := e.export("/$export?_type=Observation", tok)
	u := m.Output[0].URL
	resp, plain := e.get(u, tok)
	if resp.StatusCode != 200 || resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if got := e.s.Count("bulk_file_bytes"); got != int64(len(plain)) {
		t.Errorf("bulk_file_bytes %d, sent %d", got, len(plain))
	}
	resp, zipped := e.get(u, tok, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || len(zipped) >= len(plain)/3 {
		t.Errorf("gzip: %q, %d bytes of %d", resp.Header.Get("Content-Encoding"), len(zipped), len(plain))
	}
	if unz := e.download(u, tok, "Accept-Encoding", "gzip"); !bytes.Equal(unz, plain) {
		t.Error("gzip content differs")
	}
	if _, again := e.get(u, tok); !bytes.Equal(again, plain) {
		t.Error("file bytes change between requests")
	}
	for _, rng := range []struct {
		header     string
		start, end int
	}{{"bytes=1000-", 1000, len(plain) - 1}, {"bytes=10-19", 10, 19}, {"bytes=-100", len(plain) - 100, len(plain) - 1}} {
		resp, part := e.get(u, tok, "Range", rng.header, "Accept-Encoding", "gzip")
		want := "bytes " + strconv.Itoa(rng.start) + "-" + strconv.Itoa(rng.end) + "/" + strconv.Itoa(len(plain))
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != want ||
			!bytes.Equal(part, plain[rng.start:rng.end+1]) {
			t.Errorf("%s: %d %q, %d bytes", rng.header, resp.StatusCode, resp.Header.Get("Content-Range"), len(part))
		}
	}
	resp, b := e.get(u, tok, "Range", "bytes="+strconv.Itoa(len(plain))+"-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != "bytes */"+strconv.Itoa(len(plain)) {
		t.Errorf("past the end: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Range"), b)
	}
	if resp, part := e.get(u, tok, "Range", "bytes=0-9", "If-Range", `"stale"`); resp.StatusCode != 200 || len(part) != len(plain) {
		t.Errorf("If-Range mismatch: %d", resp.StatusCode)
	}
	resp, b = e.do(http.MethodHead, u, tok, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(len(plain)) || len(b) != 0 {
		t.Errorf("HEAD: %d Content-Length %q", resp.StatusCode, resp.Header.Get("Content-Length"))
	}
}

// TestExportFileAuth: files need the token when requiresAccessToken is true; capability URLs
// refuse a request that carries one (BULK-23, SBX-19).
func TestExportFileAuth(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	quickExports(e.s)
	tok := e.systemToken()
	m := e.export("/$export?_type=Patient", tok)
	resp, b := e.get(m.Output[0].URL, "")
	wantOutcome(t, resp, b, http.StatusUnauthorized, "login")
	resp, b = e.get(strings.Replace(m.Output[0].URL, "/files/", "/files/x", 1), tok)
	wantOutcome(t, resp, b, http.StatusNotFound, "not-found")
	other := e.s.IssueAccessToken(sandbox.Grant{ClientID: "someone-else", Scopes: []string{"system/*.rs"},
		Expiry: e.s.Now().Add(time.Hour)})
	resp, b = e.get(m.Output[0].URL, other)
	wantOutcome(t, resp, b, http.StatusNotFound, "not-found")

	c := e.s.FHIRSettings()
	c.CapabilityURLs = true
	e.s.SetFHIRSettings(c)
	m = e.export("/$export?_type=Patient", tok)
	if m.RequiresAccessToken {
		t.Fatal("capability mode: requiresAccessToken true")
	}
	e.download(m.Output[0].URL, "")
	resp, b = e.get(m.Output[0].URL, tok)
	wantOutcome(t, resp, b, http.StatusBadRequest, "security")
	if e.s.Count("bulk_token_leaks") != 1 {
		t.Errorf("bulk_token_leaks = %d", e.s.Count("bulk_token_leaks"))
	}
	resp, b = e.get(m.Output[0].URL, "", "Authorization", "Basic Zm9vOmJhcg==")
	wantOutcome(t, resp, b, http.StatusBadRequest, "security")
}

// TestExportSplitsFiles: a type spans several <Type>.n files when large; the parts hold every
// resource once (SBX-10).
func TestExportSplitsFiles(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{Patients: 30})
	e.s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, FileResources: 100})
	tok := e.systemToken()
	m := e.export("/$export?_type=Observation,Patient", tok)
	var names []string
	for _, o := range m.Output {
		names = append(names, o.URL[strings.LastIndex(o.URL, "/")+1:])
	}
	if len(names) < 4 || names[0] != "Patient.ndjson" || names[1] != "Observation.1.ndjson" || names[2] != "Observation.2.ndjson" {
		t.Fatalf("files %v", names)
	}
	ids := e.checkOutput(m, tok)
	searched := e.searchAll("/Observation?_count=1000", tok)
	if !slices.Equal(ids["Observation"], searched) {
		t.Errorf("export has %d observations, search %d", len(ids["Observation"]), len(searched))
	}
}

// TestExportOrganizedAndPaged: organizeOutputBy=Patient writes Parameters-headed blocks;
// allowPartialManifests=true pages the manifest with link next (BULK-21, 29).
func TestExportOrganizedAndPaged(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	quickExports(e.s)
	tok := e.systemToken()
	m := e.export("/Patient/$export?_type=Patient,Condition&organizeOutputBy=Patient", tok)
	if m.OutputOrganizedBy != "Patient" || len(m.Output) != 1 || m.Output[0].Type != "" {
		t.Fatalf("organized manifest %+v", m)
	}
	lines := ndjsonLines(e.download(m.Output[0].URL, tok))
	if len(lines) != m.Output[0].Count {
		t.Errorf("%d lines, count %d", len(lines), m.Output[0].Count)
	}
	p, err := fhir.UnmarshalParameters(lines[0])
	if err != nil || p.Parameter[0].Name != "header" || *p.Parameter[0].ValueReference.Reference != "Patient/pt-0" ||
		!bytes.Contains(lines[1], []byte(`"id":"pt-0"`)) {
		t.Errorf("first block %s / %s (%v)", lines[0], lines[1], err)
	}

	status := e.kickoff("/$export?allowPartialManifests=true", tok)
	var seen []string
	for page := status; page != ""; {
		resp, b := e.get(page, tok)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", page, resp.StatusCode, b)
		}
		var pm struct {
			Output []exportItem
			Link   []struct{ Relation, URL string }
		}
		if err := json.Unmarshal(b, &pm); err != nil {
			t.Fatal(err)
		}
		for _, o := range pm.Output {
			seen = append(seen, o.Type)
		}
		page = ""
		for _, l := range pm.Link {
			if l.Relation == "next" {
				page = l.URL
			}
		}
		if len(seen) > 20 {
			t.Fatal("manifest pages loop")
		}
	}
	if len(seen) != 10 || len(slices.Compact(slices.Clone(seen))) != 10 {
		t.Errorf("paged outputs %v", seen)
	}
}

// TestExportSeparateStatus: Prefer: respond-async, separate-export-status gets Preference-Applied
// and status answers 200 with X-Export-Status (BULK-03).
func TestExportSeparateStatus(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	resp, b := e.get("/$export?_type=Patient", tok, "Accept", "application/fhir+json", "Prefer", "respond-async, separate-export-status")
	if resp.StatusCode != 202 || !strings.Contains(resp.Header.Get("Preference-Applied"), "separate-export-status") {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Preference-Applied"), b)
	}
	status := resp.Header.Get("Content-Location")
	resp, _ = e.get(status, tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-Export-Status") != "202 Accepted" {
		t.Errorf("in progress: %d %q", resp.StatusCode, resp.Header.Get("X-Export-Status"))
	}
	e.advance(time.Minute)
	resp, b = e.get(status, tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-Export-Status") != "200 OK" || !bytes.Contains(b, []byte(`"output"`)) {
		t.Errorf("complete: %d %q %s", resp.StatusCode, resp.Header.Get("X-Export-Status"), b)
	}
}

// TestExportStatusAuth: status and DELETE need the job's client's token (BULK-12).
func TestExportStatusAuth(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	status := e.kickoff("/$export", tok)
	resp, b := e.get(status, "")
	wantOutcome(t, resp, b, http.StatusUnauthorized, "login")
	other := e.s.IssueAccessToken(sandbox.Grant{ClientID: "other", Scopes: []string{"system/*.rs"}, Expiry: e.s.Now().Add(time.Hour)})
	resp, b = e.do(http.MethodDelete, status, other, nil)
	wantOutcome(t, resp, b, http.StatusNotFound, "not-found")
	if resp, _ := e.get(status, tok); resp.StatusCode != 202 {
		t.Errorf("job gone after another client's DELETE: %d", resp.StatusCode)
	}
}

// syncBuffer is a log sink the server goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCapabilityURLSecret: capability file URLs (requiresAccessToken false) carry a secret of their
// own. The job id, which the status URL shows to anyone who sees it (logs, a CLI's stderr), does not
// open the files without a token, and the secret stays out of the request log (BULK-23, SBX-10).
func TestCapabilityURLSecret(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := newFHIREnv(t, sandbox.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	e.s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, CapabilityURLs: true})
	m := e.export("/$export?_type=Patient", e.systemToken())
	if m.RequiresAccessToken || len(m.Output) == 0 {
		t.Fatalf("manifest %+v", m)
	}
	u, err := url.Parse(m.Output[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	secret := u.Query().Get("token")
	if len(secret) < 32 {
		t.Fatalf("capability URL %q carries no secret", m.Output[0].URL)
	}
	e.download(m.Output[0].URL, "")

	bare := *u
	bare.RawQuery = ""
	for _, guess := range []string{bare.String(), bare.String() + "?token=" + strings.Repeat("A", len(secret))} {
		resp, b := e.get(guess, "")
		wantOutcome(t, resp, b, http.StatusNotFound, "not-found")
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the request log holds the capability secret:\n%s", logs.String())
	}
}
