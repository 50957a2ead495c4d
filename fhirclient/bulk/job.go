package bulk

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Job is a running export. Its exported fields are its persistable state: json.Marshal it, and
// another process brings it back with Client.ResumeJob. It holds no secret.
type Job struct {
	// StatusURL is the absolute status URL (the kick-off Content-Location).
	StatusURL string `json:"statusUrl"`
	// KickoffURL is the kick-off URL without its query, for logs.
	KickoffURL string `json:"kickoffUrl,omitempty"`
	// Request is the kick-off request.
	Request ExportRequest `json:"request"`
	// KickoffTime is when the kick-off was sent (local clock).
	KickoffTime time.Time `json:"kickoffTime"`
	// TransactionTime is the manifest's transactionTime once complete (server clock): the _since
	// of the next incremental export (BULK-19).
	TransactionTime string `json:"transactionTime,omitempty"`
	// SeparateStatus records that the server applied separate-export-status (BULK-03).
	SeparateStatus bool `json:"separateExportStatus,omitempty"`

	c      *Client
	status *url.URL
}

// ResumeJob restores a Job persisted with json.Marshal. The status URL must still pass CONV-1 and
// be on a trusted origin of c.
func (c *Client) ResumeJob(data []byte) (*Job, error) {
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("bulk: job state: %w", err)
	}
	return c.attach(&j)
}

// OpenJob returns a Job for a status URL obtained elsewhere (bulk-data-client --status).
func (c *Client) OpenJob(statusURL string) (*Job, error) {
	return c.attach(&Job{StatusURL: statusURL})
}

func (c *Client) attach(j *Job) (*Job, error) {
	u, err := url.Parse(j.StatusURL)
	if err != nil || !u.IsAbs() {
		return nil, fmt.Errorf("bulk: job state: status URL is not absolute: %w", httpx.ErrInsecureURL)
	}
	if err := c.checkTokenURL(u, "status"); err != nil {
		return nil, err
	}
	j.c, j.status = c, u
	return j, nil
}

// Status is the answer to one status poll.
type Status struct {
	// Complete is true when the manifest is ready.
	Complete bool
	// Progress is the X-Progress header, control characters escaped and at most 200 characters
	// (BULK-14). It is untrusted server text.
	Progress string
	// RetryAfter is the server's Retry-After when HasRetryAfter (both RFC 9110 forms; epoch
	// timestamps and garbage are ignored).
	RetryAfter    time.Duration
	HasRetryAfter bool
	// Manifest is the completion manifest, or a partial manifest of a 202 when the server
	// publishes files early (allowPartialManifests, BULK-21).
	Manifest *Manifest
	// Wait is how long Job.Wait sleeps before the next poll (set by Wait only).
	Wait time.Duration
	// Err, set by Wait only, is a 429 or transient error that Wait retries after Wait.
	Err error
}

// maxProgress bounds X-Progress text.
const maxProgress = 200

