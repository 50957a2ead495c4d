package fhirclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart"
)

// vendorEnv is a sandbox playing a vendor (Options.As) and a fhirclient.Client for it. The client's
// retry waits move the sandbox clock instead of sleeping, so that rate-limit windows pass at once.
type vendorEnv struct {
	s      *sandbox.Server
	c      *fhirclient.Client
	mu     sync.Mutex
	offset time.Duration
	sleeps []time.Duration
}

func newVendorEnv(t *testing.T, as string, profile string) *vendorEnv {
	t.Helper()
	s, _, c := startSandbox(t, sandbox.Options{Patients: 2, As: as})
	if profile != "" {
		p, err := smart.ProfileByName(profile)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetProfile(p, sandboxClientID); err != nil {
			t.Fatal(err)
		}
	}
	e := &vendorEnv{s: s, c: c}
	fhirclient.SetSleepForTest(c, func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.sleeps = append(e.sleeps, d)
		e.offset += d
		s.SetClockOffset(e.offset)
		e.mu.Unlock()
		return ctx.Err()
	})
	return e
}

// TestProfileVendorModes: what a profile changes in the FHIR client, against the sandbox mode with the
// quirk, and what happens without it (issue 11).
func TestProfileVendorModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, as, profile string
		run               func(t *testing.T, e *vendorEnv)
	}{
		{"epic headers with epic", "epic", "epic", func(t *testing.T, e *vendorEnv) {
			if _, _, err := e.c.Search(t.Context(), "Patient", nil); err != nil {
				t.Fatal(err)
			}
			if got := e.c.Header.Get("Accept"); got != "application/json+fhir" {
				t.Errorf("Accept = %q, want the epic profile's", got)
			}
		}},
		{"epic headers with generic", "epic", "generic", func(t *testing.T, e *vendorEnv) {
			_, _, err := e.c.Search(t.Context(), "Patient", nil)
			var fe *fhirclient.Error
			if !errors.As(err, &fe) || fe.StatusCode != http.StatusBadRequest {
				t.Fatalf("err = %v, want the 400 for the missing Epic-Client-ID", err)
			}
		}},
		{"$everything with epic", "epic", "epic", func(t *testing.T, e *vendorEnv) {
			before := e.s.Count("fhir_requests")
			if _, _, err := e.c.Everything(t.Context(), "pt-0", nil); !errors.Is(err, smart.ErrUnsupportedOperation) {
				t.Fatalf("Everything: %v", err)
			}
			if _, err := e.c.Operation(t.Context(), "Patient", "pt-0", "$everything", nil, nil); !errors.Is(err, smart.ErrUnsupportedOperation) {
				t.Fatalf("Operation: %v", err)
			}
			if _, err := e.c.Operation(t.Context(), "Patient", "pt-0", "$export", url.Values{}, nil); errors.Is(err, smart.ErrUnsupportedOperation) {
				t.Fatalf("another operation refused: %v", err)
			}
			if n := e.s.Count("fhir_requests") - before; n != 1 {
				t.Errorf("%d requests, want 1 ($export only): $everything must fail before sending", n)
			}
		}},
		{"$everything without a profile", "epic", "", func(t *testing.T, e *vendorEnv) {
			e.c.Header = http.Header{"Epic-Client-Id": {sandboxClientID}}
			_, _, err := e.c.Everything(t.Context(), "pt-0", nil)
			var fe *fhirclient.Error
			if !errors.As(err, &fe) || fe.StatusCode != http.StatusNotFound || errors.Is(err, smart.ErrUnsupportedOperation) {
				t.Fatalf("err = %v, want the server's 404 after a round trip", err)
			}
		}},
		{"rate limit with va", "va", "va", func(t *testing.T, e *vendorEnv) {
			for range 6 {
				if _, _, err := e.c.Search(t.Context(), "Patient", nil); err != nil {
					t.Fatal(err)
				}
			}
			if len(e.sleeps) != 1 || e.sleeps[0] != 5*time.Second {
				t.Errorf("waits %v, want one of 5 s (X-RateLimit-Reset)", e.sleeps)
			}
		}},
		{"rate limit with generic", "va", "generic", func(t *testing.T, e *vendorEnv) {
			var err error
			for range 6 {
				if _, _, err = e.c.Search(t.Context(), "Patient", nil); err != nil {
					break
				}
			}
			var rae *fhirclient.RetryAfterError
			if !errors.As(err, &rae) || rae.Err.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("err = %v, want a *RetryAfterError: without the headers the backoff ends inside the window", err)
			}
			if len(e.sleeps) != 2 {
				t.Errorf("waits %v, want the two backoffs of CONV-3", e.sleeps)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, newVendorEnv(t, tt.as, tt.profile))
		})
	}
}

func TestSetProfile(t *testing.T) {
	t.Parallel()
	c, err := fhirclient.NewClient("https://ehr.example.org/fhir", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Header = http.Header{"Accept": {"application/fhir+json"}}
	p, _ := smart.LookupProfile("epic")
	if err := c.SetProfile(p, "app-1"); err != nil {
		t.Fatal(err)
	}
	if c.Header.Get("Epic-Client-ID") != "app-1" || c.Header.Get("Accept") != "application/fhir+json" {
		t.Errorf("Header = %v: the profile adds, the caller's own value wins", c.Header)
	}
	got, ok := c.Profile()
	if !ok || got.Name != "epic" {
		t.Fatalf("Profile() = %v, %v", got.Name, ok)
	}
	got.UnsupportedOperations[0] = "$export" // a copy: the client's stays
	if again, _ := c.Profile(); again.UnsupportedOperations[0] != "$everything" {
		t.Error("Profile returned the client's own slice")
	}
	bad := p.Clone()
	bad.Headers = map[string]string{"Cookie": "x"}
	c2, _ := fhirclient.NewClient("https://ehr.example.org/fhir", nil)
	if err := c2.SetProfile(bad, "app-1"); !errors.Is(err, smart.ErrInvalidProfile) || len(c2.Header) != 0 {
		t.Fatalf("invalid profile: %v, header %v", err, c2.Header)
	}
	if _, ok := c2.Profile(); ok {
		t.Error("an invalid profile was kept")
	}
}
