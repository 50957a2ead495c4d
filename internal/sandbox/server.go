package sandbox

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Options configures a Server. The zero value is a SMART 2.2 sandbox with 20 patients, seed 1.
type Options struct {
	// Patients is the number of synthetic patients (default 20).
	Patients int
	// Seed makes the generated data deterministic (default 1).
	Seed int64
	// Clients are registered at start (e.g. from `smartfhir sandbox --clients FILE`).
	Clients []Client
	// PublicURL, when set, is the origin used in absolute URLs ("http://127.0.0.1:9090").
	// Otherwise each request's Host (and TLS state) decides, which suits httptest servers.
	PublicURL string
	// Version selects a SMART version mode: "2.2" (default), "2.0" (fhirContext as strings),
	// "v1" (CapabilityStatement discovery, .read scopes, profile claim, PKCE optional).
	Version string
	// As makes the sandbox behave like the EHR of a vendor preset (smart.ProfileNames: "epic",
	// "oracle", …; "" = generic), with the quirks the preset exists for (as*.go, docs/profiles.md).
	As string
	// Logger receives one line per request, with secrets redacted. Nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now); SetClockOffset shifts it.
	Now func() time.Time
}

// Server is the sandbox. It is an http.Handler; mount it with httptest.NewServer or http.Server.
type Server struct {
	opts   Options
	mux    *http.ServeMux
	log    *slog.Logger
	offset atomic.Int64 // clock offset in nanoseconds
	faults faultSet
	tokens tokenStore
	stats  sync.Map // name -> *atomic.Int64

	as   *asState   // vendor mode (as*.go)
	auth *authState // authorization server (auth*.go)
	fhir *fhirState // FHIR API, bulk export, data (fhir*.go, bulk*.go, data*.go)
}

// New builds a Server and generates its data.
func New(opts Options) (*Server, error) {
	if opts.Patients <= 0 {
		opts.Patients = 20
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Version == "" {
		opts.Version = "2.2"
	}
	switch opts.Version {
	case "2.2", "2.0", "v1":
	default:
		return nil, fmt.Errorf("sandbox: unknown version mode %q (want 2.2, 2.0 or v1)", opts.Version)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	as, err := newAsState(opts.As)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), log: opts.Logger, as: as}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	} else {
		s.log = slog.New(httpx.NewRedactingHandler(s.log.Handler()))
	}
	s.tokens.m = map[string]*Grant{}
	if s.fhir, err = newFHIRState(s); err != nil {
		return nil, err
	}
	if s.auth, err = newAuthState(s); err != nil {
		return nil, err
	}
	for _, c := range opts.Clients {
		if _, err := s.RegisterClient(c); err != nil {
			return nil, fmt.Errorf("sandbox: client %q: %w", c.ID, err)
		}
	}
	s.auth.routes(s.mux)
	s.fhir.routes(s.mux)
	s.openapiRoutes(s.mux)
	s.controlRoutes(s.mux)
	return s, nil
}

// ServeHTTP implements http.Handler, logging one redacted line per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: 200}
	s.mux.ServeHTTP(rw, r)
	s.log.Info("request", "method", r.Method, "url", httpx.Redact(r.URL.String()), "status", rw.status,
		"dur_ms", time.Since(start).Milliseconds())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach the underlying writer (Flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Now returns the sandbox clock: Options.Now plus the clock offset (SBX-20).
func (s *Server) Now() time.Time { return s.opts.Now().Add(time.Duration(s.offset.Load())) }

// SetClockOffset shifts the sandbox clock (SBX-20).
func (s *Server) SetClockOffset(d time.Duration) { s.offset.Store(int64(d)) }

// Origin returns the origin for absolute URLs in responses to r ("http://127.0.0.1:9090").
func (s *Server) Origin(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return strings.TrimRight(s.opts.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// FHIRBase returns the FHIR base URL for r: Origin(r) + "/fhir".
func (s *Server) FHIRBase(r *http.Request) string { return s.Origin(r) + "/fhir" }

// Count returns the value of a named counter ("token_requests", "token_requests:client_credentials",
// "bulk_file_bytes", …). Tests use it to prove "exactly one token request".
func (s *Server) Count(name string) int64 {
	if v, ok := s.stats.Load(name); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// incr adds 1 to a named counter.
func (s *Server) incr(name string) { s.add(name, 1) }

func (s *Server) add(name string, n int64) {
	v, _ := s.stats.LoadOrStore(name, new(atomic.Int64))
	v.(*atomic.Int64).Add(n)
}

// randomToken returns n random bytes as unpadded base64url text.
func randomToken() string { return rand.Text() + rand.Text() }
