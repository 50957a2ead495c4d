package smart_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

const (
	introToken  = "tok-under-test.abc123"
	introBearer = "bearer-of-the-resource-server"
)

var introNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// introServer is a fake introspection endpoint answering body (a function of the request), counting
// the requests.
func introServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func introJSON(w http.ResponseWriter, status int, v string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, v)
}

func activeBody(exp time.Time) string {
	return fmt.Sprintf(`{"active":true,"scope":"launch openid fhirUser patient/*.rs","client_id":"app-1","exp":%d,"iat":%d,
		"iss":"https://ehr.example/fhir","sub":"u-1","fhirUser":"https://ehr.example/fhir/Practitioner/7","token_type":"Bearer",
		"aud":["https://ehr.example/fhir"],"patient":"123","encounter":"e-9","intent":"reconcile-medications","need_patient_banner":true,
		"fhirContext":[{"reference":"DiagnosticReport/5"}],"x-vendor":{"tier":"gold"}}`, exp.Unix(), exp.Add(-time.Hour).Unix())
}

func staticBearer(token string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"})
}

// TestIntrospectRequest: the request is RFC 7662 §2.1 / SMART's (INTRO-01) for each way of
// authenticating, and an active answer is read whole (INTRO-03).
func TestIntrospectRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        *smart.Introspector
		hint      string
		checkAuth func(r *http.Request) string
	}{
		{"bearer", &smart.Introspector{TokenSource: staticBearer(introBearer)}, "", func(r *http.Request) string {
			return introWant(r.Header.Get("Authorization"), "Bearer "+introBearer)
		}},
		{"client_secret_basic", &smart.Introspector{ClientID: "rs 1", ClientSecret: "s&cret:x"}, "access_token", func(r *http.Request) string {
			// RFC 6749 §2.3.1: form-encode, then Basic.
			return introWant(r.Header.Get("Authorization"), "Basic "+base64.StdEncoding.EncodeToString([]byte("rs+1:s%26cret%3Ax")))
		}},
		{"private_key_jwt", &smart.Introspector{ClientID: "rs-1", ClientAssertion: func(context.Context) (string, error) { return "signed.jwt.value", nil }}, "",
			func(r *http.Request) string {
				return introWant(r.Header.Get("Authorization"), "") + introWant(r.PostForm.Get("client_assertion"), "signed.jwt.value") +
					introWant(r.PostForm.Get("client_assertion_type"), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
					introWant(r.PostForm.Get("client_id"), "rs-1")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			problems := make(chan string, 1)
			srv, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				problems <- introWant(r.Method, "POST") + introWant(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") +
					introWant(r.Header.Get("Accept"), "application/json") + introWant(r.PostForm.Get("token"), introToken) +
					introWant(r.PostForm.Get("token_type_hint"), tt.hint) + introWant(r.Header.Get("Epic-Client-ID"), "app-1") +
					introWant(r.URL.RawQuery, "") + tt.checkAuth(r)
				introJSON(w, 200, activeBody(introNow.Add(time.Hour)))
			})
			in := tt.in
			in.Endpoint, in.Now = srv.URL+"/introspect", func() time.Time { return introNow }
			in.Header = http.Header{"Epic-Client-ID": {"app-1"}}
			got, err := in.IntrospectWithHint(t.Context(), introToken, tt.hint)
			if err != nil {
				t.Fatal(err)
			}
			if p := <-problems; p != "" {
				t.Errorf("request: %s", p)
			}
			exp := introNow.Add(time.Hour).Truncate(time.Second)
			wantRes := &smart.Introspection{Active: true, Scope: "launch openid fhirUser patient/*.rs", ClientID: "app-1",
				Expiry: exp, IssuedAt: exp.Add(-time.Hour), Issuer: "https://ehr.example/fhir", Subject: "u-1",
				FHIRUser: "https://ehr.example/fhir/Practitioner/7", TokenType: "Bearer", Audience: []string{"https://ehr.example/fhir"},
				LaunchContext: smart.LaunchContext{Patient: "123", Encounter: "e-9", Intent: "reconcile-medications", NeedPatientBanner: true,
					FHIRContext: []smart.FHIRContextItem{{Reference: "DiagnosticReport/5", Role: "launch"}},
					Extensions:  map[string]json.RawMessage{"x-vendor": json.RawMessage(`{"tier":"gold"}`)}}}
			if diff := cmp.Diff(wantRes, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !got.GrantedScopes().Allows("patient", "Observation", smart.PermRead) {
				t.Error("granted scopes do not allow patient/Observation read")
			}
		})
	}
}

