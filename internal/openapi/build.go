package openapi

import (
	"errors"
	"slices"
	"strings"

	"github.com/smartfhir/smartfhir/smart"
)

// Options says what New documents.
type Options struct {
	// Config is the server's SMART configuration (required).
	Config *smart.Configuration
	// FHIRBase is the FHIR base URL, the document's server URL (default Config.FHIRBase).
	FHIRBase string
	// Title and Description go into info; Title defaults to "SMART on FHIR API".
	Title, Description string
	// APIVersion is info.version, the version of the described API (default "1").
	APIVersion string
	// API lists the FHIR interactions to document. Nil documents only the discovery endpoints, which
	// is all a SMART configuration tells.
	API *API
}

// Content types of FHIR responses.
const (
	fhirJSON = "application/fhir+json"
	appJSON  = "application/json"
)

// New builds the OpenAPI document of a SMART on FHIR server: the security schemes from o.Config
// (see the package documentation) and a path per documented interaction, each with its security
// requirements.
func New(o Options) (*Document, error) {
	sec, err := newSecurity(o.Config)
	if err != nil {
		return nil, err
	}
	base := o.FHIRBase
	if base == "" {
		base = o.Config.FHIRBase
	}
	if base == "" {
		return nil, errors.New("openapi: no FHIR base URL")
	}
	doc := &Document{
		OpenAPI: Version,
		Info:    Info{Title: o.Title, Description: o.Description, Version: o.APIVersion},
		Servers: []Server{{URL: strings.TrimSuffix(base, "/"), Description: "FHIR base URL (the aud of authorization requests)"}},
		Paths:   map[string]*PathItem{},
	}
	if doc.Info.Title == "" {
		doc.Info.Title = "SMART on FHIR API"
	}
	if doc.Info.Version == "" {
		doc.Info.Version = "1"
	}
	b := &builder{doc: doc, sec: sec}
	b.discovery()
	if o.API != nil {
		b.metadata()
		resources := slices.Clone(o.API.Resources)
		slices.SortFunc(resources, func(a, b Resource) int { return strings.Compare(a.Type, b.Type) })
		for _, r := range resources {
			if !resourceTypeRE.MatchString(r.Type) {
				continue
			}
			b.resource(r)
		}
		if o.API.SystemExport {
			b.export("/$export", "exportSystem", "Bulk Data system-level export (all resources the client may read)", nil)
		}
	}
	doc.Components = &Components{Schemas: schemas(), SecuritySchemes: sec.schemes()}
	slices.SortFunc(doc.Tags, func(a, b Tag) int { return strings.Compare(a.Name, b.Name) })
	return doc, nil
}

// builder accumulates paths and tags.
type builder struct {
	doc  *Document
	sec  *security
	tags map[string]bool
}

func (b *builder) tag(name, desc string) {
	if b.tags == nil {
		b.tags = map[string]bool{}
	}
	if !b.tags[name] {
		b.tags[name] = true
		b.doc.Tags = append(b.doc.Tags, Tag{Name: name, Description: desc})
	}
}

// get adds a GET operation at path.
func (b *builder) get(path string, op *Operation) {
	item := b.doc.Paths[path]
	if item == nil {
		item = &PathItem{}
		b.doc.Paths[path] = item
	}
	item.Get = op
}

// secure sets op's security requirements for an operation that needs permission p on resourceType
// (x-smart-access). It reports false when no
// flow of the server can grant them: such an operation is left out rather than shown as public.
func (b *builder) secure(op *Operation, resourceType string, p smart.Perm, contexts ...string) bool {
	reqs, offered := b.sec.requirements(resourceType, contexts...)
	if len(reqs) == 0 {
		return false
	}
	op.Security = reqs
	op.SMARTAccess = &Access{ResourceType: resourceType, Permission: p.String(), Contexts: offered}
	op.Responses["401"] = &Response{Description: "No valid access token: WWW-Authenticate: Bearer error=\"invalid_token\"; get a new token (refresh or launch again)."}
	op.Responses["403"] = &Response{Description: "The token's scopes do not allow this interaction.", Content: outcome()}
	return true
}

