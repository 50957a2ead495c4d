package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// API is the FHIR API a document describes: what a server offers besides its security.
type API struct {
	// Resources lists the resource types with their documented interactions.
	Resources []Resource
	// SystemExport documents GET [base]/$export.
	SystemExport bool
}

// Resource is one resource type of a FHIR API.
type Resource struct {
	Type   string // FHIR resource type, ^[A-Z][A-Za-z]{0,63}$
	Read   bool   // GET [base]/Type/{id}
	Search bool   // GET [base]/Type?…
	// Export documents the type's Bulk Data kick-off: GET [base]/Patient/$export or
	// GET [base]/Group/{id}/$export (only for Patient and Group).
	Export       bool
	SearchParams []SearchParam
}

// SearchParam is a documented search parameter of a resource type.
type SearchParam struct {
	Name          string // ^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$
	Type          string // FHIR search parameter type: string, token, reference, date, …
	Documentation string
}

// Limits on what APIFromCapabilityStatement takes from a server (the statement is untrusted input).
const (
	maxResources     = 500
	maxSearchParams  = 200
	maxDocumentation = 300
)

var (
	resourceTypeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)
	paramNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$`)
	paramTypes     = []string{"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
)

// ErrCapabilityStatement reports a body that is not a usable CapabilityStatement.
var ErrCapabilityStatement = errors.New("openapi: not a usable CapabilityStatement")

// APIFromCapabilityStatement reads the server half of a FHIR R4 CapabilityStatement: each
// rest[mode=server].resource with its read and search-type interactions, search parameters and the
// export operation, and the system-level export operation. The statement is untrusted: resource types
// and parameter names that could not be FHIR names are skipped (a path is never built from arbitrary
// server text), documentation is escaped and shortened, and the counts are bounded.
func APIFromCapabilityStatement(body []byte) (*API, error) {
	var cs struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
				SearchParam []struct {
					Name          string `json:"name"`
					Type          string `json:"type"`
					Documentation string `json:"documentation"`
				} `json:"searchParam"`
				Operation []struct {
					Name string `json:"name"`
				} `json:"operation"`
			} `json:"resource"`
			Operation []struct {
				Name string `json:"name"`
			} `json:"operation"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(body, &cs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCapabilityStatement, err)
	}
	if cs.ResourceType != "CapabilityStatement" {
		return nil, fmt.Errorf("%w: resourceType is %q", ErrCapabilityStatement, httpx.SanitizeText(trim(cs.ResourceType, 64)))
	}
	api := &API{}
	seen := map[string]bool{}
	for _, rest := range cs.Rest {
		if rest.Mode != "server" {
			continue
		}
		for _, op := range rest.Operation {
			if op.Name == "export" {
				api.SystemExport = true
			}
		}
		for _, r := range rest.Resource {
			if !resourceTypeRE.MatchString(r.Type) || seen[r.Type] || len(api.Resources) >= maxResources {
				continue
			}
			seen[r.Type] = true
			res := Resource{Type: r.Type}
			for _, in := range r.Interaction {
				switch in.Code {
				case "read":
					res.Read = true
				case "search-type":
					res.Search = true
				}
			}
			for _, op := range r.Operation {
				if op.Name == "export" && (r.Type == "Patient" || r.Type == "Group") {
					res.Export = true
				}
			}
			for _, p := range r.SearchParam {
				if !paramNameRE.MatchString(p.Name) || len(res.SearchParams) >= maxSearchParams {
					continue
				}
				if !slices.Contains(paramTypes, p.Type) {
					p.Type = ""
				}
				res.SearchParams = append(res.SearchParams, SearchParam{
					Name: p.Name, Type: p.Type, Documentation: httpx.SanitizeText(trim(p.Documentation, maxDocumentation)),
				})
			}
			api.Resources = append(api.Resources, res)
		}
	}
	return api, nil
}

// trim shortens s to at most n bytes without splitting a UTF-8 sequence.
func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
