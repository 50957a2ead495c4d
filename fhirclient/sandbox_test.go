package fhirclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/samply/golang-fhir-models/fhir-models/fhir"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart"
)

// sandboxEnv is the in-process sandbox with a fhirclient.Client authenticated the way apps are:
// smart.NewTransport adds a bearer token issued by the sandbox, for the sandbox origin only.
type sandboxEnv struct {
	s      *sandbox.Server
	srv    *httptest.Server
	c      *fhirclient.Client
	mu     sync.Mutex
	sleeps []time.Duration
}

const sandboxClientID = "fhirclient-test"

func newSandbox(tb testing.TB, patients int) *sandboxEnv {
	tb.Helper()
	s, srv, c := startSandbox(tb, sandbox.Options{Patients: patients})
	if len(s.Patients()) == 0 {
		tb.Skip("internal/sandbox FHIR half is still the stub (no patients)")
	}
	e := &sandboxEnv{s: s, srv: srv, c: c}
	fhirclient.SetSleepForTest(c, func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.sleeps = append(e.sleeps, d)
		e.mu.Unlock()
		return ctx.Err()
	})
	return e
}

// startSandbox starts a sandbox and returns a fhirclient.Client for it that authenticates as a
// backend client of sandboxClientID with system/*.rs, the token going to the sandbox origin only.
func startSandbox(tb testing.TB, opts sandbox.Options) (*sandbox.Server, *httptest.Server, *fhirclient.Client) {
	tb.Helper()
	s, err := sandbox.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(s)
	tb.Cleanup(srv.Close)
	tok := s.IssueAccessToken(sandbox.Grant{ClientID: sandboxClientID, Scopes: []string{"system/*.rs"},
		IssuedAt: s.Now(), Expiry: s.Now().Add(24 * time.Hour), Backend: true})
	tr, err := smart.NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "Bearer"}),
		srv.Client().Transport, srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := fhirclient.NewClient(srv.URL+"/fhir", &http.Client{Transport: tr})
	if err != nil {
		tb.Fatal(err)
	}
	return s, srv, c
}

// CONV-2, API-01: SearchIter pages through the sandbox (≥ 3 pages) and sees every match once.
func TestSandboxSearchIterPaging(t *testing.T) {
	t.Parallel()
	e := newSandbox(t, 20)
	counted, _, err := e.c.Search(t.Context(), "Patient", url.Values{"_summary": {"count"}})
	if err != nil {
		t.Fatal(err)
	}
	if counted.Total == nil || *counted.Total != 20 {
		t.Fatalf("total = %v", counted.Total)
	}
	before := e.s.Count("fhir_requests")
	seen := map[string]bool{}
	for entry, err := range e.c.SearchIter(t.Context(), "Patient", url.Values{"_count": {"6"}}) {
		if err != nil {
			t.Fatal(err)
		}
		var p fhir.Patient
		if err := gojson.Unmarshal(entry.Resource, &p); err != nil {
			t.Fatal(err)
		}
		if seen[*p.Id] {
			t.Errorf("patient %s twice", *p.Id)
		}
		seen[*p.Id] = true
	}
	if len(seen) != 20 {
		t.Errorf("patients = %d, want 20", len(seen))
	}
	if pages := e.s.Count("fhir_requests") - before; pages != 4 {
		t.Errorf("pages = %d, want 4 (6+6+6+2)", pages)
	}
}

