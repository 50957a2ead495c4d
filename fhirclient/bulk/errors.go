package bulk

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Sentinel errors. Failures that carry a server answer also wrap a *fhirclient.Error (status,
// OperationOutcome issues), so errors.As(err, &fe) reads the server's diagnostics.
var (
	// ErrInvalidRequest reports an ExportRequest the client refuses to send (bad type name,
	// patient list at system level, _sort inside a _typeFilter, …).
	ErrInvalidRequest = errors.New("bulk: invalid export request")
	// ErrUntrustedOrigin reports a URL that would need the access token on an origin that may not
	// receive it (CONV-1). The error text names the origin.
	ErrUntrustedOrigin = errors.New("bulk: origin may not receive the access token")
	// ErrNoContentLocation reports a 202 kick-off response without a Content-Location header.
	ErrNoContentLocation = errors.New("bulk: kick-off response has no Content-Location")
	// ErrJobFailed reports a status response that ends the job: an error that is not transient.
	ErrJobFailed = errors.New("bulk: export job failed")
	// ErrJobGone reports a status URL that answers 404 or 410: the job was cancelled, deleted or
	// has expired.
	ErrJobGone = errors.New("bulk: export job not found (cancelled, deleted or expired)")
	// ErrRateLimited reports more consecutive 429 answers, or 5xx answers asking for time with
	// Retry-After (server busy), than the client tolerates. The job may still be running.
	ErrRateLimited = errors.New("bulk: rate limited by the server")
	// ErrBadManifest reports a completion manifest that does not follow the specification.
	ErrBadManifest = errors.New("bulk: invalid manifest")
	// ErrFileExpired reports an output file that answers 404 or 410 (its link has expired).
	ErrFileExpired = errors.New("bulk: output file expired or not found")
	// ErrManifestExpired reports a manifest whose Expires has passed and that could not be fetched
	// again (BULK-20): its file links are no longer usable, and the export must be run again. The
	// error also wraps the cause of the failed re-fetch.
	ErrManifestExpired = errors.New("bulk: the manifest's file links have expired")
	// ErrDecompressionBomb reports a gzip body that expands beyond Client.MaxCompressionRatio.
	ErrDecompressionBomb = errors.New("bulk: gzip body expands too much (decompression bomb?)")
	// ErrLineTooLong reports an NDJSON line longer than the line limit (64 MiB by default).
	ErrLineTooLong = errors.New("bulk: NDJSON line too long")
	// ErrInvalidLine reports an NDJSON line that is not a JSON object of the expected type.
	ErrInvalidLine = errors.New("bulk: invalid NDJSON line")
	// ErrStalled reports a download that received no byte for Client.StallTimeout. Downloads
	// resume after a stall; the error surfaces only when the retries are used up.
	ErrStalled = errors.New("bulk: download stalled")
	// ErrNotSupported reports an export the server's CapabilityStatement says it does not support
	// (BULK-34): a level it does not declare, or a resource type it marks operation-not-supported.
	ErrNotSupported = errors.New("bulk: export not supported by the server")
	// ErrBadBlock reports organised output whose blocks do not follow the specification
	// (BULK-29): a resource before the first header, a continuation that does not continue, a
	// block over the size limit.
	ErrBadBlock = errors.New("bulk: invalid organised output")
	// ErrDirInUse reports an output directory that already holds an export (Exporter.Start).
	ErrDirInUse = errors.New("bulk: output directory already holds an export")
)

// LineError locates an NDJSON problem: the file (a local name or a URL without its query) and the
// 1-based line number. It wraps ErrLineTooLong or ErrInvalidLine.
type LineError struct {
	File string
	Line int64
	Err  error
}

// Error reports "bulk: FILE:LINE: problem".
func (e *LineError) Error() string {
	return "bulk: " + e.File + ":" + strconv.FormatInt(e.Line, 10) + ": " + trimPrefix(e.Err.Error())
}

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// trimPrefix drops a leading "bulk: " so that wrapped messages do not repeat it.
func trimPrefix(s string) string {
	const p = "bulk: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// transientCodes are the OperationOutcome issue codes that mean "try again later": transient and
// its children (BULK-16; FHIR issue-type value set).
var transientCodes = map[string]bool{
	"transient": true, "lock-error": true, "no-store": true, "exception": true, "timeout": true,
	"incomplete": true, "throttled": true,
}

// IsTransient reports whether err is a server answer worth retrying later: a 4xx/5xx whose
// OperationOutcome carries a transient issue code (BULK-16), or a 500/502/503/504 without an
// OperationOutcome (Oracle Health sends those for passing faults; retries stay bounded).
func IsTransient(err error) bool {
	var fe *fhirclient.Error
	if !errors.As(err, &fe) {
		return false
	}
	if len(fe.Issues) > 0 {
		for _, is := range fe.Issues {
			if transientCodes[is.Code] {
				return true
			}
		}
		return false
	}
	switch fe.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// statusError wraps a non-2xx response checked by fhirclient.CheckResponse, prefixed with the
// step that failed, and closes the body: the *fhirclient.Error keeps the first MiB of it, and an
// unread rest must not pin the connection.
func statusError(step string, resp *http.Response) error {
	err := fhirclient.CheckResponse(resp)
	resp.Body.Close()
	if err == nil { // a 2xx the step does not expect (a 204 manifest page)
		return fmt.Errorf("bulk: %s: unexpected status %s", step, httpx.SanitizeText(resp.Status))
	}
	return fmt.Errorf("bulk: %s: %w", step, err)
}
