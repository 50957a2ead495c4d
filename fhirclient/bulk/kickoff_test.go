package bulk

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

func TestKickoffEndpointsAndHeaders(t *testing.T) { // BULK-01, BULK-02, BULK-04
	t.Parallel()
	tests := []struct {
		name       string
		req        ExportRequest
		wantURI    string
		wantMethod string
	}{
		{"system", ExportRequest{Types: []string{"Patient", "Observation"}}, "/fhir/$export?_type=Patient,Observation", "GET"},
		{"all patients", ExportRequest{Level: LevelPatient}, "/fhir/Patient/$export", "GET"},
		{"group", ExportRequest{GroupID: "g1"}, "/fhir/Group/g1/$export", "GET"},
		{"patient list forces POST", ExportRequest{Level: LevelPatient, Patients: []string{"p1"}}, "/fhir/Patient/$export", "POST"},
		{"POST asked", ExportRequest{GroupID: "g1", POST: true, Types: []string{"Patient"}}, "/fhir/Group/g1/$export", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			c, _ := f.client(t)
			job, err := c.Kickoff(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if job.StatusURL != f.srv.URL+"/status/1" {
				t.Errorf("StatusURL = %q", job.StatusURL)
			}
			if got := f.requests[0]; got != tt.wantMethod+" "+tt.wantURI {
				t.Errorf("request = %q, want %q", got, tt.wantMethod+" "+tt.wantURI)
			}
			h := f.kickoffHeader
			if h.Get("Accept") != "application/fhir+json" || h.Get("Prefer") != "respond-async" {
				t.Errorf("Accept %q Prefer %q", h.Get("Accept"), h.Get("Prefer"))
			}
			if tt.wantMethod == "POST" {
				if h.Get("Content-Type") != "application/fhir+json" {
					t.Errorf("Content-Type %q", h.Get("Content-Type"))
				}
				var p struct{ ResourceType string }
				if err := json.Unmarshal(f.kickoffBody, &p); err != nil || p.ResourceType != "Parameters" {
					t.Errorf("body %s (%v)", f.kickoffBody, err)
				}
			}
		})
	}
}

func TestKickoffPlusOffsetArrivesIntact(t *testing.T) { // BULK-05: "+05:00" must not become a space
	t.Parallel()
	f := newFake(t)
	var got string
	f.kickoffHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		got = r.URL.Query().Get("_since")
		return false
	}
	c, _ := f.client(t)
	since, _ := time.Parse(time.RFC3339, "2024-01-01T00:00:00+05:00")
	if _, err := c.Kickoff(t.Context(), ExportRequest{Since: since}); err != nil {
		t.Fatal(err)
	}
	if got != "2024-01-01T00:00:00+05:00" {
		t.Errorf("server saw _since=%q", got)
	}
}

func TestKickoff429ThenAccepted(t *testing.T) { // BULK-11: another export is running
	t.Parallel()
	f := newFake(t)
	f.kickoffHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n <= 2 {
			w.Header().Set("Retry-After", "7")
			writeOutcome(w, http.StatusTooManyRequests, "throttled", "an export is already running")
			return true
		}
		return false
	}
	c, waits := f.client(t)
	if _, err := c.Kickoff(t.Context(), ExportRequest{}); err != nil {
		t.Fatal(err)
	}
	if f.kickoffs.Load() != 3 || len(*waits) != 2 || (*waits)[0] != 7*time.Second {
		t.Errorf("kickoffs %d waits %v", f.kickoffs.Load(), *waits)
	}
}

