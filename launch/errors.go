package launch

import (
	"errors"
	"fmt"
)

// Sentinel errors. Handlers pass them, wrapped, to Config.OnError; test with errors.Is.
var (
	// ErrIssuerNotAllowed: the iss of a launch is not one of Config.AllowedIssuers (LAUNCH-02, SEC-03).
	// Nothing was fetched from it.
	ErrIssuerNotAllowed = errors.New("launch: issuer not allowed")
	// ErrMissingParameter: the launch URL lacks iss or launch (LAUNCH-01).
	ErrMissingParameter = errors.New("launch: missing parameter")
	// ErrStateUnknown: the callback carries no state, or one this app never issued or already used
	// (LAUNCH-10, SEC-01).
	ErrStateUnknown = errors.New("launch: unknown or already used state")
	// ErrStateMismatch: the state was issued to another browser session, or the callback does not
	// match the request it answers (RFC 9207 iss, SEC-04).
	ErrStateMismatch = errors.New("launch: state does not belong to this browser session")
	// ErrStateExpired: the state is older than Config.MaxStateAge (CONV-5).
	ErrStateExpired = errors.New("launch: state expired")
	// ErrNoCode: the callback carries neither code nor error.
	ErrNoCode = errors.New("launch: callback without code")
	// ErrNoSession: the request belongs to no completed launch (no cookie, unknown or foreign handle).
	ErrNoSession = errors.New("launch: no launch session")
	// ErrReauthRequired: the tokens of a session are gone (refresh refused with invalid_grant, or
	// expired without a refresh token); the user must launch again (REF-06, REF-08).
	ErrReauthRequired = errors.New("launch: re-authorization required")
	// ErrScopeNotGranted: a refresh asked for a scope outside the granted set (SCOPE-13).
	ErrScopeNotGranted = errors.New("launch: scope not granted")
	// ErrConfig: the Config is unusable; the message says why.
	ErrConfig = errors.New("launch: invalid configuration")
	// ErrDiscovery: the server's SMART configuration cannot be used for this launch.
	ErrDiscovery = errors.New("launch: unusable server configuration")
	// ErrStoreUnavailable: the StateStore, SessionStore or Locker failed (a timeout, a Redis outage).
	// The launch is kept: nothing was deleted, and the request may be retried. ErrorPage answers 503.
	ErrStoreUnavailable = errors.New("launch: session store unavailable")
	// ErrMixUp: two allowed FHIR bases name the same authorization server (SEC-04); see MixUpError.
	ErrMixUp = errors.New("launch: two allowed issuers claim one authorization server")
)

// MixUpError refuses a launch at an allowed FHIR base whose discovery document claims the issuer or
// authorization endpoint that another allowed base's document already claims (SEC-04). Trusting both
// would let one server's codes or tokens be attributed to the other, so nothing is sent to the
// second base's servers. It matches ErrMixUp and ErrDiscovery with errors.Is. FHIRBase and Other
// are normalised allowed issuers (configuration, not request input); Claim names the field.
type MixUpError struct {
	FHIRBase, Other string
	Claim           string // "issuer" or "authorization_endpoint"
}

func (e *MixUpError) Error() string {
	return "launch: " + quote(e.FHIRBase) + " and " + quote(e.Other) + " claim the same " + e.Claim +
		" in discovery; refusing the launch (mix-up, SEC-04)"
}

// Is makes errors.Is(err, ErrMixUp) true.
func (e *MixUpError) Is(target error) bool { return target == ErrMixUp }

// Unwrap returns ErrDiscovery: the configuration cannot be used for this launch.
func (e *MixUpError) Unwrap() error { return ErrDiscovery }

// storeError wraps a failure of a store or the Locker: what failed, ErrStoreUnavailable and the cause.
func storeError(what string, err error) error {
	return fmt.Errorf("launch: %s: %w: %w", what, ErrStoreUnavailable, err)
}

// AuthorizationError is an error returned by the authorization server on the redirect
// (RFC 6749 §4.1.2.1): access_denied, invalid_scope, … Code, Description and URI are the server's
// error, error_description and error_uri as they arrived in the callback URL: text anyone can put
// in a link to the app, so escape it before display (html/template does). Error quotes and bounds
// them.
type AuthorizationError struct {
	Code        string
	Description string
	URI         string
}

func (e *AuthorizationError) Error() string {
	s := "launch: authorization server returned " + quote(e.Code)
	if e.Description != "" {
		s += ": " + quote(e.Description)
	}
	if e.URI != "" {
		s += " (" + quote(e.URI) + ")"
	}
	return s
}

// IDTokenError reports an id_token that failed verification (IDT-01…08, JWKS-05). Reason says which
// check failed; the token itself is never included.
type IDTokenError struct {
	Reason string
	Err    error // underlying cause, if any
}

func (e *IDTokenError) Error() string {
	if e.Err != nil {
		return "launch: id_token rejected: " + e.Reason + ": " + e.Err.Error()
	}
	return "launch: id_token rejected: " + e.Reason
}

// Unwrap returns the underlying cause.
func (e *IDTokenError) Unwrap() error { return e.Err }

func idtErr(format string, a ...any) *IDTokenError {
	return &IDTokenError{Reason: fmt.Sprintf(format, a...)}
}

// quote bounds and escapes text that came from the network before it goes into an error string.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}