// discovery documents the two discovery documents, which need no token.
func (b *builder) discovery() {
	b.tag("Discovery", "SMART discovery and the FHIR CapabilityStatement (no token needed)")
	b.get("/.well-known/smart-configuration", &Operation{
		OperationID: "smartConfiguration",
		Summary:     "SMART configuration: endpoints, capabilities, PKCE methods and client authentication",
		Tags:        []string{"Discovery"},
		Responses: map[string]*Response{"200": {
			Description: "The SMART configuration (JSON)",
			Content:     map[string]*MediaType{appJSON: {Schema: &Schema{Type: "object"}}},
		}},
	})
}

func (b *builder) metadata() {
	b.get("/metadata", &Operation{
		OperationID: "capabilities",
		Summary:     "CapabilityStatement of the FHIR server",
		Tags:        []string{"Discovery"},
		Responses: map[string]*Response{"200": {
			Description: "The CapabilityStatement",
			Content:     fhir("#/components/schemas/Resource"),
		}},
	})
}

// resource documents read, search and export for one resource type.
func (b *builder) resource(r Resource) {
	if !r.Read && !r.Search && !r.Export {
		return
	}
	if r.Read || r.Search {
		b.tag(r.Type, r.Type+" resources")
	}
	if r.Read {
		op := &Operation{
			OperationID: "read" + r.Type,
			Summary:     "Read a " + r.Type + " by id",
			Description: accessText("read", r.Type),
			Tags:        []string{r.Type},
			Parameters:  []*Parameter{idParam(r.Type)},
			Responses: map[string]*Response{
				"200": {Description: "The " + r.Type + " resource", Content: fhir("#/components/schemas/Resource")},
				"404": {Description: "No such " + r.Type + " (or not visible with these scopes)", Content: outcome()},
			},
		}
		if b.secure(op, r.Type, smart.PermRead, "patient", "user", "system") {
			b.get("/"+r.Type+"/{id}", op)
		}
	}
	if r.Search {
		op := &Operation{
			OperationID: "search" + r.Type,
			Summary:     "Search " + r.Type + " resources",
			Description: accessText("search", r.Type),
			Tags:        []string{r.Type},
			Parameters:  searchParams(r.SearchParams),
			Responses: map[string]*Response{
				"200": {Description: "A searchset Bundle; follow link[relation=next] for more pages", Content: fhir("#/components/schemas/Bundle")},
				"400": {Description: "Invalid search", Content: outcome()},
			},
		}
		if b.secure(op, r.Type, smart.PermSearch, "patient", "user", "system") {
			b.get("/"+r.Type, op)
		}
	}
	if r.Export {
		switch r.Type {
		case "Patient":
			b.export("/Patient/$export", "exportPatients", "Bulk Data export of all patients", nil)
		case "Group":
			b.export("/Group/{id}/$export", "exportGroup", "Bulk Data export of the members of a Group", []*Parameter{idParam("Group")})
		}
	}
}

// export documents a Bulk Data kick-off. Bulk Data is a backend service: system/ scopes only.
func (b *builder) export(path, id, summary string, params []*Parameter) {
	params = append(params,
		&Parameter{Name: "_type", In: "query", Description: "comma-separated resource types to export", Schema: &Schema{Type: "string"}},
		&Parameter{Name: "_since", In: "query", Description: "only resources changed after this instant", Schema: &Schema{Type: "string", Format: "date-time"}},
		&Parameter{Name: "_typeFilter", In: "query", Description: "a FHIR search query per resource type (repeatable)", Schema: &Schema{Type: "string"}},
		&Parameter{Name: "_outputFormat", In: "query", Description: "application/fhir+ndjson (default)", Schema: &Schema{Type: "string"}},
		&Parameter{Name: "Prefer", In: "header", Required: true, Description: "respond-async", Schema: &Schema{Type: "string", Const: "respond-async"}},
		&Parameter{Name: "Accept", In: "header", Description: "application/fhir+json", Schema: &Schema{Type: "string"}},
	)
	op := &Operation{
		OperationID: id,
		Summary:     summary,
		Description: "Kick-off of an asynchronous export: poll the Content-Location URL until it answers 200 with the manifest. Needs a backend services token with system/ read scopes for the exported types.",
		Tags:        []string{"Bulk Data"},
		Parameters:  params,
		Responses: map[string]*Response{
			"202": {Description: "Export started", Headers: map[string]*Header{
				"Content-Location": {Description: "status URL to poll", Schema: &Schema{Type: "string", Format: "uri"}},
			}},
			"400": {Description: "Invalid kick-off request", Content: outcome()},
			"429": {Description: "Too many exports running; retry after Retry-After", Content: outcome()},
		},
	}
	if b.secure(op, "*", smart.PermRead|smart.PermSearch, "system") {
		b.tag("Bulk Data", "FHIR Bulk Data Access $export (asynchronous)")
		b.get(path, op)
	}
}

