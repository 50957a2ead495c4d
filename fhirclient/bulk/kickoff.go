package bulk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Kickoff starts an export (BULK-01…11). It sends Accept: application/fhir+json and
// Prefer: respond-async, uses GET unless the request needs or asks for POST, waits and retries
// when the server answers 429 because another export is running, and returns the Job once the
// server answers 202 with a Content-Location on a trusted origin.
//
// Errors: ErrInvalidRequest before anything is sent; a kick-off 4xx/5xx wraps *fhirclient.Error
// with the OperationOutcome; a 429 asking for more than KickoffWaitCap, or one retry too many,
// returns *fhirclient.RetryAfterError saying when to come back.
func (c *Client) Kickoff(ctx context.Context, req ExportRequest) (*Job, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	base, err := c.base()
	if err != nil {
		return nil, err
	}
	u := base.ResolveReference(&url.URL{Path: req.path()})
	var body []byte
	method := http.MethodGet
	if req.usePOST() {
		method = http.MethodPost
		if body, err = req.parameters(c.typeValues(req.Types)); err != nil {
			return nil, err
		}
	} else {
		u.RawQuery = req.query(c.typeValues(req.Types))
	}
	hdr := http.Header{
		"Accept": {"application/fhir+json"},
		"Prefer": {req.prefer()},
	}
	if body != nil {
		hdr.Set("Content-Type", "application/fhir+json")
	}
	for attempt := 1; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		start := c.now()
		resp, err := c.do(ctx, method, u, hdr, rd, true)
		if err != nil {
			return nil, fmt.Errorf("bulk: kick-off: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusAccepted:
			drain(resp)
			return c.newJob(u, req, resp, start)
		case resp.StatusCode == http.StatusTooManyRequests:
			wait, err := c.kickoffWait(resp, attempt)
			if err != nil {
				return nil, err
			}
			if err := c.sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("bulk: kick-off: %w", err)
			}
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			drain(resp)
			return nil, fmt.Errorf("bulk: kick-off: unexpected status %s (want 202 Accepted; does the server support async $export?)", resp.Status)
		default:
			return nil, statusError("kick-off", resp)
		}
	}
}

// kickoffWait decides how long to wait after a kick-off 429 ("an export is already running",
// BULK-11), or returns the error that ends the retries.
func (c *Client) kickoffWait(resp *http.Response, attempt int) (time.Duration, error) {
	ferr := fhirclient.CheckResponse(resp)
	resp.Body.Close()
	var fe *fhirclient.Error
	errors.As(ferr, &fe)
	now := c.now()
	wait, ok := c.retryAfterOf(ferr) // Retry-After, or a profile's X-RateLimit-* headers
	if !ok {
		wait = httpx.Backoff(attempt, durationOr(c.BackoffCap, DefaultBackoffCap))
	}
	wait = max(wait, durationOr(c.PollFloor, DefaultPollFloor))
	if wait > durationOr(c.KickoffWaitCap, DefaultKickoffWaitCap) || attempt > intOr(c.MaxKickoffRetries, DefaultMaxKickoffRetries) {
		return 0, fmt.Errorf("bulk: kick-off: another export may be running: %w", &fhirclient.RetryAfterError{Wait: wait, At: now.Add(wait), Err: fe})
	}
	return wait, nil
}

// newJob validates the Content-Location of a 202 kick-off answer (BULK-10): present, resolved
// against the kick-off URL when relative, allowed by CONV-1 and on a trusted origin.
func (c *Client) newJob(kickoff *url.URL, req ExportRequest, resp *http.Response, start time.Time) (*Job, error) {
	loc := resp.Header.Get("Content-Location")
	if strings.TrimSpace(loc) == "" {
		return nil, ErrNoContentLocation
	}
	su, err := c.resolveTokenURL(kickoff, loc, "status (Content-Location)")
	if err != nil {
		return nil, err
	}
	j := &Job{
		StatusURL:   su.String(),
		KickoffURL:  redactURL(kickoff),
		Request:     req,
		KickoffTime: start.UTC(),
		c:           c,
		status:      su,
	}
	if req.SeparateExportStatus {
		j.SeparateStatus = preferenceApplied(resp.Header, "separate-export-status")
	}
	return j, nil
}

// preferenceApplied reports whether the Preference-Applied header lists token.
func preferenceApplied(h http.Header, token string) bool {
	for _, v := range h.Values("Preference-Applied") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}
