package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// These tests run the client against the in-process sandbox EHR (smart/smarttest): real SMART
// Backend Services tokens, real $export jobs, and the sandbox's bulk fault names.

// sandboxEnv is a sandbox with a backend client, and a bulk Client authenticated as it.
type sandboxEnv struct {
	srv      *smarttest.Server
	bc       *smarttest.BackendClient
	c        *Client
	maxSleep time.Duration
	mu       sync.Mutex
	waits    []time.Duration
}

// newSandboxEnv starts a sandbox. Waits are recorded and slept for at most maxSleep of real time,
// so that a five-hour Retry-After costs nothing while the sandbox's clock still moves.
func newSandboxEnv(t testing.TB, patients int, settings sandbox.FHIRSettings, maxSleep time.Duration) *sandboxEnv {
	t.Helper()
	srv := smarttest.NewServer(t, smarttest.WithPatients(patients))
	srv.Sandbox.SetFHIRSettings(settings)
	e := &sandboxEnv{srv: srv, bc: srv.RegisterBackendClient(t, "ES384"), maxSleep: maxSleep}
	e.c = e.client(t)
	return e
}

// client returns a new Client with its own token cache, as another process would have.
func (e *sandboxEnv) client(t testing.TB) *Client {
	t.Helper()
	cfg := &backend.Config{ClientID: e.bc.ID, PrivateKey: e.bc.Signer, KeyID: e.bc.KeyID, FHIRBase: e.srv.FHIRBase, TokenURL: e.srv.TokenURL}
	c, err := NewClient(e.srv.FHIRBase, cfg.Client(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	c.Sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
		t := time.NewTimer(min(d, e.maxSleep))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	return c
}

// export runs an Exporter into a fresh directory.
func (e *sandboxEnv) export(t *testing.T, req ExportRequest) (*Result, []Event, string, error) {
	t.Helper()
	var mu sync.Mutex
	var events []Event
	dir := filepath.Join(t.TempDir(), "out")
	x := &Exporter{Client: e.c, Dir: dir, Validate: true, OnEvent: func(ev Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}}
	res, err := x.Start(t.Context(), req)
	return res, events, dir, err
}

func TestSandboxFaults(t *testing.T) { // BULK-02…31 against the sandbox's fault names
	t.Parallel()
	quick := sandbox.FHIRSettings{ExportDuration: -1}
	tests := []struct {
		fault string
		req   ExportRequest
		check func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error)
	}{
		{fault: "bulk_kickoff_429", check: wantOK},
		{fault: "bulk_relative_content_location", check: wantOK},
		{fault: "bulk_strict_v1_headers", check: wantOK}, // BULK-02
		{fault: "bulk_no_content_location", check: wantErr(ErrNoContentLocation)},
		{fault: "bulk_foreign_content_location", check: wantErr(ErrUntrustedOrigin)},
		{fault: "bulk_typefilter_400", req: ExportRequest{TypeFilters: []string{"Observation?code=1234-5"}}, check: wantStatus(400)},
		{fault: "transient_error", check: wantOK},                      // BULK-16
		{fault: "bulk_status_500_fatal", check: wantErr(ErrJobFailed)}, // BULK-16
		{fault: "bulk_status_non_fhir_error", check: wantOK},
		{fault: "bulk_retry_after_date", check: wantOK}, // BULK-13
		{fault: "bulk_retry_after_garbage", check: wantOK},
		{fault: "bulk_retry_after_huge", check: func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
			wantOK(t, e, res, events, dir, err)
			if !slices.Contains(e.waits, time.Hour) {
				t.Errorf("a day's Retry-After should wait the 1 h cap: waits %v", e.waits)
			}
		}},
		{fault: "bulk_x_progress_control_chars", check: func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
			wantOK(t, e, res, events, dir, err)
			for _, ev := range events {
				if ev.Kind == EventStatus && ev.Progress != "" {
					if strings.ContainsAny(ev.Progress, "\u009b\u202e") || len([]rune(ev.Progress)) > maxProgress+1 {
						t.Errorf("X-Progress not sanitised: %q", ev.Progress)
					}
					return
				}
			}
			t.Error("no status event with X-Progress")
		}}, // BULK-14
		{fault: "bulk_separate_export_status", check: wantOK}, // BULK-03
		{fault: "manifest_no_token_required", check: wantOK},  // BULK-23: the sandbox fails a file request with a token
		{fault: "manifest_partial_pages", req: ExportRequest{AllowPartialManifests: true}, check: func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
			wantOK(t, e, res, events, dir, err)
			names := map[string]bool{}
			for _, f := range res.Files {
				if names[f.Name] {
					t.Errorf("duplicate file %s", f.Name)
				}
				names[f.Name] = true
			}
		}}, // BULK-21
		{fault: "some_file_generation_failed", check: func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
			wantOK(t, e, res, events, dir, err)
			if res.Outcomes == 0 || len(res.Issues) == 0 {
				t.Errorf("partial success not surfaced: %+v", res)
			}
		}}, // BULK-27
		{fault: "manifest_missing_error", check: wantOK},
		{fault: "manifest_v4_outcome", check: wantOK}, // BULK-17
		{fault: "manifest_output_object", check: wantErr(ErrBadManifest)},
		{fault: "manifest_file_url_scheme", check: wantErr(httpx.ErrInsecureURL)}, // BULK-18
		{fault: "manifest_link_local_url", check: wantErr(httpx.ErrInsecureURL)},
		{fault: "manifest_http_url", check: wantErr(httpx.ErrInsecureURL)},
		{fault: "manifest_missing_type", check: wantErr(ErrBadManifest)},
		{fault: "manifest_foreign_url", check: wantErr(ErrUntrustedOrigin)}, // CONV-1
		{fault: "file_expired", check: wantOK},                              // BULK-20
		{fault: "file_gzip_bomb", check: wantErr(ErrDecompressionBomb)},     // BULK-31
		{fault: "file_huge_line", check: wantOK},                            // BULK-25: a 5 MB line
		{fault: "file_no_trailing_newline", check: wantOK},
		{fault: "file_crlf", check: wantOK},
		{fault: "file_wrong_resource_type", check: wantErr(ErrInvalidLine)},
		{fault: "file_invalid_json_line", check: wantErr(ErrInvalidLine)},
		{fault: "file_ndjson_content_type", check: func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
			wantOK(t, e, res, events, dir, err)
			if !slices.ContainsFunc(events, func(ev Event) bool {
				return ev.Kind == EventWarning && strings.Contains(ev.Message, "application/ndjson")
			}) {
				t.Error("no warning for application/ndjson") // BULK-26
			}
		}},
		{fault: "file_transient_503", check: wantOK}, // BULK-26
		{fault: "file_cut_mid_stream", check: wantOK},
	}
	known := map[string]bool{}
	for _, tt := range tests {
		known[tt.fault] = true
	}
	for _, name := range sandbox.FaultNames() {
		if strings.HasPrefix(name, "bulk_") || strings.HasPrefix(name, "manifest_") || strings.HasPrefix(name, "file_") {
			// bulk_status_429, file_slow and bulk_ignore_typefilter (BULK-08) have their own tests.
			if !known[name] && name != "bulk_ignore_typefilter" && name != "file_slow" && name != "bulk_status_429" {
				t.Errorf("sandbox fault %s has no case here", name)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			t.Parallel()
			e := newSandboxEnv(t, 3, quick, 50*time.Millisecond)
			e.srv.Fault(tt.fault, 1)
			req := tt.req
			if req.Types == nil {
				req.Types = []string{"Patient", "Observation"}
			}
			res, events, dir, err := e.export(t, req)
			tt.check(t, e, res, events, dir, err)
			if err != nil && strings.ContainsRune(err.Error(), '\x1b') {
				t.Errorf("raw escape in error: %q", err)
			}
		})
	}
}

