package fhirclient

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// modelsPkg is the import path of the samply FHIR R4 models.
const modelsPkg = "github.com/samply/golang-fhir-models/fhir-models/fhir"

// resourceHeader holds the members every resource has, for a cheap look before decoding.
type resourceHeader struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

// peekResource reads the resourceType and id of a JSON resource.
func peekResource(b []byte) (resourceHeader, error) {
	var h resourceHeader
	if err := unmarshal(b, &h); err != nil {
		return h, malformed(b, err)
	}
	return h, nil
}

// modelName returns the resource type a samply model pointer decodes ("Patient" for *fhir.Patient),
// or "" when v is not one.
func modelName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return ""
	}
	t = t.Elem()
	if t.PkgPath() != modelsPkg || !isResourceType(t.Name()) {
		return ""
	}
	return t.Name()
}

// decodeAs decodes the JSON resource b into v. When want is set the resourceType must be want; when v
// is a samply model it must be v's type (the models do not check: UnmarshalPatient accepts an
// Observation). An empty body leaves v unchanged.
func decodeAs(b []byte, want string, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := unmarshal(b, v); err != nil {
		return malformed(b, err)
	}
	if want != "" {
		if err := checkType(b, want); err != nil {
			return err
		}
	}
	if model := modelName(v); model != "" && model != want {
		if err := checkType(b, model); err != nil {
			return err
		}
	}
	return nil
}

// checkType reports an error unless the JSON resource b has resourceType want.
func checkType(b []byte, want string) error {
	got, ok := scanResourceType(b)
	if !ok {
		h, err := peekResource(b)
		if err != nil {
			return err
		}
		got = h.ResourceType
	}
	if got != want {
		return fmt.Errorf("%w: want resourceType %q, got %q", ErrMalformedResponse, want, safeText(got))
	}
	return nil
}

// scanResourceType finds the top-level "resourceType" string of a JSON object without decoding it.
// ok is false when the input takes a form it does not handle (escapes or non-ASCII in a key, escapes
// in the value, no such member, not an object) and when the key appears more than once in any case
// (the decoders match keys case-insensitively and keep the last): the caller then decodes with the
// same decoder as the body, so a hostile body cannot pass the check as one type and decode as
// another. It reads the top level to its end but does not validate b: callers decode b fully
// afterwards.
func scanResourceType(b []byte) (string, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i++
	var (
		rt    string
		found bool
	)
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return "", false
		}
		key, end, ok := plainString(b, i)
		if !ok {
			return "", false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return "", false
		}
		i = skipSpace(b, i+1)
		if strings.EqualFold(key, "resourceType") {
			if found || key != "resourceType" || i >= len(b) || b[i] != '"' {
				return "", false
			}
			if rt, end, ok = plainString(b, i); !ok {
				return "", false
			}
			i, found = end, true
		} else if i = skipValue(b, i); i < 0 {
			return "", false
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			return rt, found
		}
		if i >= len(b) || b[i] != ',' {
			return "", false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads the string starting at b[i] == '"' when it is printable ASCII without escapes
// (as member names and resource types are); end is past the closing quote.
func plainString(b []byte, i int) (s string, end int, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", 0, false
		}
	}
	return "", 0, false
}

// skipValue returns the index just past the JSON value starting at b[i], or -1. It tracks strings
// (with escapes) and nesting; it does not validate numbers or literals.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object, after a scalar
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}

// malformed wraps a decode error in ErrMalformedResponse; a body that is not JSON at all (an HTML
// page from a proxy) is quoted as a short sanitised snippet.
func malformed(b []byte, err error) error {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] != '{' && t[0] != '[' {
		return fmt.Errorf("%w: %w (body: %s)", ErrMalformedResponse, err, httpx.Snippet([]byte(scrubSecrets(string(t)))))
	}
	return fmt.Errorf("%w: %w", ErrMalformedResponse, err)
}
