package sandbox

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Media types served by the FHIR half.
const (
	mediaFHIRJSON   = "application/fhir+json"
	mediaFHIRNDJSON = "application/fhir+ndjson"
)

// issue is one OperationOutcome.issue: severity (fatal, error, warning, information), an
// IssueType code (invalid, not-found, forbidden, transient, …) and diagnostics.
type issue struct{ severity, code, diagnostics string }

// outcomeJSON encodes an OperationOutcome.
func outcomeJSON(issues ...issue) []byte {
	j := jsonBuf{b: make([]byte, 0, 256)}
	j.obj("")
	j.str("resourceType", "OperationOutcome")
	j.arr("issue")
	for _, is := range issues {
		j.obj("")
		j.str("severity", is.severity)
		j.str("code", is.code)
		if is.diagnostics != "" {
			j.str("diagnostics", is.diagnostics)
		}
		j.end()
	}
	j.endArr()
	j.end()
	return j.b
}

// writeOutcome answers with an OperationOutcome (every FHIR error does).
func writeOutcome(w http.ResponseWriter, status int, issues ...issue) {
	writeFHIR(w, status, outcomeJSON(issues...))
}

// writeFHIR writes a FHIR JSON body.
func writeFHIR(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", mediaFHIRJSON)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// negotiate checks the Accept header: JSON in any of its FHIR spellings (or none, or */*) is
// served as application/fhir+json; a request that accepts only other formats gets 406.
func negotiate(w http.ResponseWriter, r *http.Request) bool {
	if f := r.URL.Query().Get("_format"); f != "" && !acceptableFormat(f) {
		writeOutcome(w, http.StatusNotAcceptable, issue{"error", "not-supported", "only JSON is supported (_format)"})
		return false
	}
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && acceptableFormat(mt) {
			return true
		}
	}
	writeOutcome(w, http.StatusNotAcceptable, issue{"error", "not-supported",
		"only application/fhir+json and application/json are supported"})
	return false
}

func acceptableFormat(mt string) bool {
	switch strings.ToLower(mt) {
	case mediaFHIRJSON, "application/json", "application/json+fhir", "json", "*/*", "application/*":
		return true
	}
	return false
}

// quoteText quotes request-supplied text for diagnostics: control characters escaped, at most 100
// bytes.
func quoteText(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return strconv.Quote(httpx.SanitizeText(s))
}
