// Package openapi builds OpenAPI 3.1 documents that describe how to authorize against a SMART on FHIR
// server: components.securitySchemes generated from the server's SMART configuration, and, when the
// FHIR API is known (from a CapabilityStatement or from the sandbox), one path per interaction with the
// SMART scopes it needs.
//
// The security scheme "smart" is an oauth2 scheme. Its authorizationCode flow (SMART App Launch) has
// the authorize, token and refresh URLs and the user-facing scopes, and says that PKCE with S256 is
// required (in the description and as the x-usePkce extension); its clientCredentials flow (SMART
// Backend Services) has the token URL and the system scopes. When the server advertises
// sso-openid-connect, an openIdConnect scheme "openid" points at its OpenID configuration.
//
// Each FHIR operation lists its security requirements as alternatives (the OpenAPI "any of"
// semantics): patient/, user/ and system/ scopes for the resource type, in the SMART v2 syntax
// (.rs) and the v1 syntax (.read) as the server's permission-v1/permission-v2 capabilities allow.
// Every scope a requirement names is defined in a flow, so tools can offer it.
//
// Specifications:
//   - OpenAPI 3.1.1: https://spec.openapis.org/oas/v3.1.1.html (Security Scheme, OAuth Flows,
//     Security Requirement objects)
//   - SMART App Launch 2.2 discovery: https://hl7.org/fhir/smart-app-launch/conformance.html
//   - SMART scopes: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
//   - SMART Backend Services: https://hl7.org/fhir/smart-app-launch/backend-services.html
//   - Bulk Data $export: https://hl7.org/fhir/uv/bulkdata/export.html
//
// The package is internal: the CLI (smartfhir discover --openapi) and the sandbox
// (/fhir/openapi.json) share it.
package openapi
