package smart_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/smart"
)

// TestProfileRateLimitWait: X-RateLimit-* and RateLimit-* in the forms servers send them (VA:
// fasten-sources xratelimit.go), and everything implausible refused.
func TestProfileRateLimitWait(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name   string
		h      http.Header
		want   time.Duration
		wantOK bool
	}{
		{"delta seconds (VA)", h("X-RateLimit-Reset", "42"), 42 * time.Second, true},
		{"fractional delta", h("X-RateLimit-Reset", "1.5"), 1500 * time.Millisecond, true},
		{"IETF draft header", h("RateLimit-Reset", "7"), 7 * time.Second, true},
		{"epoch seconds (GitHub)", h("X-RateLimit-Reset", fmt.Sprint(now.Add(90*time.Second).Unix())), 90 * time.Second, true},
		{"epoch milliseconds", h("X-RateLimit-Reset", fmt.Sprint(now.Add(3*time.Second).UnixMilli())), 3 * time.Second, true},
		{"HTTP date", h("X-RateLimit-Reset", now.Add(time.Minute).Format(http.TimeFormat)), time.Minute, true},
		{"reset in the past", h("X-RateLimit-Reset", fmt.Sprint(now.Add(-time.Minute).Unix())), 0, true},
		{"remaining 0 with reset", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "5"), 5 * time.Second, true},
		{"remaining above 0", h("X-RateLimit-Remaining", "3", "X-RateLimit-Reset", "5"), 0, false},
		{"combined draft 7", h("RateLimit", "limit=100, remaining=0, reset=30"), 30 * time.Second, true},
		{"combined structured", h("RateLimit", `"default";r=0;t=12`), 12 * time.Second, true},
		{"combined with remaining", h("RateLimit", "limit=100, remaining=9, reset=30"), 0, false},
		{"Kong minute window", h("X-RateLimit-Remaining-Minute", "0", "X-RateLimit-Remaining-Hour", "10"), time.Minute, true},
		{"Kong longest exhausted window", h("X-RateLimit-Remaining-Second", "0", "X-RateLimit-Remaining-Hour", "0"), time.Hour, true},
		{"negative", h("X-RateLimit-Reset", "-5"), 0, false},
		{"garbage", h("X-RateLimit-Reset", "soon"), 0, false},
		{"NaN", h("X-RateLimit-Reset", "NaN"), 0, false},
		{"delta over a day", h("X-RateLimit-Reset", "90000"), 0, false},
		{"epoch over a day ahead", h("X-RateLimit-Reset", fmt.Sprint(now.Add(48*time.Hour).Unix())), 0, false},
		{"huge number", h("X-RateLimit-Reset", "1e300"), 0, false},
		{"no headers", http.Header{}, 0, false},
		{"limit only", h("X-RateLimit-Limit", "60"), 0, false},
	}
	for _, tt := range tests {
		got, ok := smart.RateLimitWait(tt.h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

func ExampleProfile_RetryWait() {
	va, _ := smart.LookupProfile("va")
	h := http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"30"}}
	fmt.Println(va.RetryWait(h, time.Now()))

	generic, _ := smart.LookupProfile("generic")
	fmt.Println(generic.RetryWait(h, time.Now()))
	// Output:
	// 30s true
	// 0s false
}
