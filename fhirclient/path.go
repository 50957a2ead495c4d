package fhirclient

import (
	"fmt"
	"strings"
)

// validType reports whether t is shaped like a FHIR resource type name: an upper-case ASCII letter
// followed by at most 63 ASCII letters. Custom and future types pass; path characters never do.
func validType(t string) bool {
	if len(t) == 0 || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 1; i < len(t); i++ {
		if c := t[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// validID reports whether id is a FHIR id ([A-Za-z0-9\-\.]{1,64}, FHIR R4 datatypes.html#id),
// excluding the dot segments "." and "..". Version ids follow the same rule.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validOperation reports whether name (without its "$") is an operation code: a letter, then
// letters, digits, '-' or '_', at most 64 in all.
func validOperation(name string) bool {
	if len(name) == 0 || len(name) > 64 || !('a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// resourcePath builds "Type/id" or "Type/id/_history/vid" (API-05): every part is checked, so
// nothing taken from a caller or a server can add a path segment or a query.
func resourcePath(resourceType, id, versionID string) (string, error) {
	if !validType(resourceType) {
		return "", fmt.Errorf("%w: resource type %q", ErrInvalidPath, pathPart(resourceType))
	}
	if !validID(id) {
		return "", fmt.Errorf("%w: id %q is not a FHIR id", ErrInvalidPath, pathPart(id))
	}
	p := resourceType + "/" + id
	if versionID != "" {
		if !validID(versionID) {
			return "", fmt.Errorf("%w: version id %q is not a FHIR id", ErrInvalidPath, pathPart(versionID))
		}
		p += "/_history/" + versionID
	}
	return p, nil
}

// levelPath builds the path of a system-, type- or instance-level interaction: "", "Type" or
// "Type/id", followed by suffix ("_history", "_search", "$everything") when given.
func levelPath(resourceType, id, suffix string) (string, error) {
	var parts []string
	switch {
	case resourceType == "" && id != "":
		return "", fmt.Errorf("%w: id %q without a resource type", ErrInvalidPath, pathPart(id))
	case resourceType != "" && id == "":
		if !validType(resourceType) {
			return "", fmt.Errorf("%w: resource type %q", ErrInvalidPath, pathPart(resourceType))
		}
		parts = append(parts, resourceType)
	case resourceType != "":
		p, err := resourcePath(resourceType, id, "")
		if err != nil {
			return "", err
		}
		parts = append(parts, p)
	}
	if suffix != "" {
		parts = append(parts, suffix)
	}
	return strings.Join(parts, "/"), nil
}

// pathPart prepares a refused path part for an error message: sanitised (control and bidi
// characters escaped, secrets removed) and bounded, as it may come from a server or be huge.
func pathPart(s string) string { return clip(safeText(clip(s, 256)), 80) }
