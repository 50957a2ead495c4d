package httpx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// CONV-1, SEC-11, BULK-18.
func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://ehr.example.org/fhir", false, true},
		{"http://127.0.0.1:9090/fhir", false, true},
		{"http://127.8.9.10/fhir", false, true},
		{"http://localhost:8080/x", false, true},
		{"http://[::1]:8080/x", false, true},
		{"http://ehr.example.org/fhir", false, false},
		{"http://ehr.example.org/fhir", true, true},
		{"file:///etc/passwd", false, false},
		{"data:text/plain,hi", false, false},
		{"ftp://h/x", false, false},
		{"https://169.254.169.254/latest/meta-data", false, false},
		{"http://169.254.169.254/", true, false},
		{"https://metadata.google.internal/", false, false},
		{"https://[fe80::1]/", false, false},
		{"https://0.0.0.0/", false, false},
		{"https://user:pw@ehr.example.org/", false, false},
		{"/relative/path", false, false},
		{"https:///nohost", false, false},
	}
	for _, tt := range tests {
		err := CheckURL(mustURL(t, tt.url), tt.allowHTTP)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q, %v) = %v, want ok=%v", tt.url, tt.allowHTTP, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInsecureURL) {
			t.Errorf("CheckURL(%q): error %v does not wrap ErrInsecureURL", tt.url, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("CheckURL(%q): error leaks user info: %v", tt.url, err)
		}
	}
}

func TestOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		same bool
	}{
		{"https://EHR.example.org/fhir", "https://ehr.example.org:443/other?x", true},
		{"http://127.0.0.1/a", "http://127.0.0.1:80/b", true},
		{"https://h/a", "https://h:8443/a", false},
		{"http://h/a", "https://h/a", false},
		{"https://h.example/a", "https://h.example.evil/a", false},
	}
	for _, tt := range tests {
		if got := SameOrigin(mustURL(t, tt.a), mustURL(t, tt.b)); got != tt.same {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
	o, err := NewOrigins("https://ehr.example.org/fhir", "http://127.0.0.1:9090")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Allows(mustURL(t, "https://ehr.example.org:443/bulk/file")) || o.Allows(mustURL(t, "https://ehr.example.org:8443/")) {
		t.Error("Origins.Allows: port must be part of the origin")
	}
	if _, err := NewOrigins("not a url"); err == nil {
		t.Error("NewOrigins accepted a relative entry")
	}
	var zero Origins
	if zero.Allows(mustURL(t, "https://ehr.example.org/")) {
		t.Error("zero Origins must allow nothing")
	}
}

// CONV-3, BULK-13.
func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 0 ", 0, true},
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{"1795356818", 0, false},    // epoch seconds
		{"1795356818000", 0, false}, // epoch milliseconds (bulk-data-server)
		{"99999999", 99999999 * time.Second, true},
		{"Thu, 26 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Fri, 31 Dec 1999 23:59:59 GMT", 0, true}, // in the past: poll now
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second} {
		for range 50 {
			d := Backoff(attempt, 0)
			if d < base*8/10 || d > base*12/10 {
				t.Fatalf("Backoff(%d) = %v, want %v ±20%%", attempt, d, base)
			}
		}
	}
	if d := Backoff(40, 3*time.Second); d > 3600*time.Millisecond {
		t.Fatalf("Backoff cap not applied: %v", d)
	}
}

// CONV-2.
func TestReadLimited(t *testing.T) {
	t.Parallel()
	b, err := ReadLimited(strings.NewReader("hello"), 5)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadLimited at limit = %q, %v", b, err)
	}
	_, err = ReadLimited(strings.NewReader("hello!"), 5)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("ReadLimited over limit: %v, want ErrBodyTooLarge", err)
	}
	if s := Snippet(bytes.Repeat([]byte("<html>\x1b[31m"), 200)); len(s) > MaxErrorSnippet*7 || strings.Contains(s, "\x1b") {
		t.Fatalf("Snippet not bounded or not escaped: %q", s)
	}
}

