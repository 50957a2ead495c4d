package sandbox

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// fhirFaultNames lists the faults the FHIR half honours (SBX-15…19). Arm them with Server.Fault or
// POST /sandbox/faults.
var fhirFaultNames = slices.Concat(apiFaultNames, bulkKickoffFaults, bulkStatusFaults, bulkManifestFaults,
	bulkFileFaults)

// retryAfterForms are the shapes of Retry-After the throttling faults send (CONV-3): delta
// seconds, an HTTP-date, a huge delay, an epoch timestamp in milliseconds, and garbage.
var retryAfterForms = []string{"seconds", "date", "huge", "epoch_ms", "garbage"}

// apiFaultNames are the REST API faults (SBX-15).
var apiFaultNames = slices.Concat([]string{
	"request_invalid_token", "request_expired_token", // 401 + WWW-Authenticate for a valid token
	"api_redirect_foreign", // 302 to another origin
	"api_next_foreign",     // Bundle link.next on another origin
	"api_500_outcome",      // 500 with an OperationOutcome of several issues
	"api_html_500",         // 500 with an HTML page
	"api_truncated_json",   // 200 whose JSON body is cut in half
}, throttleFaultNames("api_429_"), throttleFaultNames("api_503_"))

func throttleFaultNames(prefix string) []string {
	out := make([]string, len(retryAfterForms))
	for i, form := range retryAfterForms {
		out[i] = prefix + form
	}
	return out
}

// retryAfter returns a Retry-After value of the given form.
func (f *fhirState) retryAfter(form string) string {
	now := f.s.Now()
	switch form {
	case "date":
		return now.Add(2 * time.Second).UTC().Format(http.TimeFormat)
	case "huge":
		return "86400"
	case "epoch_ms":
		return strconv.FormatInt(now.UnixMilli(), 10)
	case "garbage":
		return "soon-ish"
	default:
		return "1"
	}
}

// apiFault answers r as an armed API fault dictates and reports whether it did.
func (f *fhirState) apiFault(w http.ResponseWriter, r *http.Request, clientID string) bool {
	take := func(name string) bool { return f.s.takeFault(name, clientID) }
	switch {
	case take("api_redirect_foreign"):
		http.Redirect(w, r, f.foreignOrigin(r)+r.URL.RequestURI(), http.StatusFound)
		return true
	case take("api_500_outcome"):
		writeOutcome(w, http.StatusInternalServerError,
			issue{"error", "exception", "the database connection was lost"},
			issue{"warning", "incomplete", "partial results were discarded"},
			issue{"information", "informational", "incident 4711 was logged"})
		return true
	case take("api_html_500"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n"))
		return true
	}
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		for _, form := range retryAfterForms {
			if take("api_" + strconv.Itoa(status) + "_" + form) {
				w.Header().Set("Retry-After", f.retryAfter(form))
				writeOutcome(w, status, issue{"error", "throttled", "the server is busy; retry later"})
				return true
			}
		}
	}
	return false
}

// respond writes a FHIR JSON body, cut in half when api_truncated_json is armed.
func (f *fhirState) respond(w http.ResponseWriter, clientID string, status int, body []byte) {
	if f.s.takeFault("api_truncated_json", clientID) {
		body = body[:len(body)/2]
	}
	writeFHIR(w, status, body)
}
