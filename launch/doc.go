// Package launch implements SMART App Launch for web apps with a server side: the EHR launch and
// the standalone launch as net/http handlers, with the launch state and the tokens kept on the
// server (https://hl7.org/fhir/smart-app-launch/app-launch.html).
//
// # Usage
//
//	cfg := &launch.Config{
//		ClientID:       "my-app",
//		RedirectURL:    "https://app.example.org/callback",
//		Scopes:         []string{"openid", "fhirUser", "offline_access", "patient/*.rs"},
//		AllowedIssuers: []string{"https://ehr.example.org/fhir"},
//		LandingURL:     "/app",
//	}
//	if err := cfg.Validate(); err != nil { … }
//	mux.Handle("GET /launch", cfg.EHRLaunchHandler())                              // EHR launch URL
//	mux.Handle("GET /login", cfg.StandaloneHandler("https://ehr.example.org/fhir")) // standalone
//	mux.Handle("GET /callback", cfg.CallbackHandler(nil))                          // redirect URL
//	mux.Handle("GET /app", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		s := launch.FromRequest(r)          // patient, encounter, fhirUser, scopes…
//		fc, _ := s.FHIRClient()             // token refreshed as needed, sent to the FHIR base only
//		var p fhir.Patient
//		_, err := fc.Read(r.Context(), "Patient", s.Patient, &p)
//		…
//	})))
//
// # EHR launch and standalone launch
//
// In an EHR launch ("Launch App: EHR Launch") the EHR opens the app's launch URL with iss (its FHIR
// base) and launch (an opaque id). EHRLaunchHandler requires both, checks iss against
// AllowedIssuers, discovers the server (.well-known/smart-configuration), and redirects to the
// authorize endpoint asking for the launch scope and echoing the launch id. In a standalone launch
// ("Launch App: Standalone Launch") the app starts on its own against a configured FHIR base;
// StandaloneHandler asks for launch/patient instead. Both end at CallbackHandler, which redeems the
// code and stores the tokens.
//
// # Security model
//
//   - The issuer allow-list fails closed, and is checked before any network request: an EHR launch
//     URL is unauthenticated, and an attacker naming its own iss would otherwise receive the app's
//     client authentication and use the app for SSRF (SMART "App protection"; HL7/smart-app-launch#230).
//   - Every authorization request gets a fresh 256-bit state and a PKCE S256 verifier. The state is
//     stored server-side (StateStore), bound to the browser's session cookie, taken atomically
//     (single use, even across replicas), and expires after ten minutes. It also remembers which
//     server the request went to, so that a code is only ever sent to that server's token endpoint
//     (mix-up defence, RFC 9700 §4.4), and the RFC 9207 iss parameter is checked. Two allowed FHIR
//     bases whose discovery documents claim one issuer or one authorization endpoint cannot both
//     be used: the launch at the one discovered second fails with a *MixUpError (SEC-04).
//   - The redirect URI is configuration, never request input. The callback answers with
//     Referrer-Policy: no-referrer and redirects to a URL without code or state.
//   - The id_token is verified against the issuer's JWK Set (asymmetric algorithms only; kid
//     rotation handled with one rate-limited re-fetch), and fhirUser is resolved and type-checked.
//     The JWK Set is found at the jwks_uri of the SMART configuration or, when that names none, of
//     {issuer}/.well-known/openid-configuration (whose issuer must match). A jwks_uri on another
//     origin than the issuer is accepted: it comes from the allowed issuer's own discovery over TLS,
//     and it is fetched without any credential or cookie, and without redirects to other origins.
//   - Tokens live in a SessionStore on the server; the cookie carries only a signed and encrypted
//     session id (HttpOnly, Secure, SameSite=Lax, named with the __Host- prefix by default, so
//     that no other host of the site can set it). The id is replaced whenever a launch completes
//     (session fixation): an id known before the callback reaches none of the browser's launches.
//     One browser can hold several launches at once (tabs, patients, EHRs; at most 16): each has a
//     handle, passed in the app's URLs, that works only with that browser's cookie.
//   - Refresh is single-flight per launch (across processes too, with Config.Locker), rotated
//     refresh tokens are stored before use, and a refused refresh clears the tokens
//     (ErrReauthRequired). A store that fails (a timeout) clears nothing: ErrStoreUnavailable, 503.
//
// # Vendor profiles
//
// Per-issuer quirks are data (CONV-5): IssuerSettings, filled from a smart.Profile by
// SettingsFromProfile, sets how aud is sent (the VA wants none), forced PKCE (athena), headers on
// every request (Epic-Client-ID), discovery fallbacks (MEDITECH's OpenID Connect document), the
// scope grammar and extra scopes, and how a refresh authenticates (client_id, a fresh assertion).
// A client with both a key and a secret uses private_key_jwt wherever the server supports it (AUTH-04).
//   - Nothing secret is logged: tokens, codes, states, verifiers, assertions and secrets never appear
//     in logs or error strings.
//
// # Outside the browser
//
// Work done for the user after the request (a background job) and command-line apps resume a
// launch by its key instead of the browser's cookie and handle:
//
//	key := launch.FromRequest(r).Key() // keep it server-side, encrypted: it is a bearer secret
//	…
//	s, err := cfg.SessionByKey(ctx, key)
//	fc, _ := s.FHIRClient()
//
// Whoever holds a key holds the launch, its refresh token included, until the session ends or
// Session.Logout; the package never logs, prints or sends it. With several processes sharing a
// SessionStore, set Config.Locker so that they never redeem one refresh token twice.
//
// # Errors
//
// Handlers pass typed errors to Config.OnError: *AuthorizationError (the server's error redirect),
// *IDTokenError, *oauth2.RetrieveError (token endpoint errors), *smart.TokenResponseError, and
// errors wrapping ErrIssuerNotAllowed, ErrMissingParameter, ErrStateUnknown, ErrStateMismatch,
// ErrStateExpired, ErrNoSession, ErrReauthRequired, ErrStoreUnavailable or ErrConfig. Token
// endpoint errors without an OAuth error code (athenaPractice) are *smart.NonOAuthError. ErrorPage
// is the default; it explains token errors with smart.ExplainTokenError.
//
// Specifications: SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/), RFC 6749, RFC 7636
// (PKCE), RFC 9207 (authorization server issuer identification), RFC 9700 (OAuth 2.0 security best
// current practice), OpenID Connect Core 1.0 §3.1.3.7 (id_token validation).
package launch
