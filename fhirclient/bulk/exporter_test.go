package bulk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// exporterFor returns an Exporter on f writing into a fresh directory, recording events.
func exporterFor(t *testing.T, f *fake) (*Exporter, *[]Event) {
	t.Helper()
	c, _ := f.client(t)
	var mu sync.Mutex
	events := &[]Event{}
	return &Exporter{Client: c, Dir: filepath.Join(t.TempDir(), "out"), Validate: true, OnEvent: func(e Event) {
		mu.Lock()
		*events = append(*events, e)
		mu.Unlock()
	}}, events
}

func readLogIDs(t *testing.T, dir string) []string {
	t.Helper()
	fh, err := os.Open(filepath.Join(dir, LogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var ids []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var rec struct {
			ExportID, Timestamp, EventID string
			EventDetail                  map[string]any
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec.ExportID == "" || rec.Timestamp == "" || rec.EventDetail == nil {
			t.Errorf("incomplete log record %s", sc.Text())
		}
		ids = append(ids, rec.EventID)
	}
	return ids
}

func TestExporterEndToEnd(t *testing.T) { // BULK-19, BULK-22, BULK-27, CONV-6
	t.Parallel()
	f := newFake(t)
	f.inProgress = 2
	f.gzip = true
	pat, obs1, obs2 := ndjson("Patient", 50), ndjson("Observation", 300), ndjson("Observation", 7)
	f.add("output", "Patient", "p", pat)
	f.add("output", "Observation", "o1", obs1)
	f.add("output", "Observation", "o2", obs2)
	f.add("error", "OperationOutcome", "e", []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"Encounter 7 could not be exported"}]}`+"\n"))
	f.add("deleted", "Bundle", "d", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/9"}}]}`+"\n"))
	e, events := exporterFor(t, f)
	res, err := e.Start(t.Context(), ExportRequest{Types: []string{"Patient", "Observation"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"Patient.ndjson": pat, "Observation.1.ndjson": obs1, "Observation.2.ndjson": obs2}
	for name, body := range want {
		got, err := os.ReadFile(filepath.Join(e.Dir, name))
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: %d bytes (%v), want %d", name, len(got), err, len(body))
		}
	}
	for _, name := range []string{"error/OperationOutcome.ndjson", "deleted/Bundle.ndjson", ManifestFile, StateFile, LogFile} {
		fi, err := os.Stat(filepath.Join(e.Dir, name))
		if err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600 (PHI)", name, fi.Mode().Perm())
		}
	}
	if res.Resources != 357 || res.Outcomes != 1 || len(res.Issues) != 1 || !strings.Contains(res.Issues[0], "Encounter 7") {
		t.Errorf("result %+v", res)
	}
	if res.TransactionTime != "2024-05-01T10:00:00.000+02:00" || !res.JobDeleted || f.deletes.Load() != 1 {
		t.Errorf("transactionTime %q deleted %v (%d DELETEs)", res.TransactionTime, res.JobDeleted, f.deletes.Load())
	}
	if b, _ := os.ReadFile(filepath.Join(e.Dir, LogFile)); !bytes.Contains(b, []byte(`"requestParameters":{"_type":"Patient,Observation"}`)) {
		t.Errorf("kickoff log record lacks the request parameters: %s", b)
	}
	ids := readLogIDs(t, e.Dir)
	for _, id := range []string{"kickoff", "status_progress", "status_complete", "manifest_complete", "download_request", "download_complete", "export_complete"} {
		if !slices.Contains(ids, id) {
			t.Errorf("log lacks %s: %v", id, ids)
		}
	}
	var kinds []EventKind
	for _, ev := range *events {
		kinds = append(kinds, ev.Kind)
	}
	for _, k := range []EventKind{EventKickoff, EventStatus, EventManifest, EventFileStart, EventFileDone, EventComplete, EventJobDeleted} {
		if !slices.Contains(kinds, k) {
			t.Errorf("events lack %s", k)
		}
	}
	var m Manifest
	b, _ := os.ReadFile(filepath.Join(e.Dir, ManifestFile))
	if err := json.Unmarshal(b, &m); err != nil || len(m.Output) != 3 {
		t.Errorf("manifest.json: %v %+v", err, m)
	}
	for _, name := range []string{LogFile, StateFile, ManifestFile} {
		if b, _ := os.ReadFile(filepath.Join(e.Dir, name)); bytes.Contains(b, []byte(testToken)) {
			t.Errorf("%s holds the access token", name)
		}
	}
	// A finished directory resumes to the same result without touching the server again.
	gets := f.fileGets["p"]
	res2, err := (&Exporter{Client: e.Client, Dir: e.Dir}).Resume(t.Context())
	if err != nil || res2.Resources != res.Resources || f.fileGets["p"] != gets {
		t.Errorf("resume of a finished export: %v, %+v", err, res2)
	}
}

