package fhirclient

import (
	"net/http"
	"strings"
	"time"
)

// Response wraps the *http.Response of a FHIR call and adds the headers FHIR gives meaning to
// (FHIR R4 http.html, "HTTP Headers").
type Response struct {
	*http.Response

	// ETag is the ETag header as sent (`W/"3"`).
	ETag string
	// VersionID is the resource version from ETag (`W/"3"` → "3"), or from a Location of the form
	// …/_history/3.
	VersionID string
	// Location is the Location header (create, conditional create, update), else Content-Location.
	Location string
	// LastModified is the Last-Modified header; zero when absent or unparseable.
	LastModified time.Time
	// NextLink is the page's next link, set by the search and history calls ("" on the last page).
	NextLink string
}

func newResponse(r *http.Response) *Response {
	resp := &Response{Response: r, ETag: r.Header.Get("ETag")}
	resp.Location = r.Header.Get("Location")
	if resp.Location == "" {
		resp.Location = r.Header.Get("Content-Location")
	}
	resp.VersionID = versionFromETag(resp.ETag)
	if resp.VersionID == "" {
		if _, after, ok := strings.Cut(resp.Location, "/_history/"); ok && !strings.ContainsAny(after, "/?#") {
			resp.VersionID = after
		}
	}
	if lm := r.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			resp.LastModified = t
		}
	}
	return resp
}

// versionFromETag extracts the version from a FHIR ETag: W/"3" (the spec's form), "3" or 3.
func versionFromETag(etag string) string {
	v := strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	v = strings.Trim(v, `"`)
	if !validID(v) {
		return ""
	}
	return v
}

// ifMatch renders a version id as the If-Match value FHIR expects: W/"3".
func ifMatch(versionID string) string { return `W/"` + versionID + `"` }
