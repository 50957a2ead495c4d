package bulk

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// vendorEnv is a sandbox playing a vendor and a bulk Client that follows a profile. Waits move the
// sandbox's clock (and the client's) instead of sleeping, so that a five-hour Retry-After or a 30 s
// poll interval costs nothing.
type vendorEnv struct {
	srv    *smarttest.Server
	c      *Client
	offset atomic.Int64
	mu     sync.Mutex
	waits  []time.Duration
}

func newVendorEnv(t *testing.T, as string, p smart.Profile, settings sandbox.FHIRSettings) *vendorEnv {
	t.Helper()
	e := &vendorEnv{srv: smarttest.NewServer(t, smarttest.WithPatients(3), smarttest.WithAs(as))}
	e.srv.Sandbox.SetFHIRSettings(settings)
	bc := e.srv.RegisterBackendClient(t, "ES384")
	var err error
	now := func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }
	cfg := &backend.Config{ClientID: bc.ID, PrivateKey: bc.Signer, FHIRBase: e.srv.FHIRBase, Profile: &p, Now: now}
	if e.c, err = NewClient(e.srv.FHIRBase, cfg.Client(context.Background())); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SetProfile(p); err != nil {
		t.Fatal(err)
	}
	e.c.Now = now
	e.c.Sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
		e.srv.Sandbox.SetClockOffset(time.Duration(e.offset.Add(int64(d))))
		return ctx.Err()
	}
	return e
}

func (e *vendorEnv) export(t *testing.T, req ExportRequest) (*Result, []Event, error) {
	t.Helper()
	var mu sync.Mutex
	var events []Event
	x := &Exporter{Client: e.c, Dir: filepath.Join(t.TempDir(), "out"), Validate: true, OnEvent: func(ev Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}}
	res, err := x.Start(t.Context(), req)
	return res, events, err
}

