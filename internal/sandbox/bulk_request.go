package sandbox

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// exportLevel is the kick-off endpoint used.
type exportLevel uint8

const (
	levelSystem exportLevel = iota
	levelPatient
	levelGroup
)

// exportRequest is a parsed kick-off request.
type exportRequest struct {
	level      exportLevel
	group      string
	types      []rtype           // requested with _type (nil: every type the level and token allow)
	since      time.Time         // _since (zero: none)
	until      time.Time         // _until (zero: none)
	filters    map[rtype][]query // _typeFilter: any query of a type may match
	elements   []string          // _elements
	patients   []int             // patient= (POST), nil: none given
	organize   bool              // organizeOutputBy=Patient
	partial    bool              // allowPartialManifests=true
	url        string            // the kick-off URL for manifest.request
	hasFilters bool              // _typeFilter was given (even if lenient parsing dropped every query)
}

// kickoffParams are the parameters the sandbox understands (BULK-05…09).
var kickoffParams = []string{"_outputFormat", "_since", "_until", "_type", "_typeFilter", "_elements", "patient",
	"includeAssociatedData", "organizeOutputBy", "allowPartialManifests"}

// typeName is the syntax of a resource type in _type and _typeFilter (BULK-06).
var typeName = regexp.MustCompile(`^[A-Z][A-Za-z]+$`)

// kickoffValues collects the kick-off parameters: the URL query, plus for POST a FHIR Parameters
// body (BULK-04). Patient references come back under "patient".
func kickoffValues(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query string: %w", err)
	}
	if r.Method != http.MethodPost {
		return q, nil
	}
	body, err := httpx.ReadLimited(r.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, fmt.Errorf("reading the Parameters body: %w", err)
	}
	if len(body) == 0 {
		return q, nil
	}
	var peek struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(body, &peek); err != nil || peek.ResourceType != "Parameters" {
		return nil, fmt.Errorf("the POST body must be a FHIR Parameters resource")
	}
	params, err := fhir.UnmarshalParameters(body)
	if err != nil {
		return nil, fmt.Errorf("the POST body must be a FHIR Parameters resource: %w", err)
	}
	for _, p := range params.Parameter {
		v, ok := parameterValue(p)
		if !ok {
			return nil, fmt.Errorf("parameter %s has no supported value[x]", quoteText(p.Name))
		}
		q.Add(p.Name, v)
	}
	return q, nil
}

// parameterValue returns the value of a Parameters.parameter as text.
func parameterValue(p fhir.ParametersParameter) (string, bool) {
	switch {
	case p.ValueString != nil:
		return *p.ValueString, true
	case p.ValueInstant != nil:
		return *p.ValueInstant, true
	case p.ValueDateTime != nil:
		return *p.ValueDateTime, true
	case p.ValueCode != nil:
		return *p.ValueCode, true
	case p.ValueUri != nil:
		return *p.ValueUri, true
	case p.ValueCanonical != nil:
		return *p.ValueCanonical, true
	case p.ValueBoolean != nil:
		return fmt.Sprint(*p.ValueBoolean), true
	case p.ValueReference != nil && p.ValueReference.Reference != nil:
		return *p.ValueReference.Reference, true
	}
	return "", false
}

// parseExport validates the kick-off parameters. lenient (Prefer: handling=lenient) ignores
// unknown parameters and types instead of refusing them.
func (d *dataset) parseExport(level exportLevel, params url.Values, lenient bool) (exportRequest, error) {
	req := exportRequest{level: level}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if !slices.Contains(kickoffParams, k) && !lenient {
			return req, unsupportedParam(k, "not a $export parameter the sandbox supports")
		}
	}
	if err := checkOutputFormat(params["_outputFormat"]); err != nil {
		return req, err
	}
	var err error
	if req.since, err = instantParam(params, "_since"); err != nil {
		return req, err
	}
	if req.until, err = instantParam(params, "_until"); err != nil {
		return req, err
	}
	if req.types, err = exportTypes(params["_type"], lenient); err != nil {
		return req, err
	}
	if req.filters, err = d.typeFilters(params["_typeFilter"], lenient); err != nil {
		return req, err
	}
	req.hasFilters = len(params["_typeFilter"]) > 0
	for _, v := range params["_elements"] {
		req.elements = append(req.elements, splitComma(v)...)
	}
	if req.patients, err = d.exportPatients(level, params["patient"], lenient); err != nil {
		return req, err
	}
	switch by := params.Get("organizeOutputBy"); by {
	case "", "Patient":
		req.organize = by == "Patient"
	default:
		return req, unsupportedParam("organizeOutputBy", "only Patient is supported")
	}
	switch v := params.Get("allowPartialManifests"); v {
	case "", "false", "true":
		req.partial = v == "true"
	default:
		return req, badParam("allowPartialManifests", "want true or false")
	}
	return req, nil
}

