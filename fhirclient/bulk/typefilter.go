package bulk

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"

	gojson "github.com/goccy/go-json"
)

// TypeFilter evaluates the _typeFilter queries of an export on the client (BULK-08): servers may
// ignore _typeFilter, and clients "SHOULD be robust" to that. It understands the common simple
// search parameters (see filterParams): tokens such as status, category, code or gender, with
// "code", "system|code", "|code" and "system|", the :not and :missing modifiers; dates such as
// date, authoredon, onset-date, birthdate or _lastUpdated with the eq, ne, gt, lt, ge, le, sa
// and eb prefixes, compared as ranges as FHIR search does (ge and le in their widest reading; a
// date or dateTime without a zone is read as UTC); and strings such as name, family or given
// (FHIR's case-insensitive "starts with", :exact and :contains). Within a query every parameter
// must match; commas are alternatives; several queries for one type are alternatives; a type
// without a query is not filtered.
//
// Match never guesses: a parameter it cannot evaluate (a chained or reference parameter, an
// unknown modifier, a token with a system on a plain code, non-ASCII text for a case-insensitive
// match) makes the answer unknown unless another part of the query decides it, and an unknown
// answer never drops a resource. Unsupported lists those parameters for a warning.
//
// A TypeFilter is safe for concurrent use.
type TypeFilter struct {
	queries     map[string][]filterQuery // by resource type
	unsupported []string                 // "Type.param[:modifier]", sorted, unique
	elements    map[string]string        // top-level elements the conditions read (name → name)
	choices     []string                 // choice elements they read ("effective" of effective[x])
}

// filterQuery is one _typeFilter query: every condition must hold.
type filterQuery struct{ conds []filterCond }

// filterCond is one parameter occurrence of a query.
type filterCond func(res resourceFields) tri

// tri is a three-valued truth: a condition may not be decidable on the client.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func (t tri) not() tri {
	switch t {
	case triTrue:
		return triFalse
	case triFalse:
		return triTrue
	}
	return triUnknown
}

// NewTypeFilter compiles _typeFilter queries ("Type?param=value&…", as in
// ExportRequest.TypeFilters). A malformed query wraps ErrInvalidRequest; a parameter the client
// cannot evaluate is not an error (see Unsupported).
func NewTypeFilter(queries []string) (*TypeFilter, error) {
	f := &TypeFilter{queries: map[string][]filterQuery{}, elements: map[string]string{"resourceType": "resourceType"}}
	for _, s := range queries {
		if err := checkTypeFilter(s); err != nil {
			return nil, err
		}
		typ, raw, _ := strings.Cut(s, "?")
		params, _ := url.ParseQuery(raw) // checked above
		var q filterQuery
		for _, key := range slices.Sorted(maps.Keys(params)) {
			for _, v := range params[key] {
				c, path, ok := compileCond(typ, key, v)
				if !ok {
					f.unsupported = append(f.unsupported, typ+"."+key)
					c = func(resourceFields) tri { return triUnknown }
				}
				first, _, _ := strings.Cut(path, ".")
				if name, choice := strings.CutSuffix(first, "[x]"); choice {
					f.choices = append(f.choices, name)
				} else if first != "" {
					f.elements[first] = first
				}
				q.conds = append(q.conds, c)
			}
		}
		f.queries[typ] = append(f.queries[typ], q)
	}
	slices.Sort(f.unsupported)
	f.unsupported = slices.Compact(f.unsupported)
	return f, nil
}

// Unsupported lists the parameters the client cannot evaluate, as "Type.param[:modifier]".
// Resources of the types concerned are kept unless another part of a query rules them out.
func (f *TypeFilter) Unsupported() []string { return slices.Clone(f.unsupported) }

// Filters reports whether a query restricts resources of type typ.
func (f *TypeFilter) Filters(typ string) bool { return len(f.queries[typ]) > 0 }

