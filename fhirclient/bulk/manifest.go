package bulk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Manifest is the completion manifest of an export (BULK-17), one page of it when the server
// pages with link[relation=next] (BULK-21). It accepts Bulk Data 1.0 to 3.0 and the 4.0 ballot:
// "outcome" (4.0 ballot) is merged into Error, "request" is optional, and "extension" is kept raw
// whether it is an object (3.0) or an array (4.0 ballot).
type Manifest struct {
	// TransactionTime is the server's instant of the export, as sent; use it as the next _since
	// (BULK-19).
	TransactionTime string `json:"transactionTime"`
	// Request is the kick-off URL as the server saw it (required up to 3.0; absent in 4.0 ballot).
	Request string `json:"request,omitempty"`
	// RequiresAccessToken says whether file downloads need the access token (BULK-23). When false
	// the token is never sent.
	RequiresAccessToken bool `json:"requiresAccessToken"`
	// OutputOrganizedBy is the resource type output is organised by, if requested (BULK-29).
	OutputOrganizedBy string `json:"outputOrganizedBy,omitempty"`
	// Output lists the data files.
	Output []File `json:"output"`
	// Error lists OperationOutcome files (the 4.0 ballot calls the member "outcome").
	Error []File `json:"error"`
	// Deleted lists Bundle files of deleted resources (BULK-28).
	Deleted []File `json:"deleted,omitempty"`
	// Link holds paging links; Next returns the next page's URL.
	Link []Link `json:"link,omitempty"`
	// Extension is kept as sent (object or array).
	Extension json.RawMessage `json:"extension,omitempty"`

	// URL is where this page was fetched from (the status URL or a next link); not serialised.
	URL string `json:"-"`
	// Expires is the Expires header of the response that carried this page (BULK-20): once it
	// has passed, the file links may no longer work, and the page should be fetched again (the
	// server may return refreshed URLs) before downloading. Zero when the server sent none, or a
	// value that is not an HTTP date (such as "0"). Not serialised.
	Expires time.Time `json:"-"`
}

// File is one entry of a manifest's output, error or deleted array.
type File struct {
	// Type is the resource type of every resource in the file (may be empty in organised
	// output). It is validated against ^[A-Z][A-Za-z]{0,63}$.
	Type string `json:"type,omitempty"`
	// URL is the absolute file URL.
	URL string `json:"url"`
	// Count is the number of resources, when the server says.
	Count *int64 `json:"count,omitempty"`
	// ContinuesInFile links organised output blocks across files (BULK-29).
	ContinuesInFile string `json:"continuesInFile,omitempty"`
	// Extension is kept as sent.
	Extension json.RawMessage `json:"extension,omitempty"`
}

// Link is a manifest link.
type Link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// Next returns the URL of the next manifest page, or "".
func (m *Manifest) Next() string {
	for _, l := range m.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// Time parses TransactionTime.
func (m *Manifest) Time() (time.Time, error) { return time.Parse(time.RFC3339Nano, m.TransactionTime) }

// ParseManifest decodes and validates a manifest (BULK-17, BULK-18): transactionTime an instant,
// requiresAccessToken a boolean, output an array; every file URL absolute and allowed by CONV-1
// (https, or loopback http unless allowHTTP; never file:, data:, link-local or metadata hosts);
// every type well formed (present unless the output is organised); unknown members ignored.
func ParseManifest(b []byte, allowHTTP bool) (*Manifest, error) {
	var raw struct {
		TransactionTime     *string         `json:"transactionTime"`
		RequiresAccessToken json.RawMessage `json:"requiresAccessToken"`
		Output              json.RawMessage `json:"output"`
		Error               json.RawMessage `json:"error"`
		Outcome             json.RawMessage `json:"outcome"`
		Deleted             json.RawMessage `json:"deleted"`
		Link                json.RawMessage `json:"link"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if raw.TransactionTime == nil {
		return nil, fmt.Errorf("%w: transactionTime is missing", ErrBadManifest)
	}
	if _, err := time.Parse(time.RFC3339Nano, *raw.TransactionTime); err != nil {
		return nil, fmt.Errorf("%w: transactionTime %q is not an instant", ErrBadManifest, httpx.SanitizeText(*raw.TransactionTime))
	}
	if tok := bytes.TrimSpace(raw.RequiresAccessToken); !bytes.Equal(tok, []byte("true")) && !bytes.Equal(tok, []byte("false")) {
		return nil, fmt.Errorf("%w: requiresAccessToken must be true or false", ErrBadManifest)
	}
	for name, v := range map[string]json.RawMessage{"output": raw.Output, "error": raw.Error, "outcome": raw.Outcome, "deleted": raw.Deleted, "link": raw.Link} {
		if name == "output" && len(v) == 0 {
			return nil, fmt.Errorf("%w: output is missing", ErrBadManifest)
		}
		if len(v) > 0 && !isArrayOrNull(v) {
			return nil, fmt.Errorf("%w: %s is not an array", ErrBadManifest, name)
		}
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if len(raw.Outcome) > 0 {
		var oc []File
		if err := json.Unmarshal(raw.Outcome, &oc); err != nil {
			return nil, fmt.Errorf("%w: outcome: %v", ErrBadManifest, err)
		}
		m.Error = append(m.Error, oc...)
	}
	// The 4.0 ballot leaves the type of outcome and deleted entries implicit.
	defaultType(m.Error, "OperationOutcome")
	defaultType(m.Deleted, "Bundle")
	if m.OutputOrganizedBy != "" && !ValidType(m.OutputOrganizedBy) {
		return nil, fmt.Errorf("%w: outputOrganizedBy %q is not a resource type", ErrBadManifest, httpx.SanitizeText(m.OutputOrganizedBy))
	}
	for _, set := range []struct {
		name  string
		files []File
	}{{"output", m.Output}, {"error", m.Error}, {"deleted", m.Deleted}} {
		for i, f := range set.files {
			if err := checkFile(f, set.name == "output" && m.OutputOrganizedBy != "", allowHTTP); err != nil {
				return nil, fmt.Errorf("%w: %s[%d]: %w", ErrBadManifest, set.name, i, err)
			}
		}
	}
	for _, l := range m.Link {
		if l.Relation == "next" && l.URL == "" {
			return nil, fmt.Errorf("%w: link next without url", ErrBadManifest)
		}
	}
	return &m, nil
}

func defaultType(files []File, typ string) {
	for i := range files {
		if files[i].Type == "" {
			files[i].Type = typ
		}
	}
}

func isArrayOrNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '[' || bytes.Equal(v, []byte("null")))
}

// checkFile validates one manifest file entry (BULK-18).
func checkFile(f File, organized, allowHTTP bool) error {
	switch {
	case f.Type == "" && !organized:
		return fmt.Errorf("type is missing")
	case f.Type != "" && !ValidType(f.Type):
		return fmt.Errorf("type %q is not a resource type", httpx.SanitizeText(f.Type))
	case f.Count != nil && *f.Count < 0:
		return fmt.Errorf("count is negative")
	}
	u, err := url.Parse(f.URL)
	if err != nil {
		return fmt.Errorf("url: %w", httpx.ErrInsecureURL)
	}
	if err := httpx.CheckURL(u, allowHTTP); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	return nil
}