func checkOutputFormat(values []string) error {
	for _, v := range values {
		switch v {
		case mediaFHIRNDJSON, "application/ndjson", "ndjson":
		default:
			return unsupportedParam("_outputFormat", "only application/fhir+ndjson is supported")
		}
	}
	return nil
}

// instantParam parses _since/_until: a FHIR instant with a time zone (BULK-05).
func instantParam(params url.Values, name string) (time.Time, error) {
	v := params.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, badParam(name, "want a FHIR instant with a time zone such as 2024-01-01T00:00:00Z (a '+' offset must be sent as %2B)")
	}
	return t, nil
}

// exportTypes parses _type: comma lists, possibly repeated (BULK-06).
func exportTypes(values []string, lenient bool) ([]rtype, error) {
	var out []rtype
	for _, v := range values {
		for _, name := range splitComma(v) {
			t, ok := typeByName(name)
			switch {
			case !typeName.MatchString(name):
				return nil, badParam("_type", quoteText(name)+" is not a resource type")
			case !ok && lenient:
				continue
			case !ok:
				return nil, unsupportedParam("_type", name+" is not exported by the sandbox")
			}
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	if values != nil && out == nil {
		return nil, unsupportedParam("_type", "none of the requested types is exported by the sandbox")
	}
	return out, nil
}

// typeFilters parses _typeFilter: one "Type?query" per parameter (v3), or several joined by
// commas (v2) (BULK-07). Queries of the same type are alternatives.
func (d *dataset) typeFilters(values []string, lenient bool) (map[rtype][]query, error) {
	out := map[rtype][]query{}
	for _, v := range values {
		for _, f := range splitTypeFilters(v) {
			name, raw, ok := strings.Cut(f, "?")
			t, known := typeByName(name)
			if !ok || !typeName.MatchString(name) {
				return nil, badParam("_typeFilter", quoteText(f)+" is not of the form Type?query")
			}
			if !known {
				if lenient {
					continue
				}
				return nil, unsupportedParam("_typeFilter", name+" is not exported by the sandbox")
			}
			params, err := url.ParseQuery(raw)
			if err != nil {
				return nil, badParam("_typeFilter", "malformed query in "+quoteText(f))
			}
			for k := range params {
				if strings.HasPrefix(k, "_") && k != "_id" && k != "_lastUpdated" {
					return nil, unsupportedParam("_typeFilter", quoteText(k)+" is not allowed in a _typeFilter query")
				}
			}
			q, err := d.parseQuery(t, params, false)
			if err != nil {
				return nil, err
			}
			out[t] = append(out[t], q)
		}
	}
	return out, nil
}

// typeFilterStart finds where a v2 comma-joined _typeFilter starts another query.
var typeFilterStart = regexp.MustCompile(`,[A-Z][A-Za-z]+\?`)

func splitTypeFilters(v string) []string {
	var out []string
	for {
		loc := typeFilterStart.FindStringIndex(v)
		if loc == nil {
			return append(out, v)
		}
		out = append(out, v[:loc[0]])
		v = v[loc[0]+1:]
	}
}

// exportPatients resolves patient= references (Patient and Group level only, BULK-09).
func (d *dataset) exportPatients(level exportLevel, refs []string, lenient bool) ([]int, error) {
	if refs == nil {
		return nil, nil
	}
	if level == levelSystem {
		return nil, badParam("patient", "not allowed on a system-level export")
	}
	out := []int{}
	for _, ref := range refs {
		idx, ok := d.patientRef(ref)
		if !ok {
			if lenient {
				continue
			}
			return nil, &paramError{"patient", "not-found", quoteText(ref) + " is not a known patient"}
		}
		out = append(out, idx)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func splitComma(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
