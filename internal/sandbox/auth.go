package sandbox

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Lifetimes of the authorization server's artefacts, in sandbox time (Server.Now).
const (
	codeLifetime          = 60 * time.Second    // SBX-04: authorization codes live about a minute
	pendingLifetime       = 10 * time.Minute    // an authorization waiting on the login/picker page
	launchLifetime        = time.Hour           // a launch id minted by the EHR simulator
	appTokenLifetime      = time.Hour           // access tokens for apps (SMART: at most an hour)
	backendTokenLifetime  = 5 * time.Minute     // access tokens for backend services (SBX-07)
	idTokenLifetime       = time.Hour           // id_token exp
	offlineRefreshTTL     = 30 * 24 * time.Hour // offline_access refresh tokens
	onlineSessionLifetime = 8 * time.Hour       // online_access: refresh works while the user's session lasts
	maxAssertionLifetime  = 5 * time.Minute     // SMART: assertion exp at most five minutes ahead
	jwtLeeway             = time.Minute         // skew allowed on iat/nbf in the future
)

// authState is the authorization server: registered clients, launches, pending authorizations, codes
// and refresh tokens, the assertion replay cache and the id_token signing keys.
type authState struct {
	s        *Server
	clients  clientStore
	launches ttlStore[LaunchContext]
	pending  ttlStore[*authRequest]
	jtis     ttlStore[struct{}]
	grants   grantStore
	keys     *signingKeys
	jwks     jwksCache
	hc       *http.Client // fetches clients' jwks_uri

	noRotation atomic.Bool // SetRefreshRotation(false)
	noEcho     atomic.Bool // SetRefreshContextEcho(false)
}

func newAuthState(s *Server) (*authState, error) {
	keys, err := newSigningKeys()
	if err != nil {
		return nil, fmt.Errorf("sandbox: id_token key: %w", err)
	}
	return &authState{
		s:    s,
		keys: keys,
		hc:   httpx.NewClient(10 * time.Second),
	}, nil
}

// routes mounts the authorization server's endpoints (doc.go lists them).
func (a *authState) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", a.smartConfiguration)
	mux.HandleFunc("GET /fhir/.well-known/openid-configuration", a.openIDConfiguration)
	mux.HandleFunc("GET /auth/jwks", a.serveJWKS)
	mux.HandleFunc("GET /auth/authorize", a.authorize)
	mux.HandleFunc("POST /auth/authorize", a.authorize)
	mux.HandleFunc("POST /auth/decide", a.decide)
	mux.HandleFunc("POST /auth/token", a.token)
	mux.HandleFunc("POST /auth/register", a.register)
	mux.HandleFunc("POST /auth/introspect", a.introspect)
	mux.HandleFunc("POST /auth/revoke", a.revoke)
	mux.HandleFunc("GET /{$}", a.launcherPage)
	mux.HandleFunc("POST /sandbox/launch", a.launchHandler)
	mux.HandleFunc("DELETE /sandbox/clients/{client_id}/keys/{kid}", a.revokeKeyHandler)
}

// authFaultNames lists the faults the authorization server honours (SBX-11…14). Arm them with
// Server.Fault or POST /sandbox/faults.
var authFaultNames = []string{
	// discovery (SBX-11)
	"discovery_404", "discovery_html", "discovery_truncated", "discovery_relative_urls",
	"discovery_plain_pkce", "discovery_no_token_endpoint", "discovery_foreign_endpoints",
	"discovery_slow", "discovery_huge", "discovery_redirect_foreign",
	// authorize (SBX-12)
	"auth_invalid_client_id", "auth_invalid_redirect_uri", "auth_invalid_scope", "auth_access_denied",
	"auth_wrong_state", "auth_missing_state", "auth_iss_right", "auth_iss_wrong", "auth_code_and_error",
	// token endpoint errors and response shapes (SBX-13)
	"auth_invalid_client_secret", "token_invalid_token", "token_invalid_scope", "token_invalid_jti",
	"token_expired_registration_token", "token_expired_refresh_token", "token_missing_scope",
	"token_missing_expires_in", "token_type_lower", "token_type_mac", "token_expires_in_string",
	"token_expires_in_negative", "token_patient_injection", "token_fhircontext_strings",
	"token_banner_string", "token_extension_members", "token_crlf_access_token", "token_error_401",
	"token_html_502", "token_bare_400",
	// id_token (SBX-14)
	"idtoken_bad_signature", "idtoken_alg_none", "idtoken_hs256", "idtoken_wrong_iss", "idtoken_wrong_aud",
	"idtoken_aud_array_no_azp", "idtoken_expired", "idtoken_future_iat", "idtoken_unknown_kid",
	"idtoken_foreign_fhiruser", "idtoken_wrong_fhiruser_type", "idtoken_profile_only",
}

// endpoint returns the absolute URL of an authorization-server path for responses to r.
func (a *authState) endpoint(r *http.Request, path string) string { return a.s.Origin(r) + path }

// foreignOrigin is an origin that is not the sandbox's but still on loopback, so that a client that
// wrongly follows it sends nothing off the machine: the request's port on 127.0.0.2.
func foreignOrigin(r *http.Request) string {
	scheme, port := "http", "80"
	if r.TLS != nil {
		scheme, port = "https", "443"
	}
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	return scheme + "://127.0.0.2:" + port
}

// v1 reports whether the sandbox plays a SMART v1 server (SBX-20).
func (a *authState) v1() bool { return a.s.opts.Version == "v1" }
