package fhirclient

import (
	"fmt"
	"strings"
)

//go:generate go run gen_registry.go

// ResourceTypes returns the names of the FHIR R4 resource types the samply models define (146),
// sorted.
func ResourceTypes() []string { return strings.Fields(resourceTypeList) }

// NewResource returns a pointer to a new zero value of the samply model for resourceType
// (*fhir.Patient for "Patient"), or an error wrapping ErrUnknownResourceType.
//
// NewResource and DecodeResource link every model type into the binary, about 1.7 MB; the rest of the
// package links only the types a program uses.
func NewResource(resourceType string) (any, error) {
	v := newResource(resourceType)
	if v == nil {
		return nil, fmt.Errorf("%w %q (not a FHIR R4 resource type)", ErrUnknownResourceType, safeText(resourceType))
	}
	return v, nil
}

// DecodeResource decodes a JSON resource into the samply model its resourceType names and returns
// the pointer (*fhir.Patient, *fhir.Observation, …). The models drop contained resources, primitive
// extensions (_birthDate) and unknown elements, and refuse unknown codes: keep the bytes when you
// need to write the resource back.
func DecodeResource(b []byte) (any, error) {
	h, err := peekResource(b)
	if err != nil {
		return nil, err
	}
	v, err := NewResource(h.ResourceType)
	if err != nil {
		return nil, err
	}
	if err := unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("fhirclient: decoding %s: %w", h.ResourceType, err)
	}
	return v, nil
}
