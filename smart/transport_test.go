package smart

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// seqSource hands out "tok-1", "tok-2", … and records invalidations; it implements Invalidator.
type seqSource struct {
	mu          sync.Mutex
	n           int
	cur         *oauth2.Token
	invalidated []string
	fetches     int
}

func (s *seqSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		s.n++
		s.fetches++
		s.cur = &oauth2.Token{AccessToken: "tok-" + string(rune('0'+s.n)), TokenType: "Bearer"}
	}
	return s.cur, nil
}

func (s *seqSource) Invalidate(t *oauth2.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, t.AccessToken)
	if s.cur != nil && s.cur.AccessToken == t.AccessToken {
		s.cur = nil
	}
}

// bearerRecorder is a test server recording the Authorization header of each request.
type bearerRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
	hits  atomic.Int64
}

func newBearerRecorder(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *bearerRecorder {
	t.Helper()
	rec := &bearerRecorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.hits.Add(1)
		rec.mu.Lock()
		rec.auths = append(rec.auths, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *bearerRecorder) authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

func TestTransportTokenOnlyToTrustedOrigins(t *testing.T) { // CONV-1, API-02, BS-09
	t.Parallel()
	// other listens on the same host (127.0.0.1) on another port: a different origin.
	other := newBearerRecorder(t, nil)
	trusted := newBearerRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect-other-port":
			http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
		case "/redirect-same-origin":
			http.Redirect(w, r, "/landing", http.StatusFound)
		}
	})
	hc, err := NewClient(&seqSource{}, trusted.URL+"/fhir")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/direct", "/redirect-other-port", "/redirect-same-origin"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, trusted.URL+path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Authorization") != "" {
			t.Fatal("the caller's request was modified")
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, other.URL+"/direct", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for i, a := range trusted.authorizations() {
		if a != "Bearer tok-1" {
			t.Errorf("trusted request %d: Authorization = %q", i, a)
		}
	}
	if got := len(trusted.authorizations()); got != 4 { // direct, 2 redirects, same-origin landing
		t.Errorf("trusted hits = %d, want 4", got)
	}
	for i, a := range other.authorizations() {
		if a != "" {
			t.Errorf("untrusted origin (same host, other port) request %d received the token", i)
		}
	}
	if got := len(other.authorizations()); got != 2 {
		t.Errorf("untrusted hits = %d, want 2", got)
	}
}

func TestTransport401InvalidatesAndRetriesOnce(t *testing.T) { // CONV-3
	t.Parallel()
	srv := newBearerRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") == "Bearer tok-1" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write(body) // echo, to prove the body was replayed
	})
	src := &seqSource{}
	tr, err := NewTransport(src, nil, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/Patient", strings.NewReader(`{"resourceType":"Patient"}`))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != `{"resourceType":"Patient"}` {
		t.Fatalf("status %d, body %q", resp.StatusCode, got)
	}
	if strings.Join(src.invalidated, ",") != "tok-1" || src.fetches != 2 || srv.hits.Load() != 2 {
		t.Fatalf("invalidated %v, fetches %d, hits %d; want tok-1, 2, 2", src.invalidated, src.fetches, srv.hits.Load())
	}
}

func TestTransportSecond401Surfaces(t *testing.T) { // CONV-3: never loop
	t.Parallel()
	srv := newBearerRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="revoked"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	src := &seqSource{}
	hc, _ := NewClient(src, srv.URL)
	resp, err := hc.Get(srv.URL + "/Patient")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "revoked") {
		t.Fatalf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if srv.hits.Load() != 2 || src.fetches != 2 {
		t.Fatalf("hits %d, fetches %d; want exactly one retry", srv.hits.Load(), src.fetches)
	}
}

func TestTransportNoRetryWithoutReplayableBodyOrInvalidator(t *testing.T) {
	t.Parallel()
	unauthorized := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }
	t.Run("body without GetBody", func(t *testing.T) {
		t.Parallel()
		srv := newBearerRecorder(t, unauthorized)
		src := &seqSource{}
		hc, _ := NewClient(src, srv.URL)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("x")))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || srv.hits.Load() != 1 {
			t.Fatalf("status %d, hits %d: a one-shot body must not be retried", resp.StatusCode, srv.hits.Load())
		}
		// CONV-3: the refused token is dropped all the same, so the next request does not reuse it.
		if strings.Join(src.invalidated, ",") != "tok-1" {
			t.Fatalf("invalidated %v, want tok-1", src.invalidated)
		}
		resp, err = hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if auths := srv.authorizations(); auths[1] != "Bearer tok-2" {
			t.Fatalf("the next request carried %q, want the new token", auths[1])
		}
	})
	t.Run("static source", func(t *testing.T) {
		t.Parallel()
		srv := newBearerRecorder(t, unauthorized)
		hc, _ := NewClient(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static"}), srv.URL)
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || srv.hits.Load() != 1 {
			t.Fatalf("status %d, hits %d", resp.StatusCode, srv.hits.Load())
		}
	})
}

