package sandbox_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// exportManifest is the completion manifest as a client reads it.
type exportManifest struct {
	TransactionTime     string            `json:"transactionTime"`
	Request             string            `json:"request"`
	RequiresAccessToken bool              `json:"requiresAccessToken"`
	OutputOrganizedBy   string            `json:"outputOrganizedBy"`
	Output              []exportItem      `json:"output"`
	Error               []exportItem      `json:"error"`
	Deleted             []exportItem      `json:"deleted"`
	Link                []json.RawMessage `json:"link"`
}

type exportItem struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

var kickoffHeaders = []string{"Accept", "application/fhir+json", "Prefer", "respond-async"}

// kickoff starts an export (path relative to the FHIR base, e.g. "/$export?_type=Patient") and
// returns the status URL.
func (e *fhirEnv) kickoff(path, token string, hdr ...string) string {
	e.t.Helper()
	resp, b := e.get(path, token, append(append([]string{}, kickoffHeaders...), hdr...)...)
	if resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("kick-off %s: %d %s", path, resp.StatusCode, b)
	}
	loc := resp.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, e.srv.URL+"/bulk/status/") {
		e.t.Fatalf("Content-Location %q", loc)
	}
	return loc
}

// manifest polls the status URL (the job completes at once with a negative ExportDuration).
func (e *fhirEnv) manifest(status, token string) (exportManifest, *http.Response) {
	e.t.Helper()
	for range 50 {
		resp, b := e.get(status, token, "Accept", "application/json")
		switch resp.StatusCode {
		case http.StatusAccepted:
			e.advance(2 * time.Second)
			continue
		case http.StatusOK:
			var m exportManifest
			if err := json.Unmarshal(b, &m); err != nil {
				e.t.Fatalf("manifest: %v: %s", err, b)
			}
			return m, resp
		default:
			e.t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	e.t.Fatal("export never completed")
	return exportManifest{}, nil
}

// export kicks off, waits and returns the manifest.
func (e *fhirEnv) export(path, token string, hdr ...string) exportManifest {
	e.t.Helper()
	m, _ := e.manifest(e.kickoff(path, token, hdr...), token)
	return m
}

// download fetches an output file (decompressing gzip) and checks its status and type.
func (e *fhirEnv) download(u, token string, hdr ...string) []byte {
	e.t.Helper()
	resp, b := e.get(u, token, hdr...)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
		e.t.Errorf("file Content-Type %q", ct)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			e.t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			e.t.Fatal(err)
		}
	}
	return b
}

// checkOutput downloads every output file and checks count, resource types and the samply
// decoding of each line; it returns the ids per type.
func (e *fhirEnv) checkOutput(m exportManifest, token string) map[string][]string {
	e.t.Helper()
	ids := map[string][]string{}
	for _, o := range m.Output {
		lines := ndjsonLines(e.download(o.URL, token))
		if len(lines) != o.Count {
			e.t.Errorf("%s: %d lines, manifest count %d", o.URL, len(lines), o.Count)
		}
		for _, l := range lines {
			var head struct{ ResourceType, ID string }
			if err := json.Unmarshal(l, &head); err != nil || head.ResourceType != o.Type {
				e.t.Fatalf("%s: line %.100s (type %q, %v)", o.URL, l, o.Type, err)
			}
			ids[o.Type] = append(ids[o.Type], head.ID)
		}
	}
	return ids
}

// quickExports makes export jobs complete at the first poll.
func quickExports(s *sandbox.Server) {
	c := s.FHIRSettings()
	c.ExportDuration = -1
	s.SetFHIRSettings(c)
}
