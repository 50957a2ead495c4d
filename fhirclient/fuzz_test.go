package fhirclient

import (
	"net/http"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// FuzzNewRequest: whatever the path, a request NewRequest builds stays on the base origin, and a
// relative path stays under the base path (API-02, API-05).
func FuzzNewRequest(f *testing.F) {
	for _, s := range []string{"Patient/1", "../x", "%2e%2e/x", "//evil/x", "https://evil/x", `a\..\b`, "?a=1",
		"Patient/1/../../..", "https://ehr.example.org:443/fhir/r4/../../x", "./x", "Observation?code=a|b#frag"} {
		f.Add(s)
	}
	c, err := NewClient("https://ehr.example.org/fhir/r4", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		req, err := c.NewRequest(t.Context(), http.MethodGet, path, nil)
		if err != nil {
			return
		}
		if !httpx.SameOrigin(req.URL, c.BaseURL) {
			t.Fatalf("%q -> %s: another origin", path, req.URL)
		}
		if ref, _ := c.BaseURL.Parse(path); ref != nil && !strings.Contains(path, "://") && !strings.HasPrefix(path, "//") {
			if !strings.HasPrefix(req.URL.Path, c.BaseURL.Path) {
				t.Fatalf("%q -> %s: left the base path", path, req.URL)
			}
		}
	})
}

// FuzzScanResourceType: the fast scanner never disagrees with a full decode when it answers.
func FuzzScanResourceType(f *testing.F) {
	for _, s := range []string{`{"resourceType":"Bundle"}`, `{"id":"x","resourceType":"Patient"}`, `{"a":[{"b":"]"}],"resourceType":"X"}`, `{"a":1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := scanResourceType(b)
		if !ok {
			return
		}
		var h resourceHeader
		if err := unmarshal(b, &h); err != nil {
			return // invalid JSON: the full decode that follows reports it
		}
		// With one member of that name (decoders match names case-insensitively and take the last
		// duplicate; the scanner takes the first exact one), both must agree.
		if lower := strings.ToLower(string(b)); strings.Count(lower, "resourcetype") == 1 && !strings.Contains(lower, `\u`) &&
			h.ResourceType != got {
			t.Fatalf("scan %q, decode %q: %s", got, h.ResourceType, b)
		}
	})
}