// Status polls the status URL once (BULK-12…17) with Accept: application/json. A 202 is in
// progress; a 200 carries the manifest (validated). Errors: 404/410 wrap ErrJobGone; other
// 4xx/5xx wrap *fhirclient.Error (IsTransient tells whether to poll again) and, when not
// transient or rate limiting, ErrJobFailed.
func (j *Job) Status(ctx context.Context) (*Status, error) {
	resp, err := j.c.do(ctx, http.MethodGet, j.status, http.Header{"Accept": {"application/json"}}, nil, true)
	if err != nil {
		return nil, fmt.Errorf("bulk: status: %w", err)
	}
	code := resp.StatusCode
	if j.SeparateStatus && code == http.StatusOK {
		// BULK-03: the HTTP status is the poll's own; the job's is in X-Export-Status.
		if xs := resp.Header.Get("X-Export-Status"); xs != "" {
			var n int
			if _, err := fmt.Sscanf(xs, "%d", &n); err == nil && n >= 200 && n <= 599 {
				code = n
				resp.StatusCode = n
			}
		}
	}
	switch {
	case code == http.StatusAccepted:
		st := &Status{Progress: truncate(httpx.SanitizeText(resp.Header.Get("X-Progress")), maxProgress)}
		st.RetryAfter, st.HasRetryAfter = httpx.ParseRetryAfter(resp.Header.Get("Retry-After"), j.c.now())
		if b, err := readBody(resp, j.c.maxManifestBody()); err == nil && len(b) > 0 {
			if m, err := ParseManifest(b, j.c.InsecureAllowHTTP); err == nil {
				m.URL = j.StatusURL
				st.Manifest = m
			}
		}
		return st, nil
	case code == http.StatusOK:
		m, err := j.c.readManifest(resp, j.StatusURL)
		if err != nil {
			return nil, err
		}
		j.TransactionTime = m.TransactionTime
		return &Status{Complete: true, Manifest: m}, nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return nil, fmt.Errorf("%w: %w", ErrJobGone, statusError("status", resp))
	case code == http.StatusTooManyRequests:
		return nil, statusError("status", resp)
	default:
		if code >= 200 && code < 400 {
			drain(resp)
			return nil, fmt.Errorf("%w: unexpected status response %d", ErrJobFailed, code)
		}
		err := statusError("status", resp)
		if IsTransient(err) || code == http.StatusUnauthorized || code == http.StatusForbidden {
			// 401/403 speak of our credentials, not of the job, which may well go on.
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrJobFailed, err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func (c *Client) maxManifestBody() int64 { return intOr(c.MaxManifestBody, DefaultMaxManifestBody) }

// readManifest reads and validates a 200 manifest response, and records its Expires (BULK-20).
func (c *Client) readManifest(resp *http.Response, from string) (*Manifest, error) {
	expires, _ := http.ParseTime(resp.Header.Get("Expires")) // zero when absent or not a date
	b, err := readBody(resp, c.maxManifestBody())
	if err != nil {
		return nil, fmt.Errorf("bulk: manifest: %w", err)
	}
	m, err := ParseManifest(b, c.InsecureAllowHTTP)
	if err != nil {
		return nil, err
	}
	m.URL, m.Expires = from, expires
	return m, nil
}

// ProgressFunc receives each in-progress status while Wait polls.
type ProgressFunc func(*Status)

// Wait polls until the export completes and returns the first manifest page (BULK-13…16). It
// waits Retry-After (delta-seconds or HTTP date) clamped to [PollFloor, PollCap], or an
// exponential backoff up to BackoffCap when the server gives none or an implausible one (an epoch
// timestamp, garbage). A 429 slows down and keeps polling, up to MaxRateLimited in a row
// (ErrRateLimited); a transient 5xx with a usable Retry-After says the server is busy, not that
// the job failed, and is polled again as it asks until more than MaxRateLimited such answers in a
// row have taken at least PollCap of waiting (ErrRateLimited); another transient error is retried
// up to MaxTransient in a row; any other error ends the wait. On giving up for 429s, busy answers
// or network errors the job may still be running, and the error says how to resume. progress (may
// be nil) sees every in-progress answer.
func (j *Job) Wait(ctx context.Context, progress ProgressFunc) (*Manifest, error) {
	c := j.c
	var backoff, limited, busy, transient int
	var busyWait time.Duration
	for {
		st, err := j.Status(ctx)
		var wait time.Duration
		switch {
		case err == nil && st.Complete:
			return st.Manifest, nil
		case err == nil:
			limited, busy, transient, busyWait = 0, 0, 0, 0
			wait = c.pollWait(st.RetryAfter, st.HasRetryAfter, &backoff)
			if progress != nil {
				st.Wait = wait
				progress(st)
			}
		case ctx.Err() != nil:
			return nil, fmt.Errorf("bulk: status: %w", ctx.Err())
		case errors.Is(err, fhirclient.ErrTooManyRequests):
			if limited++; limited > intOr(c.MaxRateLimited, DefaultMaxRateLimited) {
				return nil, fmt.Errorf("%w: %d answers of 429 in a row; %s: %w", ErrRateLimited, limited, j.resumeHint(), err)
			}
		case c.serverBusy(err):
			// A 503 (or another transient 5xx) with a usable Retry-After: the server asks for
			// time, the job may well be running. Bounded by a count and by PollCap of waiting.
			if busy++; busy > intOr(c.MaxRateLimited, DefaultMaxRateLimited) && busyWait >= durationOr(c.PollCap, DefaultPollCap) {
				return nil, fmt.Errorf("%w: %d busy answers in a row over %s; %s: %w", ErrRateLimited, busy, busyWait, j.resumeHint(), err)
			}
		case IsTransient(err) || isNetworkError(err):
			if transient++; transient > intOr(c.MaxTransient, DefaultMaxTransient) {
				if IsTransient(err) { // the server keeps answering with errors: the job is lost
					return nil, fmt.Errorf("%w: %d transient errors in a row: %w", ErrJobFailed, transient, err)
				}
				// The server cannot be reached: the job may well be alive, to be polled later.
				return nil, fmt.Errorf("bulk: status: giving up after %d network errors in a row; %s: %w", transient, j.resumeHint(), err)
			}
		default:
			return nil, err
		}
		if err != nil {
			ra, ok := c.retryAfterOf(err)
			wait = c.pollWait(ra, ok, &backoff)
			if busy > 0 {
				busyWait += wait
			}
			if progress != nil {
				progress(&Status{Wait: wait, Err: err})
			}
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("bulk: status: %w", err)
		}
	}
}

// serverBusy reports a status answer that asks for time rather than reporting a failure: a
// transient 5xx (no OperationOutcome, or a transient issue code) with a usable Retry-After.
func (c *Client) serverBusy(err error) bool {
	var fe *fhirclient.Error
	if !IsTransient(err) || !errors.As(err, &fe) || fe.StatusCode < 500 {
		return false
	}
	_, ok := c.retryAfterOf(err)
	return ok
}

// resumeHint tells how to carry on with a job that may still be running.
func (j *Job) resumeHint() string {
	return "the export job may still be running: poll its status URL " + redactURLString(j.StatusURL) +
		" again later (Client.OpenJob, Exporter.Resume, or smartfhir export --resume DIR)"
}

// pollWait clamps a server wait to [PollFloor, PollCap], or, without one, returns the next
// exponential backoff step (1 s, 2 s, 4 s … up to BackoffCap).
func (c *Client) pollWait(ra time.Duration, ok bool, backoff *int) time.Duration {
	floor := durationOr(c.PollFloor, DefaultPollFloor)
	if ok {
		*backoff = 0
		return min(max(ra, floor), durationOr(c.PollCap, DefaultPollCap))
	}
	*backoff++
	return max(httpx.Backoff(*backoff, durationOr(c.BackoffCap, DefaultBackoffCap)), floor)
}

// isNetworkError reports a transport failure worth retrying: a connection refused, reset or timed
// out, or a body cut short. Everything else, in particular a token-endpoint refusal surfacing through
// the authenticating transport (*oauth2.RetrieveError) or a cancelled context, is not.
func isNetworkError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// A redirect refused by CONV-1 or one too many arrives as a *url.Error, a net.Error: it is
	// not a passing failure.
	if errors.Is(err, httpx.ErrInsecureURL) || errors.Is(err, errTooManyRedirects) {
		return false
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return false
	}
	// An untrusted certificate, or a token the auth transport will not put in a header, arrives as
	// a *url.Error too, and no retry fixes it.
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) || errors.Is(err, smart.ErrInvalidAccessToken) {
		return false
	}
	var ne net.Error
	var pe textproto.ProtocolError // a garbled response (a header Go refuses to parse)
	return errors.As(err, &ne) || errors.As(err, &pe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// Cancel deletes the job (BULK-22): DELETE on the status URL. 202 (or any 2xx) is success. A 404
// or 410 means the job is gone already: success with a profile whose DeleteNotFoundOK says the
// server removes finished jobs itself (HAPI), else an error wrapping ErrJobGone, for the caller to
// report (a job deleted by someone else, or a wrong status URL).
func (j *Job) Cancel(ctx context.Context) error {
	resp, err := j.c.do(ctx, http.MethodDelete, j.status, http.Header{"Accept": {"application/fhir+json"}}, nil, true)
	if err != nil {
		return fmt.Errorf("bulk: delete job: %w", err)
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		drain(resp)
		return nil
	case code == http.StatusNotFound || code == http.StatusGone:
		if j.c.deleteNotFoundOK() {
			drain(resp)
			return nil
		}
		return fmt.Errorf("%w: %w", ErrJobGone, statusError("delete job", resp))
	default:
		return statusError("delete job", resp)
	}
}

// NextPage fetches the page after m (link relation "next"), or returns nil, nil on the last page.
// The next URL must be on a trusted origin (it receives the token).
func (j *Job) NextPage(ctx context.Context, m *Manifest) (*Manifest, error) {
	next := m.Next()
	if next == "" {
		return nil, nil
	}
	ref := j.status
	if m.URL != "" {
		if u, err := url.Parse(m.URL); err == nil {
			ref = u
		}
	}
	u, err := j.c.resolveTokenURL(ref, next, "manifest next")
	if err != nil {
		return nil, err
	}
	return j.c.fetchManifest(ctx, u)
}

// fetchManifest GETs one manifest page, retrying transient answers a few times (BULK-21: a next
// request may fail transiently).
func (c *Client) fetchManifest(ctx context.Context, u *url.URL) (*Manifest, error) {
	var backoff int
	for attempt := 1; ; attempt++ {
		resp, err := c.do(ctx, http.MethodGet, u, http.Header{"Accept": {"application/json"}}, nil, true)
		if err == nil && resp.StatusCode == http.StatusOK {
			return c.readManifest(resp, u.String())
		}
		if err == nil {
			err = statusError("manifest", resp)
		}
		retry := isNetworkError(err) || IsTransient(err) || errors.Is(err, fhirclient.ErrTooManyRequests)
		if !retry || attempt >= 3 || ctx.Err() != nil {
			return nil, err
		}
		ra, ok := c.retryAfterOf(err)
		if err := c.sleep(ctx, min(c.pollWait(ra, ok, &backoff), httpx.MaxAPIWait)); err != nil {
			return nil, fmt.Errorf("bulk: manifest: %w", err)
		}
	}
}