// Match evaluates the queries of the resource's type on one resource (a JSON object, such as an
// NDJSON line). ok is false when the client cannot decide (see TypeFilter) or the resource is not
// a JSON object with a resourceType; match is then true, since nothing may be dropped on a guess.
func (f *TypeFilter) Match(resource []byte) (match, ok bool) {
	res, ok := f.fields(resource)
	if !ok {
		return true, false
	}
	typ := res["resourceType"]
	if len(typ) < 3 || typ[0] != '"' || typ[len(typ)-1] != '"' || bytes.IndexByte(typ, '\\') >= 0 {
		return true, false
	}
	queries := f.queries[string(typ[1:len(typ)-1])]
	if len(queries) == 0 {
		return true, true
	}
	result := triFalse // any query may match
	for _, q := range queries {
		switch q.eval(res) {
		case triTrue:
			return true, true
		case triUnknown:
			result = triUnknown
		}
	}
	if result == triUnknown {
		return true, false
	}
	return false, true
}

func (q filterQuery) eval(res resourceFields) tri {
	result := triTrue // every condition must hold
	for _, c := range q.conds {
		switch c(res) {
		case triFalse:
			return triFalse
		case triUnknown:
			result = triUnknown
		}
	}
	return result
}

// resourceFields holds the top-level elements of a resource that the conditions read, undecoded;
// a condition decodes what it needs.
type resourceFields map[string]json.RawMessage

// fields picks the elements the conditions read out of a resource, without decoding the others.
// ok is false for malformed JSON, or a member name with an escape (which could hide an element).
func (f *TypeFilter) fields(resource []byte) (resourceFields, bool) {
	res := make(resourceFields, 4)
	ok := scanObject(resource, func(name, value []byte) bool {
		if bytes.IndexByte(name, '\\') >= 0 {
			return false
		}
		if canon, ok := f.elements[string(name)]; ok {
			res[canon] = value // no allocation for the key
		} else if slices.ContainsFunc(f.choices, func(c string) bool { return isChoiceOf(name, c) }) {
			res[string(name)] = value
		}
		return true
	})
	return res, ok
}

// isChoiceOf reports whether name is a type of choice element c: c followed by an upper-case
// type name (effectiveDateTime, effectivePeriod).
func isChoiceOf(name []byte, c string) bool {
	return len(name) > len(c) && string(name[:len(c)]) == c && name[len(c)] >= 'A' && name[len(c)] <= 'Z'
}

// values returns the decoded values at path: a dotted element path whose first step may be a
// choice element "name[x]" (effectiveDateTime, effectivePeriod…). Arrays on the way are
// flattened. A missing element yields nothing.
func (r resourceFields) values(path string) []any {
	first, rest, _ := strings.Cut(path, ".")
	var out []any
	if name, ok := strings.CutSuffix(first, "[x]"); ok {
		for k, raw := range r {
			var v any
			if isChoiceOf([]byte(k), name) && gojson.Unmarshal(raw, &v) == nil {
				out = walk(choice{k[len(name):], v}, rest, out)
			}
		}
	} else if raw, ok := r[first]; ok {
		var v any
		if gojson.Unmarshal(raw, &v) == nil {
			out = walk(v, rest, out)
		}
	}
	return out
}

// choice is the value of a choice element with its type suffix ("DateTime", "Period").
type choice struct {
	typ string
	v   any
}

// walk appends the values at the dotted path below v, flattening arrays.
func walk(v any, path string, out []any) []any {
	if a, ok := v.([]any); ok {
		for _, e := range a {
			out = walk(e, path, out)
		}
		return out
	}
	if path == "" {
		return append(out, v)
	}
	if c, ok := v.(choice); ok {
		v = c.v
	}
	m, ok := v.(map[string]any)
	if !ok {
		return out
	}
	step, rest, _ := strings.Cut(path, ".")
	if e, ok := m[step]; ok {
		return walk(e, rest, out)
	}
	return out
}
