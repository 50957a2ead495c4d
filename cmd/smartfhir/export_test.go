package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/fhirclient/bulk"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// exportSandbox starts the sandbox with quick exports and a backend client whose key is in a file;
// it returns the server and the environment that authenticates the CLI.
func exportSandbox(t *testing.T, patients int) (*smarttest.Server, map[string]string) {
	t.Helper()
	srv := smarttest.NewServer(t, smarttest.WithPatients(patients))
	srv.Sandbox.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, RetryAfter: time.Second})
	bc := srv.RegisterBackendClient(t, "ES384")
	pemBytes, err := backend.MarshalPrivateKey(bc.Signer)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, map[string]string{"SMARTFHIR_FHIR": srv.FHIRBase, "SMARTFHIR_CLIENT_ID": bc.ID, "SMARTFHIR_KEY": keyFile}
}

func exportRun(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runEnv(t.Context(), append([]string{"export"}, args...), strings.NewReader(""), &stdout, &stderr,
		func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func TestExportCommandSandbox(t *testing.T) { // CONV-6, BULK-01…27 end to end
	t.Parallel()
	srv, env := exportSandbox(t, 5)
	out := filepath.Join(t.TempDir(), "export")
	code, stdout, stderr := exportRun(t, env, "--type", "Patient,Observation", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Exported ") || !strings.Contains(stdout, "deleted on the server") {
		t.Errorf("summary: %s", stdout)
	}
	if !strings.Contains(stderr, "manifest:") || strings.Contains(stderr, "\x1b[") {
		t.Errorf("stderr should have plain progress lines (not a terminal): %s", stderr)
	}
	for _, name := range []string{"Patient.ndjson", bulk.ManifestFile, bulk.LogFile, bulk.StateFile} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	obs, _ := filepath.Glob(filepath.Join(out, "Observation*.ndjson"))
	if len(obs) == 0 {
		t.Error("no Observation file")
	}
	for _, name := range append(obs, filepath.Join(out, "Patient.ndjson")) {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range bulk.ReadNDJSON(fh, strings.SplitN(filepath.Base(name), ".", 2)[0], name) {
			if err != nil {
				t.Error(err)
				break
			}
		}
		fh.Close()
	}
	if srv.Sandbox.Count("bulk_file_bytes") == 0 {
		t.Error("the sandbox counted no file bytes served: the files did not come from it")
	}
	// The same directory again: refused with what to do next.
	code, _, stderr = exportRun(t, env, "--out", out)
	if code != exitFail || !strings.Contains(stderr, "--resume") {
		t.Errorf("second run: exit %d: %s", code, stderr)
	}
}

func TestExportCommandJSON(t *testing.T) { // CONV-6: --json prints one JSON event per line on stdout
	t.Parallel()
	_, env := exportSandbox(t, 5)
	out := filepath.Join(t.TempDir(), "export")
	code, stdout, stderr := exportRun(t, env, "--type", "Patient", "--out", out, "--json", "--keep-job")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var kinds []string
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var ev struct {
			Event      string `json:"event"`
			JobDeleted *bool  `json:"jobDeleted"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		kinds = append(kinds, ev.Event)
		if ev.Event == "result" && (ev.JobDeleted == nil || *ev.JobDeleted) {
			t.Error("--keep-job: the job was deleted")
		}
	}
	got := strings.Join(kinds, " ")
	for _, k := range []string{"kickoff", "manifest", "file_start", "file_done", "complete", "result"} {
		if !strings.Contains(got, k) {
			t.Errorf("events %q lack %s", got, k)
		}
	}
	if strings.Contains(stdout, "job_deleted") {
		t.Error("--keep-job: job_deleted event")
	}
}

func TestExportCommandResume(t *testing.T) { // BULK-32: --resume carries on a stopped export
	t.Parallel()
	srv, env := exportSandbox(t, 60) // about 150 KiB of gzip: several slow chunks
	srv.Sandbox.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, SlowFileDelay: 300 * time.Millisecond})
	out := filepath.Join(t.TempDir(), "export")
	// The first run dies in the middle of a slow download (16 KiB every 300 ms).
	srv.Fault("file_slow", -1)
	code, _, stderr := exportRun(t, env, "--type", "Observation", "--out", out, "--parallel", "1", "--timeout", "1500ms")
	if code != exitFail || !strings.Contains(stderr, "--resume "+out) {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "*.part"))
	if len(parts) == 0 {
		t.Fatal("no .part file after the interrupted run")
	}
	srv.Sandbox.ClearFaults()
	code, stdout, stderr := exportRun(t, env, "--resume", out)
	if code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "resuming") || !strings.Contains(stdout, "Exported ") {
		t.Errorf("resume output:\n%s\n%s", stderr, stdout)
	}
	if parts, _ := filepath.Glob(filepath.Join(out, "*.part")); len(parts) != 0 {
		t.Errorf(".part left: %v", parts)
	}
	files, _ := filepath.Glob(filepath.Join(out, "Observation*.ndjson"))
	for _, name := range files {
		fh, _ := os.Open(name)
		n := 0
		for _, err := range bulk.ReadNDJSON(fh, "Observation", name) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		fh.Close()
		if n == 0 {
			t.Errorf("%s is empty", name)
		}
	}
}

func TestExportCommandUsage(t *testing.T) { // CONV-6 exit code 2 with a clear message
	t.Parallel()
	env := map[string]string{"SMARTFHIR_FHIR": "http://127.0.0.1:1/fhir", "SMARTFHIR_CLIENT_ID": "x"}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--out DIR"},
		{[]string{"--out", "a", "--resume", "b"}, "different directories"},
		{[]string{"--out", "a", "--type", "patient"}, "_type"},
		{[]string{"--out", "a", "--since", "2024-01-01"}, "time zone"},
		{[]string{"--out", "a", "--since", "@/nonexistent"}, "no finished export"},
		{[]string{"--out", "a", "--type-filter", "Observation?_sort=date"}, "_sort"},
		{[]string{"--out", "a", "--parallel", "0"}, "--parallel"},
		{[]string{"--out", "a", "--group", "../x"}, "group id"},
		{[]string{"--out", "a", "stray"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, _, stderr := exportRun(t, env, tt.args...)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tt.want)
			}
		})
	}
}

func TestExportCommandServerError(t *testing.T) { // BULK-11: kick-off error with the OperationOutcome, escaped
	t.Parallel()
	srv, env := exportSandbox(t, 5)
	srv.Fault("bulk_typefilter_400", 1)
	code, _, stderr := exportRun(t, env, "--out", filepath.Join(t.TempDir(), "x"), "--type-filter", "Observation?code=1234")
	if code != exitFail || !strings.Contains(stderr, "400") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	if strings.ContainsRune(stderr, '\x1b') {
		t.Error("raw escape on stderr")
	}
}

func TestExportInstantFromPreviousExport(t *testing.T) { // BULK-19
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, bulk.ManifestFile), []byte(`{"transactionTime":"2024-05-01T10:00:00.5+02:00"}`), 0o600)
	got, err := exportInstant("--since", "@"+dir)
	if err != nil || !got.Equal(time.Date(2024, 5, 1, 8, 0, 0, 5e8, time.UTC)) {
		t.Errorf("got %v, %v", got, err)
	}
}

func TestExportDisplayBars(t *testing.T) { // the terminal display renders and finishes without hanging
	t.Parallel()
	var stderr bytes.Buffer
	g := &globals{stderr: &stderr, stdout: &bytes.Buffer{}, getenv: func(string) string { return "" }}
	d := newExportDisplay(g)
	d.mode = displayBars
	d.event(bulk.Event{Kind: bulk.EventStatus, Progress: "50%", WaitSeconds: 2})
	plan := []bulk.FileEvent{
		{Kind: "output", Type: "Patient", Name: "Patient.ndjson", Count: 10},
		{Kind: "output", Type: "Observation", Name: "Observation.1.ndjson"},
		{Kind: "output", Type: "Observation", Name: "Observation.2.ndjson", Done: true, Resources: 5, Bytes: 500},
		{Kind: "error", Type: "OperationOutcome", Name: "error/OperationOutcome.ndjson"},
	}
	d.event(bulk.Event{Kind: bulk.EventManifest, Files: len(plan), Plan: plan})
	d.event(bulk.Event{Kind: bulk.EventFileProgress, File: &bulk.FileEvent{Kind: "output", Type: "Patient", Name: "Patient.ndjson", Resources: 4, Bytes: 400}})
	d.event(bulk.Event{Kind: bulk.EventFileDone, File: &bulk.FileEvent{Kind: "output", Type: "Patient", Name: "Patient.ndjson", Resources: 10, Bytes: 1000}})
	d.event(bulk.Event{Kind: bulk.EventWarning, Message: "odd \x1b[31m"})
	done := make(chan struct{})
	go func() { d.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close hung")
	}
	if !strings.Contains(stderr.String(), "Patient") || strings.Contains(stderr.String(), "\x1b[31m") {
		t.Errorf("stderr: %q", stderr.String())
	}
}

func TestExportCommandNoDefaultTimeout(t *testing.T) { // an export may take hours
	t.Parallel()
	g := &globals{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	root := newRootCmd(g)
	root.SetArgs([]string{"export", "--help"})
	root.SetOut(g.stdout)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.stdout.(*bytes.Buffer).String(), "default none") {
		t.Errorf("help: %s", g.stdout)
	}
	// Other commands registered after export still default to 5 minutes; export runs without one.
	g.timeout = 5 * time.Minute
	root = newRootCmd(g)
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetArgs([]string{"export", "--out", t.TempDir()})
	_ = root.Execute() // fails fast (no --fhir) after the flags are settled
	if g.timeout != 0 {
		t.Errorf("timeout = %v, want none", g.timeout)
	}
}

func TestExportCommandTypeFilterIgnored(t *testing.T) { // BULK-08: the sandbox ignores _typeFilter
	t.Parallel()
	srv, env := exportSandbox(t, 8)
	args := []string{"--type", "Patient,Observation", "--type-filter", "Observation?category=vital-signs&date=ge2022-01-01"}
	srv.Fault("bulk_ignore_typefilter", 1)
	code, stdout, stderr := exportRun(t, env, append(args, "--out", filepath.Join(t.TempDir(), "warn"))...)
	if code != exitOK || !strings.Contains(stderr, "do not match the _typeFilter") || !strings.Contains(stdout, "run with --filter to drop them") {
		t.Fatalf("warn: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	srv.Fault("bulk_ignore_typefilter", 1)
	out := filepath.Join(t.TempDir(), "drop")
	code, stdout, stderr = exportRun(t, env, append(args, "--filter", "--json", "--out", out)...)
	if code != exitOK {
		t.Fatalf("--filter: exit %d: %s", code, stderr)
	}
	var result struct {
		Event      string
		Mismatches int64 `json:"typeFilterMismatches"`
		Dropped    int64 `json:"typeFilterDropped"`
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &result); err != nil || result.Event != "result" || result.Dropped == 0 || result.Dropped != result.Mismatches {
		t.Errorf("result %+v (%v): %s", result, err, lines[len(lines)-1])
	}
	files, _ := filepath.Glob(filepath.Join(out, "Observation*.ndjson"))
	for _, name := range files {
		b, _ := os.ReadFile(name)
		if bytes.Contains(b, []byte(`"code":"laboratory"`)) {
			t.Errorf("%s holds a laboratory Observation after --filter", name)
		}
	}
}

func TestExportCommandCapabilityCheck(t *testing.T) { // BULK-34: on by default in the CLI
	t.Parallel()
	srv, env := exportSandbox(t, 3)
	// The sandbox declares all three levels: a group export passes the check.
	code, _, stderr := exportRun(t, env, "--group", "diabetes-registry", "--out", filepath.Join(t.TempDir(), "g"))
	if code != exitOK {
		t.Fatalf("group export on the sandbox: exit %d: %s", code, stderr)
	}
	// The same server behind a proxy whose CapabilityStatement declares system export only.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fhir/metadata" {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write([]byte(`{"resourceType":"CapabilityStatement","rest":[{"mode":"server","operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}]}]}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	env2 := maps.Clone(env)
	env2["SMARTFHIR_FHIR"] = front.URL + "/fhir"
	out := filepath.Join(t.TempDir(), "refused")
	code, _, stderr = exportRun(t, env2, "--group", "diabetes-registry", "--out", out)
	if code != exitFail || !strings.Contains(stderr, "no group-level export") || !strings.Contains(stderr, "--check-capabilities=false") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory created: %v", err)
	}
	code, _, stderr = exportRun(t, env2, "--group", "diabetes-registry", "--out", out, "--check-capabilities=false")
	if code != exitOK {
		t.Errorf("--check-capabilities=false: exit %d: %s", code, stderr)
	}
}
