// Package backend is a SMART Backend Services client: the OAuth 2.0 client_credentials grant
// authenticated with a signed JWT client assertion (private_key_jwt), for system-to-system access
// such as Bulk Data export, plus the key and JWK Set tooling it needs.
//
// Usage:
//
//	key, kid, err := backend.ParsePrivateKey(pemBytes)
//	cfg := &backend.Config{
//		ClientID:   "my-service",
//		FHIRBase:   "https://ehr.example.org/fhir", // token endpoint and default scopes are discovered
//		PrivateKey: key,
//		KeyID:      kid,
//	}
//	hc := cfg.Client(ctx) // ctx lives as long as hc
//	resp, err := hc.Get("https://ehr.example.org/fhir/Group/42/$export")
//
// What it does for you:
//   - every token request carries a freshly signed assertion: header alg (RS384 or ES384), kid,
//     typ "JWT", and jku or x5c when configured; claims iss = sub = client_id, aud = the token URL
//     as a single string, exp ≤ 5 minutes ahead (4 by default), iat, and a 128-bit random jti;
//   - the token is cached, renewed shortly before it expires by one request at a time, and renewed
//     and retried once after a 401; tokens go only to the FHIR base's and token endpoint's origins
//     (and origins you trust), on every redirect hop;
//   - a discovered token endpoint on another origin than the FHIR base is refused unless trusted, so
//     a hostile discovery document cannot harvest an assertion valid elsewhere;
//   - token-endpoint errors are *oauth2.RetrieveError; 429 and 503 are retried after Retry-After,
//     a bare 400 (Epic) and an invalid_client blaming the clock or jti once, each with a new
//     assertion, never the same one twice;
//   - a grant narrower than the request is reported (Token.Warnings, MissingScopes) or refused
//     (RequireScopes);
//   - Config.Profile applies a vendor profile (smart.Profile): Epic's Epic-Client-ID header on every
//     request, MEDITECH's OpenID Connect discovery, the scope grammar and extra scopes, a backdated
//     iat, an aud from the CapabilityStatement, and whether a bare 400 is retried.
//
// Keys: ParsePrivateKey reads PEM (PKCS#8, PKCS#1, SEC 1), a private JWK or a private JWK Set;
// GenerateKey makes RS384 and ES384 keys; Thumbprint gives the RFC 7638 kid; PublicJWKS builds the
// public JWK Set to register; KeySet rotates keys and serves the JWKS (KeySet.Handler); Config.CheckPublished
// verifies at start-up that the signing kid is in the JWKS the server will fetch; NewAssertion signs
// one assertion for the other private_key_jwt grants (authorization_code and refresh_token).
//
// A Config with ClientSecret instead of a key performs plain OAuth 2.0 client_credentials with
// client_secret_basic or client_secret_post, for APIs that require it. That is NOT SMART Backend
// Services, which requires asymmetric client authentication.
//
// Specifications:
//   - SMART Backend Services: https://hl7.org/fhir/smart-app-launch/backend-services.html
//   - Asymmetric client authentication:
//     https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html
//   - RFC 7523 (JWT client authentication): https://www.rfc-editor.org/rfc/rfc7523
//   - RFC 7517/7518 (JWK, JWA): https://www.rfc-editor.org/rfc/rfc7517,
//     https://www.rfc-editor.org/rfc/rfc7518
//   - RFC 7638 (JWK thumbprint): https://www.rfc-editor.org/rfc/rfc7638
//   - RFC 6749 §2.3.1 (client_secret_basic) and §4.4 (client credentials):
//     https://www.rfc-editor.org/rfc/rfc6749
package backend