// CONV-1: redirects never leave the first request's origin (not even to another port).
func TestSameOriginRedirects(t *testing.T) {
	t.Parallel()
	var gotAuth string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gotAuth = r.Header.Get("Authorization") }))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			w.WriteHeader(204)
			return
		}
		if r.URL.Path == "/hop" {
			http.Redirect(w, r, "/same", http.StatusFound)
			return
		}
		http.Redirect(w, r, other.URL+"/stolen", http.StatusFound)
	}))
	defer first.Close()
	c := NewClient(5 * time.Second)
	req, _ := http.NewRequestWithContext(context.Background(), "GET", first.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer secret-token")
	_, err := c.Do(req)
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("cross-origin redirect: err = %v, want *RedirectError", err)
	}
	if gotAuth != "" || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("token reached the other origin or the error: %q / %v", gotAuth, err)
	}
	resp, err := c.Get(first.URL + "/hop")
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("same-origin redirect: %v %v", resp, err)
	}
	resp.Body.Close()
}

// SEC-08, CONV-4.
func TestRedactingHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(NewRedactingHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.With("client_secret", "s3cr3t").Info("x",
		"access_token", "AT-123456",
		slog.Group("req", "Authorization", "Bearer AT-123456", "url", "https://h/cb?code=CODE-999&state=ST-1&x=1"),
		"url", "https://h/cb?code=CODE-999",
		"ok", "visible")
	out := buf.String()
	for _, secret := range []string{"s3cr3t", "AT-123456", "CODE-999", "ST-1"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "visible") || !strings.Contains(out, "x=1") {
		t.Errorf("log lost harmless data: %s", out)
	}
}

// CONV-6, BULK-14.
func TestSanitizeText(t *testing.T) {
	t.Parallel()
	got := SanitizeText("50%\x1b[2J done\r\x07\u202e\nnext")
	if strings.ContainsAny(got, "\x1b\r\x07\u202e") {
		t.Fatalf("SanitizeText left control characters: %q", got)
	}
	if !strings.Contains(got, "50%") || !strings.Contains(got, "\nnext") {
		t.Fatalf("SanitizeText mangled text: %q", got)
	}
}

func ExampleParseRetryAfter() {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"120", "Thu, 26 Nov 2026 12:01:00 GMT", "1795356818000"} {
		d, ok := ParseRetryAfter(v, now)
		fmt.Println(d, ok)
	}
	// Output:
	// 2m0s true
	// 1m0s true
	// 0s false
}

// CONV-1: the dialer refuses metadata and link-local addresses after resolution, whatever the name.
func TestRefuseForbiddenAddr(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"169.254.169.254:80": false, "[fe80::1]:443": false, "[fd00:ec2::254]:80": false, "0.0.0.0:80": false,
		"127.0.0.1:9090": true, "[::1]:443": true, "93.184.216.34:443": true,
	} {
		err := refuseForbiddenAddr("tcp", addr, nil)
		if (err == nil) != ok || err != nil && !errors.Is(err, ErrInsecureURL) {
			t.Errorf("refuseForbiddenAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
	// End to end: a transport built by NewTransport never opens the connection.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://169.254.169.254/latest/meta-data", nil)
	tr := NewTransport()
	tr.Proxy = nil // the dialer's check runs before connect(): no packet leaves the machine
	if _, err := tr.RoundTrip(req); !errors.Is(err, ErrInsecureURL) {
		t.Fatalf("RoundTrip to the metadata address: %v, want ErrInsecureURL", err)
	}
}

// SEC-08: redaction does not depend on the query being well formed.
func TestRedact(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://h/cb?code=abc&state=xyz&x=1":    "https://h/cb?code=REDACTED&state=REDACTED&x=1",
		"https://h/cb?access_token=abc%zz&x=1":   "https://h/cb?access_token=REDACTED&x=1",
		"https://h/cb?x=1;refresh_token=r1#frag": "https://h/cb?x=1;refresh_token=REDACTED#frag",
		"https://h/cb?Code=abc":                  "https://h/cb?Code=REDACTED",
		"https://h/cb?client%5Fsecret=s":         "https://h/cb?client%5Fsecret=REDACTED",
		"https://h/path/no/query":                "https://h/path/no/query",
		"https://h/cb?x=1&y=2":                   "https://h/cb?x=1&y=2",
		"not a url ?token=t0k":                   "not a url ?token=REDACTED",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
