package sandbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// benchEnv is a sandbox behind httptest for benchmarks.
func benchEnv(b *testing.B, patients int) (*sandbox.Server, *httptest.Server, string) {
	b.Helper()
	s, err := sandbox.New(sandbox.Options{Patients: patients})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)
	tok := s.IssueAccessToken(sandbox.Grant{Scopes: []string{"system/*.rs"}, Expiry: time.Now().Add(time.Hour)})
	return s, srv, tok
}

func benchGet(b *testing.B, u, tok string, hdr ...string) *http.Response {
	b.Helper()
	req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirectClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

// BenchmarkSearchPaging pages through 10,000 Observations, 1,000 per page, following next links.
func BenchmarkSearchPaging(b *testing.B) {
	_, srv, tok := benchEnv(b, 400)
	const want = 10_000
	for b.Loop() {
		n := 0
		for next := srv.URL + "/fhir/Observation?_count=1000"; next != "" && n < want; {
			resp := benchGet(b, next, tok)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				b.Fatal(resp.Status, err)
			}
			// A light client: count the entries and find the next link without decoding.
			n += bytes.Count(body, []byte(`"fullUrl":`))
			next = ""
			if _, rest, ok := bytes.Cut(body, []byte(`{"relation":"next","url":"`)); ok {
				u, _, _ := bytes.Cut(rest, []byte(`"`))
				next = string(u)
			}
		}
		if n < want {
			b.Fatalf("only %d resources", n)
		}
	}
	b.ReportMetric(float64(want*b.N)/b.Elapsed().Seconds(), "resources/s")
}

// BenchmarkBulkFile streams one Observation file of a 2,000-patient export (about 50 MB) as
// identity and as gzip.
func BenchmarkBulkFile(b *testing.B) {
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			s, srv, tok := benchEnv(b, 2000)
			s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1, FileResources: 1 << 30})
			resp := benchGet(b, srv.URL+"/fhir/$export?_type=Observation", tok, "Prefer", "respond-async")
			status := resp.Header.Get("Content-Location")
			resp.Body.Close()
			resp = benchGet(b, status, tok)
			var m exportManifest
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Output) != 1 {
				b.Fatalf("manifest %+v %v", m, err)
			}
			resp.Body.Close()
			resp = benchGet(b, m.Output[0].URL, tok)
			size, err := io.Copy(io.Discard, resp.Body) // NDJSON bytes, the figure MB/s refers to
			resp.Body.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			for b.Loop() {
				resp := benchGet(b, m.Output[0].URL, tok, "Accept-Encoding", enc)
				_, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/fhir+ndjson") {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExportManifest100k measures the counting pass that builds the manifest of a system
// export of 100,000 patients (about 4 million resources).
func BenchmarkExportManifest100k(b *testing.B) {
	s, srv, tok := benchEnv(b, 100_000)
	s.SetFHIRSettings(sandbox.FHIRSettings{ExportDuration: -1})
	for b.Loop() {
		resp := benchGet(b, srv.URL+"/fhir/$export", tok, "Prefer", "respond-async")
		status := resp.Header.Get("Content-Location")
		resp.Body.Close()
		resp = benchGet(b, status, tok)
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
		resp.Body.Close()
		benchGet(b, status, tok).Body.Close()
		req, _ := http.NewRequest(http.MethodDelete, status, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := noRedirectClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}