// accessText explains which scopes an interaction needs, in words.
func accessText(interaction, resourceType string) string {
	return "Needs a token whose scopes allow " + interaction + " of " + resourceType +
		" resources: one of the scopes listed under security, or any scope that covers it, such as a wildcard (patient/*.rs) or a granular scope (SMART v2)."
}

func idParam(resourceType string) *Parameter {
	return &Parameter{Name: "id", In: "path", Required: true, Description: "logical id of the " + resourceType,
		Schema: &Schema{Type: "string", Pattern: `^[A-Za-z0-9\-.]{1,64}$`}}
}

// searchParams returns the common search parameters plus the resource type's own.
func searchParams(own []SearchParam) []*Parameter {
	out := []*Parameter{
		{Name: "_id", In: "query", Description: "logical id(s), comma-separated", Schema: &Schema{Type: "string"}},
		{Name: "_count", In: "query", Description: "page size", Schema: &Schema{Type: "integer"}},
		{Name: "_summary", In: "query", Description: "count: return only the total", Schema: &Schema{Type: "string"}},
		{Name: "_total", In: "query", Description: "accurate: include Bundle.total", Schema: &Schema{Type: "string"}},
	}
	seen := map[string]bool{"_id": true, "_count": true, "_summary": true, "_total": true}
	for _, p := range own {
		if seen[p.Name] || !paramNameRE.MatchString(p.Name) {
			continue
		}
		seen[p.Name] = true
		desc := p.Documentation
		if p.Type != "" {
			desc = strings.TrimSpace(p.Type + " search parameter. " + desc)
		}
		out = append(out, &Parameter{Name: p.Name, In: "query", Description: desc, Schema: &Schema{Type: "string"}})
	}
	return out
}

func fhir(ref string) map[string]*MediaType {
	return map[string]*MediaType{fhirJSON: {Schema: &Schema{Ref: ref}}}
}

func outcome() map[string]*MediaType { return fhir("#/components/schemas/OperationOutcome") }

// schemas are the few JSON Schemas the responses refer to; the full FHIR schema is out of scope.
func schemas() map[string]*Schema {
	str := func(desc string) *Schema { return &Schema{Type: "string", Description: desc} }
	return map[string]*Schema{
		"Resource": {
			Type: "object", Description: "A FHIR R4 resource (https://hl7.org/fhir/R4/resource.html)",
			Required:   []string{"resourceType"},
			Properties: map[string]*Schema{"resourceType": str("the resource type"), "id": str("logical id")},
		},
		"Bundle": {
			Type: "object", Description: "A FHIR R4 Bundle of type searchset",
			Required: []string{"resourceType", "type"},
			Properties: map[string]*Schema{
				"resourceType": {Type: "string", Const: "Bundle"},
				"type":         str("searchset"),
				"total":        {Type: "integer", Description: "number of matches (with _total=accurate or _summary=count)"},
				"link":         {Type: "array", Items: &Schema{Type: "object"}, Description: "paging links (relation self, next)"},
				"entry":        {Type: "array", Items: &Schema{Type: "object"}, Description: "the matching resources"},
			},
		},
		"OperationOutcome": {
			Type: "object", Description: "A FHIR R4 OperationOutcome explaining an error",
			Required: []string{"resourceType", "issue"},
			Properties: map[string]*Schema{
				"resourceType": {Type: "string", Const: "OperationOutcome"},
				"issue":        {Type: "array", Items: &Schema{Type: "object"}},
			},
		},
	}
}
