package sandbox

import (
	"net/http"
	"strings"
)

// bearerToken returns the token of an "Authorization: Bearer …" header (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// authenticate returns the grant of the request's live access token. Otherwise it answers 401
// with WWW-Authenticate (RFC 6750 §3) and an OperationOutcome (SBX-09). The faults
// request_invalid_token and request_expired_token reject a valid token the same way (SBX-15).
func (f *fhirState) authenticate(w http.ResponseWriter, r *http.Request) (*Grant, bool) {
	tok, ok := bearerToken(r)
	if !ok {
		unauthorized(w, "an access token is required (Authorization: Bearer)")
		return nil, false
	}
	g, expired, ok := f.s.LookupAccessToken(tok)
	switch {
	case expired:
		unauthorized(w, "the access token expired")
		return nil, false
	case !ok:
		unauthorized(w, "the access token is not valid")
		return nil, false
	case f.s.takeFault("request_invalid_token", g.ClientID):
		unauthorized(w, "the access token is not valid")
		return nil, false
	case f.s.takeFault("request_expired_token", g.ClientID):
		unauthorized(w, "the access token expired")
		return nil, false
	case !f.asRequest(w, r, g):
		return nil, false
	}
	return g, true
}

// unauthorized writes 401 with the Bearer challenge.
func unauthorized(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token", error_description="`+desc+`"`)
	writeOutcome(w, http.StatusUnauthorized, issue{"error", "login", desc})
}

// forbidden writes 403 with the insufficient_scope challenge and an OperationOutcome.
func forbidden(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="insufficient_scope"`)
	writeOutcome(w, http.StatusForbidden, issue{"error", "forbidden", desc})
}
