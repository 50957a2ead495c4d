package bulk

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/smart"
)

// startJob kicks off an export on f.
func startJob(t *testing.T, f *fake) (*Job, *[]time.Duration) {
	t.Helper()
	c, waits := f.client(t)
	job, err := c.Kickoff(t.Context(), ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return job, waits
}

func TestWaitRetryAfterForms(t *testing.T) { // BULK-13, CONV-3; quirks: Oracle 5 h, BDS epoch-ms
	t.Parallel()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, retryAfter string
		want             func(d time.Duration) bool
	}{
		{"delta seconds", "120", func(d time.Duration) bool { return d == 120*time.Second }},
		{"HTTP date ahead", now.Add(90 * time.Second).Format(http.TimeFormat), func(d time.Duration) bool { return d == 90*time.Second }},
		{"HTTP date in the past → floor", "Fri, 31 Dec 1999 23:59:59 GMT", func(d time.Duration) bool { return d == time.Second }},
		{"zero → floor", "0", func(d time.Duration) bool { return d == time.Second }},
		{"Oracle five hours → cap", "18000", func(d time.Duration) bool { return d == time.Hour }},
		{"huge → cap", "99999999", func(d time.Duration) bool { return d == time.Hour }},
		{"BDS epoch milliseconds → backoff", "1717243200000", func(d time.Duration) bool { return d >= 800*time.Millisecond && d <= 1200*time.Millisecond }},
		{"epoch seconds → backoff", "1717243200", func(d time.Duration) bool { return d >= 800*time.Millisecond && d <= 1200*time.Millisecond }},
		{"garbage → backoff", "soon-ish", func(d time.Duration) bool { return d >= 800*time.Millisecond && d <= 1200*time.Millisecond }},
		{"negative → backoff", "-5", func(d time.Duration) bool { return d >= 800*time.Millisecond && d <= 1200*time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(http.StatusAccepted)
					return true
				}
				return false
			}
			job, waits := startJob(t, f)
			job.c.Now = func() time.Time { return now }
			var seen []*Status
			m, err := job.Wait(t.Context(), func(s *Status) { seen = append(seen, s) })
			if err != nil {
				t.Fatal(err)
			}
			if m == nil || job.TransactionTime != "2024-05-01T10:00:00.000+02:00" {
				t.Errorf("manifest %v, TransactionTime %q", m, job.TransactionTime)
			}
			if len(*waits) != 1 || !tt.want((*waits)[0]) {
				t.Errorf("waits = %v", *waits)
			}
			if len(seen) != 1 || seen[0].Wait != (*waits)[0] {
				t.Errorf("progress callbacks = %+v", seen)
			}
		})
	}
}

func TestWaitBackoffGrowsAndCaps(t *testing.T) { // BULK-13: exponential without Retry-After
	t.Parallel()
	f := newFake(t)
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n <= 12 {
			w.WriteHeader(http.StatusAccepted)
			return true
		}
		return false
	}
	job, waits := startJob(t, f)
	if _, err := job.Wait(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	w := *waits
	if len(w) != 12 || w[0] > 1200*time.Millisecond || w[3] < 6*time.Second || w[11] > 72*time.Second || w[11] < 48*time.Second {
		t.Errorf("waits = %v, want 1 s, 2 s, 4 s … capped near 1 min", w)
	}
}

func TestStatusProgressSanitised(t *testing.T) { // BULK-14
	t.Parallel()
	f := newFake(t)
	// Go's transport refuses ASCII control characters in header values; C1 controls (CSI) and
	// bidi overrides get through and must be escaped.
	evil := "\u009b2J\u202e 50% " + strings.Repeat("x", 500)
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("X-Progress", evil)
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	job, _ := startJob(t, f)
	st, err := job.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Complete || strings.ContainsAny(st.Progress, "\u009b\u202e") || len([]rune(st.Progress)) > maxProgress+1 {
		t.Errorf("Progress = %q", st.Progress)
	}
	if !strings.HasPrefix(st.Progress, `\u009b2J\u202e 50%`) {
		t.Errorf("control characters should be escaped, not dropped: %q", st.Progress)
	}
}

