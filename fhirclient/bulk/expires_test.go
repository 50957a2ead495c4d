package bulk

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// expiresFake is a fake whose manifest responses carry Expires: expires(n) for the n-th manifest
// response ("" sends none), and which records the order of manifest and file requests.
func expiresFake(t *testing.T, expires func(n int) string) (*fake, func() []string) {
	t.Helper()
	f := newFake(t)
	f.add("output", "Patient", "p", ndjson("Patient", 10))
	f.add("output", "Observation", "o", ndjson("Observation", 5))
	var mu sync.Mutex
	var order []string
	manifests := 0
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Method != http.MethodGet {
			return false
		}
		mu.Lock()
		manifests++
		order = append(order, "manifest")
		if v := expires(manifests); v != "" {
			w.Header().Set("Expires", v)
		}
		mu.Unlock()
		return false
	}
	f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
		mu.Lock()
		order = append(order, "file")
		mu.Unlock()
		return false
	}
	return f, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), order...)
	}
}

// TestExporterExpiredManifestRefetchedFirst: a completed-status response whose Expires has passed
// makes the Exporter fetch the manifest again before the first file request, rather than wait for
// a 404 or 410 (BULK-20); the refreshed page's Expires is recorded in the state.
func TestExporterExpiredManifestRefetchedFirst(t *testing.T) { // BULK-20
	t.Parallel()
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	f, order := expiresFake(t, func(n int) string {
		if n == 1 {
			return past
		}
		return future.Format(http.TimeFormat)
	})
	e, events := exporterFor(t, f)
	res, err := e.Start(t.Context(), ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := order(); len(got) != 4 || got[0] != "manifest" || got[1] != "manifest" || got[2] != "file" || got[3] != "file" {
		t.Errorf("requests = %v, want the manifest twice, then the files", got)
	}
	if res.Resources != 15 {
		t.Errorf("resources = %d, want 15", res.Resources)
	}
	warned := false
	for _, ev := range *events {
		warned = warned || ev.Kind == EventWarning && strings.Contains(ev.Message, "expired")
	}
	if !warned {
		t.Error("no warning event about the expired links")
	}
	st, err := loadState(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Expires.Equal(future) {
		t.Errorf("state Expires = %v, want the re-fetched page's %v", st.Expires, future)
	}
}

// TestExporterExpiresUnchangedExport: an Expires in the future, none at all, or one that is not an
// HTTP date leaves a normal export unchanged: one manifest request, then the files (BULK-20).
func TestExporterExpiresUnchangedExport(t *testing.T) { // BULK-20
	t.Parallel()
	future := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	for _, tt := range []struct {
		name, header string
		want         time.Time
	}{
		{"future", future.Format(http.TimeFormat), future},
		{"absent", "", time.Time{}},
		{"not a date", "0", time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, order := expiresFake(t, func(int) string { return tt.header })
			e, _ := exporterFor(t, f)
			if _, err := e.Start(t.Context(), ExportRequest{}); err != nil {
				t.Fatal(err)
			}
			if got := order(); len(got) != 3 || got[0] != "manifest" {
				t.Errorf("requests = %v, want one manifest then 2 files", got)
			}
			st, err := loadState(e.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Expires.Equal(tt.want) {
				t.Errorf("state Expires = %v, want %v", st.Expires, tt.want)
			}
			if b, _ := os.ReadFile(filepath.Join(e.Dir, StateFile)); tt.want.IsZero() && strings.Contains(string(b), `"expires"`) {
				t.Errorf("a zero Expires is written to the state: %s", b)
			}
		})
	}
}

// TestExporterResumeAfterExpiry: a resume after the recorded Expires fetches the manifest again
// before the remaining downloads; if that fails, the error says the links expired and the export
// must be run again, and no file is requested (BULK-20).
func TestExporterResumeAfterExpiry(t *testing.T) { // BULK-20, BULK-32
	t.Parallel()
	for _, tt := range []struct {
		name     string
		gone     bool // the status URL answers 404 on the re-fetch
		wantErr  error
		wantFile bool
	}{
		{"refreshed", false, nil, true},
		{"re-fetch fails", true, ErrManifestExpired, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			f, order := expiresFake(t, func(int) string { return expires.Format(http.TimeFormat) })
			// The first run fails the Observation file, so that one download is left for the resume.
			f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
				if name == "o" {
					writeOutcome(w, http.StatusInternalServerError, "exception", "boom")
					return true
				}
				return false
			}
			e, _ := exporterFor(t, f)
			e.Client.MaxTransient = 1
			if _, err := e.Start(t.Context(), ExportRequest{}); err == nil {
				t.Fatal("first run: want the Observation file to fail")
			}
			before := len(order())

			// Two hours later the links have expired.
			c2, _ := f.client(t)
			c2.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
			var fileReqs []string
			var mu sync.Mutex
			f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
				mu.Lock()
				fileReqs = append(fileReqs, name)
				mu.Unlock()
				return false
			}
			if tt.gone {
				f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
					writeOutcome(w, http.StatusNotFound, "not-found", "job expired")
					return true
				}
			}
			_, err := (&Exporter{Client: c2, Dir: e.Dir, KeepJob: true}).Resume(t.Context())
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatal(err)
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrFileExpired) || !strings.Contains(err.Error(), "run the export again") ||
					strings.Contains(err.Error(), "--resume") || strings.Contains(err.Error(), testToken) {
					t.Fatalf("err = %v, want ErrManifestExpired telling to run the export again", err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.wantFile != (len(fileReqs) == 1 && fileReqs[0] == "o") {
				t.Errorf("file requests on resume = %v", fileReqs)
			}
			if !tt.gone {
				if got := order()[before:]; len(got) < 1 || got[0] != "manifest" {
					t.Errorf("resume requests = %v, want the manifest first", got)
				}
			}
		})
	}
}

// TestWaitRecordsManifestExpires: the manifest returned by Job.Wait carries the completed-status
// response's Expires (BULK-20).
func TestWaitRecordsManifestExpires(t *testing.T) { // BULK-20
	t.Parallel()
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f, _ := expiresFake(t, func(int) string { return expires.Format(http.TimeFormat) })
	c, _ := f.client(t)
	job, err := c.Kickoff(t.Context(), ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := job.Wait(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Expires.Equal(expires) {
		t.Errorf("Manifest.Expires = %v, want %v", m.Expires, expires)
	}
	if b, _ := json.Marshal(m); strings.Contains(string(b), "2030") {
		t.Errorf("Expires is serialised with the manifest: %s", b)
	}
}