func wantOK(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("export failed: %v", err)
	}
	if res.Resources == 0 || !res.JobDeleted {
		t.Errorf("result %+v", res)
	}
	n := map[string]int64{}
	forEachOutput(t, dir, res, func(f FileEvent, _ json.RawMessage) { n[f.Name]++ })
	for _, f := range res.Files {
		if f.Kind == KindOutput && n[f.Name] != f.Resources {
			t.Errorf("%s: %d resources on disk, %d reported", f.Name, n[f.Name], f.Resources)
		}
	}
}

// forEachOutput calls fn on every resource of the export's output files in dir, checked to be of
// the file's type.
func forEachOutput(t *testing.T, dir string, res *Result, fn func(FileEvent, json.RawMessage)) {
	t.Helper()
	for _, f := range res.Files {
		if f.Kind != KindOutput {
			continue
		}
		fh, err := os.Open(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		for raw, err := range ReadNDJSON(fh, f.Type, f.Name) {
			if err != nil {
				t.Fatal(err)
			}
			fn(f, raw)
		}
		fh.Close()
	}
}

func wantErr(target error) func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
	return func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("err = %v, want %v", err, target)
		}
	}
}

func wantStatus(code int) func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
	return func(t *testing.T, e *sandboxEnv, res *Result, events []Event, dir string, err error) {
		t.Helper()
		var fe *fhirclient.Error
		if !errors.As(err, &fe) || fe.StatusCode != code || len(fe.Issues) == 0 {
			t.Fatalf("err = %v, want a %d with an OperationOutcome", err, code)
		}
	}
}

