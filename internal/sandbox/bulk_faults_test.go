package sandbox_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// TestBulkKickoffFaults proves each kick-off fault (SBX-16, BULK-02, 08, 10, 11).
func TestBulkKickoffFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault, path string
		hdr         []string
		check       func(t *testing.T, e *fhirEnv, resp *http.Response, b []byte)
	}{
		{"bulk_kickoff_429", "/$export", kickoffHeaders, func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
			wantOutcome(t, resp, b, http.StatusTooManyRequests, "throttled")
			if resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		}},
		{"bulk_no_content_location", "/$export", kickoffHeaders, func(t *testing.T, _ *fhirEnv, resp *http.Response, _ []byte) {
			if resp.StatusCode != 202 || len(resp.Header.Values("Content-Location")) != 0 {
				t.Errorf("%d Content-Location %q", resp.StatusCode, resp.Header.Get("Content-Location"))
			}
		}},
		{"bulk_relative_content_location", "/$export", kickoffHeaders, func(t *testing.T, e *fhirEnv, resp *http.Response, _ []byte) {
			loc := resp.Header.Get("Content-Location")
			if resp.StatusCode != 202 || !strings.HasPrefix(loc, "/bulk/status/") {
				t.Fatalf("%d Content-Location %q", resp.StatusCode, loc)
			}
			e.manifest(e.srv.URL+loc, e.token("system/*.rs", "")) // the relative location works
		}},
		{"bulk_foreign_content_location", "/$export", kickoffHeaders, func(t *testing.T, e *fhirEnv, resp *http.Response, _ []byte) {
			loc, err := url.Parse(resp.Header.Get("Content-Location"))
			if resp.StatusCode != 202 || err != nil || loc.Hostname() != "127.0.0.2" || !strings.HasPrefix(loc.Path, "/bulk/status/") {
				t.Errorf("%d Content-Location %q", resp.StatusCode, resp.Header.Get("Content-Location"))
			}
		}},
		{"bulk_typefilter_400", "/$export?_typeFilter=" + url.QueryEscape("Observation?category=laboratory"), kickoffHeaders,
			func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
				wantOutcome(t, resp, b, http.StatusBadRequest, "not-supported")
			}},
		{"bulk_ignore_typefilter", "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?category=laboratory"),
			kickoffHeaders, func(t *testing.T, e *fhirEnv, resp *http.Response, _ []byte) {
				tok := e.token("system/*.rs", "")
				m, _ := e.manifest(resp.Header.Get("Content-Location"), tok)
				if ids := e.checkOutput(m, tok); !containsPrefixLine(e, m, `"vital-signs"`, tok) || len(ids["Observation"]) == 0 {
					t.Error("the _typeFilter was applied")
				}
			}},
		{"bulk_strict_v1_headers", "/$export", []string{"Accept", "application/fhir+json"}, func(t *testing.T, _ *fhirEnv, resp *http.Response, b []byte) {
			wantOutcome(t, resp, b, http.StatusBadRequest, "invalid")
		}},
		{"bulk_separate_export_status", "/$export", kickoffHeaders, func(t *testing.T, e *fhirEnv, resp *http.Response, _ []byte) {
			if !strings.Contains(resp.Header.Get("Preference-Applied"), "separate-export-status") {
				t.Fatalf("Preference-Applied %q", resp.Header.Get("Preference-Applied"))
			}
			e.advance(time.Minute)
			st, _ := e.get(resp.Header.Get("Content-Location"), e.token("system/*.rs", ""))
			if st.StatusCode != 200 || st.Header.Get("X-Export-Status") != "200 OK" {
				t.Errorf("status %d X-Export-Status %q", st.StatusCode, st.Header.Get("X-Export-Status"))
			}
		}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			e := newFHIREnv(t, sandbox.Options{})
			e.s.Fault(tc.fault, 1, "")
			resp, b := e.get(tc.path, e.token("system/*.rs", ""), tc.hdr...)
			tc.check(t, e, resp, b)
			if resp, b := e.get(tc.path, e.token("system/*.rs", ""), kickoffHeaders...); resp.StatusCode != 202 ||
				!strings.HasPrefix(resp.Header.Get("Content-Location"), e.srv.URL) || resp.Header.Get("Preference-Applied") != "" {
				t.Errorf("fault fired twice: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Location"), b)
			}
		})
	}
}

// containsPrefixLine reports whether any output line contains s.
func containsPrefixLine(e *fhirEnv, m exportManifest, s, tok string) bool {
	for _, o := range m.Output {
		if bytes.Contains(e.download(o.URL, tok), []byte(s)) {
			return true
		}
	}
	return false
}

