package launch_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// env is one app (launch.Config behind an httptest server) and one or more in-process sandboxes.
type env struct {
	t        testing.TB
	srv      *smarttest.Server
	sb       *sandbox.Server
	fhir     string // FHIR base of the sandbox
	app      *httptest.Server
	cfg      *launch.Config
	clientID string
	secret   string
	rec      *recorder
	logs     *syncBuffer
	clock    *clock

	mu   sync.Mutex
	errs []error
}

type envOptions struct {
	authMethod string // none (default), client_secret_basic, private_key_jwt
	alg        string // private_key_jwt: ES384 (default) or RS384
	version    string // sandbox version mode
	as         string // sandbox vendor mode (smarttest.WithAs)
	configure  func(*launch.Config)
	scopes     []string
	// wrap, when set, serves the sandbox through wrap(sandbox) on an origin of its own, which is
	// then the FHIR base (e.fhir) the app is launched from.
	wrap func(sandbox http.Handler) http.Handler
}

// newEnv starts a sandbox and an app registered with it.
func newEnv(t testing.TB, opts envOptions) *env {
	t.Helper()
	e := &env{t: t, rec: &recorder{base: http.DefaultTransport}, logs: &syncBuffer{}, clock: &clock{}}
	e.srv = startSandbox(t, opts.version, opts.as)
	e.sb, e.fhir = e.srv.Sandbox, e.srv.FHIRBase
	if opts.wrap != nil {
		front := httptest.NewServer(opts.wrap(e.sb))
		t.Cleanup(front.Close)
		e.fhir = front.URL + "/fhir"
	}

	mux := http.NewServeMux()
	e.app = httptest.NewServer(mux)
	t.Cleanup(e.app.Close)

	method := opts.authMethod
	if method == "" {
		method = "none"
	}
	scopes := opts.scopes
	if scopes == nil {
		scopes = []string{"openid", "fhirUser", "offline_access", "patient/*.rs", "launch/patient"}
	}
	e.cfg = &launch.Config{
		RedirectURL:    e.app.URL + "/callback",
		Scopes:         scopes,
		AllowedIssuers: []string{e.fhir},
		HTTPClient:     &http.Client{Transport: e.rec, Timeout: 30 * time.Second},
		Logger:         slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:            e.clock.now,
		OnError: func(w http.ResponseWriter, r *http.Request, err error) {
			e.mu.Lock()
			e.errs = append(e.errs, err)
			e.mu.Unlock()
			launch.ErrorPage(w, r, err)
		},
	}
	app := e.register(e.srv, method, opts.alg)
	e.clientID, e.secret = app.ID, app.Secret
	e.cfg.ClientID = e.clientID
	switch method {
	case smarttest.SecretBasic:
		e.cfg.ClientSecret = e.secret
	case smarttest.PrivateKeyJWT:
		e.cfg.PrivateKey = app.Key.Signer // KeyID and Algorithm default: thumbprint, from the key type
	}
	if opts.configure != nil {
		opts.configure(e.cfg)
	}
	mountApp(mux, e.cfg, e.fhir)
	return e
}

func startSandbox(t testing.TB, version, as string) *smarttest.Server {
	t.Helper()
	opts := []smarttest.Option{smarttest.WithPatients(5), smarttest.WithAs(as)}
	if version != "" {
		opts = append(opts, smarttest.WithVersion(version))
	}
	return smarttest.NewServer(t, opts...)
}

// register registers the app with srv.
func (e *env) register(srv *smarttest.Server, method, alg string) *smarttest.AppClient {
	e.t.Helper()
	return srv.RegisterApp(e.t, smarttest.App{
		Name: "launch test app", AuthMethod: method, Alg: alg, SkipLogin: true,
		RedirectURIs: []string{e.cfg.RedirectURL}, LaunchURL: e.app.URL + "/launch",
	})
}

// mountApp mounts the launch handlers and three app pages on mux.
func mountApp(mux *http.ServeMux, cfg *launch.Config, fhir string) {
	mux.Handle("GET /launch", cfg.EHRLaunchHandler())
	mux.Handle("GET /login", cfg.StandaloneHandler(fhir))
	mux.Handle("GET /callback", cfg.CallbackHandler(nil))
	mux.Handle("GET /{$}", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := launch.FromRequest(r)
		ref, inBase := s.FHIRUserReference()
		writeJSONTest(w, pageInfo{Handle: s.Handle, Issuer: s.Issuer, Patient: s.Patient, Encounter: s.Encounter,
			FHIRUser: s.FHIRUser, FHIRUserRef: ref, FHIRUserInBase: inBase, Legacy: s.FHIRUserLegacy,
			Scopes: s.Scopes.String(), Refreshable: s.Refreshable, EHR: s.EHRLaunch, Banner: s.NeedPatientBanner,
			Expiry: s.Expiry})
	})))
	mux.Handle("GET /patient", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := launch.FromRequest(r)
		resp, err := s.HTTPClient().Get(strings.TrimRight(s.Issuer, "/") + "/Patient/" + url.PathEscape(s.Patient))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})))
	mux.Handle("POST /refresh", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := launch.FromRequest(r)
		if err := s.Refresh(r.Context()); err != nil {
			cfg.OnError(w, r, err)
			return
		}
		writeJSONTest(w, pageInfo{Handle: s.Handle, Expiry: s.Expiry, Refreshable: s.Refreshable, Patient: s.Patient})
	})))
}

