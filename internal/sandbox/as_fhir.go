package sandbox

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// publisher returns CapabilityStatement.publisher and software.name: the vendor's name in a vendor
// mode, so that smart.DetectProfile recognises it, else the sandbox's own.
func (f *fhirState) publisher() string {
	if p := f.s.as.publisher; p != "" {
		return p
	}
	return publisher
}

// asRequest applies the vendor mode to an authenticated FHIR request (API, bulk kick-off, status and
// files) and reports whether it may go on: Epic wants Epic-Client-ID with the client's id
// (cumulus-fhir-support client.py).
func (f *fhirState) asRequest(w http.ResponseWriter, r *http.Request, g *Grant) bool {
	h := f.s.as.clientIDHeader
	if h == "" || r.Header.Get(h) == g.ClientID {
		return true
	}
	f.s.incr("as_missing_client_id_header")
	writeOutcome(w, http.StatusBadRequest, issue{"error", "required", "the " + h + " header must carry the client_id"})
	return false
}

// asRateLimited applies the va mode's rate limit to a FHIR API request and reports whether it
// answered: at most vaRateLimit requests per vaRateWindow and client; a client over it is refused for a
// whole window with 429 and X-RateLimit-* headers but no Retry-After (fasten-sources vahealth.yaml
// client_rate_limited). Every answer carries the headers.
func (f *fhirState) asRateLimited(w http.ResponseWriter, clientID string) bool {
	m := f.s.as
	if !m.rateLimitHeaders {
		return false
	}
	now := f.s.Now()
	m.mu.Lock()
	win := m.windows[clientID]
	if win == nil {
		if len(m.windows) >= maxTrackedEntries {
			clear(m.windows)
		}
		win = &rateWindow{start: now}
		m.windows[clientID] = win
	}
	if !now.Before(win.start.Add(vaRateWindow)) {
		*win = rateWindow{start: now}
	}
	win.used++
	over := win.used > vaRateLimit
	if over && win.used == vaRateLimit+1 {
		win.start = now // the first refusal starts a whole window of refusals
	}
	reset := win.start.Add(vaRateWindow).Sub(now)
	remaining := max(0, vaRateLimit-win.used)
	m.mu.Unlock()

	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(vaRateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.Itoa(seconds(reset)))
	if !over {
		return false
	}
	f.s.incr("as_rate_limited")
	writeOutcome(w, http.StatusTooManyRequests, issue{"error", "throttled", "rate limit exceeded; see X-RateLimit-Reset"})
	return true
}

// asUnsupportedOperation answers, in the epic mode, Patient/[id]/$everything with 404 not-supported
// (fasten-sources epic.yaml missing_op_patient_everything) and reports whether it did.
func (f *fhirState) asUnsupportedOperation(w http.ResponseWriter, r *http.Request) bool {
	if !f.s.as.noEverything || !strings.HasSuffix(r.URL.Path, "/$everything") {
		return false
	}
	writeOutcome(w, http.StatusNotFound, issue{"error", "not-supported", "$everything is not supported by this server"})
	return true
}

// asKickoffParams refuses, in the oracle mode, a repeated _type: Oracle Health takes one
// comma-separated list only (smart-fetch bulk_utils.py).
func (f *fhirState) asKickoffParams(params map[string][]string) error {
	if f.s.as.commaTypeOnly && len(params["_type"]) > 1 {
		f.s.incr("as_repeated_type")
		return unsupportedParam("_type", "a repeated _type is not supported; send one comma-separated list")
	}
	return nil
}

// asPollTooSoon answers 429 to a status poll sooner than the minimum interval after the job's last
// answered poll (cms-ab2d, CMSgov/ab2d PR #17; FHIRSettings.MinPollInterval) and reports whether it
// did. Retry-After says how long is left; the refused poll does not restart the interval.
func (f *fhirState) asPollTooSoon(w http.ResponseWriter, job *exportJob, now time.Time) bool {
	left := job.lastPoll.Add(job.cfg.MinPollInterval).Sub(now)
	if job.cfg.MinPollInterval <= 0 || job.lastPoll.IsZero() || left <= 0 {
		return false
	}
	f.s.incr("bulk_status_throttled")
	w.Header().Set("Retry-After", strconv.Itoa(seconds(left)))
	writeOutcome(w, http.StatusTooManyRequests, issue{"error", "throttled", "polled too often: wait at least " +
		job.cfg.MinPollInterval.String() + " between status requests"})
	return true
}

// asStatusRetryAfter returns the Retry-After of an in-progress status answer: Oracle Health's five
// hours in the oracle mode (smart-fetch bulk_utils.py), else the configured one.
func (f *fhirState) asStatusRetryAfter(job *exportJob) time.Duration {
	if f.s.as.longRetryAfter {
		return oracleRetryAfter
	}
	return job.cfg.RetryAfter
}

// asCancel answers, in the hapi mode, the DELETE of a finished job with 404: HAPI removes finished
// jobs itself (smart-fetch _delete_export). It reports whether it answered.
func (f *fhirState) asCancel(w http.ResponseWriter, job *exportJob) bool {
	if !f.s.as.deleteFinished404 {
		return false
	}
	job.mu.Lock()
	finished := job.out != nil
	job.mu.Unlock()
	if !finished {
		return false
	}
	f.bulk.remove(job.id)
	f.s.incr("as_delete_404")
	writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "unknown, deleted or expired export job"})
	return true
}

// asOutputNames gives the output files opaque names in the epic and hapi modes, so that a client
// must take the type from the manifest, never from the URL (smart-fetch; bulk-data-client
// forceStandardFileNames).
func (f *fhirState) asOutputNames(job *exportJob, out *jobOutput) {
	if !f.s.as.opaqueFileNames {
		return
	}
	for _, list := range [][]outputFile{out.files, out.errors, out.deleted} {
		for i := range list {
			sum := sha256.Sum256([]byte(job.id + "/" + list[i].name))
			name := base64.RawURLEncoding.EncodeToString(sum[:opaqueNameBytes])
			list[i].name = name[:16] + "." + name[16:] // like Epic's eNZwsy9bU7LX8nBB.RJXkpA3
		}
	}
}

// asFileNotFound answers, in the cms-bcda mode, the first bcdaFile404s downloads of each output file
// with 404 (bulk_fhir_tools client.go GetData: BCDA's file 404s can be transient), more than one
// re-fetch of the manifest cures, and reports whether it did.
func (f *fhirState) asFileNotFound(w http.ResponseWriter, job *exportJob, o *outputFile) bool {
	m := f.s.as
	if !m.transientFile404 || !m.times(m.file404, job.id+"/"+o.name, bcdaFile404s) {
		return false
	}
	f.s.incr("bulk_file_404")
	writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "the file is not available yet"})
	return true
}
