// Package sandbox is an offline SMART on FHIR EHR: an authorization server (SMART App Launch 2.2,
// Backend Services, RFC 7591 registration, introspection, revocation) and a FHIR R4 server with
// deterministic synthetic data and Bulk Data $export, both able to misbehave on purpose (fault
// injection, clock offset, version modes) so that every client rule in the checklist can be tested.
//
// Layout: server.go (this skeleton: Server, Options, routing, shared stores), auth*.go (authorization
// server), fhir*.go, bulk*.go, data*.go (FHIR API, bulk export, data generator), faults.go, control.go.
//
// URLs, relative to the server's origin:
//
//	/fhir                                   FHIR base (R4)
//	/fhir/.well-known/smart-configuration   SMART discovery
//	/fhir/.well-known/openid-configuration  OIDC discovery (issuer = FHIR base)
//	/fhir/metadata                          CapabilityStatement with oauth-uris
//	/fhir/openapi.json                      OpenAPI 3.1 document with the SMART security requirements
//	/auth/authorize, /auth/token, /auth/register, /auth/introspect, /auth/revoke, /auth/jwks
//	/auth/decide                             the login/consent page's form target
//	/bulk/status/{job}, /bulk/files/{job}/{name}   Bulk Data status and output files
//	/                                        EHR launch simulator page
//	/sandbox/...                             control API (faults, clock, launches, stats,
//	                                         DELETE /sandbox/clients/{client_id}/keys/{kid})
//
// Automation without a browser: the authorize endpoint honours sandbox_skip_login=1,
// sandbox_patient=ID, sandbox_user=Practitioner/ID and sandbox_encounter=ID query flags (or a client's
// or launch's skip_login), answering with the redirect at once. Export timing, file splitting and
// capability-URL mode are set with SetFHIRSettings.
package sandbox