func introWant(got, want string) string {
	if got != want {
		return fmt.Sprintf("got %q, want %q; ", got, want)
	}
	return ""
}

// TestIntrospectInactive: active:false means inactive, and nothing else in the answer is read (INTRO-02).
func TestIntrospectInactive(t *testing.T) {
	t.Parallel()
	srv, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) {
		introJSON(w, 200, `{"active":false,"scope":"system/*.cruds","client_id":"evil","exp":9999999999,"patient":"../x"}`)
	})
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer)}
	got, err := in.Introspect(t.Context(), introToken)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, &smart.Introspection{}) || len(got.GrantedScopes()) != 0 {
		t.Errorf("inactive answer read: %+v", got)
	}
}

// TestIntrospectMalformed: an active answer must carry scope, client_id and exp (INTRO-03); every
// other break of RFC 7662 §2.2 is a typed error naming the member, never a panic.
func TestIntrospectMalformed(t *testing.T) {
	t.Parallel()
	exp := introNow.Add(time.Hour).Unix()
	tests := []struct {
		name, ctype, body, field string
	}{
		{"missing exp", "application/json", `{"active":true,"scope":"a","client_id":"c"}`, "exp"},
		{"missing scope", "application/json", fmt.Sprintf(`{"active":true,"client_id":"c","exp":%d}`, exp), "scope"},
		{"missing client_id", "application/json", fmt.Sprintf(`{"active":true,"scope":"a","exp":%d}`, exp), "client_id"},
		{"empty client_id", "application/json", fmt.Sprintf(`{"active":true,"scope":"a","client_id":"","exp":%d}`, exp), "client_id"},
		{"scope not a string", "application/json", fmt.Sprintf(`{"active":true,"scope":["a"],"client_id":"c","exp":%d}`, exp), "scope"},
		{"exp not a number", "application/json", `{"active":true,"scope":"a","client_id":"c","exp":"soon"}`, "exp"},
		{"exp negative", "application/json", `{"active":true,"scope":"a","client_id":"c","exp":-1}`, "exp"},
		{"exp in milliseconds", "application/json", fmt.Sprintf(`{"active":true,"scope":"a","client_id":"c","exp":%d}`, exp*1000), "exp"},
		{"aud a number", "application/json", fmt.Sprintf(`{"active":true,"scope":"a","client_id":"c","exp":%d,"aud":5}`, exp), "aud"},
		{"patient a path", "application/json", fmt.Sprintf(`{"active":true,"scope":"a","client_id":"c","exp":%d,"patient":"../Patient/1"}`, exp), "patient"},
		{"missing active", "application/json", `{"scope":"a"}`, "active"},
		{"active a string", "application/json", `{"active":"true","scope":"a","client_id":"c","exp":1}`, "active"},
		{"duplicate active", "application/json", `{"active":false,"active":true}`, ""},
		{"array", "application/json", `[{"active":true}]`, ""},
		{"truncated", "application/json", `{"active":true,`, ""},
		{"html", "text/html", `<html>login</html>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				_, _ = io.WriteString(w, tt.body)
			})
			in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), Now: func() time.Time { return introNow }}
			res, err := in.Introspect(t.Context(), introToken)
			var re *smart.IntrospectionResponseError
			if !errors.Is(err, smart.ErrMalformedIntrospection) || !errors.As(err, &re) || re.Field != tt.field || res != nil {
				t.Fatalf("= %+v, %v; want a malformed-response error on %q", res, err, tt.field)
			}
		})
	}
}

// TestIntrospectExpiry: exp is authoritative by the local introClock even when the server says active
// (INTRO-04), with Leeway for skew; nbf in the future is not active either.
func TestIntrospectExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		exp, nbf    time.Time
		leeway      time.Duration
		wantActive  bool
		wantExpired bool
	}{
		{"future", introNow.Add(time.Minute), time.Time{}, 0, true, false},
		{"past", introNow.Add(-time.Minute), time.Time{}, 0, false, true},
		{"exactly now", introNow, time.Time{}, 0, false, true},
		{"past, within leeway", introNow.Add(-10 * time.Second), time.Time{}, 30 * time.Second, true, false},
		{"past, beyond leeway", introNow.Add(-time.Minute), time.Time{}, 30 * time.Second, false, true},
		{"nbf in the future", introNow.Add(time.Hour), introNow.Add(time.Minute), 0, false, true},
		{"nbf within leeway", introNow.Add(time.Hour), introNow.Add(10 * time.Second), 30 * time.Second, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := fmt.Sprintf(`{"active":true,"scope":"system/*.rs","client_id":"c","exp":%d`, tt.exp.Unix())
			if !tt.nbf.IsZero() {
				body += fmt.Sprintf(`,"nbf":%d`, tt.nbf.Unix())
			}
			srv, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) { introJSON(w, 200, body+"}") })
			in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), Leeway: tt.leeway, Now: func() time.Time { return introNow }}
			got, err := in.Introspect(t.Context(), introToken)
			if err != nil {
				t.Fatal(err)
			}
			if got.Active != tt.wantActive || got.Expired != tt.wantExpired {
				t.Errorf("active %v expired %v; want %v %v", got.Active, got.Expired, tt.wantActive, tt.wantExpired)
			}
			if !got.Active && (got.Scope != "" || got.ClientID != "" || !got.Expiry.Equal(tt.exp.Truncate(time.Second))) {
				t.Errorf("an expired token kept its grant: %+v", got)
			}
		})
	}
	// A numeric string is tolerated with a warning.
	srv, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) {
		introJSON(w, 200, fmt.Sprintf(`{"active":true,"scope":"a","client_id":"c","exp":"%d"}`, introNow.Add(time.Hour).Unix()))
	})
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), Now: func() time.Time { return introNow }}
	if got, err := in.Introspect(t.Context(), introToken); err != nil || !got.Active || len(got.Warnings) != 1 {
		t.Errorf("exp as a string: %+v, %v", got, err)
	}
}

// introClock is a settable test introClock.
type introClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *introClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *introClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// switchableSource is a TokenSource whose token the test can change.
type switchableSource struct{ tok atomic.Pointer[string] }

func (s *switchableSource) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: *s.tok.Load(), TokenType: "Bearer"}, nil
}

// TestIntrospectCache: active answers are reused until min(exp, now + CacheTTL), never across
// bearer credentials, inactive ones never, and the cache stays bounded (INTRO-05).
func TestIntrospectCache(t *testing.T) {
	t.Parallel()
	clk := &introClock{now: introNow}
	var exp atomic.Int64
	exp.Store(introNow.Add(time.Hour).Unix())
	var active atomic.Bool
	active.Store(true)
	srv, calls := introServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !active.Load() {
			introJSON(w, 200, `{"active":false}`)
			return
		}
		introJSON(w, 200, fmt.Sprintf(`{"active":true,"scope":"system/*.rs","client_id":"c","exp":%d,"aud":["a"]}`, exp.Load()))
	})
	src := &switchableSource{}
	b1, b2 := "bearer-one", "bearer-two"
	src.tok.Store(&b1)
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: src, Now: clk.Now, CacheTTL: time.Minute}
	ask := func(token string, wantCalls int32) *smart.Introspection {
		t.Helper()
		got, err := in.Introspect(t.Context(), token)
		if err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != wantCalls {
			t.Fatalf("%d requests, want %d", n, wantCalls)
		}
		return got
	}
	first := ask("t1", 1)
	first.Audience[0] = "changed" // a returned answer is the caller's: the cache keeps its own copy
	clk.Add(59 * time.Second)
	if got := ask("t1", 1); got.Audience[0] != "a" {
		t.Errorf("cached answer changed through a returned one: %v", got.Audience)
	}
	ask("t1:other", 2)  // another token
	in2 := ask("t1", 2) // still cached
	_ = in2
	src.tok.Store(&b2) // other bearer credentials: no reuse
	ask("t1", 3)
	clk.Add(2 * time.Second) // TTL over
	src.tok.Store(&b1)
	ask("t1", 4)

	// exp sooner than the TTL bounds the entry.
	exp.Store(clk.Now().Add(10 * time.Second).Unix())
	ask("t2", 5)
	clk.Add(9 * time.Second)
	ask("t2", 5)
	clk.Add(2 * time.Second)
	if got := ask("t2", 6); got.Active || !got.Expired {
		t.Errorf("expired token: %+v", got)
	}

	// Inactive answers are never cached.
	active.Store(false)
	ask("t3", 7)
	ask("t3", 8)

	// The cache is bounded: with room for one entry, the second evicts the first.
	active.Store(true)
	exp.Store(clk.Now().Add(time.Hour).Unix())
	small := &smart.Introspector{Endpoint: srv.URL, TokenSource: src, Now: clk.Now, CacheTTL: time.Minute, MaxCacheEntries: 1}
	before := calls.Load()
	for _, tok := range []string{"a", "b", "a"} {
		if _, err := small.Introspect(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load() - before; n != 3 {
		t.Errorf("%d requests for a, b, a with one cache entry; want 3", n)
	}

	// Without CacheTTL nothing is cached.
	none := &smart.Introspector{Endpoint: srv.URL, TokenSource: src, Now: clk.Now}
	before = calls.Load()
	for range 2 {
		if _, err := none.Introspect(t.Context(), "t4"); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load() - before; n != 2 {
		t.Errorf("%d requests without a cache, want 2", n)
	}
}

// TestIntrospectConcurrent: one Introspector serves many goroutines (run with -race).
func TestIntrospectConcurrent(t *testing.T) {
	t.Parallel()
	srv, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		introJSON(w, 200, fmt.Sprintf(`{"active":true,"scope":"s","client_id":%q,"exp":%d}`, r.PostForm.Get("token"), time.Now().Add(time.Hour).Unix()))
	})
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), CacheTTL: time.Minute, MaxCacheEntries: 5}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			tok := fmt.Sprintf("tok-%d", i%8)
			got, err := in.Introspect(t.Context(), tok)
			if err != nil || got.ClientID != tok {
				t.Errorf("%s: %+v, %v", tok, got, err)
			}
		})
	}
	wg.Wait()
}

// invalidatingSource is a TokenSource that hands out "old" until invalidated, then "new".
type invalidatingSource struct {
	mu          sync.Mutex
	invalidated int
}

func (s *invalidatingSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := "old"
	if s.invalidated > 0 {
		tok = "new"
	}
	return &oauth2.Token{AccessToken: tok}, nil
}

func (s *invalidatingSource) Invalidate(*oauth2.Token) { s.mu.Lock(); s.invalidated++; s.mu.Unlock() }

// TestIntrospectRetry401: a 401 to our bearer token invalidates it and retries once (CONV-3); a
// second 401, or a source that cannot be invalidated, is ErrIntrospectionUnauthorized.
func TestIntrospectRetry401(t *testing.T) {
	t.Parallel()
	var accept atomic.Value
	accept.Store("Bearer new")
	srv, calls := introServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != accept.Load() {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			introJSON(w, 401, `{"error":"invalid_token"}`)
			return
		}
		introJSON(w, 200, fmt.Sprintf(`{"active":true,"scope":"s","client_id":"c","exp":%d}`, time.Now().Add(time.Hour).Unix()))
	})
	src := &invalidatingSource{}
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: src}
	if got, err := in.Introspect(t.Context(), introToken); err != nil || !got.Active || calls.Load() != 2 || src.invalidated != 1 {
		t.Fatalf("%+v, %v; %d requests, %d invalidations", got, err, calls.Load(), src.invalidated)
	}
	accept.Store("Bearer nobody")
	_, err := in.Introspect(t.Context(), introToken)
	if !errors.Is(err, smart.ErrIntrospectionUnauthorized) || calls.Load() != 4 || src.invalidated != 2 {
		t.Fatalf("%v; %d requests, %d invalidations", err, calls.Load(), src.invalidated)
	}
	plain := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer("old")}
	if _, err := plain.Introspect(t.Context(), introToken); !errors.Is(err, smart.ErrIntrospectionUnauthorized) || calls.Load() != 5 {
		t.Fatalf("static source: %v, %d requests", err, calls.Load())
	}
}

// TestIntrospectHostile: a hostile or broken endpoint gets a typed error, no hang, no leaked token.
func TestIntrospectHostile(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, r *http.Request)
		wantErr error
	}{
		{"huge body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"active":true,"scope":"`+strings.Repeat("a", 2<<20)+`"}`)
		}, smart.ErrBodyTooLarge},
		{"401 echoing the token", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			introJSON(w, 401, fmt.Sprintf(`{"error":"invalid_token","error_description":"token %s with %s refused"}`,
				r.PostForm.Get("token"), r.Header.Get("Authorization")))
		}, smart.ErrIntrospectionUnauthorized},
		{"500", func(w http.ResponseWriter, r *http.Request) { introJSON(w, 500, `{"error":"server_error"}`) }, smart.ErrIntrospection},
		{"redirect elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		}, smart.ErrIntrospection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := introServer(t, tt.answer)
			in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer)}
			res, err := in.Introspect(t.Context(), introToken)
			if !errors.Is(err, tt.wantErr) || res != nil {
				t.Fatalf("= %+v, %v; want %v", res, err, tt.wantErr)
			}
			if msg := err.Error(); strings.Contains(msg, introToken) || strings.Contains(msg, introBearer) {
				t.Errorf("error leaks a token: %s", msg)
			}
		})
	}
	if elsewhere.Load() != 0 {
		t.Error("a redirect was followed with the credentials")
	}
	var ie *smart.IntrospectionError
	srv, _ := introServer(t, tests[1].answer)
	_, err := (&smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer)}).Introspect(t.Context(), introToken)
	if !errors.As(err, &ie) || ie.StatusCode != 401 || ie.ErrorCode != "invalid_token" || !strings.Contains(ie.Description, "REDACTED") {
		t.Errorf("IntrospectionError %+v", ie)
	}

	// A server that never answers: the context ends the call. (The handler reads the body first: only
	// then does net/http notice the client going away and cancel r.Context.)
	hang, _ := introServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = (&smart.Introspector{Endpoint: hang.URL, TokenSource: staticBearer(introBearer)}).Introspect(ctx, introToken)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second || strings.Contains(err.Error(), introToken) {
		t.Errorf("hanging server: %v after %v", err, time.Since(start))
	}
}

