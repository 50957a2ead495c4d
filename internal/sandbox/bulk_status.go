package sandbox

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// bulkStatusFaults are the status-polling faults (SBX-17).
var bulkStatusFaults = []string{
	"transient_error",               // 500 + OperationOutcome issue.code=transient; the job goes on
	"bulk_status_500_fatal",         // 500 + OperationOutcome (processing): the job has failed for good
	"bulk_status_429",               // 429 + Retry-After for a poll sooner than the last Retry-After
	"bulk_retry_after_date",         // in progress, Retry-After as an HTTP-date
	"bulk_retry_after_huge",         // in progress, Retry-After of a day
	"bulk_retry_after_garbage",      // in progress, Retry-After that is not a delay
	"bulk_status_non_fhir_error",    // 502 with a plain-text body (a proxy's error page)
	"bulk_x_progress_control_chars", // in progress, X-Progress with an 8-bit ANSI CSI, a bidi override and 500 characters
	"bulk_separate_export_status",   // the job answers as if Prefer: separate-export-status was sent
}

// statusProgressFaults force one in-progress answer (even for a finished job) with a malformed
// header.
var statusProgressFaults = []string{"bulk_retry_after_date", "bulk_retry_after_huge", "bulk_retry_after_garbage",
	"bulk_x_progress_control_chars"}

// jobFor authenticates a status, DELETE or file request and finds its job; it writes 401 or 404
// itself. Another client's job is reported as unknown.
func (f *fhirState) jobFor(w http.ResponseWriter, r *http.Request) (*exportJob, *Grant, bool) {
	g, ok := f.authenticate(w, r)
	if !ok {
		return nil, nil, false
	}
	job := f.bulk.get(r.PathValue("job"))
	if job == nil || job.clientID != "" && g.ClientID != job.clientID {
		writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "unknown, deleted or expired export job"})
		return nil, nil, false
	}
	return job, g, true
}

// status serves GET /bulk/status/{job} (BULK-12…21).
func (f *fhirState) status(w http.ResponseWriter, r *http.Request) {
	f.s.incr("bulk_status_requests")
	job, g, ok := f.jobFor(w, r)
	if !ok {
		return
	}
	take := func(name string) bool { return f.s.takeFault(name, g.ClientID) }
	now := f.s.Now()
	job.mu.Lock()
	defer job.mu.Unlock()
	fast := !job.lastPoll.IsZero() && now.Sub(job.lastPoll) < job.cfg.RetryAfter
	if f.asPollTooSoon(w, job, now) {
		return
	}
	job.lastPoll = now
	if f.statusError(w, job, fast, take) {
		return
	}
	forced := ""
	for _, name := range statusProgressFaults {
		if take(name) {
			forced = name
			break
		}
	}
	if forced != "" || now.Before(job.ready) {
		f.inProgress(w, job, now, forced)
		return
	}
	if job.out == nil {
		job.out = f.computeOutput(job)
		job.out.noToken = job.cfg.CapabilityURLs || take("manifest_no_token_required")
		if job.out.noToken {
			job.out.capability = randomToken()
		}
		job.out.paged = job.req.partial || take("manifest_partial_pages")
		if take("some_file_generation_failed") {
			job.out.errors = []outputFile{{name: "errors.ndjson", kind: fileErrors, count: len(generationErrors)}}
		}
	}
	job.expired = false
	f.writeManifest(w, r, job, take)
}

// statusError answers the polls that fail (SBX-17) and reports whether it did.
func (f *fhirState) statusError(w http.ResponseWriter, job *exportJob, fast bool, take func(string) bool) bool {
	switch {
	case fast && take("bulk_status_429"):
		w.Header().Set("Retry-After", strconv.Itoa(seconds(job.cfg.RetryAfter)))
		writeOutcome(w, http.StatusTooManyRequests, issue{"error", "throttled", "polling too often; honour Retry-After"})
	case job.failed || take("bulk_status_500_fatal"):
		job.failed = true
		jobStatus(w, job, http.StatusInternalServerError,
			outcomeJSON(issue{"fatal", "processing", "the export failed: the data store became unavailable"}))
	case take("transient_error"):
		writeOutcome(w, http.StatusInternalServerError, issue{"error", "transient", "the export worker restarted; retry later"})
	case take("bulk_status_non_fhir_error"):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("upstream connect error or disconnect/reset before headers\n"))
	default:
		return false
	}
	return true
}

// jobStatus writes a response about the job itself: its status code directly, or under
// separate-export-status as 200 with X-Export-Status (BULK-03).
func jobStatus(w http.ResponseWriter, job *exportJob, code int, body []byte) {
	if job.separate {
		w.Header().Set("X-Export-Status", strconv.Itoa(code)+" "+http.StatusText(code))
		code = http.StatusOK
	}
	if body == nil {
		w.WriteHeader(code)
		return
	}
	writeFHIR(w, code, body)
}

// inProgress answers 202 with Retry-After and X-Progress (BULK-13, BULK-14).
func (f *fhirState) inProgress(w http.ResponseWriter, job *exportJob, now time.Time, fault string) {
	retry := strconv.Itoa(seconds(f.asStatusRetryAfter(job)))
	progress := "exporting: " + strconv.Itoa(job.percent(now)) + "% complete"
	switch fault {
	case "bulk_retry_after_date":
		retry = f.retryAfter("date")
	case "bulk_retry_after_huge":
		retry = f.retryAfter("huge")
	case "bulk_retry_after_garbage":
		retry = f.retryAfter("garbage")
	case "bulk_x_progress_control_chars":
		// HTTP/1.1 forbids C0 controls (ESC, BEL) in field values and Go clients refuse them, so
		// the attack uses what survives the wire: C1 controls (U+009B is the 8-bit CSI that starts
		// an ANSI sequence on many terminals), bidi overrides and 500 characters.
		progress = "\u009b31;1mexporting\u009b0m \u202egnissecorp\u202c " + strings.Repeat("=", 500)
	}
	w.Header().Set("Retry-After", retry)
	w.Header().Set("X-Progress", progress)
	jobStatus(w, job, http.StatusAccepted, nil)
}

// percent estimates the job's progress from its elapsed time.
func (j *exportJob) percent(now time.Time) int {
	total := j.ready.Sub(j.created)
	if total <= 0 {
		return 99
	}
	return min(99, int(100*now.Sub(j.created)/total))
}

// seconds rounds d up to whole seconds (at least 1).
func seconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// cancel serves DELETE /bulk/status/{job}: 202, then the job is gone (polls and files get 404,
// BULK-22).
func (f *fhirState) cancel(w http.ResponseWriter, r *http.Request) {
	job, _, ok := f.jobFor(w, r)
	if !ok || f.asCancel(w, job) {
		return
	}
	f.bulk.remove(job.id)
	writeOutcome(w, http.StatusAccepted, issue{"information", "informational", "export job deleted"})
}
