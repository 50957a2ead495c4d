package fhirclient

import (
	"fmt"
	"net/http"
	"time"

	"github.com/smartfhir/smartfhir/smart"
)

// SetProfile makes c follow a vendor profile (smart.Profile, CONV-5). Call it before the first
// request, like setting the exported fields:
//
//   - the profile's FHIR headers (smart.Profile.FHIRHeader: its Headers, clientID in its
//     ClientIDHeader such as Epic-Client-ID, and its Accept) are added to Header, where a value
//     already in Header wins;
//   - Operation and Everything fail at once, without a request, with an error wrapping
//     smart.ErrUnsupportedOperation for an operation the profile lists as missing (Epic has no
//     $everything);
//   - a 429 or 503 without a usable Retry-After waits as the X-RateLimit-* headers say when the
//     profile reads them (RateLimitHeaders: the VA), still within RetryPolicy.MaxWait (CONV-3).
//
// It returns an error wrapping smart.ErrInvalidProfile, and changes nothing, when p does not
// validate.
func (c *Client) SetProfile(p smart.Profile, clientID string) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("fhirclient: %w", err)
	}
	if c.Header == nil {
		c.Header = http.Header{}
	}
	for k, vs := range p.FHIRHeader(clientID) {
		if _, set := c.Header[k]; !set {
			c.Header[k] = vs
		}
	}
	p = p.Clone()
	c.profile = &p
	return nil
}

// Profile returns a copy of the profile SetProfile applied, and false when there is none.
func (c *Client) Profile() (smart.Profile, bool) {
	if c.profile == nil {
		return smart.Profile{}, false
	}
	return c.profile.Clone(), true
}

// checkOperation fails fast for an operation the profile says the server lacks.
func (c *Client) checkOperation(name string) error {
	if c.profile == nil {
		return nil
	}
	if err := c.profile.CheckOperation(name); err != nil {
		return fmt.Errorf("fhirclient: %w", err)
	}
	return nil
}

// retryWait is the wait a 429 or 503 asks for: Retry-After, or with a profile that reads them the
// rate-limit headers. ok is false when the response gives no usable hint.
func (c *Client) retryWait(e *Error, now time.Time) (time.Duration, bool) {
	if c.profile == nil || e.Header == nil {
		return e.RetryAfter(now)
	}
	return c.profile.RetryWait(e.Header, now)
}