// TestIntrospectConfig: misuse is ErrIntrospectorConfig (or the URL policy's error) before any request.
func TestIntrospectConfig(t *testing.T) {
	t.Parallel()
	srv, calls := introServer(t, func(w http.ResponseWriter, r *http.Request) { introJSON(w, 200, `{"active":false}`) })
	assertion := func(context.Context) (string, error) { return "a.b.c", nil }
	tests := []struct {
		name    string
		in      *smart.Introspector
		token   string
		wantErr error
	}{
		{"no auth", &smart.Introspector{Endpoint: srv.URL}, introToken, smart.ErrIntrospectorConfig},
		{"two auths", &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), ClientID: "c", ClientSecret: "s"}, introToken, smart.ErrIntrospectorConfig},
		{"secret without id", &smart.Introspector{Endpoint: srv.URL, ClientSecret: "s"}, introToken, smart.ErrIntrospectorConfig},
		{"credential header", &smart.Introspector{Endpoint: srv.URL, ClientAssertion: assertion, Header: http.Header{"Authorization": {"x"}}}, introToken, smart.ErrIntrospectorConfig},
		{"no endpoint", &smart.Introspector{TokenSource: staticBearer(introBearer)}, introToken, smart.ErrIntrospectorConfig},
		{"empty token", &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer)}, "", smart.ErrIntrospectorConfig},
		{"huge token", &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer)}, strings.Repeat("t", 65<<10), smart.ErrIntrospectorConfig},
		{"plain http", &smart.Introspector{Endpoint: "http://as.example.com/introspect", TokenSource: staticBearer(introBearer)}, introToken, smart.ErrInsecureURL},
		{"file URL", &smart.Introspector{Endpoint: "file:///etc/passwd", TokenSource: staticBearer(introBearer)}, introToken, smart.ErrInsecureURL},
		{"bearer with CRLF", &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer("a\r\nX-Evil: 1")}, introToken, smart.ErrInvalidAccessToken},
		{"assertion fails", &smart.Introspector{Endpoint: srv.URL, ClientAssertion: func(context.Context) (string, error) { return "", errors.New("no key") }}, introToken, nil},
	}
	for _, tt := range tests {
		_, err := tt.in.Introspect(t.Context(), tt.token)
		if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests sent by misconfigured introspectors", calls.Load())
	}
	// The profile's endpoint override: Oracle's tokeninfo (https) passes the URL policy.
	oracle := mustPreset(t, "oracle")
	if _, err := url.Parse(oracle.IntrospectionURL(nil)); err != nil || oracle.Validate() != nil {
		t.Error(err)
	}
}

func BenchmarkIntrospectCached(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		introJSON(w, 200, activeBody(time.Now().Add(time.Hour)))
	}))
	defer srv.Close()
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), CacheTTL: time.Minute}
	ctx := context.Background()
	for b.Loop() {
		if _, err := in.Introspect(ctx, introToken); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIntrospectRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		introJSON(w, 200, activeBody(time.Now().Add(time.Hour)))
	}))
	defer srv.Close()
	in := &smart.Introspector{Endpoint: srv.URL, TokenSource: staticBearer(introBearer), HTTPClient: srv.Client()}
	ctx := context.Background()
	for b.Loop() {
		if _, err := in.Introspect(ctx, introToken); err != nil {
			b.Fatal(err)
		}
	}
}
