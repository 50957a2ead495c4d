package sandbox

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// oauthError is an RFC 6749 §5.2 error response (also used for RFC 7591 registration errors). The
// description helps the developer; it never quotes a credential.
type oauthError struct {
	status int
	code   string
	desc   string
	uri    string // error_uri, when set
}

func (e *oauthError) Error() string { return "sandbox: " + e.code + ": " + e.desc }

func newOAuthError(status int, code, format string, a ...any) *oauthError {
	return &oauthError{status: status, code: code, desc: fmt.Sprintf(format, a...)}
}

func invalidRequest(format string, a ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, "invalid_request", format, a...)
}

// invalidClient is a client authentication failure: 401, as RFC 6749 §5.2 allows and SMART servers do.
func invalidClient(format string, a ...any) *oauthError {
	return newOAuthError(http.StatusUnauthorized, "invalid_client", format, a...)
}

func invalidGrant(format string, a ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, "invalid_grant", format, a...)
}

func invalidScope(format string, a ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, "invalid_scope", format, a...)
}

func unauthorizedClient(format string, a ...any) *oauthError {
	return newOAuthError(http.StatusBadRequest, "unauthorized_client", format, a...)
}

// writeOAuthError writes e as JSON; invalid_client carries WWW-Authenticate (RFC 6749 §5.2).
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	noStore(w)
	if e.code == "invalid_client" && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="sandbox"`)
	}
	body := map[string]string{"error": e.code, "error_description": e.desc}
	if e.uri != "" {
		body["error_uri"] = e.uri
	}
	writeJSON(w, e.status, body)
}

// noStore marks a response as holding credentials (SMART "Obtain access token": no-store, no-cache).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// readForm parses an application/x-www-form-urlencoded POST body of at most 1 MiB (TOK-01: the token,
// introspection and revocation endpoints accept nothing else).
func readForm(r *http.Request) (url.Values, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded")
	}
	b, err := httpx.ReadLimited(r.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, invalidRequest("reading the body: %v", err)
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, invalidRequest("malformed form body")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, invalidRequest("parameter %q is repeated", k) // RFC 6749 §3.1
		}
	}
	return form, nil
}
