package bulk

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Level is the scope of an export (BULK-01).
type Level string

// Export levels.
const (
	LevelSystem  Level = "system"  // [base]/$export
	LevelPatient Level = "patient" // [base]/Patient/$export
	LevelGroup   Level = "group"   // [base]/Group/[id]/$export
)

// ExportRequest describes a kick-off request. The zero value is a system-level export of every
// type. It is stored in a Job, so it round-trips through JSON.
type ExportRequest struct {
	// Level selects the endpoint; "" means LevelGroup when GroupID is set, else LevelSystem.
	Level Level `json:"level,omitempty"`
	// GroupID is the Group's logical id for LevelGroup.
	GroupID string `json:"groupId,omitempty"`
	// Types limits the export to these resource types (_type, sent comma-joined: Oracle Health
	// does not accept a repeated _type).
	Types []string `json:"types,omitempty"`
	// Since and Until bound resources by last update (_since, _until), sent as FHIR instants with
	// their time zone.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// TypeFilters are FHIR queries "Type?param=value&…", one per _typeFilter parameter (OR-ed per
	// type). Result-shaping parameters (_include, _sort, _elements, …) are refused (BULK-07).
	TypeFilters []string `json:"typeFilters,omitempty"`
	// OutputFormat is _outputFormat (default: the server's, application/fhir+ndjson).
	OutputFormat string `json:"outputFormat,omitempty"`
	// Elements is _elements: "element" or "Type.element" entries.
	Elements []string `json:"elements,omitempty"`
	// Patients restricts a patient or group export to these patients ("Patient/123" or "123").
	// It is sent as patient parameters in a POST body (BULK-04, BULK-09).
	Patients []string `json:"patients,omitempty"`
	// IncludeAssociatedData is includeAssociatedData (e.g. LatestProvenanceResources).
	IncludeAssociatedData []string `json:"includeAssociatedData,omitempty"`
	// OrganizeOutputBy asks for output organised by a resource type (BULK-29).
	OrganizeOutputBy string `json:"organizeOutputBy,omitempty"`
	// AllowPartialManifests lets the server publish files before the export is complete.
	AllowPartialManifests bool `json:"allowPartialManifests,omitempty"`
	// Lenient sends Prefer: handling=lenient (ignore unsupported parameters).
	Lenient bool `json:"lenient,omitempty"`
	// POST sends the kick-off as POST with a Parameters body even without Patients.
	POST bool `json:"post,omitempty"`
	// SeparateExportStatus sends Prefer: separate-export-status (BULK-03).
	SeparateExportStatus bool `json:"separateExportStatus,omitempty"`
}

var (
	typeRE      = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)
	idRE        = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	elementRE   = regexp.MustCompile(`^([A-Z][A-Za-z]{0,63}\.)?[a-z][A-Za-z0-9]{0,63}$`)
	codeRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_\-]{0,63}$`)
	mediaTypeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*(/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*)?$`)
)

// validID reports whether s is a FHIR logical id; "." and ".." are refused since the id becomes
// a path segment.
func validID(s string) bool { return idRE.MatchString(s) && strings.Trim(s, ".") != "" }

// ValidType reports whether s is a well-formed resource type name, ^[A-Z][A-Za-z]{0,63}$. Only
// such names ever become part of a local file name (CONV-6).
func ValidType(s string) bool { return typeRE.MatchString(s) }

// typeFilterForbidden lists result-shaping parameters that may not appear in a _typeFilter.
var typeFilterForbidden = map[string]bool{
	"_include": true, "_revinclude": true, "_sort": true, "_elements": true, "_count": true,
	"_summary": true, "_total": true, "_contained": true, "_containedType": true, "_format": true,
	"_pretty": true, "_graph": true,
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, a...))
}

// level returns the effective level.
func (r *ExportRequest) level() Level {
	if r.Level == "" && r.GroupID != "" {
		return LevelGroup
	}
	if r.Level == "" {
		return LevelSystem
	}
	return r.Level
}

