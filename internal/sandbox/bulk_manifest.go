package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// bulkManifestFaults are the manifest faults (SBX-18). The first three shape the job (decided once,
// when it completes); the others distort one manifest response.
var bulkManifestFaults = []string{
	"manifest_no_token_required",  // requiresAccessToken false: files are capability URLs that refuse a token
	"manifest_partial_pages",      // the manifest comes in pages linked by link[relation=next]
	"some_file_generation_failed", // an error file of OperationOutcomes besides the output (partial success)
	"manifest_missing_error",      // no "error" member
	"manifest_v4_outcome",         // 4.0.0-ballot shape: "outcome" instead of "error", "extension" array, no "request"
	"manifest_output_object",      // "output": {}
	"manifest_file_url_scheme",    // an output url with the file: scheme
	"manifest_link_local_url",     // an output url on the cloud metadata address 169.254.169.254
	"manifest_http_url",           // an output url with plain http on a non-loopback host
	"manifest_missing_type",       // an output item without "type"
	"manifest_foreign_url",        // output urls on another origin
}

// manifest is the completion manifest (BULK-17). Members typed any take the shapes the faults
// need.
type manifest struct {
	TransactionTime     string         `json:"transactionTime"`
	Request             string         `json:"request,omitempty"`
	RequiresAccessToken bool           `json:"requiresAccessToken"`
	OutputOrganizedBy   string         `json:"outputOrganizedBy,omitempty"`
	Output              any            `json:"output"`
	Error               any            `json:"error,omitempty"`
	Outcome             any            `json:"outcome,omitempty"`
	Deleted             []manifestItem `json:"deleted,omitempty"`
	Link                []manifestLink `json:"link,omitempty"`
	Extension           any            `json:"extension,omitempty"`
}

type manifestItem struct {
	Type  string `json:"type,omitempty"`
	URL   string `json:"url"`
	Count int    `json:"count,omitempty"`
}

type manifestLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// writeManifest answers 200 with the manifest page asked for (?page=N when paged), an Expires
// header, and the armed manifest faults applied.
func (f *fhirState) writeManifest(w http.ResponseWriter, r *http.Request, job *exportJob, take func(string) bool) {
	out := job.out
	origin := f.s.Origin(r)
	fileURL := func(o outputFile) manifestItem {
		u := origin + "/bulk/files/" + job.id + "/" + o.name
		if out.noToken {
			u += "?token=" + out.capability
		}
		return manifestItem{Type: o.manifestType(), URL: u, Count: o.count}
	}
	files, page, pages := out.files, 1, 1
	if out.paged {
		size := job.cfg.ManifestPageSize
		pages = max(1, (len(files)+size-1)/size)
		if p, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && p >= 1 && p <= pages {
			page = p
		}
		files = files[min(len(files), (page-1)*size):min(len(files), page*size)]
	}
	m := manifest{
		TransactionTime:     job.created.UTC().Format(fhirInstant),
		Request:             job.req.url,
		RequiresAccessToken: !out.noToken,
		Output:              mapItems(files, fileURL),
		Error:               []manifestItem{},
	}
	if job.req.organize {
		m.OutputOrganizedBy = "Patient"
	}
	if page == 1 {
		m.Error = mapItems(out.errors, fileURL)
		m.Deleted = mapItems(out.deleted, fileURL)
	}
	if page < pages {
		m.Link = []manifestLink{{"next", origin + "/bulk/status/" + job.id + "?page=" + strconv.Itoa(page+1)}}
	}
	f.distortManifest(&m, r, take)
	body, _ := json.Marshal(m)
	w.Header().Set("Expires", job.expires().UTC().Format(http.TimeFormat))
	if job.separate {
		w.Header().Set("X-Export-Status", "200 OK")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func mapItems(files []outputFile, fn func(outputFile) manifestItem) []manifestItem {
	items := make([]manifestItem, len(files))
	for i, o := range files {
		items[i] = fn(o)
	}
	return items
}

// distortManifest applies the per-response manifest faults.
func (f *fhirState) distortManifest(m *manifest, r *http.Request, take func(string) bool) {
	items, _ := m.Output.([]manifestItem)
	if take("manifest_missing_error") {
		m.Error = nil
	}
	if take("manifest_v4_outcome") {
		m.Outcome, m.Error, m.Request = m.Error, nil, ""
		m.Extension = []map[string]string{{"url": "https://example.org/fhir/StructureDefinition/note",
			"valueString": "4.0.0-ballot manifest"}}
	}
	if take("manifest_foreign_url") {
		for i := range items {
			items[i].URL = f.foreignOrigin(r) + strings.TrimPrefix(items[i].URL, f.s.Origin(r))
		}
	}
	if len(items) > 0 {
		switch {
		case take("manifest_file_url_scheme"):
			items[0].URL = "file:///etc/passwd"
		case take("manifest_link_local_url"):
			items[0].URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
		case take("manifest_http_url"):
			items[0].URL = "http://bulk.example.com/files/" + items[0].Type + ".ndjson"
		}
		if take("manifest_missing_type") {
			items[0].Type = ""
		}
	}
	if take("manifest_output_object") {
		m.Output = map[string]any{}
	}
}