func TestWaitGarbledHeaderRetried(t *testing.T) { // BULK-14: Go refuses ESC in a header; poll again
	t.Parallel()
	f := newFake(t)
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			w.Header().Set("X-Progress", "\x1b]0;pwned\x07")
			w.WriteHeader(http.StatusAccepted)
			return true
		}
		return false
	}
	job, _ := startJob(t, f)
	var msgs []string
	if _, err := job.Wait(t.Context(), func(s *Status) {
		if s.Err != nil {
			msgs = append(msgs, s.Err.Error())
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || strings.ContainsAny(msgs[0], "\x1b\x07") {
		t.Errorf("retried errors %q: want one, escaped", msgs)
	}
}

func TestWaitTokenFailureNotRetried(t *testing.T) { // a token-endpoint refusal is not a network error
	t.Parallel()
	f := newFake(t)
	f.inProgress = 5
	job, waits := startJob(t, f)
	job.c.HTTPClient = &http.Client{Transport: failingTokenTransport{}}
	_, err := job.Wait(t.Context(), nil)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || errors.Is(err, ErrJobFailed) || len(*waits) != 0 {
		t.Fatalf("err = %v after %d waits", err, len(*waits))
	}
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		writeOutcome(w, http.StatusUnauthorized, "login", "token expired")
		return true
	}
	job.c.HTTPClient = &http.Client{Transport: bearerTransport{testTransport(t)}}
	if _, err := job.Wait(t.Context(), nil); !errors.Is(err, fhirclient.ErrUnauthorized) || errors.Is(err, ErrJobFailed) {
		t.Errorf("401: %v (the job is not failed: the credentials are)", err)
	}
}

// failingTokenTransport fails every request the way an authenticating transport does when the token
// endpoint refuses the client.
type failingTokenTransport struct{}

func (failingTokenTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("token: %w", &oauth2.RetrieveError{ErrorCode: "invalid_client"})
}

func TestWait429Storm(t *testing.T) { // BULK-15; quirk: AB2D answers 429 to fast polls
	t.Parallel()
	for _, tt := range []struct {
		name   string
		storm  int
		wantOK bool
	}{
		{"survives", DefaultMaxRateLimited, true},
		{"gives up", DefaultMaxRateLimited + 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n <= tt.storm {
					w.Header().Set("Retry-After", "2")
					writeOutcome(w, http.StatusTooManyRequests, "throttled", "slow down")
					return true
				}
				return false
			}
			job, waits := startJob(t, f)
			var retried int
			_, err := job.Wait(t.Context(), func(s *Status) {
				if s.Err != nil {
					retried++
				}
			})
			if tt.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				if (*waits)[0] != 2*time.Second || retried != tt.storm {
					t.Errorf("waits %v retried %d", (*waits)[:3], retried)
				}
				return
			}
			if !errors.Is(err, ErrRateLimited) || !errors.Is(err, fhirclient.ErrTooManyRequests) {
				t.Errorf("err = %v, want ErrRateLimited", err)
			}
		})
	}
}

