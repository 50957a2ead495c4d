package openapitest

import (
	"strings"
	"testing"
)

// good is a minimal valid document exercising every checked object.
const good = `{
  "openapi": "3.1.1",
  "info": {"title": "t", "version": "1"},
  "servers": [{"url": "https://h/fhir"}],
  "paths": {
    "/Patient/{id}": {"get": {
      "operationId": "readPatient",
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "ok", "content": {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/R"}}}}, "4XX": {"description": "no"}},
      "security": [{"smart": ["patient/Patient.rs"]}, {"oidc": ["openid"]}],
      "x-any": 1
    }}
  },
  "components": {
    "schemas": {"R": {"type": "object"}},
    "securitySchemes": {
      "smart": {"type": "oauth2", "flows": {
        "authorizationCode": {"authorizationUrl": "https://h/a", "tokenUrl": "https://h/t", "refreshUrl": "https://h/t", "scopes": {"patient/Patient.rs": "read"}, "x-usePkce": "SHA-256"},
        "clientCredentials": {"tokenUrl": "https://h/t", "scopes": {}}}},
      "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://h/.well-known/openid-configuration"}
    }
  }
}`

func TestValidateGood(t *testing.T) {
	t.Parallel()
	for _, err := range Validate([]byte(good)) {
		t.Error(err)
	}
}

// TestValidateFaults breaks the good document one way at a time; each must be reported.
func TestValidateFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, old, new, want string
	}{
		{"openapi 3.0", `"3.1.1"`, `"3.0.3"`, "/openapi"},
		{"no title", `"title": "t", `, ``, "/info/title"},
		{"unknown root field", `"servers":`, `"server":`, `unknown field "server"`},
		{"undefined scheme", `{"oidc": ["openid"]}`, `{"nope": []}`, `undefined security scheme "nope"`},
		{"undefined scope", `["patient/Patient.rs"]}`, `["patient/*.cruds"]}`, `scope "patient/*.cruds" is not defined`},
		{"unknown scheme type", `"type": "openIdConnect"`, `"type": "oauth3"`, "/components/securitySchemes/oidc/type"},
		{"relative tokenUrl", `"clientCredentials": {"tokenUrl": "https://h/t"`, `"clientCredentials": {"tokenUrl": "/t"`, "clientCredentials/tokenUrl"},
		{"missing authorizationUrl", `"authorizationUrl": "https://h/a", `, ``, "authorizationCode/authorizationUrl"},
		{"scopes missing", `, "scopes": {}}}}`, `}}}`, "clientCredentials/scopes"},
		{"empty flows", `"flows": {`, `"flows": {}, "x-f": {`, "/flows"},
		{"no openIdConnectUrl", `"openIdConnectUrl"`, `"openIdConnectURL"`, "openIdConnectUrl"},
		{"path without slash", `"/Patient/{id}"`, `"Patient/{id}"`, "must start with /"},
		{"template without parameter", `"in": "path"`, `"in": "query"`, "{id} has no path parameter"},
		{"path parameter not required", `"required": true`, `"required": false`, "must be required: true"},
		{"parameter without schema", `, "schema": {"type": "string"}}]`, `}]`, "exactly one of schema and content"},
		{"bad status", `"4XX"`, `"4xx"`, "not an HTTP status code"},
		{"response without description", `"description": "no"`, `"x": "no"`, "description: required"},
		{"dangling ref", `#/components/schemas/R"`, `#/components/schemas/Q"`, "does not resolve"},
		{"unknown operation field", `"x-any": 1`, `"secure": 1`, `unknown field "secure"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(good, tt.old) {
				t.Fatalf("fixture lacks %q", tt.old)
			}
			doc := strings.Replace(good, tt.old, tt.new, 1)
			errs := Validate([]byte(doc))
			for _, err := range errs {
				if strings.Contains(err.Error(), tt.want) {
					return
				}
			}
			t.Errorf("no error mentioning %q; got %v", tt.want, errs)
		})
	}
}

func TestValidateDuplicateOperationID(t *testing.T) {
	t.Parallel()
	doc := strings.Replace(good, `"paths": {`, `"paths": {"/x": {"get": {"operationId": "readPatient", "responses": {"200": {"description": "d"}}}},`, 1)
	errs := Validate([]byte(doc))
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `"readPatient" is also used`) {
		t.Errorf("errs = %v", errs)
	}
}

func TestValidateNotJSON(t *testing.T) {
	t.Parallel()
	if errs := Validate([]byte(`openapi: 3.1.0`)); len(errs) != 1 {
		t.Errorf("errs = %v", errs)
	}
}
