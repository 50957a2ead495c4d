package bulk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	gojson "github.com/goccy/go-json"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Attachment describes an attachment body fetched by FetchAttachment.
type Attachment struct {
	// URL is the URL fetched, without its query (pre-signed URLs carry signatures).
	URL string
	// ContentType is the server's Content-Type (untrusted; the resource's attachment.contentType
	// is the documented one).
	ContentType string
	// Size is the number of (decoded) bytes written.
	Size int64
	// TokenSent says whether the request carried the access token.
	TokenSent bool
}

// AttachmentURLs returns the attachment URLs of a DocumentReference (content.attachment.url,
// BULK-30), or nil for another resource or malformed JSON. Attachments inline as data have no URL.
func AttachmentURLs(resource []byte) []string {
	var doc struct {
		ResourceType string `json:"resourceType"`
		Content      []struct {
			Attachment struct {
				URL string `json:"url"`
			} `json:"attachment"`
		} `json:"content"`
	}
	if gojson.Unmarshal(resource, &doc) != nil || doc.ResourceType != "DocumentReference" {
		return nil
	}
	var urls []string
	for _, c := range doc.Content {
		if u := strings.TrimSpace(c.Attachment.URL); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// FetchAttachment writes the body of an attachment of the export m into w (BULK-30): a URL from
// AttachmentURLs, absolute as Bulk Data requires (a relative one is resolved against the FHIR
// base). The access token is sent only when m.RequiresAccessToken is true and the URL is on the
// FHIR base origin or one of TrustedOrigins (CONV-1); otherwise the body is fetched without it, as
// a pre-signed URL is, and redirects never carry it off its origin. file:, data:, link-local and
// metadata URLs, and plain http to a non-loopback host, are refused before any request and on
// every redirect (httpx.ErrInsecureURL).
//
// The download engine's rules apply: retries of 5xx and network errors, Range resume, gzip
// decoding with the bomb limit, stall fail-over; the body is bounded by MaxAttachment
// (httpx.ErrBodyTooLarge). A 401 or 403 to a request sent without the token because of its origin
// wraps ErrUntrustedOrigin. A nil m is refused with ErrBadManifest.
func (c *Client) FetchAttachment(ctx context.Context, m *Manifest, attachmentURL string, w io.Writer) (*Attachment, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: attachment: no manifest (its requiresAccessToken decides where the token may go)", ErrBadManifest)
	}
	t, err := c.attachmentTarget(m, attachmentURL)
	if err != nil {
		return nil, err
	}
	a := &Attachment{URL: t.name, TokenSent: t.auth}
	lw := &limitWriter{w: w, max: intOr(c.MaxAttachment, DefaultMaxAttachment)}
	n, err := c.fetch(ctx, t, 0, lw, fetchHooks{contentType: func(ct string) { a.ContentType = httpx.SanitizeText(ct) }})
	a.Size = n
	var fe *fhirclient.Error
	if m.RequiresAccessToken && !t.auth && errors.As(err, &fe) && (fe.StatusCode == http.StatusUnauthorized || fe.StatusCode == http.StatusForbidden) {
		return a, fmt.Errorf("%w: the attachment at %s was fetched without the access token, as its origin is not the FHIR server's (add it to TrustedOrigins / --trust-origin if it belongs to the server): %w",
			ErrUntrustedOrigin, httpx.Origin(t.url), err)
	}
	if err != nil {
		return a, fmt.Errorf("bulk: attachment: %w", err)
	}
	return a, nil
}

// attachmentTarget applies CONV-1 and BULK-30 to an attachment URL.
func (c *Client) attachmentTarget(m *Manifest, s string) (target, error) {
	base, err := c.base()
	if err != nil {
		return target{}, err
	}
	rel, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return target{}, fmt.Errorf("bulk: attachment URL: %w", httpx.ErrInsecureURL)
	}
	u := rel
	if rel.Scheme == "" && rel.Host == "" {
		u = base.ResolveReference(rel)
	}
	if err := httpx.CheckURL(u, c.InsecureAllowHTTP); err != nil {
		return target{}, fmt.Errorf("bulk: attachment URL: %w", err)
	}
	return target{url: u, name: redactURL(u), auth: m.RequiresAccessToken && c.trusted(u), attachment: true}, nil
}

// limitWriter fails a write that would take the total past max.
type limitWriter struct {
	w      io.Writer
	n, max int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		return 0, fmt.Errorf("%w: attachment larger than %d bytes", httpx.ErrBodyTooLarge, l.max)
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}
