package fhirclient

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// CONV-3: 429/503 honour Retry-After in both forms; implausible values fall back to backoff; a wait
// over 120 s is returned, not waited.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	// now is the fake clock's start (setup); the date form is relative to it.
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		failures   int             // answers with status before a 200
		wantSleeps []time.Duration // exact, or ranges for backoff (see backoff below)
		backoff    bool
		wantWait   time.Duration // for a *RetryAfterError
		wantErr    bool
		requests   int
	}{
		{name: "seconds", status: 429, retryAfter: "2", failures: 1, wantSleeps: []time.Duration{2 * time.Second}, requests: 2},
		{name: "seconds twice", status: 503, retryAfter: "1", failures: 2, wantSleeps: []time.Duration{time.Second, time.Second}, requests: 3},
		{name: "http date", status: 429, retryAfter: now.Add(5 * time.Second).Format(http.TimeFormat), failures: 1, wantSleeps: []time.Duration{5 * time.Second}, requests: 2},
		{name: "date in the past", status: 503, retryAfter: now.Add(-time.Hour).Format(http.TimeFormat), failures: 1, wantSleeps: []time.Duration{0}, requests: 2},
		{name: "huge seconds", status: 429, retryAfter: "3600", failures: 1, wantErr: true, wantWait: time.Hour, requests: 1},
		{name: "huge date", status: 503, retryAfter: now.Add(5 * time.Hour).Format(http.TimeFormat), failures: 1, wantErr: true, wantWait: 5 * time.Hour, requests: 1},
		{name: "just under the cap", status: 429, retryAfter: "120", failures: 1, wantSleeps: []time.Duration{120 * time.Second}, requests: 2},
		{name: "epoch milliseconds", status: 429, retryAfter: "1795356818000", failures: 1, backoff: true, requests: 2},
		{name: "epoch seconds", status: 429, retryAfter: "1795356818", failures: 1, backoff: true, requests: 2},
		{name: "garbage", status: 503, retryAfter: "soon-ish", failures: 1, backoff: true, requests: 2},
		{name: "negative", status: 503, retryAfter: "-5", failures: 1, backoff: true, requests: 2},
		{name: "absent", status: 429, failures: 2, backoff: true, requests: 3},
		{name: "three tries at most", status: 429, retryAfter: "1", failures: 5, wantErr: true, wantWait: time.Second,
			wantSleeps: []time.Duration{time.Second, time.Second}, requests: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var n atomic.Int64
			e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
				if int(n.Add(1)) <= tt.failures {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					writeJSON(w, tt.status, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled"}]}`)
					return
				}
				writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
			})
			_, err := e.c.Read(t.Context(), "Patient", "1", nil)
			if got := int(n.Load()); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
			sleeps := e.sleeps.get()
			if tt.wantErr {
				var rae *RetryAfterError
				if !errors.As(err, &rae) {
					t.Fatalf("err = %v, want *RetryAfterError", err)
				}
				if rae.Wait != tt.wantWait {
					t.Errorf("Wait = %v, want %v", rae.Wait, tt.wantWait)
				}
				if !rae.At.Equal(e.clock.Now().Add(tt.wantWait)) {
					t.Errorf("At = %v, want now+%v", rae.At, tt.wantWait)
				}
				var fe *Error
				if !errors.As(err, &fe) || fe.StatusCode != tt.status {
					t.Errorf("RetryAfterError should unwrap to the %d *Error: %v", tt.status, err)
				}
				if tt.status == 429 && !errors.Is(err, ErrTooManyRequests) {
					t.Error("errors.Is(err, ErrTooManyRequests) = false")
				}
				if !strings.Contains(err.Error(), "retry after") {
					t.Errorf("message should say when to come back: %v", err)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.backoff {
				if len(sleeps) != tt.requests-1 {
					t.Fatalf("sleeps = %v", sleeps)
				}
				for i, d := range sleeps {
					base := time.Second << i // 1 s, 2 s, 4 s ±20 %
					if d < base*8/10 || d > base*12/10 {
						t.Errorf("backoff %d = %v, want %v ±20%%", i+1, d, base)
					}
				}
				return
			}
			if tt.wantSleeps == nil {
				tt.wantSleeps = []time.Duration{}
			}
			if len(sleeps) != len(tt.wantSleeps) {
				t.Fatalf("sleeps = %v, want %v", sleeps, tt.wantSleeps)
			}
			for i := range sleeps {
				if sleeps[i] != tt.wantSleeps[i] {
					t.Errorf("sleeps = %v, want %v", sleeps, tt.wantSleeps)
				}
			}
		})
	}
}

// CONV-3: 500/502/504 are retried once, and only for idempotent requests.
func TestRetryServerErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		failures int
		create   bool // POST create instead of GET read
		requests int
		wantErr  bool
	}{
		{name: "500 then ok", status: 500, failures: 1, requests: 2},
		{name: "502 then ok", status: 502, failures: 1, requests: 2},
		{name: "504 then ok", status: 504, failures: 1, requests: 2},
		{name: "500 twice", status: 500, failures: 2, requests: 2, wantErr: true},
		{name: "501 not retried", status: 501, failures: 1, requests: 1, wantErr: true},
		{name: "400 not retried", status: 400, failures: 1, requests: 1, wantErr: true},
		{name: "500 on POST create not retried", status: 500, failures: 1, create: true, requests: 1, wantErr: true},
		{name: "429 on POST create retried", status: 429, failures: 1, create: true, requests: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var n atomic.Int64
			handler := func(w http.ResponseWriter, r *http.Request) {
				if int(n.Add(1)) <= tt.failures {
					w.Header().Set("Retry-After", "1")
					http.Error(w, "<html>oops</html>", tt.status)
					return
				}
				writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
			}
			e.mux.HandleFunc("GET /Patient/1", handler)
			e.mux.HandleFunc("POST /Patient", handler)
			var err error
			if tt.create {
				_, err = e.c.Create(t.Context(), fhir.Patient{}, nil)
			} else {
				_, err = e.c.Read(t.Context(), "Patient", "1", nil)
			}
			if got := int(n.Load()); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			var fe *Error
			if tt.wantErr && (!errors.As(err, &fe) || fe.StatusCode != tt.status) {
				t.Errorf("err = %v, want *Error %d", err, tt.status)
			}
			for _, d := range e.sleeps.get() {
				if d < 800*time.Millisecond || d > 1200*time.Millisecond {
					t.Errorf("wait %v, want about 1 s", d)
				}
			}
		})
	}
}

