package fhirclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// call is one FHIR interaction.
type call struct {
	method, path string
	body         any
	header       http.Header // set on the request after the defaults
	want         string      // resourceType a response body must have ("" = any)
	needBody     bool        // an empty 2xx body is an error
}

// send runs a call, decoding the response into v (see Do for the forms v may take).
func (c *Client) send(ctx context.Context, k call, v any) (*Response, error) {
	req, err := c.NewRequest(ctx, k.method, k.path, k.body)
	if err != nil {
		return nil, err
	}
	for name, vs := range k.header {
		req.Header[name] = vs
	}
	return c.do(req, func(resp *Response) error { return c.decodeBody(resp.Body, k.want, k.needBody, v) })
}

// Capabilities reads the server's CapabilityStatement (GET [base]/metadata) into v: a
// *fhir.CapabilityStatement, or a *json.RawMessage to keep it whole (the typed model refuses unknown
// codes, which real CapabilityStatements contain).
func (c *Client) Capabilities(ctx context.Context, v any) (*Response, error) {
	return c.send(ctx, call{method: http.MethodGet, path: "metadata", want: "CapabilityStatement", needBody: true}, v)
}

// Read reads the current version of a resource (GET [base]/Type/id) into v: a pointer to the samply
// model (*fhir.Patient), a *json.RawMessage for the exact bytes, or an io.Writer. The body must be a
// resource of type resourceType. A deleted resource fails with ErrGone, a missing one with ErrNotFound.
func (c *Client) Read(ctx context.Context, resourceType, id string, v any) (*Response, error) {
	p, err := resourcePath(resourceType, id, "")
	if err != nil {
		return nil, err
	}
	return c.send(ctx, call{method: http.MethodGet, path: p, want: resourceType, needBody: true}, v)
}

// ReadRaw reads a resource and returns its bytes exactly as the server sent them. Use it when the
// resource will be written back or passed on: the typed models drop contained resources, primitive
// extensions and unknown elements.
func (c *Client) ReadRaw(ctx context.Context, resourceType, id string) (json.RawMessage, *Response, error) {
	var raw json.RawMessage
	resp, err := c.Read(ctx, resourceType, id, &raw)
	return raw, resp, err
}

// VRead reads one version of a resource (GET [base]/Type/id/_history/vid) into v, as Read does.
func (c *Client) VRead(ctx context.Context, resourceType, id, versionID string, v any) (*Response, error) {
	if versionID == "" {
		return nil, fmt.Errorf("%w: empty version id", ErrInvalidPath)
	}
	p, err := resourcePath(resourceType, id, versionID)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, call{method: http.MethodGet, path: p, want: resourceType, needBody: true}, v)
}

// Create creates a resource (POST [base]/Type). resource is a samply model or the JSON bytes
// (json.RawMessage, []byte) sent unchanged; its resourceType decides the URL, and an id in it is
// ignored by the server. The server's representation, when it sends one, is decoded into v (nil to
// skip); Response.Location and VersionID tell the new id and version.
func (c *Client) Create(ctx context.Context, resource, v any) (*Response, error) {
	return c.create(ctx, resource, nil, v)
}

// ConditionalCreate creates the resource unless one matches ifNoneExist (the If-None-Exist header,
// FHIR R4 http.html#ccreate). A match returns 200 instead of 201; several matches fail with
// ErrPreconditionFailed.
func (c *Client) ConditionalCreate(ctx context.Context, resource any, ifNoneExist url.Values, v any) (*Response, error) {
	if len(ifNoneExist) == 0 {
		return nil, fmt.Errorf("fhirclient: ConditionalCreate needs search parameters for If-None-Exist")
	}
	return c.create(ctx, resource, http.Header{"If-None-Exist": {ifNoneExist.Encode()}}, v)
}

func (c *Client) create(ctx context.Context, resource any, hdr http.Header, v any) (*Response, error) {
	body, h, err := resourceBody(resource)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, call{method: http.MethodPost, path: h.ResourceType, body: body, header: hdr, want: h.ResourceType}, v)
}