// TestBulkStatusFaults proves each status fault (SBX-17, BULK-13…16).
func TestBulkStatusFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault string
		check func(t *testing.T, e *fhirEnv, status string, resp *http.Response, b []byte)
		after int // status of the next poll (the job is complete by then)
	}{
		{"transient_error", func(t *testing.T, _ *fhirEnv, _ string, resp *http.Response, b []byte) {
			wantOutcome(t, resp, b, http.StatusInternalServerError, "transient")
		}, 200},
		{"bulk_status_500_fatal", func(t *testing.T, _ *fhirEnv, _ string, resp *http.Response, b []byte) {
			wantOutcome(t, resp, b, http.StatusInternalServerError, "processing")
		}, 500},
		{"bulk_status_non_fhir_error", func(t *testing.T, _ *fhirEnv, _ string, resp *http.Response, b []byte) {
			if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
				json.Valid(b) {
				t.Errorf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
		}, 200},
		{"bulk_retry_after_date", func(t *testing.T, e *fhirEnv, _ string, resp *http.Response, _ []byte) {
			d, err := http.ParseTime(resp.Header.Get("Retry-After"))
			if resp.StatusCode != 202 || err != nil || !d.After(e.s.Now()) {
				t.Errorf("%d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}, 200},
		{"bulk_retry_after_huge", func(t *testing.T, _ *fhirEnv, _ string, resp *http.Response, _ []byte) {
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 202 || err != nil || n < 3600 {
				t.Errorf("%d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}, 200},
		{"bulk_retry_after_garbage", func(t *testing.T, _ *fhirEnv, _ string, resp *http.Response, _ []byte) {
			v := resp.Header.Get("Retry-After")
			_, err1 := strconv.Atoi(v)
			_, err2 := http.ParseTime(v)
			if resp.StatusCode != 202 || v == "" || err1 == nil || err2 == nil {
				t.Errorf("%d Retry-After %q", resp.StatusCode, v)
			}
		}, 200},
		{"bulk_x_progress_control_chars", func(t *testing.T, _ *fhirEnv, _ string, resp *http.Response, _ []byte) {
			p := resp.Header.Get("X-Progress")
			if resp.StatusCode != 202 || !strings.Contains(p, "\u009b31") || !strings.Contains(p, "\u202e") || len(p) < 500 {
				t.Errorf("%d X-Progress %q", resp.StatusCode, p)
			}
		}, 200},
		{"bulk_status_429", func(t *testing.T, e *fhirEnv, status string, resp *http.Response, b []byte) {
			if resp.StatusCode != 202 {
				t.Fatalf("first poll %d", resp.StatusCode)
			}
			resp, b = e.get(status, e.token("system/*.rs", "")) // immediately again: too fast
			wantOutcome(t, resp, b, http.StatusTooManyRequests, "throttled")
			if resp.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}, 200},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			e := newFHIREnv(t, sandbox.Options{})
			tok := e.token("system/*.rs", "")
			status := e.kickoff("/$export?_type=Patient", tok)
			e.s.Fault(tc.fault, 1, "fhir-test")
			resp, b := e.get(status, tok)
			tc.check(t, e, status, resp, b)
			e.advance(time.Minute)
			if resp, b := e.get(status, tok); resp.StatusCode != tc.after {
				t.Errorf("next poll: %d, want %d: %s", resp.StatusCode, tc.after, b)
			}
		})
	}
}

// TestBulkManifestFaults proves each manifest fault (SBX-18, BULK-17, 18, 21, 23, 27).
func TestBulkManifestFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault string
		check func(t *testing.T, e *fhirEnv, m map[string]any)
	}{
		{"manifest_missing_error", func(t *testing.T, _ *fhirEnv, m map[string]any) {
			if _, ok := m["error"]; ok {
				t.Error("error present")
			}
		}},
		{"manifest_v4_outcome", func(t *testing.T, _ *fhirEnv, m map[string]any) {
			_, hasErr := m["error"]
			_, hasReq := m["request"]
			ext, _ := m["extension"].([]any)
			if hasErr || hasReq || m["outcome"] == nil || len(ext) != 1 {
				t.Errorf("manifest %v", m)
			}
		}},
		{"manifest_output_object", func(t *testing.T, _ *fhirEnv, m map[string]any) {
			if o, ok := m["output"].(map[string]any); !ok || len(o) != 0 {
				t.Errorf("output %v", m["output"])
			}
		}},
		{"manifest_file_url_scheme", wantFirstURL("file:///etc/passwd")},
		{"manifest_link_local_url", wantFirstURL("http://169.254.169.254/latest/meta-data/iam/security-credentials/")},
		{"manifest_http_url", wantFirstURL("http://bulk.example.com/files/Patient.ndjson")},
		{"manifest_missing_type", func(t *testing.T, _ *fhirEnv, m map[string]any) {
			if item := outputs(m)[0]; item["type"] != nil || item["url"] == nil {
				t.Errorf("item %v", item)
			}
		}},
		{"manifest_foreign_url", func(t *testing.T, _ *fhirEnv, m map[string]any) {
			for _, item := range outputs(m) {
				if u, _ := url.Parse(item["url"].(string)); u.Hostname() != "127.0.0.2" {
					t.Errorf("url %v", item["url"])
				}
			}
		}},
		{"manifest_partial_pages", func(t *testing.T, e *fhirEnv, m map[string]any) {
			links, _ := m["link"].([]any)
			if len(outputs(m)) != 2 || len(links) != 1 {
				t.Fatalf("page 1: %v", m)
			}
			next := links[0].(map[string]any)["url"].(string)
			page2 := map[string]any{}
			_ = json.Unmarshal(e.getOK(next, e.token("system/*.rs", "")), &page2)
			if len(outputs(page2)) != 1 || page2["link"] != nil || outputs(page2)[0]["type"] != "Immunization" {
				t.Errorf("page 2: %v", page2)
			}
		}},
		{"manifest_no_token_required", func(t *testing.T, e *fhirEnv, m map[string]any) {
			u := outputs(m)[0]["url"].(string)
			if m["requiresAccessToken"] != false {
				t.Fatalf("requiresAccessToken %v", m["requiresAccessToken"])
			}
			e.download(u, "")
			resp, b := e.get(u, e.token("system/*.rs", ""))
			wantOutcome(t, resp, b, http.StatusBadRequest, "security")
		}},
		{"some_file_generation_failed", func(t *testing.T, e *fhirEnv, m map[string]any) {
			errs, _ := m["error"].([]any)
			if len(errs) != 1 || len(outputs(m)) != 3 {
				t.Fatalf("manifest %v", m)
			}
			item := errs[0].(map[string]any)
			lines := ndjsonLines(e.download(item["url"].(string), e.token("system/*.rs", "")))
			if item["type"] != "OperationOutcome" || len(lines) != 3 {
				t.Fatalf("error item %v, %d lines", item, len(lines))
			}
			for _, l := range lines {
				outcome(t, l)
			}
		}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			e := newFHIREnv(t, sandbox.Options{})
			quickExports(e.s)
			tok := e.token("system/*.rs", "")
			status := e.kickoff("/$export?_type=Patient,Condition,Immunization", tok)
			e.s.Fault(tc.fault, 1, "")
			m := map[string]any{}
			resp, b := e.get(status, tok)
			if resp.StatusCode != 200 || json.Unmarshal(b, &m) != nil {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			tc.check(t, e, m)
		})
	}
}

func outputs(m map[string]any) []map[string]any {
	list, _ := m["output"].([]any)
	var out []map[string]any
	for _, v := range list {
		out = append(out, v.(map[string]any))
	}
	return out
}

func wantFirstURL(u string) func(*testing.T, *fhirEnv, map[string]any) {
	return func(t *testing.T, _ *fhirEnv, m map[string]any) {
		t.Helper()
		items := outputs(m)
		if items[0]["url"] != u || !strings.HasPrefix(items[1]["url"].(string), "http://127.0.0.1:") {
			t.Errorf("urls %v / %v", items[0]["url"], items[1]["url"])
		}
	}
}

// TestBulkFileFaults proves each file fault (SBX-19, BULK-20, 24…27, 31, 32).
func TestBulkFileFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault string
		check func(t *testing.T, e *fhirEnv, u string, plain []byte)
	}{
		{"file_expired", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			tok := e.token("system/*.rs", "")
			for range 2 {
				resp, b := e.get(u, tok)
				wantOutcome(t, resp, b, http.StatusGone, "expired")
			}
			e.getOK(strings.Replace(u[:strings.LastIndex(u, "/")], "/files/", "/status/", 1), tok)
			if got := e.download(u, tok); !bytes.Equal(got, plain) {
				t.Error("file differs after re-fetching the manifest")
			}
		}},
		{"file_transient_503", func(t *testing.T, e *fhirEnv, u string, _ []byte) {
			resp, b := e.get(u, e.token("system/*.rs", ""))
			wantOutcome(t, resp, b, http.StatusServiceUnavailable, "transient")
			if resp.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		}},
		{"file_ndjson_content_type", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			resp, b := e.get(u, e.token("system/*.rs", ""))
			if resp.Header.Get("Content-Type") != "application/ndjson" || !bytes.Equal(b, plain) {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		}},
		{"file_crlf", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			b := e.download(u, e.token("system/*.rs", ""))
			if !bytes.Equal(b, bytes.ReplaceAll(plain, []byte("\n"), []byte("\r\n"))) {
				t.Errorf("%q", b[len(b)-20:])
			}
		}},
		{"file_no_trailing_newline", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			if b := e.download(u, e.token("system/*.rs", "")); !bytes.Equal(b, plain[:len(plain)-1]) {
				t.Errorf("ends %q", b[len(b)-10:])
			}
		}},
		{"file_huge_line", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			lines := ndjsonLines(e.download(u, e.token("system/*.rs", "")))
			if len(lines[0]) <= 5<<20 || len(lines) != len(ndjsonLines(plain)) {
				t.Fatalf("first line %d bytes, %d lines", len(lines[0]), len(lines))
			}
			if _, err := decodeAs("Patient", lines[0]); err != nil || !json.Valid(lines[0]) {
				t.Errorf("huge line is not a valid Patient: %v", err)
			}
		}},
		{"file_wrong_resource_type", func(t *testing.T, e *fhirEnv, u string, _ []byte) {
			lines := ndjsonLines(e.download(u, e.token("system/*.rs", "")))
			if !bytes.Contains(lines[0], []byte(`"resourceType":"Organization"`)) || !bytes.Contains(lines[1], []byte(`"resourceType":"Patient"`)) {
				t.Errorf("lines %.80s / %.80s", lines[0], lines[1])
			}
		}},
		{"file_invalid_json_line", func(t *testing.T, e *fhirEnv, u string, _ []byte) {
			lines := ndjsonLines(e.download(u, e.token("system/*.rs", "")))
			if json.Valid(lines[0]) || !json.Valid(lines[1]) {
				t.Errorf("lines %q / %.40s", lines[0], lines[1])
			}
		}},
		{"file_gzip_bomb", func(t *testing.T, e *fhirEnv, u string, _ []byte) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+e.token("system/*.rs", ""))
			resp, err := noRedirectClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			cr := &countReader{r: resp.Body}
			zr, err := gzip.NewReader(cr)
			if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("%v %q", err, resp.Header.Get("Content-Encoding"))
			}
			n, err := io.Copy(io.Discard, io.LimitReader(zr, 256<<20))
			if err != nil || n != 256<<20 || cr.n*100 > n {
				t.Errorf("inflated %d bytes from %d (%v)", n, cr.n, err)
			}
		}},
		{"file_cut_mid_stream", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			tok := e.token("system/*.rs", "")
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := noRedirectClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !errors.Is(err, io.ErrUnexpectedEOF) || resp.ContentLength != int64(len(plain)) || len(got) != len(plain)/2 {
				t.Fatalf("cut: %v, Content-Length %d, got %d of %d", err, resp.ContentLength, len(got), len(plain))
			}
			resp2, rest := e.get(u, tok, "Range", "bytes="+strconv.Itoa(len(got))+"-")
			if resp2.StatusCode != http.StatusPartialContent || !bytes.Equal(append(got, rest...), plain) {
				t.Errorf("resume: %d, %d bytes", resp2.StatusCode, len(rest))
			}
		}},
		{"file_slow", func(t *testing.T, e *fhirEnv, u string, plain []byte) {
			start := time.Now()
			b := e.download(u, e.token("system/*.rs", ""))
			chunks := (len(plain) + 16<<10 - 1) / (16 << 10)
			if !bytes.Equal(b, plain) || time.Since(start) < time.Duration(chunks)*20*time.Millisecond {
				t.Errorf("%d bytes in %v (%d chunks)", len(b), time.Since(start), chunks)
			}
		}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			e := newFHIREnv(t, sandbox.Options{Patients: 60})
			e.s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, SlowFileDelay: 20 * time.Millisecond})
			tok := e.token("system/*.rs", "")
			m := e.export("/$export?_type=Patient", tok)
			u := m.Output[0].URL
			plain := e.download(u, tok)
			e.s.Fault(tc.fault, 1, "")
			tc.check(t, e, u, plain)
			if got := e.download(u, tok); !bytes.Equal(got, plain) {
				t.Error("fault fired twice")
			}
		})
	}
}

// TestBulkSlowFileStopsWithClient: a slow file stops streaming when the client goes away.
func TestBulkSlowFileStopsWithClient(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{Patients: 60})
	e.s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, SlowFileDelay: time.Hour})
	tok := e.token("system/*.rs", "")
	m := e.export("/$export?_type=Patient", tok)
	e.s.Fault("file_slow", 1, "")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.Output[0].URL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	resp, err := noRedirectClient.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("slow file: %v after %v", err, time.Since(start))
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
