package sandbox_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// TestAPIFaults proves each REST API fault misbehaves as named, once, and only for the client it
// was armed for (SBX-15, CONV-3).
func TestAPIFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault string
		check func(t *testing.T, e *fhirEnv, resp *http.Response, b []byte)
	}{
		{"request_invalid_token", want401("not valid")},
		{"request_expired_token", want401("expired")},
		{"api_redirect_foreign", func(t *testing.T, e *fhirEnv, resp *http.Response, _ []byte) {
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || err != nil || loc.Hostname() != "127.0.0.2" ||
				loc.Path != "/fhir/Observation" || loc.Query().Get("patient") != "pt-1" {
				t.Errorf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		}},
		{"api_next_foreign", func(t *testing.T, e *fhirEnv, resp *http.Response, b []byte) {
			next, err := url.Parse(decodeBundle(t, b).link("next"))
			self, _ := url.Parse(decodeBundle(t, b).link("self"))
			if err != nil || next.Hostname() != "127.0.0.2" || next.Port() != self.Port() || self.Hostname() != "127.0.0.1" {
				t.Errorf("next %v self %v", next, self)
			}
		}},
		{"api_500_outcome", func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
			wantOutcome(t, resp, b, http.StatusInternalServerError, "exception")
			if n := len(outcome(t, b).Issue); n != 3 {
				t.Errorf("%d issues", n)
			}
		}},
		{"api_html_500", func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
			if resp.StatusCode != 500 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
				!strings.HasPrefix(string(b), "<html>") {
				t.Errorf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
		}},
		{"api_truncated_json", func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
			var v any
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/fhir+json" ||
				json.Unmarshal(b, &v) == nil || len(b) < 100 {
				t.Errorf("%d, %d bytes: %.80s", resp.StatusCode, len(b), b)
			}
		}},
		{"api_429_seconds", wantRetryAfter(429, func(v string, now time.Time) bool { return v == "1" })},
		{"api_429_date", wantRetryAfter(429, func(v string, now time.Time) bool {
			d, err := http.ParseTime(v)
			return err == nil && d.After(now) && d.Before(now.Add(time.Minute))
		})},
		{"api_429_huge", wantRetryAfter(429, func(v string, _ time.Time) bool { n, _ := strconv.Atoi(v); return n > 3600 })},
		{"api_429_epoch_ms", wantRetryAfter(429, func(v string, now time.Time) bool {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n == now.UnixMilli()
		})},
		{"api_429_garbage", wantRetryAfter(429, func(v string, _ time.Time) bool {
			_, err1 := strconv.Atoi(v)
			_, err2 := http.ParseTime(v)
			return v != "" && err1 != nil && err2 != nil
		})},
		{"api_503_seconds", wantRetryAfter(503, func(v string, _ time.Time) bool { return v == "1" })},
		{"api_503_date", wantRetryAfter(503, func(v string, _ time.Time) bool { _, err := http.ParseTime(v); return err == nil })},
		{"api_503_huge", wantRetryAfter(503, func(v string, _ time.Time) bool { return v == "86400" })},
		{"api_503_epoch_ms", wantRetryAfter(503, func(v string, _ time.Time) bool { return len(v) == 13 })},
		{"api_503_garbage", wantRetryAfter(503, func(v string, _ time.Time) bool { return v == "soon-ish" })},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			e := newFHIREnv(t, sandbox.Options{})
			tok := e.token("system/*.rs", "")
			other := e.s.IssueAccessToken(sandbox.Grant{ClientID: "other", Scopes: []string{"system/*.rs"},
				Expiry: e.s.Now().Add(time.Hour)})
			e.s.Fault(tc.fault, 1, "fhir-test")
			path := "/Observation?patient=pt-1&_count=2"
			if resp, b := e.get(path, other); resp.StatusCode != 200 || strings.Contains(string(b), "127.0.0.2") {
				t.Fatalf("fault hit another client: %d %.200s", resp.StatusCode, b)
			}
			resp, b := e.get(path, tok)
			tc.check(t, e, resp, b)
			if resp, b := e.get(path, tok); resp.StatusCode != 200 || strings.Contains(string(b), "127.0.0.2") {
				t.Errorf("fault fired twice: %d %.200s", resp.StatusCode, b)
			}
		})
	}
}

func want401(desc string) func(*testing.T, *fhirEnv, *http.Response, []byte) {
	return func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
		t.Helper()
		wantOutcome(t, resp, b, http.StatusUnauthorized, "login")
		if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="invalid_token"`) || !strings.Contains(wa, desc) {
			t.Errorf("WWW-Authenticate %q", wa)
		}
	}
}

func wantRetryAfter(status int, ok func(v string, now time.Time) bool) func(*testing.T, *fhirEnv, *http.Response, []byte) {
	return func(t *testing.T, e *fhirEnv, resp *http.Response, b []byte) {
		t.Helper()
		wantOutcome(t, resp, b, status, "throttled")
		if v := resp.Header.Get("Retry-After"); !ok(v, e.s.Now()) {
			t.Errorf("Retry-After %q", v)
		}
	}
}

// TestFaultNamesListed: every FHIR fault is known to the control API (POST /sandbox/faults).
func TestFaultNamesListed(t *testing.T) {
	t.Parallel()
	names := sandbox.FaultNames()
	for _, n := range []string{"request_invalid_token", "api_429_epoch_ms", "api_503_garbage", "bulk_kickoff_429",
		"transient_error", "manifest_v4_outcome", "file_cut_mid_stream", "some_file_generation_failed",
		"bulk_separate_export_status"} {
		if !slices.Contains(names, n) {
			t.Errorf("FaultNames lacks %s", n)
		}
	}
}
