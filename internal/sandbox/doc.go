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
//	/auth/authorize, /auth/token, /auth/register, /auth/introspect, /auth/revoke, /auth/jwks
//	/                                        EHR launch simulator page
//	/sandbox/...                             control API (faults, clock, launches, stats)
package sandbox