func TestTransportRefusesUnsafeTokens(t *testing.T) { // CONV-4, TOK-13
	t.Parallel()
	tests := []struct {
		name string
		tok  *oauth2.Token
		want error
	}{
		{"CRLF header injection", &oauth2.Token{AccessToken: "abc\r\nX-Evil: 1"}, ErrInvalidAccessToken},
		{"space", &oauth2.Token{AccessToken: "abc def"}, ErrInvalidAccessToken},
		{"MAC token type", &oauth2.Token{AccessToken: "abc", TokenType: "mac"}, ErrInvalidAccessToken},
		{"empty", &oauth2.Token{}, ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newBearerRecorder(t, nil)
			hc, _ := NewClient(oauth2.StaticTokenSource(tt.tok), srv.URL)
			body := &closeRecorder{Reader: strings.NewReader("payload")}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, body)
			_, err := hc.Do(req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.tok.AccessToken != "" && strings.Contains(err.Error(), tt.tok.AccessToken) {
				t.Fatal("the token leaked into the error")
			}
			if srv.hits.Load() != 0 {
				t.Fatal("the request was sent")
			}
			if !body.closed.Load() {
				t.Fatal("the request body was not closed")
			}
		})
	}
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

// ctxSource records whether TokenContext received the request's context.
type ctxSource struct{ sawValue atomic.Bool }

type transportCtxKey struct{}

func (s *ctxSource) Token() (*oauth2.Token, error) {
	return nil, errors.New("Token must not be called")
}
func (s *ctxSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	s.sawValue.Store(ctx.Value(transportCtxKey{}) == "req")
	return &oauth2.Token{AccessToken: "ctx-tok"}, nil
}

func TestTransportPrefersContextTokenSource(t *testing.T) {
	t.Parallel()
	srv := newBearerRecorder(t, nil)
	src := &ctxSource{}
	hc, _ := NewClient(src, srv.URL)
	req, _ := http.NewRequestWithContext(context.WithValue(t.Context(), transportCtxKey{}, "req"), http.MethodGet, srv.URL, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !src.sawValue.Load() || srv.authorizations()[0] != "Bearer ctx-tok" {
		t.Fatalf("TokenContext saw request ctx: %v; auth %q", src.sawValue.Load(), srv.authorizations()[0])
	}
}

func TestTransportTokenErrorAndNewTokenError(t *testing.T) {
	t.Parallel()
	boom := errors.New("token endpoint says no")
	srv := newBearerRecorder(t, nil)
	hc, _ := NewClient(oauth2.ReuseTokenSource(nil, failingSource{boom}), srv.URL)
	if _, err := hc.Get(srv.URL); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the source's error", err)
	}

	// The first token works, the fetch after a 401 fails: the fetch error is reported.
	srv401 := newBearerRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) })
	src := &failAfterFirst{err: boom}
	hc, _ = NewClient(src, srv401.URL)
	if _, err := hc.Get(srv401.URL); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the refetch error", err)
	}
}

type failingSource struct{ err error }

func (s failingSource) Token() (*oauth2.Token, error) { return nil, s.err }

type failAfterFirst struct {
	calls atomic.Int64
	err   error
}

func (s *failAfterFirst) Token() (*oauth2.Token, error) {
	if s.calls.Add(1) > 1 {
		return nil, s.err
	}
	return &oauth2.Token{AccessToken: "first"}, nil
}
func (s *failAfterFirst) Invalidate(*oauth2.Token) {}

func TestNewTransportErrors(t *testing.T) {
	t.Parallel()
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"})
	tests := []struct {
		name    string
		src     oauth2.TokenSource
		origins []string
	}{
		{"nil source", nil, []string{"https://ehr.example"}},
		{"no origin", src, nil},
		{"relative origin", src, []string{"/fhir"}},
	}
	for _, tt := range tests {
		if _, err := NewTransport(tt.src, nil, tt.origins...); err == nil || !strings.HasPrefix(err.Error(), "smart: ") {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

func TestTransportWithCachingSource(t *testing.T) { // CachingTokenSource + Transport: a 401 drops the cached token
	t.Parallel()
	var fetches atomic.Int64
	c := NewCachingTokenSource(func(ctx context.Context) (*Token, error) {
		n := fetches.Add(1)
		return &Token{Token: &oauth2.Token{AccessToken: "c" + string(rune('0'+n)), TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}}, nil
	}, CacheOptions{})
	srv := newBearerRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer c1" {
			w.WriteHeader(401)
		}
	})
	hc, _ := NewClient(c, srv.URL)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, bytes.NewReader([]byte("{}")))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || fetches.Load() != 2 {
		t.Fatalf("status %d after %d fetches", resp.StatusCode, fetches.Load())
	}
	if a := srv.authorizations(); len(a) != 2 || a[1] != "Bearer c2" {
		t.Fatalf("authorizations %v", a)
	}
	// The renewed token is cached.
	resp, err = hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fetches.Load() != 2 {
		t.Fatalf("fetches = %d after a third request, want 2", fetches.Load())
	}
}