func TestSandboxStatus429OnFastPolls(t *testing.T) { // BULK-15; quirk: AB2D answers 429 to fast polls
	t.Parallel()
	// Waits are cut to 100 ms of real time, so polls come faster than the sandbox's Retry-After.
	e := newSandboxEnv(t, 2, sandbox.FHIRSettings{ExportDuration: 2 * time.Second}, 100*time.Millisecond)
	e.srv.Fault("bulk_status_429", 3)
	res, events, _, err := e.export(t, ExportRequest{Types: []string{"Patient"}})
	if err != nil {
		t.Fatal(err)
	}
	n429 := 0
	for _, ev := range events {
		if ev.Kind == EventStatus && strings.Contains(ev.Message, "429") {
			n429++
		}
	}
	if n429 != 3 || res.Resources != 2 {
		t.Errorf("429 answers seen %d (want 3), resources %d", n429, res.Resources)
	}
}

func TestSandboxSlowFileAndStall(t *testing.T) { // CONV-2: a stalled download fails over and resumes
	t.Parallel()
	e := newSandboxEnv(t, 20, sandbox.FHIRSettings{ExportDuration: -1, SlowFileDelay: 400 * time.Millisecond}, 50*time.Millisecond)
	e.c.StallTimeout = 200 * time.Millisecond // shorter than the sandbox's pause between chunks
	e.srv.Fault("file_slow", 1)
	res, events, dir, err := e.export(t, ExportRequest{Types: []string{"Observation"}})
	wantOK(t, e, res, events, dir, err)
	if !slices.ContainsFunc(events, func(ev Event) bool { return ev.Kind == EventRetry && strings.Contains(ev.Message, "stalled") }) {
		t.Error("no stall fail-over")
	}
}

func TestSandboxCutMidStreamByteCount(t *testing.T) { // issue: resume from the exact byte
	t.Parallel()
	e := newSandboxEnv(t, 20, sandbox.FHIRSettings{ExportDuration: -1}, 50*time.Millisecond)
	e.srv.Fault("file_cut_mid_stream", 1)
	res, events, dir, err := e.export(t, ExportRequest{Types: []string{"Observation"}})
	wantOK(t, e, res, events, dir, err)
	served := e.srv.Sandbox.Count("bulk_file_bytes")
	if len(res.Files) != 1 || served > res.Bytes+res.Bytes/50 {
		t.Errorf("sandbox served %d bytes for %d bytes of files", served, res.Bytes)
	}
}

func TestSandboxCapabilityURLsNeverGetToken(t *testing.T) { // BULK-23; quirk: pre-signed S3 URLs
	t.Parallel()
	e := newSandboxEnv(t, 3, sandbox.FHIRSettings{ExportDuration: -1, CapabilityURLs: true}, 50*time.Millisecond)
	res, events, dir, err := e.export(t, ExportRequest{Types: []string{"Patient", "Condition"}})
	wantOK(t, e, res, events, dir, err) // the sandbox answers 4xx to a file request carrying Authorization
}

func TestSandboxResumeJobFromState(t *testing.T) { // issue: a new process resumes the job
	t.Parallel()
	e := newSandboxEnv(t, 3, sandbox.FHIRSettings{ExportDuration: 1500 * time.Millisecond}, 2*time.Second)
	job, err := e.c.Kickoff(t.Context(), ExportRequest{Types: []string{"Patient"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := job.Status(t.Context())
	if err != nil || st.Complete {
		t.Fatalf("first poll: %+v, %v", st, err)
	}
	state, _ := json.Marshal(job)
	c2 := e.client(t) // another process: new client, new token
	job2, err := c2.ResumeJob(state)
	if err != nil {
		t.Fatal(err)
	}
	m, err := job2.Wait(t.Context(), nil)
	if err != nil || len(m.Output) != 1 {
		t.Fatalf("Wait = %+v, %v", m, err)
	}
	n := 0
	for _, err := range c2.Resources(t.Context(), m, m.Output[0]) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d patients", n)
	}
	if err := job2.Cancel(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := job2.Status(t.Context()); !errors.Is(err, ErrJobGone) {
		t.Errorf("after DELETE: %v", err) // BULK-22
	}
}
