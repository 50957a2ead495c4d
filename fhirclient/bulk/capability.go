package bulk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Canonical URLs of the Bulk Data IG that a CapabilityStatement names.
const (
	bulkDataIG              = "http://hl7.org/fhir/uv/bulkdata"
	bulkDataCapability      = bulkDataIG + "/CapabilityStatement/bulk-data"
	operationNotSupportedEx = bulkDataIG + "/Extension/operation-not-supported"
)

// Capabilities is what a server's CapabilityStatement says about Bulk Data export (BULK-34,
// Bulk Data "Server Capability Documentation").
type Capabilities struct {
	// Levels lists the export levels the statement declares, as an operation of rest (system),
	// of rest.resource Patient or Group, or by the IG's OperationDefinition canonicals export,
	// patient-export and group-export. Empty when it declares none: the statement then says
	// nothing either way.
	Levels []Level
	// NotSupported lists the operation-not-supported extensions of rest.resource and
	// rest.resource.searchParam.
	NotSupported []NotSupported
}

// NotSupported is one operation-not-supported extension: a resource type, or one of its search
// parameters (in a _typeFilter), that the server does not support in bulk export.
type NotSupported struct {
	Type        string // resource type
	SearchParam string // "" when the whole type is not supported
	Operation   string // the extension's valueCanonical: an OperationDefinition, or the IG's CapabilityStatement for every export
}

// capabilityStatement is the part of a CapabilityStatement that Capabilities reads.
type capabilityStatement struct {
	ResourceType string `json:"resourceType"`
	Rest         []struct {
		Mode      string         `json:"mode"`
		Operation []capOperation `json:"operation"`
		Resource  []struct {
			Type        string         `json:"type"`
			Extension   []capExtension `json:"extension"`
			Operation   []capOperation `json:"operation"`
			SearchParam []struct {
				Name      string         `json:"name"`
				Extension []capExtension `json:"extension"`
			} `json:"searchParam"`
		} `json:"resource"`
	} `json:"rest"`
}

type capOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

type capExtension struct {
	URL            string `json:"url"`
	ValueCanonical string `json:"valueCanonical"`
}

// ParseCapabilities reads a CapabilityStatement (JSON) for its Bulk Data export declarations.
func ParseCapabilities(b []byte) (*Capabilities, error) {
	var cs capabilityStatement
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("bulk: CapabilityStatement: %w", err)
	}
	if cs.ResourceType != "CapabilityStatement" {
		return nil, fmt.Errorf("bulk: CapabilityStatement: resourceType is %q", httpx.SanitizeText(truncate(cs.ResourceType, 64)))
	}
	caps := &Capabilities{}
	add := func(l Level) {
		if l != "" && !slices.Contains(caps.Levels, l) {
			caps.Levels = append(caps.Levels, l)
		}
	}
	for _, rest := range cs.Rest {
		if rest.Mode != "" && rest.Mode != "server" {
			continue
		}
		for _, op := range rest.Operation {
			add(op.level(""))
		}
		for _, res := range rest.Resource {
			for _, op := range res.Operation {
				add(op.level(res.Type))
			}
			for _, ex := range res.Extension {
				if ex.URL == operationNotSupportedEx {
					caps.NotSupported = append(caps.NotSupported, NotSupported{Type: res.Type, Operation: ex.ValueCanonical})
				}
			}
			for _, sp := range res.SearchParam {
				for _, ex := range sp.Extension {
					if ex.URL == operationNotSupportedEx {
						caps.NotSupported = append(caps.NotSupported, NotSupported{Type: res.Type, SearchParam: sp.Name, Operation: ex.ValueCanonical})
					}
				}
			}
		}
	}
	return caps, nil
}

// level returns the export level an operation declares on resource type typ ("" for rest), or "".
func (op capOperation) level(typ string) Level {
	def, _, _ := strings.Cut(op.Definition, "|") // canonical|version
	name := strings.TrimPrefix(op.Name, "$")
	switch {
	case strings.HasSuffix(def, "/OperationDefinition/patient-export") || name == "patient-export":
		return LevelPatient
	case strings.HasSuffix(def, "/OperationDefinition/group-export") || name == "group-export":
		return LevelGroup
	case strings.HasSuffix(def, "/OperationDefinition/export") || name == "export":
		switch typ {
		case "":
			return LevelSystem
		case "Patient":
			return LevelPatient
		case "Group":
			return LevelGroup
		}
	}
	return ""
}