type pageInfo struct {
	Handle, Issuer, Patient, Encounter, FHIRUser, FHIRUserRef, Scopes string
	FHIRUserInBase, Legacy, Refreshable, EHR, Banner                  bool
	Expiry                                                            time.Time
}

func writeJSONTest(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// lastErr returns the last error handed to OnError, or nil.
func (e *env) lastErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.errs) == 0 {
		return nil
	}
	return e.errs[len(e.errs)-1]
}

// newLaunch mints an EHR launch for patient (default: the first) with the first practitioner as user.
func (e *env) newLaunch(patient string) string {
	if patient == "" {
		patient = e.sb.Patients()[0].ID
	}
	return e.sb.NewLaunch(sandbox.LaunchContext{Patient: patient, User: "Practitioner/" + e.sb.Practitioners()[0].ID})
}

// ehrLaunchURL is the app's launch URL for a fresh launch of patient.
func (e *env) ehrLaunchURL(patient string) string {
	return e.app.URL + "/launch?" + url.Values{"iss": {e.fhir}, "launch": {e.newLaunch(patient)}}.Encode()
}

// browser is a cookie-keeping HTTP client that follows redirects, except to paths in stopAt.
type browser struct {
	*http.Client
	stopAt string
	seen   []*url.URL // every URL visited by redirect
	mu     sync.Mutex
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{}
	b.Client = &http.Client{Jar: jar, Timeout: 30 * time.Second}
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		b.mu.Lock()
		b.seen = append(b.seen, req.URL)
		b.mu.Unlock()
		if b.stopAt != "" && req.URL.Path == b.stopAt {
			return http.ErrUseLastResponse
		}
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		return nil
	}
	return b
}

// get fetches u and returns status and body.
func (b *browser) get(t testing.TB, u string) (int, string, *http.Response) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

// launchOK runs a launch URL to the landing page and decodes it.
func (b *browser) launchOK(t testing.TB, e *env, u string) pageInfo {
	t.Helper()
	status, body, _ := b.get(t, u)
	if status != http.StatusOK {
		t.Fatalf("launch: status %d, last error %v\n%s", status, e.lastErr(), body)
	}
	var p pageInfo
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("landing page: %v\n%s", err, body)
	}
	return p
}

// callbackURL runs u until the redirect to the app's /callback and returns that URL, unvisited.
func (b *browser) callbackURL(t testing.TB, u string) string {
	t.Helper()
	b.stopAt = "/callback"
	defer func() { b.stopAt = "" }()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.Contains(loc, "/callback") {
		t.Fatalf("expected a redirect to /callback, got %d %q", resp.StatusCode, loc)
	}
	return loc
}

// recorder is a RoundTripper that records every request and the token endpoint's answers, so that
// tests can count outbound requests and search logs for every credential that went over the wire.
type recorder struct {
	base     http.RoundTripper
	mu       sync.Mutex
	requests []string // METHOD URL
	secrets  []string // token values, codes, verifiers, assertions, secrets seen on the wire
	count    atomic.Int64
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.count.Add(1)
	var form url.Values
	if req.Body != nil && req.Method == http.MethodPost {
		b, _ := io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(b))
		form, _ = url.ParseQuery(string(b))
	}
	r.mu.Lock()
	r.requests = append(r.requests, req.Method+" "+req.URL.String())
	for _, k := range []string{"code", "code_verifier", "refresh_token", "client_assertion", "client_secret"} {
		if v := form.Get(k); v != "" {
			r.secrets = append(r.secrets, v)
		}
	}
	if a := req.Header.Get("Authorization"); a != "" {
		r.secrets = append(r.secrets, a[strings.IndexByte(a, ' ')+1:])
	}
	r.mu.Unlock()
	resp, err := r.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/token") {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		r.mu.Lock()
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if s, ok := m[k].(string); ok && s != "" {
				r.secrets = append(r.secrets, s)
			}
		}
		r.mu.Unlock()
	}
	return resp, nil
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.secrets...)
}

func (r *recorder) reqs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is an adjustable clock for Config.Now.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// advance moves the app's and the sandbox's clocks together.
func (e *env) advance(d time.Duration) {
	e.clock.advance(d)
	e.sb.SetClockOffset(time.Duration(e.clock.offset.Load()))
}
