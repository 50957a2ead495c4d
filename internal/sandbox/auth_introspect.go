package sandbox

import (
	"net/http"
	"strings"
	"time"
)

// introspect is POST /auth/introspect (SBX-08; SMART token-introspection.md, RFC 7662): the caller
// authenticates with any live access token as Bearer; the answer describes the token in the form, with
// the SMART launch context, or is {"active":false} for an unknown, expired or revoked token.
func (a *authState) introspect(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	scheme, bearer, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if _, _, ok := a.s.LookupAccessToken(bearer); !strings.EqualFold(scheme, "Bearer") || !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="introspection needs a valid access token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	form, oe := readForm(r)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeOAuthError(w, invalidRequest("token is required"))
		return
	}
	resp := map[string]any{"active": false}
	if g, _, ok := a.s.LookupAccessToken(tok); ok {
		if z, ok := a.grants.accessAuthz(tok); ok {
			resp = a.describe(r, z, g.Scopes, g.IssuedAt, g.Expiry)
			resp["token_type"] = "Bearer"
		}
	} else if z, exp, ok := a.grants.refreshAuthz(tok, a.s.Now()); ok {
		resp = a.describe(r, z, z.scopes, time.Time{}, exp)
		resp["token_type"] = "refresh_token"
	}
	writeJSON(w, http.StatusOK, resp)
}

// describe is the introspection view of an authorization: the required active, scope, client_id and
// exp; iat; iss, sub and fhirUser when an id_token was issued; the launch context.
func (a *authState) describe(r *http.Request, z *authz, scopes []string, iat, exp time.Time) map[string]any {
	resp := map[string]any{
		"active":    true,
		"scope":     strings.Join(scopes, " "),
		"client_id": z.clientID,
		"exp":       exp.Unix(),
	}
	if !iat.IsZero() {
		resp["iat"] = iat.Unix()
	}
	if hasScope(z.scopes, "openid") {
		resp["iss"] = a.s.FHIRBase(r)
		resp["sub"] = subject(z)
		if z.launch.User != "" && hasScope(z.scopes, "fhirUser") {
			resp["fhirUser"] = a.s.FHIRBase(r) + "/" + z.launch.User
		}
	}
	if !z.backend {
		lc := tokenResponse(resp)
		a.addLaunchContext(lc, z)
	}
	return resp
}

// revoke is POST /auth/revoke (RFC 7009): the client authenticates as at the token endpoint; an access
// token of that client is revoked, a refresh token revokes its whole authorization. Unknown tokens, and
// tokens of other clients, are answered 200 without effect (RFC 7009 §2.2).
func (a *authState) revoke(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, oe := readForm(r)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	cred, oe := readCredentials(r, form)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	c, oe := a.authenticateClient(r, form, cred)
	if oe != nil {
		writeOAuthError(w, oe)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeOAuthError(w, invalidRequest("token is required"))
		return
	}
	if z, ok := a.grants.accessAuthz(tok); ok && z.clientID == c.ID {
		a.s.RevokeAccessToken(tok)
	} else if z, _, ok := a.grants.refreshAuthz(tok, a.s.Now()); ok && z.clientID == c.ID {
		a.s.revokeAccessTokens(a.grants.revoke(z))
	}
	w.WriteHeader(http.StatusOK)
}
