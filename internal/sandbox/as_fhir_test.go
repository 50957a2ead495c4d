package sandbox_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

func TestAsEpicFHIR(t *testing.T) { // quirks.md Epic: Epic-Client-ID, no $everything, opaque file names
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "epic", Patients: 3})
	quickExports(e.s)
	tok := e.systemToken()
	if resp, b := e.get("/Patient", tok); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Epic-Client-ID") {
		t.Fatalf("without Epic-Client-ID: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.get("/Patient", tok, "Epic-Client-ID", "another-client"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("with another client's id: %d", resp.StatusCode)
	}
	id := []string{"Epic-Client-ID", "fhir-test"}
	e.getOK("/Patient", tok, id...)
	resp, b := e.get("/Patient/pt-0/$everything", tok, id...)
	if oo := outcome(t, b); resp.StatusCode != http.StatusNotFound || oo.Issue[0].Code.Code() != "not-supported" {
		t.Fatalf("$everything: %d %s", resp.StatusCode, b)
	}
	status := e.kickoff("/$export?_type=Patient,Observation", tok, id...)
	if resp, _ := e.get(status, tok); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status without Epic-Client-ID: %d", resp.StatusCode)
	}
	var m exportManifest
	if err := json.Unmarshal(e.getOK(status, tok, id...), &m); err != nil {
		t.Fatal(err)
	}
	opaque := regexp.MustCompile(`/[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{6}$`)
	types := map[string]int{}
	for _, o := range m.Output {
		if !opaque.MatchString(o.URL) || strings.Contains(o.URL, o.Type) {
			t.Errorf("output URL %s is not opaque", o.URL)
		}
		for _, line := range ndjsonLines(e.getOK(o.URL, tok, id...)) { // the manifest says the type of each file
			var head struct{ ResourceType string }
			if err := json.Unmarshal(line, &head); err != nil || head.ResourceType != o.Type {
				t.Fatalf("%s: %.80s is not a %s", o.URL, line, o.Type)
			}
			types[o.Type]++
		}
	}
	if types["Patient"] != 3 || types["Observation"] == 0 {
		t.Errorf("exported %v", types)
	}
}

func TestAsVARateLimit(t *testing.T) { // quirks.md VA: X-RateLimit-* instead of Retry-After
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "va", Patients: 1})
	tok := e.systemToken()
	for i := range 5 {
		resp, _ := e.get("/Patient", tok)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(4-i) {
			t.Fatalf("request %d: %d, remaining %q", i+1, resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"))
		}
	}
	e.advance(time.Second)
	resp, b := e.get("/Patient", tok)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "" ||
		resp.Header.Get("X-RateLimit-Remaining") != "0" || resp.Header.Get("X-RateLimit-Reset") != "5" {
		t.Fatalf("over the limit: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	e.advance(4 * time.Second) // a refusal starts a whole window of them
	if resp, _ := e.get("/Patient", tok); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-RateLimit-Reset") != "1" {
		t.Fatalf("inside the window: %d reset %q", resp.StatusCode, resp.Header.Get("X-RateLimit-Reset"))
	}
	e.advance(time.Second)
	e.getOK("/Patient", tok)
	if n := e.s.Count("as_rate_limited"); n != 2 {
		t.Errorf("rate-limited answers = %d, want 2", n)
	}
}

func TestAsOracleBulk(t *testing.T) { // quirks.md Oracle: comma-only _type, five-hour Retry-After
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "oracle", Patients: 2})
	tok := e.systemToken()
	resp, b := e.get("/$export?_type=Patient&_type=Observation", tok, kickoffHeaders...)
	if oo := outcome(t, b); resp.StatusCode != http.StatusBadRequest || oo.Issue[0].Code.Code() != "not-supported" {
		t.Fatalf("repeated _type: %d %s", resp.StatusCode, b)
	}
	status := e.kickoff("/$export?_type=Patient,Observation", tok)
	resp, _ = e.get(status, tok)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Retry-After") != "18000" {
		t.Fatalf("in progress: %d Retry-After %q, want 18000", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestAsAB2DPolling(t *testing.T) { // CMSgov/ab2d PR #17: 429 when polled too often
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "cms-ab2d", Patients: 1})
	c := e.s.FHIRSettings()
	c.ExportDuration = time.Minute
	e.s.SetFHIRSettings(c)
	if got := e.s.FHIRSettings().MinPollInterval; got != 30*time.Second {
		t.Fatalf("MinPollInterval = %v, want the mode's 30 s", got)
	}
	tok := e.systemToken()
	status := e.kickoff("/$export?_type=Patient", tok)
	if resp, _ := e.get(status, tok); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first poll: %d", resp.StatusCode)
	}
	e.advance(10 * time.Second) // the in-progress Retry-After (1 s) is no licence here
	resp, b := e.get(status, tok)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "20" {
		t.Fatalf("poll after 10 s: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	e.advance(20 * time.Second) // the refused poll did not restart the interval
	if resp, _ := e.get(status, tok); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("poll after 30 s: %d", resp.StatusCode)
	}
	// Other modes do not throttle unless told to.
	g := newFHIREnv(t, sandbox.Options{Patients: 1})
	if got := g.s.FHIRSettings().MinPollInterval; got != 0 {
		t.Fatalf("generic MinPollInterval = %v", got)
	}
}

func TestAsTransientFile404(t *testing.T) { // bulk_fhir_tools client.go GetData: BCDA's transient 404s
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "cms-bcda", Patients: 2})
	quickExports(e.s)
	tok := e.systemToken()
	m := e.export("/$export?_type=Patient", tok)
	if len(m.Output) != 1 {
		t.Fatalf("outputs %v", m.Output)
	}
	for i := range 2 {
		if resp, b := e.get(m.Output[0].URL, tok); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("download %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	if got := len(ndjsonLines(e.download(m.Output[0].URL, tok))); got != 2 {
		t.Errorf("third download: %d lines", got)
	}
}

func TestAsHAPIDelete(t *testing.T) { // smart-fetch _delete_export: HAPI removes finished jobs itself
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "hapi", Patients: 1})
	tok := e.systemToken()
	running := e.kickoff("/$export?_type=Patient", tok)
	if resp, _ := e.do(http.MethodDelete, running, tok, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE of a running job: %d, want 202", resp.StatusCode)
	}
	quickExports(e.s)
	status := e.kickoff("/$export?_type=Patient", tok)
	m, _ := e.manifest(status, tok)
	resp, b := e.do(http.MethodDelete, status, tok, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("DELETE of a finished job: %d %s, want 404", resp.StatusCode, b)
	}
	if path := m.Output[0].URL; strings.HasSuffix(path, "Patient.ndjson") {
		t.Errorf("file name %s is not opaque", path)
	}
}

func TestAsMEDITECHMetadata(t *testing.T) { // fasten-sources meditech.yaml: OpenID Connect discovery only
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{As: "meditech", Patients: 1})
	b := e.getOK("/metadata", "")
	if strings.Contains(string(b), "oauth-uris") || !strings.Contains(string(b), `"publisher":"MEDITECH"`) {
		t.Fatalf("metadata: %.400s", b)
	}
}