func TestExporterKeepJobAndDirInUse(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.add("output", "Patient", "p", ndjson("Patient", 2))
	e, _ := exporterFor(t, f)
	e.KeepJob = true
	res, err := e.Start(t.Context(), ExportRequest{})
	if err != nil || res.JobDeleted || f.deletes.Load() != 0 {
		t.Fatalf("KeepJob: %v deleted=%v deletes=%d", err, res.JobDeleted, f.deletes.Load())
	}
	if _, err := e.Start(t.Context(), ExportRequest{}); !errors.Is(err, ErrDirInUse) {
		t.Errorf("second Start in the same dir: %v", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o600)
	e.Dir = other
	if _, err := e.Start(t.Context(), ExportRequest{}); !errors.Is(err, ErrDirInUse) {
		t.Errorf("Start in a non-empty dir: %v", err)
	}
	if f.kickoffs.Load() != 1 {
		t.Errorf("kick-offs = %d: a refused Start reached the server", f.kickoffs.Load())
	}
}

func TestExporterResumeAfterCrash(t *testing.T) { // BULK-32, issue: resume by a new Job from persisted state
	t.Parallel()
	f := newFake(t)
	small, big := ndjson("Patient", 100), ndjson("Observation", 30000)
	f.add("output", "Patient", "p", small)
	f.add("output", "Observation", "o", big)
	crashed := make(chan struct{})
	var once sync.Once
	f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
		if name != "o" || n > 1 {
			return false
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		cw := &countingWriter{ResponseWriter: w, n: &f.served}
		cw.Write(big[:len(big)/2])
		cw.Flush()
		once.Do(func() { close(crashed) })
		<-r.Context().Done()
		return true
	}
	e, _ := exporterFor(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-crashed
		for range 500 { // wait for the small file, then let the half file reach the disk
			if _, err := os.Stat(filepath.Join(e.Dir, "Patient.ndjson")); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		cancel() // the process "dies"
	}()
	_, err := e.Start(ctx, ExportRequest{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("first run: %v (want cancellation with a resume hint)", err)
	}
	part, err := os.Stat(filepath.Join(e.Dir, "Observation.ndjson"+partSuffix))
	if err != nil || part.Size() == 0 {
		t.Fatalf("no .part kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "Patient.ndjson")); err != nil {
		t.Fatalf("the small file should be complete: %v", err)
	}
	servedBefore := f.served.Load()

	// A new process: new Client, new Exporter, same directory.
	c2, _ := f.client(t)
	var resumeRange string
	f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
		resumeRange = r.Header.Get("Range")
		if name == "p" {
			t.Error("a completed file was downloaded again")
		}
		return false
	}
	res, err := (&Exporter{Client: c2, Dir: e.Dir, Validate: true}).Resume(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(e.Dir, "Observation.ndjson"))
	if !bytes.Equal(got, big) {
		t.Fatalf("resumed file differs: %d bytes, want %d", len(got), len(big))
	}
	if resumeRange != "bytes="+strconv.FormatInt(part.Size(), 10)+"-" {
		t.Errorf("resume Range = %q, .part had %d bytes", resumeRange, part.Size())
	}
	// The server counts bytes handed to the socket, so bytes in flight at the crash are lost; what
	// the resume asked for must be exactly what the .part lacked.
	if after := f.served.Load() - servedBefore; after != int64(len(big))-part.Size() {
		t.Errorf("resume served %d bytes, want exactly %d (file %d, .part %d)", after, int64(len(big))-part.Size(), len(big), part.Size())
	}
	if total := f.served.Load(); total > int64(len(big)+len(small))*3/2 {
		t.Errorf("served %d bytes in total for %d bytes of files", total, len(big)+len(small))
	}
	if res.Resources != 30100 || !res.JobDeleted {
		t.Errorf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "Observation.ndjson"+partSuffix)); !os.IsNotExist(err) {
		t.Errorf(".part left behind: %v", err)
	}
}

func TestExporterExpiredLinkRefetchesManifest(t *testing.T) { // BULK-20; quirk: BCDA transient 404s
	t.Parallel()
	for _, tt := range []struct {
		name    string
		expired int // 404s before the new link works
		wantErr bool
	}{{"refreshed link works", 1, false}, {"still expired", 2, true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			body := ndjson("Patient", 10)
			f.add("output", "Patient", "p", body)
			f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
				if n <= tt.expired {
					writeOutcome(w, http.StatusGone, "expired", "link expired")
					return true
				}
				return false
			}
			e, _ := exporterFor(t, f)
			_, err := e.Start(t.Context(), ExportRequest{})
			polls := f.polls.Load()
			if tt.wantErr {
				if !errors.Is(err, ErrFileExpired) {
					t.Fatalf("err = %v, want ErrFileExpired", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if polls != 2 {
				t.Errorf("status polls = %d, want 2 (one re-fetch)", polls)
			}
		})
	}
}

func TestExporterPagedManifest(t *testing.T) { // BULK-21
	t.Parallel()
	f := newFake(t)
	f.add("output", "Patient", "p", ndjson("Patient", 3))
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == "/manifest/2" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"transactionTime":"2024-05-01T10:00:00Z","requiresAccessToken":true,"output":[{"type":"Patient","url":"` + f.srv.URL + `/files/p2"}],"error":[]}`))
			return true
		}
		return false
	}
	f.add("output", "Patient", "p2", ndjson("Patient", 4))
	f.manifestExtra = func(m map[string]any) {
		m["output"] = m["output"].([]any)[:1] // page 1 lists p only
		m["link"] = []any{map[string]any{"relation": "next", "url": f.srv.URL + "/manifest/2"}}
	}
	e, _ := exporterFor(t, f)
	res, err := e.Start(t.Context(), ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resources != 7 || len(res.Files) != 2 || res.Files[0].Name != "Patient.1.ndjson" || res.Files[1].Name != "Patient.2.ndjson" {
		t.Errorf("result %+v", res)
	}
	if f.fileGets["p"] != 1 || f.fileGets["p2"] != 1 {
		t.Errorf("file GETs %v", f.fileGets)
	}
}

func TestExporterRepeatingNextLink(t *testing.T) { // BULK-21, CONV-2 "next link repeats"
	t.Parallel()
	f := newFake(t)
	f.manifestExtra = func(m map[string]any) {
		m["link"] = []any{map[string]any{"relation": "next", "url": f.srv.URL + "/manifest/loop"}}
	}
	e, _ := exporterFor(t, f)
	if _, err := e.Start(t.Context(), ExportRequest{}); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("err = %v", err)
	}
}

func TestExporterValidationFailsOneFileKeepsOthers(t *testing.T) { // BULK-25
	t.Parallel()
	f := newFake(t)
	f.add("output", "Patient", "p", ndjson("Patient", 5))
	f.add("output", "Observation", "o", append(ndjson("Observation", 3), []byte(`{"resourceType":"Patient"}`+"\n")...))
	e, events := exporterFor(t, f)
	_, err := e.Start(t.Context(), ExportRequest{})
	var le *LineError
	if !errors.As(err, &le) || le.File != "Observation.ndjson" || le.Line != 4 {
		t.Fatalf("err = %v, want a LineError at Observation.ndjson:4", err)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "Patient.ndjson")); err != nil {
		t.Errorf("the good file was not kept: %v", err)
	}
	if f.deletes.Load() != 0 {
		t.Error("the job was deleted after a failed download")
	}
	if !slices.ContainsFunc(*events, func(e Event) bool { return e.Kind == EventFileError }) {
		t.Error("no file_error event")
	}
	if ids := readLogIDs(t, e.Dir); !slices.Contains(ids, "download_error") {
		t.Errorf("log lacks download_error: %v", ids)
	}
}

func TestExporterKickoffFailureLogged(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.kickoffHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		writeOutcome(w, http.StatusForbidden, "forbidden", "scope lacks Patient")
		return true
	}
	e, _ := exporterFor(t, f)
	if _, err := e.Start(t.Context(), ExportRequest{}); err == nil {
		t.Fatal("want an error")
	}
	b, _ := os.ReadFile(filepath.Join(e.Dir, LogFile))
	if !bytes.Contains(b, []byte(`"errorCode":403`)) {
		t.Errorf("log: %s", b)
	}
	// CONV-4: a server that echoes the request's Authorization header in its error body must not
	// get the token into log.ndjson (before the fix the body was logged unscrubbed).
	for _, where := range []string{"kick-off", "status"} {
		f := newFake(t)
		echo := func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "bad request; you sent Authorization: %s and access_token=%s", r.Header.Get("Authorization"), testToken)
			return true
		}
		if where == "kick-off" {
			f.kickoffHook = echo
		} else {
			f.statusHook = echo
		}
		e, _ := exporterFor(t, f)
		if _, err := e.Start(t.Context(), ExportRequest{}); err == nil {
			t.Fatalf("%s: want an error", where)
		}
		b, _ := os.ReadFile(filepath.Join(e.Dir, LogFile))
		if !bytes.Contains(b, []byte(`bad request`)) {
			t.Errorf("%s: the error body is not logged: %s", where, b)
		}
		if bytes.Contains(b, []byte(testToken)) {
			t.Errorf("%s: the access token reached log.ndjson: %s", where, b)
		}
	}
	if _, err := (&Exporter{Client: e.Client, Dir: e.Dir}).Resume(t.Context()); err == nil {
		t.Error("resume of an export that never started")
	}
	f.kickoffHook = nil
	if _, err := e.Start(t.Context(), ExportRequest{}); err != nil {
		t.Errorf("retry in the same directory after a failed kick-off: %v", err)
	}
}

func TestExporterResumeAfterCrashBeforeStateUpdate(t *testing.T) { // BULK-32: complete file, stale state
	t.Parallel()
	f := newFake(t)
	body := ndjson("Patient", 500)
	f.add("output", "Patient", "p", body)
	e, _ := exporterFor(t, f)
	e.KeepJob = true
	if _, err := e.Start(t.Context(), ExportRequest{}); err != nil {
		t.Fatal(err)
	}
	// Rewind the state as if the process died right after the rename.
	st, err := loadState(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Files[0].Done, st.Complete = false, false
	b, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(e.Dir, StateFile), b, 0o600)
	served := f.served.Load()
	res, err := e.Resume(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(e.Dir, "Patient.ndjson"))
	// The 416 answer to "Range: bytes=<size>-" carries a few bytes of text, not the file again.
	if !bytes.Equal(got, body) || res.Resources != 500 || f.served.Load()-served > 100 {
		t.Errorf("resources %d, file ok %v, bytes served again %d", res.Resources, bytes.Equal(got, body), f.served.Load()-served)
	}
}

// BULK-32, CONV-9: the state file lists every file, so it is not rewritten for each finished file
// (quadratic in a large export; before the fix every EventFileDone found its file recorded). A
// crash that loses recent Done flags costs a Range request per file on resume, not a download.
func TestExporterStateWritesCoalesced(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	const files = 30
	body := ndjson("Patient", 20)
	for i := range files {
		f.add("output", "Patient", fmt.Sprintf("p%d", i), body)
	}
	e, _ := exporterFor(t, f)
	e.Parallel = 1
	frozen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.Client.Now = func() time.Time { return frozen }
	readState := func() *exportState {
		b, err := os.ReadFile(filepath.Join(e.Dir, StateFile))
		if err != nil {
			t.Fatal(err)
		}
		var st exportState
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return &st
	}
	countDone := func(st *exportState) (n int) {
		for _, f := range st.Files {
			if f.Done {
				n++
			}
		}
		return n
	}
	maxRecorded, finished := 0, 0
	e.OnEvent = func(ev Event) {
		if ev.Kind == EventFileDone {
			finished++
			maxRecorded = max(maxRecorded, countDone(readState()))
		}
	}
	res, err := e.Start(t.Context(), ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if finished != files || maxRecorded > 1 {
		t.Errorf("%d files finished; the state file was rewritten for them (up to %d recorded while downloading)", finished, maxRecorded)
	}
	st := readState()
	if countDone(st) != files || !st.Complete {
		t.Fatalf("final state: %d of %d done, complete %v", countDone(st), files, st.Complete)
	}

	// A crash that lost every Done flag: the resume confirms each file with a Range request.
	for _, fs := range st.Files {
		fs.Done, fs.Bytes, fs.Resources = false, 0, 0
	}
	st.Complete, st.Deleted = false, false
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(e.Dir, StateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	served := f.served.Load()
	c2, _ := f.client(t)
	res2, err := (&Exporter{Client: c2, Dir: e.Dir, Validate: true}).Resume(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again := f.served.Load() - served; again >= int64(len(body)) { // only 416 answers' short bodies
		t.Errorf("the resume downloaded %d bytes of files already on disk", again)
	}
	if res2.Resources != res.Resources || res.Resources != files*20 {
		t.Errorf("resources: first run %d, resume %d, want %d", res.Resources, res2.Resources, files*20)
	}
}
