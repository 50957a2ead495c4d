package bulk

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/smart"
)

// SetProfile makes c follow a vendor profile (smart.Profile, CONV-5). Call it before first use, like
// setting the fields; a field already set keeps its value:
//   - PollCap becomes p.RetryAfterCap(): Oracle Health asks for five hours and gets 30 min;
//   - PollFloor becomes p.MinPollInterval when longer than DefaultPollFloor: CMS AB2D answers 429
//     to polls closer than that;
//   - FileNotFoundRetries becomes p.FileNotFoundRetries: CMS BCDA's output files may answer 404
//     for a while;
//   - _type is sent as p.JoinTypes says: one comma-separated value (Oracle Health refuses a
//     repeated _type) or, with TypeRepeat, one parameter per type;
//   - a 429 or 503 without a usable Retry-After waits as p.RetryWait says (the VA's
//     X-RateLimit-* headers);
//   - Cancel treats a 404 or 410 as success only with p.DeleteNotFoundOK (HAPI deletes finished jobs
//     itself); otherwise it reports ErrJobGone.
//
// The profile's headers (Epic-Client-ID) belong to HTTPClient, which backend.Config.Client with
// the same Profile adds. SetProfile returns an error wrapping smart.ErrInvalidProfile, and changes
// nothing, when p does not validate.
func (c *Client) SetProfile(p smart.Profile) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	if c.PollCap == 0 {
		c.PollCap = p.RetryAfterCap()
	}
	if c.PollFloor == 0 && p.MinPollInterval > DefaultPollFloor {
		c.PollFloor = p.MinPollInterval
	}
	if c.FileNotFoundRetries == 0 {
		c.FileNotFoundRetries = p.FileNotFoundRetries
	}
	p = p.Clone()
	c.profile = &p
	return nil
}

// typeValues returns the _type values to send for types: the profile's JoinTypes, else one
// comma-separated value (the Bulk Data rule).
func (c *Client) typeValues(types []string) []string {
	if c.profile != nil {
		return c.profile.JoinTypes(types)
	}
	if len(types) == 0 {
		return nil
	}
	return []string{strings.Join(types, ",")}
}

// retryAfterOf reads the wait a wrapped *fhirclient.Error (a 429 or 503) asks for: Retry-After, or
// with a profile that reads them the rate-limit headers.
func (c *Client) retryAfterOf(err error) (time.Duration, bool) {
	var fe *fhirclient.Error
	if !errors.As(err, &fe) {
		return 0, false
	}
	if c.profile != nil && fe.Header != nil {
		return c.profile.RetryWait(fe.Header, c.now())
	}
	return fe.RetryAfter(c.now())
}

// deleteNotFoundOK reports whether a 404 or 410 to the DELETE of a job counts as success.
func (c *Client) deleteNotFoundOK() bool { return c.profile != nil && c.profile.DeleteNotFoundOK }

// fileNotFound reports whether err is an output file's 404 (not a 410, which says the file expired).
func fileNotFound(err error) bool {
	var fe *fhirclient.Error
	return errors.Is(err, ErrFileExpired) && errors.As(err, &fe) && fe.StatusCode == http.StatusNotFound
}