func TestWaitStatusErrors(t *testing.T) { // BULK-16, BULK-22; quirks: Oracle bare 500/504
	t.Parallel()
	tests := []struct {
		name     string
		fail     func(w http.ResponseWriter)
		times    int
		wantErr  error
		wantText string
	}{
		{"transient once then done", func(w http.ResponseWriter) { writeOutcome(w, 500, "transient", "try later") }, 1, nil, ""},
		{"timeout code retried", func(w http.ResponseWriter) { writeOutcome(w, 503, "timeout", "db timeout") }, 3, nil, ""},
		{"bare 504 retried", func(w http.ResponseWriter) { w.WriteHeader(504); w.Write([]byte("<html>gateway</html>")) }, 2, nil, ""},
		{"processing fails the job", func(w http.ResponseWriter) { writeOutcome(w, 500, "processing", "export crashed: disk full") }, 1, ErrJobFailed, "disk full"},
		{"400 fails the job", func(w http.ResponseWriter) { writeOutcome(w, 400, "invalid", "bad job") }, 1, ErrJobFailed, "bad job"},
		{"404 is gone", func(w http.ResponseWriter) { writeOutcome(w, 404, "not-found", "no such job") }, 1, ErrJobGone, "no such job"},
		{"410 is gone", func(w http.ResponseWriter) { w.WriteHeader(410) }, 1, ErrJobGone, ""},
		{"transient forever", func(w http.ResponseWriter) { writeOutcome(w, 500, "transient", "still down") }, 1000, ErrJobFailed, "still down"},
		{"diagnostics sanitised", func(w http.ResponseWriter) {
			w.WriteHeader(500)
			w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"boom\u001b[31m"}]}`))
		}, 1, ErrJobFailed, `boom\u001b[31m`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n <= tt.times {
					tt.fail(w)
					return true
				}
				return false
			}
			job, _ := startJob(t, f)
			m, err := job.Wait(t.Context(), nil)
			if tt.wantErr == nil {
				if err != nil || m == nil {
					t.Fatalf("Wait = %v, %v", m, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
			}
			if strings.ContainsRune(err.Error(), '\x1b') {
				t.Errorf("raw control character in error: %q", err)
			}
		})
	}
}

func TestWaitNetworkErrorRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close() // connection reset before any answer
			return true
		}
		return false
	}
	job, _ := startJob(t, f)
	if _, err := job.Wait(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestWaitNetworkDownGivesUpWithoutFailingTheJob(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
		return true
	}
	job, waits := startJob(t, f)
	_, err := job.Wait(t.Context(), nil)
	if err == nil || errors.Is(err, ErrJobFailed) || !strings.Contains(err.Error(), "network errors") || len(*waits) != DefaultMaxTransient {
		t.Errorf("err = %v after %d waits (the job may be alive: resume later)", err, len(*waits))
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.inProgress = 1 << 30
	job, _ := startJob(t, f)
	job.c.Sleep = nil // real timers
	job.c.PollFloor = time.Hour
	ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := job.Wait(ctx, nil)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Wait = %v after %v", err, time.Since(start))
	}
}

func TestSeparateExportStatus(t *testing.T) { // BULK-03
	t.Parallel()
	f := newFake(t)
	f.kickoffHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if !strings.Contains(r.Header.Get("Prefer"), "separate-export-status") {
			t.Errorf("Prefer = %q", r.Header.Get("Prefer"))
		}
		w.Header().Set("Preference-Applied", "respond-async, separate-export-status")
		return false
	}
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n <= 2 {
			w.Header().Set("X-Export-Status", "202 Accepted")
			w.WriteHeader(http.StatusOK)
			return true
		}
		return false
	}
	c, _ := f.client(t)
	job, err := c.Kickoff(t.Context(), ExportRequest{SeparateExportStatus: true})
	if err != nil {
		t.Fatal(err)
	}
	if !job.SeparateStatus {
		t.Fatal("Preference-Applied not recorded")
	}
	m, err := job.Wait(t.Context(), nil)
	if err != nil || m == nil || f.polls.Load() != 3 {
		t.Fatalf("Wait = %v, %v after %d polls", m, err, f.polls.Load())
	}
}

func TestCancel(t *testing.T) { // BULK-22; quirk: HAPI answers 404 to DELETE of a finished job
	t.Parallel()
	tests := []struct {
		status  int
		profile string
		want    error // nil: success
	}{
		{202, "", nil}, {204, "", nil}, {500, "", errAny},
		{404, "", ErrJobGone}, {410, "", ErrJobGone}, {404, "generic", ErrJobGone},
		{404, "hapi", nil}, {410, "hapi", nil}, {500, "hapi", errAny},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, tt.profile), func(t *testing.T) {
			t.Parallel()
			var method, auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				method, auth = r.Method, r.Header.Get("Authorization")
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(srv.URL+"/fhir", &http.Client{Transport: bearerTransport{testTransport(t)}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.profile != "" {
				p, _ := smart.LookupProfile(tt.profile)
				if err := c.SetProfile(p); err != nil {
					t.Fatal(err)
				}
			}
			job, err := c.OpenJob(srv.URL + "/status/9")
			if err != nil {
				t.Fatal(err)
			}
			err = job.Cancel(t.Context())
			switch {
			case tt.want == nil && err != nil, tt.want != nil && err == nil,
				tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Errorf("Cancel = %v, want %v", err, tt.want)
			}
			if method != http.MethodDelete || auth != "Bearer "+testToken {
				t.Errorf("method %q auth %q", method, auth)
			}
		})
	}
}

func TestCancelThenPollIsGone(t *testing.T) { // BULK-22
	t.Parallel()
	f := newFake(t)
	f.inProgress = 100
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if f.deletes.Load() > 0 {
			writeOutcome(w, 404, "not-found", "cancelled")
			return true
		}
		return false
	}
	job, _ := startJob(t, f)
	if err := job.Cancel(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := job.Wait(t.Context(), nil); !errors.Is(err, ErrJobGone) {
		t.Errorf("Wait after Cancel = %v, want ErrJobGone", err)
	}
}

func TestResumeJobInNewClient(t *testing.T) { // issue: resume a job from another process
	t.Parallel()
	f := newFake(t)
	f.inProgress = 2
	job, _ := startJob(t, f)
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), testToken) {
		t.Fatal("job state holds the token")
	}
	c2, _ := f.client(t)
	job2, err := c2.ResumeJob(b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := job2.Wait(t.Context(), nil)
	if err != nil || len(m.Output) != 0 || job2.KickoffTime.IsZero() {
		t.Fatalf("Wait = %+v, %v", m, err)
	}

	// A state pointing at another origin is refused: the token would follow it.
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	tampered := strings.Replace(string(b), f.srv.URL, other.URL, 1)
	if _, err := c2.ResumeJob([]byte(tampered)); !errors.Is(err, ErrUntrustedOrigin) || !strings.Contains(err.Error(), strings.TrimPrefix(other.URL, "http://")) {
		t.Errorf("tampered state: %v (the error must name the origin)", err)
	}
	c2.TrustedOrigins = []string{other.URL}
	if _, err := c2.ResumeJob([]byte(tampered)); err != nil {
		t.Errorf("trusted origin: %v", err)
	}
}

func TestPartialManifestDuringProgress(t *testing.T) { // BULK-21
	t.Parallel()
	f := newFake(t)
	f.add("output", "Patient", "p1", ndjson("Patient", 1))
	f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(f.manifest())
			return true
		}
		return false
	}
	job, _ := startJob(t, f)
	st, err := job.Status(t.Context())
	if err != nil || st.Complete || st.Manifest == nil || len(st.Manifest.Output) != 1 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestNextPage(t *testing.T) { // BULK-21, CONV-1
	t.Parallel()
	f := newFake(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("foreign next link fetched (Authorization %q)", r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	f.manifestExtra = func(m map[string]any) {
		m["link"] = []any{map[string]any{"relation": "next", "url": "/manifest/2"}}
	}
	job, _ := startJob(t, f)
	m, err := job.Wait(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := job.NextPage(t.Context(), m)
	if err != nil || p2 == nil || p2.URL != f.srv.URL+"/manifest/2" {
		t.Fatalf("NextPage = %+v, %v", p2, err)
	}
	m.Link = []Link{{Relation: "next", URL: other.URL + "/manifest/2"}}
	if _, err := job.NextPage(t.Context(), m); !errors.Is(err, ErrUntrustedOrigin) {
		t.Errorf("foreign next: %v", err)
	}
	m.Link = nil
	if p, err := job.NextPage(t.Context(), m); p != nil || err != nil {
		t.Errorf("last page: %v, %v", p, err)
	}
}

// CONV-2, BULK-11, BULK-16: an error answer whose body is longer than the 1 MiB the client reads
// must not pin the connection (and its transport goroutines) for good: the client closes the body.
// Before the fix, the status and kick-off error paths never closed it, and
// fhirclient.CheckResponse replaced resp.Body so that closing it later did not reach the original;
// the server stayed blocked writing.
func TestErrorBodyReleasesConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		call   func(ctx context.Context, c *Client, base string) error
		want   error
	}{
		{"status 404", http.StatusNotFound, func(ctx context.Context, c *Client, base string) error {
			job, err := c.OpenJob(base + "/status/1")
			if err != nil {
				return err
			}
			_, err = job.Status(ctx)
			return err
		}, ErrJobGone},
		{"kick-off 400", http.StatusBadRequest, func(ctx context.Context, c *Client, _ string) error {
			_, err := c.Kickoff(ctx, ExportRequest{})
			return err
		}, errAny},
		{"kick-off 429 too long to wait", http.StatusTooManyRequests, func(ctx context.Context, c *Client, _ string) error {
			_, err := c.Kickoff(ctx, ExportRequest{})
			return err
		}, fhirclient.ErrTooManyRequests},
		{"delete 500", http.StatusInternalServerError, func(ctx context.Context, c *Client, base string) error {
			job, err := c.OpenJob(base + "/status/1")
			if err != nil {
				return err
			}
			return job.Cancel(ctx)
		}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			released := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Retry-After", "9999")
				w.WriteHeader(tt.status)
				chunk := []byte(strings.Repeat("x", 64<<10))
				for range 1024 { // 64 MiB at most
					if _, err := w.Write(chunk); err != nil {
						close(released)
						return
					}
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(srv.CloseClientConnections) // runs first: unblocks a handler the client left hanging
			c, err := NewClient(srv.URL+"/fhir", nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.call(t.Context(), c, srv.URL+"/fhir")
			if err == nil || (tt.want != errAny && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			select {
			case <-released:
			case <-time.After(5 * time.Second):
				t.Fatal("the connection of an over-long error body was never released")
			}
		})
	}
}

// BULK-21: a manifest page answered with a 2xx other than 200 fails with an error that says so;
// before the fix it wrapped a nil error ("%!w(<nil>)").
func TestNextPageUnexpectedSuccessStatus(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL+"/fhir", nil)
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.OpenJob(srv.URL + "/fhir/status/1")
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{URL: job.StatusURL, Link: []Link{{Relation: "next", URL: "/fhir/page/2"}}}
	_, err = job.NextPage(t.Context(), m)
	if err == nil || strings.Contains(err.Error(), "%!") || !strings.Contains(err.Error(), "204") {
		t.Fatalf("err = %v, want an error naming the 204", err)
	}
}

// CONV-1, BULK-16: a certificate the client does not trust is not a passing network error: Wait
// fails at once instead of polling MaxTransient more times (before the fix: 10 waits, then
// "giving up after network errors", as if the server were down).
func TestWaitUntrustedCertificateNotRetried(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL+"/fhir", &http.Client{Transport: testTransport(t)}) // does not trust the test certificate
	if err != nil {
		t.Fatal(err)
	}
	var waits atomic.Int32
	c.Sleep = func(ctx context.Context, d time.Duration) error { waits.Add(1); return ctx.Err() }
	job, err := c.OpenJob(srv.URL + "/fhir/status/1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = job.Wait(t.Context(), nil)
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("err = %v, want a *tls.CertificateVerificationError", err)
	}
	if n := waits.Load(); n != 0 {
		t.Errorf("waited %d times to retry a certificate failure", n)
	}
}

// BULK-13, BULK-16: a 5xx with a usable Retry-After and no OperationOutcome is "server busy", not a
// failing job: Wait keeps polling, honouring Retry-After, past MaxTransient; when it gives up (more
// than MaxRateLimited answers and PollCap of waiting) the error says the job may still be running
// and how to resume, and does not wrap ErrJobFailed.
func TestWaitServerBusy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		code       int
		retryAfter string
		times      int
		wantErr    error // nil: the export completes
		wantWaits  int
	}{
		{"503 busy past MaxTransient", 503, "5", DefaultMaxTransient + 5, nil, DefaultMaxTransient + 5},
		{"bare 500 busy past MaxTransient", 500, "5", DefaultMaxTransient + 5, nil, DefaultMaxTransient + 5},
		{"503 busy forever gives up", 503, "5", 1000, ErrRateLimited, 0},
		{"503 without Retry-After stays transient", 503, "", 1000, ErrJobFailed, DefaultMaxTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.statusHook = func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n <= tt.times {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(tt.code)
					w.Write([]byte("<html>busy</html>"))
					return true
				}
				return false
			}
			c, waits := f.client(t)
			c.PollCap = 5 * time.Minute // past MaxRateLimited answers, Wait gives up after PollCap of waiting
			job, err := c.Kickoff(t.Context(), ExportRequest{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := job.Wait(t.Context(), nil)
			switch {
			case tt.wantErr == nil:
				if err != nil || m == nil {
					t.Fatalf("Wait = %v, %v", m, err)
				}
				if len(*waits) != tt.wantWaits || (*waits)[0] != 5*time.Second {
					t.Errorf("waits = %v", *waits)
				}
			case tt.wantErr == ErrRateLimited:
				if !errors.Is(err, ErrRateLimited) || errors.Is(err, ErrJobFailed) {
					t.Fatalf("err = %v, want ErrRateLimited and not ErrJobFailed", err)
				}
				var fe *fhirclient.Error
				if !errors.As(err, &fe) || fe.StatusCode != 503 {
					t.Errorf("err = %v, want the server answer wrapped", err)
				}
				if msg := err.Error(); !strings.Contains(msg, "may still be running") || !strings.Contains(msg, "--resume") || !strings.Contains(msg, f.srv.URL) {
					t.Errorf("err = %v, want a resume hint naming the status URL", err)
				}
				if n := len(*waits); n != 60 { // 5 min of 5 s waits (more than DefaultMaxRateLimited)
					t.Errorf("gave up after %d waits", n)
				}
			default:
				if !errors.Is(err, tt.wantErr) || len(*waits) != tt.wantWaits {
					t.Errorf("err = %v after %d waits, want %v after %d", err, len(*waits), tt.wantErr, tt.wantWaits)
				}
			}
		})
	}
}