func TestKickoff429Bounded(t *testing.T) { // BULK-11, CONV-3: bounded, and long waits are returned
	t.Parallel()
	for _, tt := range []struct {
		name, retryAfter string
		wantKickoffs     int32
	}{
		{"five hours", "18000", 1},
		{"storm", "1", int32(DefaultMaxKickoffRetries + 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.kickoffHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
				w.Header().Set("Retry-After", tt.retryAfter)
				writeOutcome(w, http.StatusTooManyRequests, "throttled", "busy")
				return true
			}
			c, _ := f.client(t)
			_, err := c.Kickoff(t.Context(), ExportRequest{})
			var ra *fhirclient.RetryAfterError
			if !errors.As(err, &ra) || !errors.Is(err, fhirclient.ErrTooManyRequests) {
				t.Fatalf("err = %v, want *fhirclient.RetryAfterError", err)
			}
			if f.kickoffs.Load() != tt.wantKickoffs {
				t.Errorf("kickoffs = %d, want %d", f.kickoffs.Load(), tt.wantKickoffs)
			}
		})
	}
}

func TestKickoffErrors(t *testing.T) { // BULK-10, BULK-11, CONV-1
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request reached the foreign origin: %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	tests := []struct {
		name string
		hook func(w http.ResponseWriter, r *http.Request, n int) bool
		want error
	}{
		{"400 OperationOutcome", func(w http.ResponseWriter, r *http.Request, n int) bool {
			writeOutcome(w, http.StatusBadRequest, "not-supported", "_typeFilter is not supported")
			return true
		}, nil}, // checked below: the OperationOutcome is in the error
		{"no Content-Location", func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.WriteHeader(http.StatusAccepted)
			return true
		}, ErrNoContentLocation},
		{"foreign Content-Location", func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Header().Set("Content-Location", other.URL+"/status/1")
			w.WriteHeader(http.StatusAccepted)
			return true
		}, ErrUntrustedOrigin},
		{"file Content-Location", func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Header().Set("Content-Location", "file:///etc/passwd")
			w.WriteHeader(http.StatusAccepted)
			return true
		}, httpx.ErrInsecureURL},
		{"200 instead of 202", func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Write([]byte(`{"resourceType":"Bundle"}`))
			return true
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.kickoffHook = tt.hook
			c, _ := f.client(t)
			job, err := c.Kickoff(t.Context(), ExportRequest{})
			if err == nil {
				t.Fatalf("Kickoff = %+v, want an error", job)
			}
			switch tt.name {
			case "400 OperationOutcome":
				var fe *fhirclient.Error
				if !errors.As(err, &fe) || fe.StatusCode != 400 || !strings.Contains(err.Error(), "_typeFilter is not supported") {
					t.Errorf("err = %v, want the OperationOutcome", err)
				}
			default:
				if tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestKickoffRelativeContentLocation(t *testing.T) { // BULK-10
	t.Parallel()
	f := newFake(t)
	f.kickoffHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Content-Location", "../status/1")
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	c, _ := f.client(t)
	job, err := c.Kickoff(t.Context(), ExportRequest{GroupID: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if job.StatusURL != f.srv.URL+"/fhir/Group/status/1" {
		t.Errorf("StatusURL = %q", job.StatusURL)
	}
}

func TestKickoffRefusesBeforeSending(t *testing.T) { // BULK-09, CONV-1
	t.Parallel()
	f := newFake(t)
	c, _ := f.client(t)
	if _, err := c.Kickoff(t.Context(), ExportRequest{Patients: []string{"1"}}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("patient at system level: %v", err)
	}
	if f.kickoffs.Load() != 0 {
		t.Error("an invalid request was sent")
	}
	plain, err := NewClient("http://ehr.example.org/fhir", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Kickoff(t.Context(), ExportRequest{}); !errors.Is(err, httpx.ErrInsecureURL) {
		t.Errorf("plain http base: %v", err)
	}
	if _, err := NewClient("http://169.254.169.254/fhir", nil); !errors.Is(err, httpx.ErrInsecureURL) {
		t.Errorf("metadata base: %v", err)
	}
	if _, err := NewClient("file:///fhir", nil); !errors.Is(err, httpx.ErrInsecureURL) {
		t.Errorf("file base: %v", err)
	}
}
