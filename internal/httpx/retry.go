package httpx

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxAPIWait is the longest single Retry-After wait an API call sleeps for (CONV-3); longer waits are
// returned to the caller as a typed error.
const MaxAPIWait = 120 * time.Second

// ParseRetryAfter parses a Retry-After header value in either RFC 9110 form, delta-seconds or
// HTTP-date, relative to now. ok is false when the header is absent or not plausible: negative,
// garbage, or an epoch timestamp in seconds or milliseconds (the bulk-data-server sends those). A date
// in the past yields (0, true). Values are not capped here: callers cap by context (API vs bulk).
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		// Larger than ~31 years is an epoch timestamp (seconds ≥ 1e9, or milliseconds), not a delay.
		if n < 0 || n >= 1_000_000_000 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

// Backoff returns the wait before retry number attempt (1-based): 1 s, 2 s, 4 s, … with ±20 % jitter,
// capped at max (when max > 0).
func Backoff(attempt int, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 30 {
		attempt = 30
	}
	d := time.Second << (attempt - 1)
	if max > 0 && d > max {
		d = max
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}
