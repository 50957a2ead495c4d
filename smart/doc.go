// Package smart holds the types every SMART on FHIR flow shares: discovery of a server's SMART
// configuration, scopes in the v1 and v2 grammar, and the token response with its launch context.
//
// Specifications:
//   - SMART App Launch 2.2: https://hl7.org/fhir/smart-app-launch/
//   - Discovery (.well-known/smart-configuration): https://hl7.org/fhir/smart-app-launch/conformance.html
//   - Scopes and launch context: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
//   - Token response: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token
//   - RFC 6749 (OAuth 2.0), RFC 6750 (bearer tokens), RFC 7636 (PKCE)
//
// The package imports only the standard library and golang.org/x/oauth2, so every other package of
// the toolkit can build on it.
package smart
