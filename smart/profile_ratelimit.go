package smart

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRateLimitWait bounds a plausible rate-limit wait: a reset further ahead is a misread value.
const maxRateLimitWait = 24 * time.Hour

// RateLimitWait returns how long the rate-limit headers of a 429 or 503 response ask the client to
// wait, for servers that send them instead of Retry-After: the VA does (fasten-sources vahealth.yaml
// client_rate_limited, pkg/utils/xratelimit.go). It reads, in order:
//   - X-RateLimit-Reset or RateLimit-Reset: delta seconds (the VA, draft-ietf-httpapi-ratelimit-headers),
//     an epoch time in seconds (GitHub) or milliseconds, or an HTTP date;
//   - the reset (or t) parameter of a combined RateLimit header ("limit=100, remaining=0, reset=30");
//   - X-RateLimit-Remaining-<Window>: 0 (Kong's Second, Minute, Hour, Day): one window.
//
// ok is false when none of them gives a plausible wait (garbage, negative, more than a day ahead), and
// when X-RateLimit-Remaining (or RateLimit-Remaining, or remaining=) is above 0: the limit these
// headers describe is then not what refused the request. A reset in the past gives (0, true).
// Call it when Retry-After is absent or unusable (CONV-3); Profile.RetryWait does both.
func RateLimitWait(h http.Header, now time.Time) (time.Duration, bool) {
	combined := rateLimitParams(h.Get("RateLimit"))
	for _, v := range []string{h.Get("X-RateLimit-Remaining"), h.Get("RateLimit-Remaining"), combined["remaining"], combined["r"]} {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			return 0, false
		}
	}
	for _, v := range []string{h.Get("X-RateLimit-Reset"), h.Get("RateLimit-Reset"), combined["reset"], combined["t"]} {
		if d, ok := parseRateLimitReset(v, now); ok {
			return d, true
		}
	}
	var wait time.Duration
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"Second", time.Second}, {"Minute", time.Minute}, {"Hour", time.Hour}, {"Day", maxRateLimitWait}} {
		if v := h.Get("X-RateLimit-Remaining-" + w.name); strings.TrimSpace(v) == "0" {
			wait = max(wait, w.d)
		}
	}
	return wait, wait > 0
}

// parseRateLimitReset reads one reset value: delta seconds, epoch seconds or milliseconds, or an HTTP
// date, relative to now.
func parseRateLimitReset(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		switch {
		case math.IsNaN(f) || f < 0:
			return 0, false
		case f < 1e9: // delta seconds (more than 31 years would be an epoch)
			if f > maxRateLimitWait.Seconds() {
				return 0, false
			}
			d = time.Duration(f * float64(time.Second))
		case f < 1e11: // epoch seconds, until the year 5138
			d = time.Unix(int64(f), 0).Sub(now)
		case f < 1e14: // epoch milliseconds
			d = time.UnixMilli(int64(f)).Sub(now)
		default:
			return 0, false
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	if d > maxRateLimitWait {
		return 0, false
	}
	return max(d, 0), true
}

// rateLimitParams reads the key=value parameters of a combined RateLimit header, in the comma form of
// draft 7 ("limit=100, remaining=0, reset=30") and the structured-field form of later drafts
// ("default";r=0;t=30). Only keys and bare integer values matter here.
func rateLimitParams(v string) map[string]string {
	if v == "" {
		return nil
	}
	m := map[string]string{}
	for part := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ';' }) {
		if k, val, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
			m[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(val)
		}
	}
	return m
}