// The sandbox's faults, seen through the client (SBX-15; CONV-1, CONV-3).
func TestSandboxFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault string
		n     int
		check func(t *testing.T, err error, e *sandboxEnv)
	}{
		{fault: "api_next_foreign", n: 1, check: func(t *testing.T, err error, e *sandboxEnv) {
			var oe *fhirclient.OriginError
			if !errors.As(err, &oe) || !strings.Contains(oe.Origin, "127.0.0.2") {
				t.Errorf("err = %v, want *OriginError naming 127.0.0.2", err)
			}
		}},
		{fault: "api_redirect_foreign", n: 1, check: func(t *testing.T, err error, e *sandboxEnv) {
			if !errors.Is(err, fhirclient.ErrForeignOrigin) {
				t.Errorf("err = %v, want ErrForeignOrigin", err)
			}
		}},
		{fault: "api_500_outcome", n: 2, check: func(t *testing.T, err error, e *sandboxEnv) {
			var fe *fhirclient.Error
			if !errors.As(err, &fe) || fe.StatusCode != 500 || len(fe.Issues) != 3 ||
				!strings.Contains(err.Error(), "the database connection was lost; warning incomplete") {
				t.Errorf("err = %v", err)
			}
		}},
		{fault: "api_500_outcome", n: 1, check: func(t *testing.T, err error, e *sandboxEnv) {
			if err != nil {
				t.Errorf("one 500 should be retried away: %v", err)
			}
		}},
		{fault: "api_html_500", n: 2, check: func(t *testing.T, err error, e *sandboxEnv) {
			var fe *fhirclient.Error
			if !errors.As(err, &fe) || fe.Outcome != nil || !strings.Contains(err.Error(), "<h1>Internal Server Error</h1>") {
				t.Errorf("err = %v", err)
			}
		}},
		{fault: "api_truncated_json", n: 1, check: func(t *testing.T, err error, e *sandboxEnv) {
			if !errors.Is(err, fhirclient.ErrMalformedResponse) {
				t.Errorf("err = %v, want ErrMalformedResponse", err)
			}
		}},
		{fault: "request_expired_token", n: 1, check: func(t *testing.T, err error, e *sandboxEnv) {
			var fe *fhirclient.Error
			if !errors.Is(err, fhirclient.ErrUnauthorized) || !errors.As(err, &fe) || fe.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("err = %v, want ErrUnauthorized with WWW-Authenticate", err)
			}
		}},
		{fault: "api_429_seconds", n: 1, check: waits(time.Second, time.Second)},
		{fault: "api_503_date", n: 1, check: waits(1*time.Second, 2*time.Second)},
		{fault: "api_429_epoch_ms", n: 1, check: waits(800*time.Millisecond, 1200*time.Millisecond)},
		{fault: "api_503_garbage", n: 1, check: waits(800*time.Millisecond, 1200*time.Millisecond)},
		{fault: "api_429_huge", n: 1, check: func(t *testing.T, err error, e *sandboxEnv) {
			var rae *fhirclient.RetryAfterError
			if !errors.As(err, &rae) || rae.Wait != 24*time.Hour || len(e.sleeps) != 0 {
				t.Errorf("err = %v, sleeps %v; want *RetryAfterError of 24 h, no wait", err, e.sleeps)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s×%d", tt.fault, tt.n), func(t *testing.T) {
			t.Parallel()
			e := newSandbox(t, 3)
			e.s.Fault(tt.fault, tt.n, sandboxClientID)
			var err error
			for _, e := range e.c.SearchIter(t.Context(), "Patient", url.Values{"_count": {"1"}}) {
				if e != nil {
					err = e
				}
			}
			tt.check(t, err, e)
		})
	}
}

// waits checks that the call succeeded after one wait in [lo, hi].
func waits(lo, hi time.Duration) func(t *testing.T, err error, e *sandboxEnv) {
	return func(t *testing.T, err error, e *sandboxEnv) {
		t.Helper()
		if err != nil || len(e.sleeps) != 1 || e.sleeps[0] < lo || e.sleeps[0] > hi {
			t.Errorf("err = %v, sleeps = %v, want one wait in [%v, %v]", err, e.sleeps, lo, hi)
		}
	}
}

// BenchmarkSandboxPaging pages through 10,000 Observations of the in-process sandbox with
// SearchIter and decodes each entry typed; it reports resources/s.
func BenchmarkSandboxPaging(b *testing.B) {
	e := newSandbox(b, 400) // about 28 Observations each
	const want = 10_000
	q := url.Values{"_count": {"500"}}
	b.ReportAllocs()
	var total int
	for b.Loop() {
		n := 0
		for entry, err := range e.c.SearchIter(b.Context(), "Observation", q) {
			if err != nil {
				b.Fatal(err)
			}
			var o fhir.Observation
			if err := gojson.Unmarshal(entry.Resource, &o); err != nil {
				b.Fatal(err)
			}
			if n++; n == want {
				break
			}
		}
		if n < want {
			b.Fatalf("sandbox has only %d Observations", n)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
}
