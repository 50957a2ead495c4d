// Package smart holds the types every SMART on FHIR flow shares: discovery of a server's SMART
// configuration, scopes in the v1 and v2 grammar, and the token response with its launch context.
//
// Specifications:
//   - SMART App Launch 2.2: https://hl7.org/fhir/smart-app-launch/
//   - Discovery (.well-known/smart-configuration): https://hl7.org/fhir/smart-app-launch/conformance.html
//   - SMART v1 discovery from a CapabilityStatement: https://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html
//   - Scopes and launch context: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
//   - Token response: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token
//   - RFC 6749 (OAuth 2.0), RFC 6750 (bearer tokens), RFC 7636 (PKCE), RFC 8414 (server metadata),
//     RFC 9207 (iss in the authorization response)
//
// # Discovery
//
// Discover reads {fhirBase}/.well-known/smart-configuration into a Configuration, falling back to
// the oauth-uris extension of the server's CapabilityStatement for SMART v1 servers. Nothing in a
// discovery document is trusted by default: check where credentials would go and what the flow
// needs before using it.
//
//	cfg, err := smart.Discover(ctx, nil, iss)
//	if err != nil { … }
//	if err := cfg.CheckEndpointOrigins(trusted...); err != nil { … } // DISC-07
//	if err := cfg.RequireLaunch(); err != nil { … }                 // authorize endpoint, PKCE S256
//	conf := oauth2.Config{ClientID: id, Endpoint: cfg.Endpoint(), …}
//
// A Discoverer tunes the fetch: vendor headers (Epic-Client-ID), size limit, timeout, fallbacks
// (CapabilityStatement, OpenID Connect configuration), plain http for private test servers.
//
// # Scopes
//
// ParseScope and ParseScopes validate scopes an app is about to request; ParseScopesLenient reads
// what a server granted and never fails. A Scopes value answers access questions (Allows,
// Matching, Covers), compares a request with a grant (Diff, CheckSubset) and writes itself in the
// v1 or v2 grammar a server expects (Format with Configuration.ScopeStyle):
//
//	granted := tok.GrantedScopes()
//	if !granted.Allows("patient", "Observation", smart.PermRead|smart.PermSearch) { … }
//	missing := smart.Diff(requested, granted)
//
// # Tokens
//
// ParseTokenResponse and ExchangeToken turn a token endpoint response into a Token, which embeds
// *oauth2.Token and adds the granted scope, the id_token and the launch context, with every value a
// hostile server could abuse (an access token with CR/LF, a patient id with "../") refused.
//
// # Sending tokens
//
// NewTransport (and NewClient) adds "Authorization: Bearer" only to requests for the origins it
// trusts, checked on every redirect hop; after a 401 it invalidates the token and, when the body can
// be replayed, retries once with a new one. NewCachingTokenSource caches a fetched token until a
// margin before it expires, with one fetch at a time, Invalidate, and an optional TokenStore and
// Locker shared between processes. An Introspector asks a server about a token (RFC 7662), and a
// Profile carries a vendor's quirks as data.
//
// The package imports only the standard library and golang.org/x/oauth2, so every other package of
// the toolkit can build on it.
package smart