// Update replaces a resource (PUT [base]/Type/id), taking the type and id from the resource. With a
// non-empty versionID the update is sent with If-Match: W/"versionID" and fails with
// ErrPreconditionFailed (or ErrConflict, by server) when the resource has moved on.
func (c *Client) Update(ctx context.Context, resource any, versionID string, v any) (*Response, error) {
	body, h, err := resourceBody(resource)
	if err != nil {
		return nil, err
	}
	p, err := resourcePath(h.ResourceType, h.ID, "")
	if err != nil {
		return nil, fmt.Errorf("fhirclient: Update needs a resource with a type and an id: %w", err)
	}
	hdr, err := versionHeader(versionID)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, call{method: http.MethodPut, path: p, body: body, header: hdr, want: h.ResourceType}, v)
}

// Delete deletes a resource (DELETE [base]/Type/id). Deleting a missing resource succeeds on most
// servers (204 or 200) and fails with ErrNotFound on some.
func (c *Client) Delete(ctx context.Context, resourceType, id string) (*Response, error) {
	p, err := resourcePath(resourceType, id, "")
	if err != nil {
		return nil, err
	}
	return c.send(ctx, call{method: http.MethodDelete, path: p}, nil)
}

// PatchOp is one JSON Patch operation (RFC 6902).
type PatchOp struct {
	Op    string `json:"op"` // add, remove, replace, move, copy, test
	Path  string `json:"path"`
	From  string `json:"from,omitempty"`
	Value any    `json:"value,omitempty"` // json.RawMessage("null") sends a null
}

// Patch applies a JSON Patch (PATCH [base]/Type/id, Content-Type application/json-patch+json). patch
// is a []PatchOp or the patch document's bytes. versionID, when set, is sent as If-Match.
func (c *Client) Patch(ctx context.Context, resourceType, id string, patch any, versionID string, v any) (*Response, error) {
	p, err := resourcePath(resourceType, id, "")
	if err != nil {
		return nil, err
	}
	var body []byte
	switch pt := patch.(type) {
	case json.RawMessage:
		body = pt
	case []byte:
		body = pt
	default:
		if body, err = marshal(patch); err != nil {
			return nil, fmt.Errorf("fhirclient: encoding patch: %w", err)
		}
	}
	hdr, err := versionHeader(versionID)
	if err != nil {
		return nil, err
	}
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Type", MediaTypeJSONPatch)
	return c.send(ctx, call{method: http.MethodPatch, path: p, body: body, header: hdr, want: resourceType}, v)
}

// versionHeader returns the If-Match header for versionID, or nil when it is empty.
func versionHeader(versionID string) (http.Header, error) {
	if versionID == "" {
		return nil, nil
	}
	if !validID(versionID) {
		return nil, fmt.Errorf("%w: version id %q is not a FHIR id", ErrInvalidPath, versionID)
	}
	return http.Header{"If-Match": {ifMatch(versionID)}}, nil
}

// resourceBody encodes a resource for a request and reads its resourceType and id.
func resourceBody(resource any) ([]byte, resourceHeader, error) {
	var body []byte
	switch r := resource.(type) {
	case nil:
		return nil, resourceHeader{}, fmt.Errorf("fhirclient: nil resource")
	case json.RawMessage:
		body = r
	case []byte:
		body = r
	default:
		var err error
		if body, err = marshal(resource); err != nil {
			return nil, resourceHeader{}, fmt.Errorf("fhirclient: encoding resource: %w", err)
		}
	}
	var h resourceHeader
	if err := unmarshal(body, &h); err != nil {
		return nil, h, fmt.Errorf("fhirclient: resource is not JSON: %w", err)
	}
	if !validType(h.ResourceType) {
		return nil, h, fmt.Errorf("%w: resource has resourceType %q", ErrInvalidPath, safeText(h.ResourceType))
	}
	return body, h, nil
}
