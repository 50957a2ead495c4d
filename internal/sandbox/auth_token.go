package sandbox

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// tokenResponse is a token endpoint response body (a map, so that faults can bend any member).
type tokenResponse map[string]any

// verifierRE is the RFC 7636 §4.1 code_verifier grammar.
var verifierRE = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

// token is POST /auth/token (SBX-04…07): form-encoded only; authorization_code, refresh_token and
// client_credentials; responses never cached.
func (a *authState) token(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	a.s.incr("token_requests")
	form, oe := readForm(r)
	if oe != nil {
		a.writeTokenError(w, oe)
		return
	}
	gt := form.Get("grant_type")
	switch gt {
	case grantCode, grantRefresh, grantClient:
		a.s.incr("token_requests:" + gt)
	case "":
		a.writeTokenError(w, invalidRequest("grant_type is required"))
		return
	default:
		a.writeTokenError(w, newOAuthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type %q is not supported", trunc(gt)))
		return
	}
	cred, oe := readCredentials(r, form)
	if oe != nil {
		a.writeTokenError(w, oe)
		return
	}
	if a.tokenErrorFault(w, cred.clientID, gt) || a.asTokenRequest(w, r, cred.clientID, gt) {
		return
	}
	c, oe := a.authenticateClient(r, form, cred)
	if oe != nil {
		a.writeTokenError(w, oe)
		return
	}
	if !c.allows(gt) {
		a.writeTokenError(w, unauthorizedClient("client %q is not registered for %s", c.ID, gt))
		return
	}
	var resp tokenResponse
	switch gt {
	case grantCode:
		resp, oe = a.codeGrant(r, c, form)
	case grantRefresh:
		resp, oe = a.refreshGrant(r, c, form)
	default:
		resp, oe = a.clientCredentialsGrant(c, form)
	}
	if oe != nil {
		a.writeTokenError(w, oe)
		return
	}
	a.tokenResponseFaults(resp, c.ID)
	a.asTokenResponse(resp)
	writeJSON(w, http.StatusOK, resp)
}

// codeGrant redeems an authorization code: single use (a replay revokes what the code produced),
// bound to the client, the exact redirect_uri and the PKCE challenge (SBX-04, RFC 9700 §4.8).
func (a *authState) codeGrant(r *http.Request, c *clientRecord, form url.Values) (tokenResponse, *oauthError) {
	code := form.Get("code")
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	rec, reused, revoke := a.grants.redeemCode(code, a.s.Now())
	a.s.revokeAccessTokens(revoke)
	switch {
	case reused:
		return nil, invalidGrant("the code was already used; the tokens issued from it are revoked")
	case rec == nil:
		return nil, invalidGrant("unknown or expired code")
	case rec.z.clientID != c.ID:
		return nil, invalidGrant("the code was issued to another client")
	case form.Get("redirect_uri") != rec.redirectURI:
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	}
	if oe := checkPKCE(rec.challenge, form.Get("code_verifier")); oe != nil {
		return nil, oe
	}
	z := rec.z
	if oe := a.asCodeGrant(c, z); oe != nil {
		return nil, oe
	}
	var rt string
	if (hasScope(z.scopes, "offline_access") || hasScope(z.scopes, "online_access")) && c.allows(grantRefresh) {
		rt = a.grants.newRefresh(z, offlineRefreshTTL, a.s.Now())
	}
	resp := a.issue(z, z.scopes, appTokenLifetime, rt)
	if hasScope(z.scopes, "openid") {
		idt, err := a.idToken(r, z)
		if err != nil {
			return nil, newOAuthError(http.StatusInternalServerError, "server_error", "signing the id_token: %v", err)
		}
		resp["id_token"] = idt
	}
	return resp, nil
}

// checkPKCE verifies code_verifier against the stored S256 challenge. A verifier for a request that had
// no challenge is refused too: that is a PKCE downgrade (RFC 9700 §4.8.2).
func checkPKCE(challenge, verifier string) *oauthError {
	switch {
	case challenge == "" && verifier != "":
		return invalidGrant("code_verifier sent, but the authorization request had no code_challenge")
	case challenge == "":
		return nil
	case verifier == "":
		return invalidGrant("code_verifier is required")
	case !verifierRE.MatchString(verifier):
		return invalidGrant("code_verifier must be 43-128 characters of [A-Za-z0-9-._~]")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return invalidGrant("code_verifier does not match code_challenge")
	}
	return nil
}

// refreshGrant rotates a refresh token (reuse revokes the family), optionally narrowing the scope to a
// subset of the original grant, and echoes the launch context (SBX-06, REF-01…05).
func (a *authState) refreshGrant(r *http.Request, c *clientRecord, form url.Values) (tokenResponse, *oauthError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	z, problem, revoke := a.grants.useRefresh(rt, c.ID, !a.noRotation.Load(), a.s.Now())
	a.s.revokeAccessTokens(revoke)
	if problem != "" {
		return nil, invalidGrant("%s", problem)
	}
	scopes := z.scopes
	if form.Has("scope") {
		scopes = strings.Fields(form.Get("scope"))
		for _, s := range scopes {
			if !covered(s, z.scopes) {
				return nil, invalidScope("scope %q was not part of the original grant", trunc(s))
			}
		}
	}
	var next string
	if !a.noRotation.Load() {
		next = a.grants.newRefresh(z, offlineRefreshTTL, a.s.Now())
	}
	resp := a.issue(z, scopes, appTokenLifetime, next)
	if a.noEcho.Load() {
		for _, k := range launchContextMembers {
			delete(resp, k)
		}
	}
	return resp, nil
}

// launchContextMembers are the token response members addLaunchContext may set.
var launchContextMembers = []string{"patient", "encounter", "fhirContext", "need_patient_banner", "smart_style_url", "intent", "tenant"}

// SetRefreshRotation turns refresh-token rotation on (the default) or off (SBX-06). Without rotation a
// refresh response carries no refresh_token and the old one stays valid (REF-03).
func (s *Server) SetRefreshRotation(on bool) { s.auth.noRotation.Store(!on) }

// SetRefreshContextEcho turns the launch context in refresh responses on (the default) or off, so that a
// client must keep the context of the first response (REF-05).
func (s *Server) SetRefreshContextEcho(on bool) { s.auth.noEcho.Store(!on) }

// covered reports whether scope s lies within the granted scopes (RFC 6749 §6).
func covered(s string, granted []string) bool {
	if hasScope(granted, s) {
		return true
	}
	rs, ok := parseResourceScope(s)
	if !ok {
		return false
	}
	for _, g := range granted {
		if gs, ok := parseResourceScope(g); ok {
			if in, ok := intersect(rs, gs); ok && in == rs {
				return true
			}
		}
	}
	return false
}

// clientCredentialsGrant serves SMART Backend Services (SBX-07): system scopes within the client's
// pre-authorised scope, short-lived, never a refresh token.
func (a *authState) clientCredentialsGrant(c *clientRecord, form url.Values) (tokenResponse, *oauthError) {
	requested := form.Get("scope")
	if strings.TrimSpace(requested) == "" {
		return nil, invalidRequest("scope is required")
	}
	var granted []string
	policy := scopePolicy{allowed: c.Scope, contexts: []string{"system"}, v1Only: a.v1()}
	for _, s := range policy.grant(requested) {
		if _, ok := parseResourceScope(s); ok {
			granted = append(granted, s)
		}
	}
	if len(granted) == 0 {
		return nil, invalidScope("none of the requested scopes is allowed for client %q (backend clients get system/ scopes)", c.ID)
	}
	z := &authz{clientID: c.ID, scopes: granted, backend: true}
	return a.issue(z, granted, backendTokenLifetime, ""), nil
}

// issue mints an access token for z with the given scopes and builds the response: token, type,
// lifetime, scope, the refresh token if any and the launch context.
func (a *authState) issue(z *authz, scopes []string, lifetime time.Duration, refresh string) tokenResponse {
	now := a.s.Now()
	g := Grant{
		ClientID: z.clientID, Scopes: scopes, Patient: z.launch.Patient, Encounter: z.launch.Encounter,
		FHIRUser: z.launch.User, IssuedAt: now, Expiry: now.Add(lifetime), Backend: z.backend,
	}
	if hasScope(z.scopes, "openid") {
		g.Subject = subject(z)
	}
	at := a.s.IssueAccessToken(g)
	a.grants.track(at, z, g.Expiry, now)
	resp := tokenResponse{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int(lifetime / time.Second),
		"scope":        strings.Join(scopes, " "),
	}
	if refresh != "" {
		resp["refresh_token"] = refresh
	}
	if !z.backend {
		a.addLaunchContext(resp, z)
	}
	return resp
}

// addLaunchContext adds the launch context members (SMART scopes-and-launch-context.md): fhirContext as
// objects (2.1+) or, in 2.0 mode, as reference strings.
func (a *authState) addLaunchContext(resp tokenResponse, z *authz) {
	lc := z.launch
	set := func(k, v string) {
		if v != "" {
			resp[k] = v
		}
	}
	set("patient", lc.Patient)
	set("encounter", lc.Encounter)
	set("smart_style_url", lc.SmartStyleURL)
	set("intent", lc.Intent)
	set("tenant", lc.Tenant)
	if lc.Patient != "" || z.ehrLaunch {
		resp["need_patient_banner"] = lc.NeedPatientBanner
	}
	if len(lc.FHIRContext) > 0 {
		if a.s.opts.Version == "2.0" {
			resp["fhirContext"] = fhirContextStrings(lc.FHIRContext)
		} else {
			resp["fhirContext"] = lc.FHIRContext
		}
	}
}

// fhirContextStrings is the SMART 2.0 form of fhirContext: relative references only.
func fhirContextStrings(items []FHIRContextItem) []string {
	out := []string{}
	for _, it := range items {
		if it.Reference != "" {
			out = append(out, it.Reference)
		}
	}
	return out
}