// CONV-3: a 401 is not retried by the FHIR client (the auth transport owns that) and carries
// WWW-Authenticate.
func TestUnauthorizedNotRetried(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var n atomic.Int64
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="expired"`)
		writeJSON(w, 401, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}`)
	})
	_, err := e.c.Read(t.Context(), "Patient", "1", nil)
	var fe *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &fe) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if n.Load() != 1 {
		t.Errorf("401 sent %d times", n.Load())
	}
	if got := fe.Header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error leaks the token: %v", err)
	}
}

// CONV-3: network errors are retried for idempotent requests only.
func TestRetryNetworkErrors(t *testing.T) {
	t.Parallel()
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			var n atomic.Int64
			e.mux.HandleFunc("/Patient/1", func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					hj, ok := w.(http.Hijacker)
					if !ok {
						t.Fatal("cannot hijack")
					}
					conn, _, _ := hj.Hijack()
					conn.Close() // no response at all
					return
				}
				writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
			})
			req, err := e.c.NewRequest(t.Context(), method, "Patient/1", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.c.Do(req, nil)
			if method == http.MethodGet {
				if err != nil || n.Load() != 2 {
					t.Fatalf("GET: err = %v after %d requests, want success after 2", err, n.Load())
				}
				return
			}
			if err == nil || n.Load() != 1 {
				t.Fatalf("POST: err = %v after %d requests, want an error after 1", err, n.Load())
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

// Waits end when the context does (no real 100 s sleep), and the error says why.
func TestRetryWaitHonoursContext(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.sleep = sleepContext // the real timer
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "100")
		writeJSON(w, 503, `{}`)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.c.Read(ctx, "Patient", "1", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// CONV-2: the whole call, waits included, stays within MaxElapsed.
func TestRetryMaxElapsed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.Retry = RetryPolicy{MaxTries: 10, MaxElapsed: 150 * time.Second}
	var n atomic.Int64
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "100")
		writeJSON(w, 429, `{}`)
	})
	_, err := e.c.Read(t.Context(), "Patient", "1", nil)
	var rae *RetryAfterError
	if !errors.As(err, &rae) {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 2 {
		t.Errorf("requests = %d, want 2 (100 s + 100 s exceeds 150 s)", n.Load())
	}
}

// CONV-2: MaxElapsed bounds the attempts too, not only the waits: a retry that starts near the end
// of the budget is cut at the budget, not after a whole Timeout (before the fix this call took
// the handler's 5 s and succeeded, 4 s past its budget).
func TestRetryMaxElapsedBoundsAttempts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.Timeout = 30 * time.Second
	e.c.Retry = RetryPolicy{MaxElapsed: 120 * time.Second}
	var n atomic.Int64
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "119") // the fake clock jumps 119 s of the 120 s budget
			writeJSON(w, 429, `{}`)
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
	})
	start := time.Now()
	_, err := e.c.Read(t.Context(), "Patient", "1", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v: the last attempt outlasted MaxElapsed", d)
	}
	if n.Load() != 2 {
		t.Errorf("requests = %d, want 2", n.Load())
	}
}

// A caller-built request with a one-shot body is sent once, never replayed.
func TestNoRetryWithoutGetBody(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var n atomic.Int64
	e.mux.HandleFunc("PUT /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 503, `{}`)
	})
	req, err := e.c.NewRequest(t.Context(), http.MethodPut, "Patient/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = oneShot{strings.NewReader(`{"resourceType":"Patient","id":"1"}`)}
	_, err = e.c.Do(req, nil)
	var rae *RetryAfterError
	if !errors.As(err, &rae) || n.Load() != 1 {
		t.Fatalf("err = %v after %d requests", err, n.Load())
	}
}

type oneShot struct{ *strings.Reader }

func (oneShot) Close() error { return nil }

// CONV-2: Timeout bounds one attempt; a GET that times out is tried again.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.c.Timeout = 100 * time.Millisecond
	var n atomic.Int64
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hang until the client gives up
			return
		}
		writeJSON(w, 200, `{"resourceType":"Patient","id":"1"}`)
	})
	if _, err := e.c.Read(t.Context(), "Patient", "1", nil); err != nil || n.Load() != 2 {
		t.Fatalf("err = %v after %d requests", err, n.Load())
	}
}

// A network error names the method and URL, never the query (it may carry PHI) or the token.
func TestTransportErrorHidesQuery(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	_, _, err := e.c.Search(t.Context(), "Patient", url.Values{"name": {"Secretname"}, "birthdate": {"1970-01-01"}})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "Secretname") || strings.Contains(msg, "1970") || strings.Contains(msg, testToken) ||
		!strings.Contains(msg, "/fhir/r4/Patient") || !strings.HasPrefix(msg, "fhirclient: ") {
		t.Errorf("message = %s", msg)
	}
}
