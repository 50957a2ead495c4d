package fhirclient

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/smart"
)

// CONV-3 with a profile that reads rate-limit headers (the VA): Retry-After still comes first, the
// X-RateLimit-* wait is taken when it is absent, and the 120 s rule holds for both.
func TestProfileRateLimitWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		header    map[string]string
		wantSleep time.Duration
		wantWait  time.Duration // of a *RetryAfterError, when the wait is too long
	}{
		{"reset delta", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"}, 7 * time.Second, 0},
		{"Retry-After first", map[string]string{"Retry-After": "2", "X-RateLimit-Reset": "7"}, 2 * time.Second, 0},
		{"over 120 s", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "300"}, 0, 300 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			p, _ := smart.LookupProfile("va")
			if err := e.c.SetProfile(p, "app"); err != nil {
				t.Fatal(err)
			}
			var n atomic.Int64
			e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					for k, v := range tt.header {
						w.Header().Set(k, v)
					}
					writeJSON(w, http.StatusTooManyRequests, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled"}]}`)
					return
				}
				writeJSON(w, http.StatusOK, `{"resourceType":"Patient","id":"1"}`)
			})
			_, err := e.c.Read(t.Context(), "Patient", "1", nil)
			if tt.wantWait != 0 {
				var rae *RetryAfterError
				if !errors.As(err, &rae) || rae.Wait != tt.wantWait || len(e.sleeps.get()) != 0 {
					t.Fatalf("err = %v, sleeps %v: want a *RetryAfterError of %v and no wait", err, e.sleeps.get(), tt.wantWait)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.sleeps.get(); len(got) != 1 || got[0] != tt.wantSleep {
				t.Fatalf("sleeps %v, want [%v]", got, tt.wantSleep)
			}
		})
	}
}
