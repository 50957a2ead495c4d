package sandbox

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// asFaultNames are the faults of the vendor modes, armed like any other (Fault).
var asFaultNames = []string{
	"token_persona_mismatch", // unauthorized_client with Oracle Health's client-persona-mismatch error_uri, any grant
}

// asTokenRequest applies the vendor mode to a token request before the client is authenticated and
// reports whether it answered: Epic's Epic-Client-ID header and its flaky bare 400 (the first
// client_credentials request of each client), and the token_persona_mismatch fault.
func (a *authState) asTokenRequest(w http.ResponseWriter, r *http.Request, clientID, grantType string) bool {
	m := a.s.as
	switch {
	case m.clientIDHeader != "" && clientID != "" && r.Header.Get(m.clientIDHeader) != clientID:
		a.s.incr("as_missing_client_id_header")
		a.writeTokenError(w, invalidRequest("the %s header must carry the client_id", m.clientIDHeader))
	case m.bareTokenOnce && grantType == grantClient && m.times(m.bare400, clientID, 1):
		a.s.incr("as_bare_400")
		noStore(w)
		w.WriteHeader(http.StatusBadRequest) // no body, no OAuth error: cumulus-fhir-support auth.py
	case a.s.takeFault("token_persona_mismatch", clientID):
		a.writeTokenError(w, personaMismatch("provider"))
	default:
		return false
	}
	return true
}

// asCodeGrant refuses, in the oracle mode, a standalone patient launch by a client registered for the
// provider persona (user/ scopes and no patient/ ones), as Oracle Health does (yourphr #338).
func (a *authState) asCodeGrant(c *clientRecord, z *authz) *oauthError {
	if !a.s.as.personaMismatch || z.ehrLaunch || z.launch.Patient == "" {
		return nil
	}
	scopes := strings.Fields(c.Scope)
	provider := slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, "user/") }) &&
		!slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, "patient/") })
	if !provider {
		return nil
	}
	a.s.incr("as_persona_mismatch")
	return personaMismatch("provider")
}

// personaMismatch is Oracle Health's answer to an app launched for a persona it is not registered for.
func personaMismatch(persona string) *oauthError {
	e := unauthorizedClient("the client is not registered for this persona")
	e.uri = personaErrorURI + "?" + url.Values{"persona": {persona}, "tenant": {"sandbox"}}.Encode()
	return e
}

// writeTokenError writes a token endpoint error: RFC 6749 JSON, or in the athena mode the non-OAuth
// {"message": …, "id": status} of on-premises athenaPractice (apiserver-athenaFlex #319).
func (a *authState) writeTokenError(w http.ResponseWriter, e *oauthError) {
	if !a.s.as.nonOAuthErrors {
		writeOAuthError(w, e)
		return
	}
	noStore(w)
	writeJSON(w, e.status, map[string]any{"message": e.desc, "id": e.status})
}

// asTokenResponse bends a successful token response the vendor's way: CMS BCDA's expires_in string
// (bulk_fhir_tools auth.go).
func (a *authState) asTokenResponse(resp tokenResponse) {
	if n, ok := resp["expires_in"].(int); ok && a.s.as.expiresInString {
		resp["expires_in"] = strconv.Itoa(n)
	}
}

// asAuthorize refuses, in the va mode, an authorization request that carries aud (fasten-sources
// lighthouse_endpoint_definition.go: aud must be omitted).
func (a *authState) asAuthorize(q url.Values) *oauthError {
	if a.s.as.audMustBeOmitted && q.Has("aud") {
		return invalidRequest("aud must be omitted")
	}
	return nil
}

// audRequired reports whether an authorization request must carry aud = the FHIR base (LAUNCH-05).
func (a *authState) audRequired() bool { return !a.s.as.audMustBeOmitted }

// asDiscovery changes the discovery document the vendor's way: athena leaves PKCE out (client-js
// #174); the SMART launcher under-advertises asymmetric client authentication (smart-launcher #60,
// #63), so that only a lenient client uses it.
func (a *authState) asDiscovery(doc *smartConfiguration) {
	m := a.s.as
	if m.noPKCEAdvert {
		doc.CodeChallengeMethods = nil
	}
	if m.underAdvertise {
		doc.TokenAuthMethodsSupported = []string{authSecretBas, authNone}
		doc.TokenAuthSigningAlgs = nil
		doc.Capabilities = slices.DeleteFunc(slices.Clone(doc.Capabilities), func(c string) bool {
			return c == "client-confidential-asymmetric"
		})
		doc.ResponseTypesSupported = []string{"code", "refresh_token"}
		doc.ScopesSupported = scopesV1
	}
}
