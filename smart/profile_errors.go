package smart

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// NonOAuthError is a token endpoint error whose body is not an RFC 6749 §5.2 error: on-premises
// athenaPractice answers {"message": "…", "id": 401} (apiserver-athenaFlex #319), other servers an
// error_description without error. It unwraps to the *oauth2.RetrieveError ExchangeToken returned, so
// code that handles that type keeps working.
type NonOAuthError struct {
	// StatusCode is the HTTP status (0 when unknown).
	StatusCode int
	// Message is the server's text, bounded and with control characters replaced.
	Message string
	// ID is the body's "id" member when it had one (athenaPractice repeats the status there).
	ID string
	// Err is the original error.
	Err error
}

// Error says that the token endpoint failed without an OAuth error and quotes the server's message.
func (e *NonOAuthError) Error() string {
	msg := "smart: token endpoint"
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(" answered HTTP %d", e.StatusCode)
	}
	return msg + " with a non-OAuth error: " + e.Message
}

// Unwrap returns the original error.
func (e *NonOAuthError) Unwrap() error { return e.Err }

// ClassifyTokenError returns a *NonOAuthError wrapping err when err holds an *oauth2.RetrieveError
// without an OAuth error code but with a message (ErrorDescription, or a JSON body's "message"), and
// err unchanged otherwise. Token-endpoint callers pass their errors through it so that users see
// athenaPractice's message rather than an empty OAuth error.
func ClassifyTokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "" {
		return err
	}
	e := &NonOAuthError{StatusCode: retrieveStatus(re), Message: re.ErrorDescription, Err: err}
	var body struct {
		Message string          `json:"message"`
		ID      json.RawMessage `json:"id"`
	}
	if json.Unmarshal(re.Body, &body) == nil {
		if e.Message == "" {
			e.Message = sanitize(body.Message)
		}
		e.ID = sanitize(strings.Trim(string(body.ID), `"`))
	}
	if e.Message == "" {
		return err
	}
	return e
}

func retrieveStatus(re *oauth2.RetrieveError) int {
	if re.Response == nil {
		return 0
	}
	return re.Response.StatusCode
}

// isBare400 reports whether re is an HTTP 400 with neither an OAuth error nor any message: the flaky
// answer Epic's token endpoint sometimes gives to valid credentials.
func isBare400(re *oauth2.RetrieveError) bool {
	return retrieveStatus(re) == http.StatusBadRequest && re.ErrorCode == "" && re.ErrorDescription == ""
}

// ShouldRetryToken reports whether a failed token request may be sent once more, with a fresh client
// assertion: only with RetryBare400, and only after a bare HTTP 400 (CONV-3; Epic,
// cumulus-fhir-support auth.py). An OAuth error such as invalid_client or invalid_grant is never
// retried. Use it for client_credentials requests: an authorization code is single-use, and a
// rotating refresh token may already be spent, so those grants are never sent twice.
func (p Profile) ShouldRetryToken(err error) bool {
	var re *oauth2.RetrieveError
	return p.RetryBare400 && errors.As(err, &re) && isBare400(re)
}

// ExplainTokenError returns a sentence or two telling a person what a token endpoint failure means and
// what to do, or "" for nil. It knows Oracle Health's client-persona-mismatch (yourphr #338), the RFC
// 6749 error codes, athenaPractice's non-OAuth errors and Epic's bare 400s, and always ends with the
// server's error_uri when there is one. It never quotes a credential: it reads only the error code,
// description and URI, which ExchangeToken has already scrubbed.
func ExplainTokenError(err error) string {
	if err == nil {
		return ""
	}
	var no *NonOAuthError
	if errors.As(err, &no) {
		return fmt.Sprintf("The token endpoint refused the request without an OAuth error (HTTP %d): %q. athenaPractice and other "+
			"non-OAuth servers answer this way; the message is the server's own.", no.StatusCode, no.Message)
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return sanitize(err.Error())
	}
	var msg string
	switch {
	case strings.Contains(re.ErrorURI, "client-persona-mismatch"):
		msg = explainPersonaMismatch(re.ErrorURI)
	case isBare400(re):
		msg = "The token endpoint answered HTTP 400 without an OAuth error. Epic does this intermittently with valid " +
			"credentials: retry once with a fresh client assertion (the epic profile does)."
	default:
		msg = explainOAuthCode(re.ErrorCode)
		if d := re.ErrorDescription; d != "" {
			msg += " The server said: " + fmt.Sprintf("%q", sanitize(d)) + "."
		}
	}
	if uri := re.ErrorURI; uri != "" {
		msg += " More: " + sanitize(uri)
	}
	return msg
}

// explainPersonaMismatch explains Oracle Health's unauthorized_client for an app registered for one
// persona (provider, patient or system) and launched as another.
func explainPersonaMismatch(errorURI string) string {
	persona, tenant := "another", ""
	if u, err := url.Parse(errorURI); err == nil {
		q := u.Query()
		if p := q.Get("persona"); p != "" {
			persona = sanitize(p)
		}
		tenant = sanitize(q.Get("tenant"))
	}
	msg := fmt.Sprintf("Oracle Health refused the client (client-persona-mismatch): the app is registered in the Code Console for the "+
		"%s persona, and this launch or grant is for a different one (for example a provider app used for a patient launch). "+
		"Register the app for this persona as well, or launch it the way it is registered.", persona)
	if tenant != "" {
		msg += " Tenant: " + tenant + "."
	}
	return msg
}

// explainOAuthCode explains an RFC 6749 §5.2 (and RFC 7523, SMART) error code.
func explainOAuthCode(code string) string {
	switch code {
	case "invalid_client":
		return "The server did not accept the client's authentication: check the client_id, and for private_key_jwt that " +
			"the key and kid are the ones registered (JWKS reachable), the algorithm is RS384 or ES384 and this machine's clock is right."
	case "invalid_grant":
		return "The authorization code or refresh token was refused: it was already used, has expired, or belongs to " +
			"another client or redirect_uri. Log in again."
	case "unauthorized_client":
		return "The client is registered, but not for this grant type, launch type or scope: check its registration with the server."
	case "invalid_scope":
		return "The server refused the requested scopes: request only scopes the client is registered for, in the grammar " +
			"the server accepts (v1 .read or v2 .rs)."
	case "invalid_request":
		return "The server found the token request malformed or missing a parameter."
	case "unsupported_grant_type":
		return "The server does not support this grant type."
	case "access_denied":
		return "The user or the server denied access."
	case "temporarily_unavailable", "server_error":
		return "The server failed for a reason of its own; try again later."
	case "":
		return "The token endpoint failed without an OAuth error."
	default:
		return fmt.Sprintf("The token endpoint answered %q.", sanitize(code))
	}
}