// TestTransportPlainHTTPNeedsOptIn: plain http is for loopback only unless InsecureAllowHTTP (CONV-1):
// a non-loopback http trusted origin is refused at construction, and a request to a non-loopback
// http URL is refused before it is sent, without fetching or attaching the token.
func TestTransportPlainHTTPNeedsOptIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		origins []string
		allow   bool
		wantErr bool
	}{
		{"http non-loopback refused", []string{"http://ehr.example/fhir"}, false, true},
		{"http non-loopback among https refused", []string{"https://ehr.example", "http://auth.example"}, false, true},
		{"HTTP upper-case scheme refused", []string{"HTTP://ehr.example"}, false, true},
		{"http non-loopback with opt-in", []string{"http://ehr.example/fhir"}, true, false},
		{"http loopback", []string{"http://127.0.0.1:8080", "http://localhost", "http://[::1]:9"}, false, false},
		{"https", []string{"https://ehr.example"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "secret-token", TokenType: "Bearer"})
			_, err := NewTransportWithOptions(src, TransportOptions{TrustedOrigins: tt.origins, InsecureAllowHTTP: tt.allow})
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && (!errors.Is(err, httpx.ErrInsecureURL) || !strings.HasPrefix(err.Error(), "smart: ")) {
				t.Errorf("err = %v, want smart: … wrapping httpx.ErrInsecureURL", err)
			}
			if !tt.allow && !tt.wantErr {
				// NewTransport and NewClient apply the same policy as the zero options.
				if _, err := NewTransport(src, nil, tt.origins...); err != nil {
					t.Errorf("NewTransport: %v", err)
				}
			}
		})
	}
	for _, origin := range []string{"http://ehr.example", "http://10.0.0.1:8080"} {
		if _, err := NewTransport(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"}), nil, origin); !errors.Is(err, httpx.ErrInsecureURL) {
			t.Errorf("NewTransport(%s): %v", origin, err)
		}
		if _, err := NewClient(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "x"}), origin); !errors.Is(err, httpx.ErrInsecureURL) {
			t.Errorf("NewClient(%s): %v", origin, err)
		}
	}
}

// roundTripFunc records what reaches the base transport.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTransportRefusesPlainHTTPRequest: a request (or a redirect hop) to a non-loopback http URL
// never reaches the network without InsecureAllowHTTP, trusted origin or not (CONV-1); with the
// opt-in it goes out, with the token only to the trusted origin.
func TestTransportRefusesPlainHTTPRequest(t *testing.T) {
	t.Parallel()
	var sent atomic.Int64
	var lastAuth atomic.Value
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		lastAuth.Store(r.Header.Get("Authorization"))
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	src := &seqSource{}
	strict, err := NewTransport(src, base, "https://ehr.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://ehr.example/fhir/Patient", "http://other.example/x", "http://ehr.example:443/fhir"} {
		body := &closeRecorder{Reader: strings.NewReader("{}")}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, u, body)
		resp, err := strict.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.Is(err, httpx.ErrInsecureURL) || !strings.HasPrefix(err.Error(), "smart: ") {
			t.Errorf("%s: err = %v, want smart: … wrapping httpx.ErrInsecureURL", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "tok-") {
			t.Errorf("%s: error leaks the token: %v", u, err)
		}
		if !body.closed.Load() {
			t.Errorf("%s: request body not closed", u)
		}
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("%d refused requests reached the base transport", n)
	}
	if src.fetches != 0 {
		t.Errorf("a token was fetched %d times for refused requests", src.fetches)
	}

	// Loopback http needs no opt-in.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1:1/x", nil)
	if resp, err := strict.RoundTrip(req); err != nil {
		t.Errorf("loopback http: %v", err)
	} else {
		resp.Body.Close()
	}

	insecure, err := NewTransportWithOptions(src, TransportOptions{Base: base, TrustedOrigins: []string{"http://ehr.example"}, InsecureAllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, auth string }{
		{"http://ehr.example/fhir/Patient", "Bearer tok-1"},
		{"http://other.example/x", ""},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.url, nil)
		resp, err := insecure.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s with InsecureAllowHTTP: %v", tc.url, err)
		}
		resp.Body.Close()
		if got := lastAuth.Load(); got != tc.auth {
			t.Errorf("%s: Authorization = %q, want %q", tc.url, got, tc.auth)
		}
	}
}