// TestProfileVendorExports: each bulk setting of a profile against the sandbox mode with the quirk,
// with the vendor's profile and with the generic one (issue 11).
func TestProfileVendorExports(t *testing.T) {
	t.Parallel()
	slow := func(d time.Duration) sandbox.FHIRSettings { return sandbox.FHIRSettings{ExportDuration: d} }
	types := ExportRequest{Types: []string{"Patient", "Observation"}}
	tests := []struct {
		name, as, profile string
		settings          sandbox.FHIRSettings
		req               ExportRequest
		check             func(t *testing.T, e *vendorEnv, res *Result, events []Event, err error)
	}{
		{"ab2d with cms-ab2d: polls 30 s apart, never throttled", "cms-ab2d", "cms-ab2d", slow(2 * time.Minute), types,
			func(t *testing.T, e *vendorEnv, res *Result, _ []Event, err error) {
				mustExport(t, res, err)
				if n := e.srv.Sandbox.Count("bulk_status_throttled"); n != 0 {
					t.Errorf("%d polls throttled", n)
				}
				if w := e.waitsNot(0); len(w) == 0 || w[0] != 30*time.Second {
					t.Errorf("poll waits %v, want 30 s each", w)
				}
			}},
		{"ab2d with generic: throttled", "cms-ab2d", "generic", slow(2 * time.Minute), types,
			func(t *testing.T, e *vendorEnv, res *Result, _ []Event, err error) {
				mustExport(t, res, err) // it recovers by the 429's Retry-After, after being throttled
				if n := e.srv.Sandbox.Count("bulk_status_throttled"); n == 0 {
					t.Error("polling every second was never throttled")
				}
			}},
		{"oracle with oracle: five hours capped at 30 min", "oracle", "oracle", slow(time.Hour), types,
			func(t *testing.T, e *vendorEnv, res *Result, _ []Event, err error) {
				mustExport(t, res, err)
				if w := e.waitsNot(0); len(w) < 2 || w[0] != 30*time.Minute {
					t.Errorf("poll waits %v, want 30 min", w)
				}
			}},
		{"oracle with generic: capped at an hour", "oracle", "generic", slow(time.Hour), types,
			func(t *testing.T, e *vendorEnv, res *Result, _ []Event, err error) {
				mustExport(t, res, err)
				if w := e.waitsNot(0); len(w) != 1 || w[0] != time.Hour {
					t.Errorf("poll waits %v, want one of 1 h", w)
				}
			}},
		{"bcda with cms-bcda: transient 404s retried", "cms-bcda", "cms-bcda", slow(-1), types,
			func(t *testing.T, e *vendorEnv, res *Result, _ []Event, err error) {
				mustExport(t, res, err)
				if n := e.srv.Sandbox.Count("bulk_file_404"); n != 2*int64(len(res.Files)) {
					t.Errorf("%d 404s for %d files, want two each", n, len(res.Files))
				}
			}},
		{"bcda with generic: a 404 is final", "cms-bcda", "generic", slow(-1), types,
			func(t *testing.T, _ *vendorEnv, _ *Result, _ []Event, err error) {
				if !errors.Is(err, ErrFileExpired) {
					t.Fatalf("err = %v, want ErrFileExpired", err)
				}
			}},
		{"hapi with hapi: the DELETE's 404 is expected", "hapi", "hapi", slow(-1), types,
			func(t *testing.T, _ *vendorEnv, res *Result, events []Event, err error) {
				mustExport(t, res, err)
				if !res.JobDeleted || hasEvent(events, EventWarning) || !hasEvent(events, EventJobDeleted) {
					t.Errorf("deleted %v, events %v", res.JobDeleted, events)
				}
			}},
		{"hapi with generic: the DELETE's 404 is reported", "hapi", "generic", slow(-1), types,
			func(t *testing.T, _ *vendorEnv, res *Result, events []Event, err error) {
				mustExport(t, res, err)
				if !res.JobDeleted || !hasEvent(events, EventWarning) || hasEvent(events, EventJobDeleted) {
					t.Errorf("deleted %v, events %v", res.JobDeleted, events)
				}
			}},
		{"epic with epic: headers, bare 400, opaque names", "epic", "epic", slow(-1), types,
			func(t *testing.T, _ *vendorEnv, res *Result, _ []Event, err error) {
				mustExport(t, res, err)
				got := map[string]string{}
				for _, f := range res.Files {
					got[f.Type] = f.Name
				}
				if len(got) != 2 || got["Patient"] != "Patient.ndjson" || got["Observation"] != "Observation.ndjson" {
					t.Errorf("files %+v: the types and names come from the manifest, not from the opaque URLs", res.Files)
				}
			}},
		{"epic with generic: no Epic-Client-ID", "epic", "generic", slow(-1), types,
			func(t *testing.T, _ *vendorEnv, _ *Result, _ []Event, err error) {
				if err == nil {
					t.Fatal("the export succeeded without Epic-Client-ID")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := smart.ProfileByName(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			e := newVendorEnv(t, tt.as, p, tt.settings)
			res, events, err := e.export(t, tt.req)
			tt.check(t, e, res, events, err)
		})
	}
}

func mustExport(t *testing.T, res *Result, err error) {
	t.Helper()
	if err != nil || res == nil || len(res.Files) == 0 {
		t.Fatalf("export: %v (%+v)", err, res)
	}
}

func hasEvent(events []Event, kind EventKind) bool {
	for _, ev := range events {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}

// waitsNot returns the recorded waits other than d (0 is the retry of a download without a wait).
func (e *vendorEnv) waitsNot(d time.Duration) []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []time.Duration
	for _, w := range e.waits {
		if w != d {
			out = append(out, w)
		}
	}
	return out
}

// TestProfileTypeParam: Oracle Health refuses a repeated _type, so a profile that repeats it fails
// there (smart-fetch bulk_utils.py) while the comma-joined default works.
func TestProfileTypeParam(t *testing.T) {
	t.Parallel()
	for _, style := range []smart.TypeParamStyle{smart.TypeComma, smart.TypeRepeat} {
		t.Run(string(style), func(t *testing.T) {
			t.Parallel()
			p, _ := smart.LookupProfile("oracle")
			p.TypeParam = style
			e := newVendorEnv(t, "oracle", p, sandbox.FHIRSettings{ExportDuration: -1})
			_, err := e.c.Kickoff(t.Context(), ExportRequest{Types: []string{"Patient", "Observation"}})
			var fe *fhirclient.Error
			switch {
			case style == smart.TypeComma && err != nil:
				t.Fatalf("comma-joined _type: %v", err)
			case style == smart.TypeRepeat && (!errors.As(err, &fe) || fe.StatusCode != http.StatusBadRequest):
				t.Fatalf("repeated _type: %v, want the server's 400", err)
			}
		})
	}
}

// TestProfileRateLimitWait: a status 429 without Retry-After waits as X-RateLimit-Reset says with a
// profile that reads it (the VA), and backs off without one (CONV-3).
func TestProfileRateLimitWait(t *testing.T) { // CONV-3, CONV-5: the VA's X-RateLimit-* headers
	t.Parallel()
	for _, where := range []string{"status", "kick-off"} {
		for _, name := range []string{"va", "generic"} {
			t.Run(where+"/"+name, func(t *testing.T) {
				t.Parallel()
				f := newFake(t)
				hook := func(w http.ResponseWriter, r *http.Request, n int) bool {
					if n > 1 {
						return false
					}
					w.Header().Set("X-RateLimit-Remaining", "0")
					w.Header().Set("X-RateLimit-Reset", "7")
					writeOutcome(w, http.StatusTooManyRequests, "throttled", "slow down")
					return true
				}
				if where == "status" {
					f.statusHook = hook
				} else {
					f.kickoffHook = hook
				}
				c, waits := f.client(t)
				p, _ := smart.LookupProfile(name)
				if err := c.SetProfile(p); err != nil {
					t.Fatal(err)
				}
				job, err := c.Kickoff(t.Context(), ExportRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := job.Wait(t.Context(), nil); err != nil {
					t.Fatal(err)
				}
				first := (*waits)[0]
				if name == "va" && first != 7*time.Second || name == "generic" && first > 2*time.Second {
					t.Errorf("first wait %v", first)
				}
			})
		}
	}
}