// Validate checks the request without sending it.
func (r *ExportRequest) Validate() error {
	switch r.level() {
	case LevelSystem, LevelPatient:
		if r.GroupID != "" {
			return invalidf("GroupID %q given for a %s-level export", r.GroupID, r.level())
		}
	case LevelGroup:
		if !validID(r.GroupID) {
			return invalidf("group id %q is not a FHIR id ([A-Za-z0-9-.]{1,64})", r.GroupID)
		}
	default:
		return invalidf("unknown level %q", r.Level)
	}
	for _, t := range r.Types {
		if !ValidType(t) {
			return invalidf("_type %q is not a resource type name", t)
		}
	}
	if !r.Since.IsZero() && !r.Until.IsZero() && r.Until.Before(r.Since) {
		return invalidf("_until is before _since")
	}
	for _, f := range r.TypeFilters {
		if err := checkTypeFilter(f); err != nil {
			return err
		}
	}
	for _, e := range r.Elements {
		if !elementRE.MatchString(e) {
			return invalidf("_elements entry %q is not an element name", e)
		}
	}
	if r.OutputFormat != "" && !mediaTypeRE.MatchString(r.OutputFormat) {
		return invalidf("_outputFormat %q is not a media type", r.OutputFormat)
	}
	if len(r.Patients) > 0 && r.level() == LevelSystem {
		return invalidf("the patient parameter is not allowed in a system-level export (use LevelPatient or a group)")
	}
	for _, p := range r.Patients {
		if _, err := patientRef(p); err != nil {
			return err
		}
	}
	for _, c := range r.IncludeAssociatedData {
		if !codeRE.MatchString(c) {
			return invalidf("includeAssociatedData value %q is not a code", c)
		}
	}
	if r.OrganizeOutputBy != "" && !ValidType(r.OrganizeOutputBy) {
		return invalidf("organizeOutputBy %q is not a resource type name", r.OrganizeOutputBy)
	}
	return nil
}

// checkTypeFilter validates one _typeFilter query: "Type?param=value&…" with a valid type, a
// non-empty query and no result-shaping parameter.
func checkTypeFilter(f string) error {
	typ, query, ok := strings.Cut(f, "?")
	if !ok || !ValidType(typ) || query == "" {
		return invalidf("_typeFilter %q is not of the form Type?param=value", f)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return invalidf("_typeFilter %q: %v", f, err)
	}
	for k := range q {
		name, _, _ := strings.Cut(k, ":")
		if typeFilterForbidden[name] {
			return invalidf("_typeFilter %q uses %s, which is not allowed in a _typeFilter", f, name)
		}
	}
	return nil
}

// patientRef normalises "123" or "Patient/123" to "Patient/123".
func patientRef(p string) (string, error) {
	id := strings.TrimPrefix(p, "Patient/")
	if !validID(id) {
		return "", invalidf("patient %q is not a Patient id or Patient/id reference", p)
	}
	return "Patient/" + id, nil
}

// usePOST reports whether the kick-off must be a POST (BULK-04).
func (r *ExportRequest) usePOST() bool { return r.POST || len(r.Patients) > 0 }

// path returns the kick-off path relative to the base, with a literal $ (BULK-01).
func (r *ExportRequest) path() string {
	switch r.level() {
	case LevelPatient:
		return "Patient/$export"
	case LevelGroup:
		return "Group/" + r.GroupID + "/$export"
	default:
		return "$export"
	}
}

// instant formats t as a FHIR instant, keeping its zone offset.
func instant(t time.Time) string { return t.Format(time.RFC3339Nano) }

// query builds the GET query string. Each value is fully percent-encoded (a "+" in a zone offset
// becomes %2B, BULK-05; a _typeFilter's "?", "=" and "&" are encoded, BULK-07); types are the _type
// values (Client.typeValues), their commas literal (the names are validated letters).
func (r *ExportRequest) query(types []string) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+url.QueryEscape(v)) }
	for _, t := range types {
		parts = append(parts, "_type="+t)
	}
	if !r.Since.IsZero() {
		add("_since", instant(r.Since))
	}
	if !r.Until.IsZero() {
		add("_until", instant(r.Until))
	}
	for _, f := range r.TypeFilters {
		add("_typeFilter", f)
	}
	if r.OutputFormat != "" {
		add("_outputFormat", r.OutputFormat)
	}
	if len(r.Elements) > 0 {
		parts = append(parts, "_elements="+strings.Join(r.Elements, ","))
	}
	if len(r.IncludeAssociatedData) > 0 {
		parts = append(parts, "includeAssociatedData="+strings.Join(r.IncludeAssociatedData, ","))
	}
	if r.OrganizeOutputBy != "" {
		add("organizeOutputBy", r.OrganizeOutputBy)
	}
	if r.AllowPartialManifests {
		add("allowPartialManifests", "true")
	}
	return strings.Join(parts, "&")
}