// appliesTo reports whether the extension concerns exports of level l: its canonical names the
// IG's CapabilityStatement, nothing, or l's OperationDefinition.
func (n NotSupported) appliesTo(l Level) bool {
	def, _, _ := strings.Cut(n.Operation, "|")
	switch {
	case def == "" || def == bulkDataCapability || def == bulkDataIG:
		return true
	case strings.HasSuffix(def, "/OperationDefinition/patient-export"):
		return l == LevelPatient
	case strings.HasSuffix(def, "/OperationDefinition/group-export"):
		return l == LevelGroup
	case strings.HasSuffix(def, "/OperationDefinition/export"):
		return l == LevelSystem
	}
	return false
}

// Check tells whether req is an export the statement allows. It returns an error wrapping
// ErrNotSupported when the statement declares export levels but not req's, or marks one of
// req.Types as not supported. A _typeFilter on a type or search parameter the statement marks
// as not supported is returned as a warning: the server will probably ignore the filter, which
// the client's re-filtering catches (BULK-08).
func (caps *Capabilities) Check(req ExportRequest) (warnings []string, err error) {
	l := req.level()
	if len(caps.Levels) > 0 && !slices.Contains(caps.Levels, l) {
		declared := make([]string, len(caps.Levels))
		for i, d := range caps.Levels {
			declared[i] = string(d)
		}
		return nil, fmt.Errorf("%w: the server's CapabilityStatement declares no %s-level export (%s), only %s",
			ErrNotSupported, l, "[base]/"+(&ExportRequest{Level: l, GroupID: "[id]"}).path(), strings.Join(declared, ", "))
	}
	filtered := map[string][]string{} // type → search parameters used in _typeFilter
	for _, f := range req.TypeFilters {
		typ, q, _ := strings.Cut(f, "?")
		params, _ := url.ParseQuery(q) // validated with the request
		for k := range params {
			name, _, _ := strings.Cut(k, ":")
			filtered[typ] = append(filtered[typ], name)
		}
	}
	for _, n := range caps.NotSupported {
		if !n.appliesTo(l) {
			continue
		}
		switch {
		case n.SearchParam == "" && slices.Contains(req.Types, n.Type):
			return nil, fmt.Errorf("%w: the server's CapabilityStatement says %s is not supported in a bulk export",
				ErrNotSupported, httpx.SanitizeText(truncate(n.Type, 64)))
		case n.SearchParam == "" && len(filtered[n.Type]) > 0:
			warnings = append(warnings, fmt.Sprintf("the server's CapabilityStatement says %s is not supported in a bulk export; its _typeFilter is moot",
				httpx.SanitizeText(truncate(n.Type, 64))))
		case n.SearchParam != "" && slices.Contains(filtered[n.Type], n.SearchParam):
			warnings = append(warnings, fmt.Sprintf("the server's CapabilityStatement says %s.%s is not supported in a _typeFilter: expect unfiltered %s output",
				httpx.SanitizeText(truncate(n.Type, 64)), httpx.SanitizeText(truncate(n.SearchParam, 64)), httpx.SanitizeText(truncate(n.Type, 64))))
		}
	}
	return warnings, nil
}

// Capabilities reads the server's CapabilityStatement (GET [base]/metadata, through fhirclient,
// with its retries and limits) for its Bulk Data export declarations (BULK-34).
func (c *Client) Capabilities(ctx context.Context) (*Capabilities, error) {
	base, err := c.base()
	if err != nil {
		return nil, err
	}
	fc, err := fhirclient.NewClient(base.String(), c.HTTPClient)
	if err != nil {
		return nil, fmt.Errorf("bulk: %w", err)
	}
	fc.InsecureAllowHTTP, fc.TrustedOrigins, fc.UserAgent = c.InsecureAllowHTTP, c.TrustedOrigins, c.userAgent()
	var raw json.RawMessage
	if _, err := fc.Capabilities(ctx, &raw); err != nil {
		return nil, fmt.Errorf("bulk: CapabilityStatement: %w", err)
	}
	return ParseCapabilities(raw)
}

// checkCapabilities applies BULK-34 before a kick-off: an export the CapabilityStatement refuses
// is an error; a statement that cannot be read is a warning, and the export goes ahead.
func (e *Exporter) checkCapabilities(ctx context.Context, req ExportRequest) ([]string, error) {
	caps, err := e.Client.Capabilities(ctx)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("bulk: CapabilityStatement: %w", ctx.Err())
	}
	if err != nil {
		return []string{"the server's CapabilityStatement could not be read, so the export is not checked against it: " + httpx.SanitizeText(trimPrefix(err.Error()))}, nil
	}
	return caps.Check(req)
}
