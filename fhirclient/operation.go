package fhirclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Operation invokes a named operation (FHIR R4 operations.html) at system level (resourceType ""),
// type level (id "") or instance level: [base]/[Type/[id/]]$name. name may include the "$".
//
// in decides the request: nil or url.Values sends GET with the values as query parameters (for
// operations that change nothing and take simple parameters); anything else (a *fhir.Parameters, a
// resource, or JSON bytes) is POSTed as the body. The answer is decoded into v like Do does;
// Parameters, a Bundle or a plain resource are all common answers.
func (c *Client) Operation(ctx context.Context, resourceType, id, name string, in, v any) (*Response, error) {
	if err := c.checkOperation(name); err != nil {
		return nil, err
	}
	k, err := operationCall(resourceType, id, name, in)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, k, v)
}

func operationCall(resourceType, id, name string, in any) (call, error) {
	name = strings.TrimPrefix(name, "$")
	if !validOperation(name) {
		return call{}, fmt.Errorf("%w: operation name %q", ErrInvalidPath, pathPart(name))
	}
	p, err := levelPath(resourceType, id, "$"+name)
	if err != nil {
		return call{}, err
	}
	switch q := in.(type) {
	case nil:
		return call{method: http.MethodGet, path: p}, nil
	case url.Values:
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		return call{method: http.MethodGet, path: p}, nil
	}
	return call{method: http.MethodPost, path: p, body: in}, nil
}

// Everything runs Patient/id/$everything (GET, with q such as _since, _type, _count; patientID ""
// runs the type-level Patient/$everything) and returns the first page; follow the rest with Pages.
// Not every server offers it: with a profile that says so (Epic's, SetProfile) it fails at once with
// an error wrapping smart.ErrUnsupportedOperation.
func (c *Client) Everything(ctx context.Context, patientID string, q url.Values) (*fhir.Bundle, *Response, error) {
	if err := c.checkOperation("$everything"); err != nil {
		return nil, nil, err
	}
	k, err := operationCall("Patient", patientID, "everything", q)
	if err != nil {
		return nil, nil, err
	}
	return c.bundle(ctx, k)
}

// History reads a history Bundle: of the whole system (resourceType ""), of a type (id ""), or of one
// resource; q takes _count, _since and _at. Follow further pages with Pages.
func (c *Client) History(ctx context.Context, resourceType, id string, q url.Values) (*fhir.Bundle, *Response, error) {
	p, err := levelPath(resourceType, id, "_history")
	if err != nil {
		return nil, nil, err
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return c.bundle(ctx, call{method: http.MethodGet, path: p})
}

// Batch POSTs b to the base as a batch (its Type is set to batch on a copy) and returns the
// batch-response. Each entry succeeds or fails on its own: read entry.Response.Status; the call
// itself fails only when the server rejects the whole Bundle.
func (c *Client) Batch(ctx context.Context, b *fhir.Bundle) (*fhir.Bundle, *Response, error) {
	return c.postBundle(ctx, b, fhir.BundleTypeBatch)
}

// Transaction POSTs b to the base as a transaction (its Type is set to transaction on a copy): all
// entries succeed together or the call fails.
func (c *Client) Transaction(ctx context.Context, b *fhir.Bundle) (*fhir.Bundle, *Response, error) {
	return c.postBundle(ctx, b, fhir.BundleTypeTransaction)
}

func (c *Client) postBundle(ctx context.Context, b *fhir.Bundle, t fhir.BundleType) (*fhir.Bundle, *Response, error) {
	if b == nil {
		return nil, nil, fmt.Errorf("fhirclient: nil Bundle")
	}
	cp := *b
	cp.Type = t
	return c.bundle(ctx, call{method: http.MethodPost, path: "", body: cp})
}