// parameter is one FHIR Parameters.parameter entry of a POST kick-off.
type parameter struct {
	Name           string     `json:"name"`
	ValueString    string     `json:"valueString,omitempty"`
	ValueInstant   string     `json:"valueInstant,omitempty"`
	ValueCode      string     `json:"valueCode,omitempty"`
	ValueBoolean   *bool      `json:"valueBoolean,omitempty"`
	ValueReference *reference `json:"valueReference,omitempty"`
}

type reference struct {
	Reference string `json:"reference"`
}

// parameters builds the POST kick-off body, a FHIR Parameters resource (BULK-04).
func (r *ExportRequest) parameters(types []string) ([]byte, error) {
	var ps []parameter
	for _, t := range types {
		ps = append(ps, parameter{Name: "_type", ValueString: t})
	}
	if !r.Since.IsZero() {
		ps = append(ps, parameter{Name: "_since", ValueInstant: instant(r.Since)})
	}
	if !r.Until.IsZero() {
		ps = append(ps, parameter{Name: "_until", ValueInstant: instant(r.Until)})
	}
	for _, f := range r.TypeFilters {
		ps = append(ps, parameter{Name: "_typeFilter", ValueString: f})
	}
	if r.OutputFormat != "" {
		ps = append(ps, parameter{Name: "_outputFormat", ValueString: r.OutputFormat})
	}
	if len(r.Elements) > 0 {
		ps = append(ps, parameter{Name: "_elements", ValueString: strings.Join(r.Elements, ",")})
	}
	for _, p := range r.Patients {
		ref, err := patientRef(p)
		if err != nil {
			return nil, err
		}
		ps = append(ps, parameter{Name: "patient", ValueReference: &reference{ref}})
	}
	for _, c := range r.IncludeAssociatedData {
		ps = append(ps, parameter{Name: "includeAssociatedData", ValueCode: c})
	}
	if r.OrganizeOutputBy != "" {
		ps = append(ps, parameter{Name: "organizeOutputBy", ValueString: r.OrganizeOutputBy})
	}
	if r.AllowPartialManifests {
		t := true
		ps = append(ps, parameter{Name: "allowPartialManifests", ValueBoolean: &t})
	}
	return json.Marshal(struct {
		ResourceType string      `json:"resourceType"`
		Parameter    []parameter `json:"parameter,omitempty"`
	}{"Parameters", ps})
}

// logParameters names the request's parameters as the kick-off does, for the export log.
func (r *ExportRequest) logParameters() map[string]any {
	m := map[string]any{}
	set := func(k string, v any, ok bool) {
		if ok {
			m[k] = v
		}
	}
	set("_type", strings.Join(r.Types, ","), len(r.Types) > 0)
	set("_since", instant(r.Since), !r.Since.IsZero())
	set("_until", instant(r.Until), !r.Until.IsZero())
	set("_typeFilter", r.TypeFilters, len(r.TypeFilters) > 0)
	set("_outputFormat", r.OutputFormat, r.OutputFormat != "")
	set("_elements", strings.Join(r.Elements, ","), len(r.Elements) > 0)
	set("patient", r.Patients, len(r.Patients) > 0)
	set("includeAssociatedData", strings.Join(r.IncludeAssociatedData, ","), len(r.IncludeAssociatedData) > 0)
	set("organizeOutputBy", r.OrganizeOutputBy, r.OrganizeOutputBy != "")
	set("allowPartialManifests", true, r.AllowPartialManifests)
	return m
}

// prefer returns the Prefer header of the kick-off (BULK-02, BULK-03).
func (r *ExportRequest) prefer() string {
	p := "respond-async"
	if r.SeparateExportStatus {
		p += ", separate-export-status"
	}
	if r.Lenient {
		p += ", handling=lenient"
	}
	return p
}
