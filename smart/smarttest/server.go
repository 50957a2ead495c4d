package smarttest

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// Options configures a Server. The zero value is a SMART 2.2 sandbox with 20 patients (seed 1) on
// plain http.
type Options struct {
	// Version selects the SMART version the sandbox plays: "2.2" (default), "2.0" (fhirContext as
	// strings) or "v1" (no PKCE requirement, .read scopes, the profile claim).
	Version string
	// Patients is the number of synthetic patients (default 20); Seed makes them deterministic.
	Patients int
	Seed     int64
	// Now is the sandbox clock (default time.Now). Server.Sandbox.SetClockOffset shifts it.
	Now func() time.Time
	// TLS serves https with a test certificate that Server.Client trusts.
	TLS bool
	// Logger receives one redacted line per request (default: none).
	Logger *slog.Logger
	// As makes the sandbox behave like the EHR of a vendor preset (smart.ProfileNames: "epic",
	// "oracle", …; "" = generic): Epic's Epic-Client-ID header and flaky bare 400, Oracle Health's
	// five-hour Retry-After, the VA's X-RateLimit-* headers and so on (docs/profiles.md). Test a
	// client against it with the smart.Profile of the same name.
	As string
}

// An Option changes Options.
type Option func(*Options)

// WithVersion selects the SMART version mode: "2.2", "2.0" or "v1".
func WithVersion(v string) Option { return func(o *Options) { o.Version = v } }

// WithPatients sets the number of synthetic patients.
func WithPatients(n int) Option { return func(o *Options) { o.Patients = n } }

// WithSeed sets the seed of the synthetic data.
func WithSeed(seed int64) Option { return func(o *Options) { o.Seed = seed } }

// WithClock sets the sandbox clock.
func WithClock(now func() time.Time) Option { return func(o *Options) { o.Now = now } }

// WithTLS serves https (see Options.TLS).
func WithTLS() Option { return func(o *Options) { o.TLS = true } }

// WithLogger logs one redacted line per request to l.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithAs makes the sandbox play the EHR of a vendor preset (see Options.As).
func WithAs(name string) Option { return func(o *Options) { o.As = name } }

// Server is a sandbox EHR on a loopback httptest.Server.
type Server struct {
	// URL is the origin, "http://127.0.0.1:port" (https with WithTLS).
	URL string
	// FHIRBase is the FHIR base URL (URL + "/fhir"): the iss of EHR launches and the aud of
	// authorization requests.
	FHIRBase string
	// TokenURL, AuthorizeURL and RegistrationURL are the authorization server's endpoints, as discovery
	// advertises them; TokenURL is the aud of client assertions.
	TokenURL, AuthorizeURL, RegistrationURL string
	// Sandbox is the server itself: clients, launches, faults (Fault, ClearFaults), the clock
	// (SetClockOffset), counters (Count), tokens (ExpireAccessTokens, LookupAccessToken), data
	// (Patients, Practitioners).
	Sandbox *sandbox.Server
	// HTTP is the underlying test server.
	HTTP *httptest.Server
}

// NewServer starts a sandbox for the test; it is closed by tb.Cleanup. A bad option fails the test.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	sb, err := sandbox.New(sandbox.Options{
		Version: o.Version, Patients: o.Patients, Seed: o.Seed, Now: o.Now, Logger: o.Logger, As: o.As,
	})
	if err != nil {
		tb.Fatalf("smarttest: %v", err)
	}
	hs := httptest.NewUnstartedServer(sb)
	if o.TLS {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	tb.Cleanup(hs.Close)
	return &Server{
		URL:             hs.URL,
		FHIRBase:        hs.URL + "/fhir",
		TokenURL:        hs.URL + "/auth/token",
		AuthorizeURL:    hs.URL + "/auth/authorize",
		RegistrationURL: hs.URL + "/auth/register",
		Sandbox:         sb,
		HTTP:            hs,
	}
}

// Client returns an HTTP client for the server (it trusts the test certificate with WithTLS). It
// follows redirects like http.DefaultClient.
func (s *Server) Client() *http.Client { return s.HTTP.Client() }

// Fault arms a fault for the next n matching requests of any client (n < 0: until cleared). It panics
// on a name that is not in FaultNames, so that a typo cannot make a test pass.
func (s *Server) Fault(name string, n int) { s.FaultFor(name, n, "") }

// FaultFor arms a fault for the next n requests of one client (see Fault).
func (s *Server) FaultFor(name string, n int, clientID string) {
	if !slices.Contains(sandbox.FaultNames(), name) {
		panic("smarttest: unknown fault " + strconv.Quote(name))
	}
	s.Sandbox.Fault(name, n, clientID)
}

// FaultNames lists every fault the sandbox honours.
func FaultNames() []string { return sandbox.FaultNames() }
