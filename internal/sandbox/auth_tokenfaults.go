package sandbox

import (
	"net/http"
	"strconv"
)

// tokenErrorFault answers a token request with an armed error fault (SBX-13) and reports whether it
// did. The OAuth errors follow smart-launcher-v2's simulated errors; token_html_502 and token_bare_400
// imitate a broken proxy and Epic's flaky bare 400.
func (a *authState) tokenErrorFault(w http.ResponseWriter, clientID, grantType string) bool {
	take := func(name string) bool { return a.s.takeFault(name, clientID) }
	var oe *oauthError
	switch {
	case take("auth_invalid_client_secret"):
		oe = invalidClient("invalid client secret (simulated)")
	case take("token_invalid_token"):
		if grantType == grantClient {
			oe = invalidClient("invalid token (simulated)")
		} else {
			oe = invalidGrant("invalid code or refresh token (simulated)")
		}
	case take("token_invalid_scope"):
		oe = invalidScope("invalid scope (simulated)")
	case take("token_invalid_jti"):
		oe = invalidClient("client_assertion: jti has already been used (simulated)")
	case take("token_expired_registration_token"):
		oe = invalidClient("the client registration has expired (simulated)")
	case grantType == grantRefresh && take("token_expired_refresh_token"):
		oe = invalidGrant("refresh token expired (simulated)")
	case take("token_error_401"):
		oe = newOAuthError(http.StatusUnauthorized, "invalid_scope", "invalid scope, sent with status 401 (simulated)")
	case take("token_html_502"):
		noStore(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"))
		return true
	case take("token_bare_400"):
		noStore(w)
		w.WriteHeader(http.StatusBadRequest)
		return true
	default:
		return false
	}
	writeOAuthError(w, oe)
	return true
}

// tokenResponseFaults bends a successful token response with the armed shape faults (SBX-13).
func (a *authState) tokenResponseFaults(resp tokenResponse, clientID string) {
	take := func(name string) bool { return a.s.takeFault(name, clientID) }
	if take("token_missing_scope") {
		delete(resp, "scope")
	}
	if take("token_missing_expires_in") {
		delete(resp, "expires_in")
	}
	if take("token_type_lower") {
		resp["token_type"] = "bearer"
	}
	if take("token_type_mac") {
		resp["token_type"] = "mac"
	}
	if take("token_expires_in_string") {
		if n, ok := resp["expires_in"].(int); ok {
			resp["expires_in"] = strconv.Itoa(n)
		}
	}
	if take("token_expires_in_negative") {
		resp["expires_in"] = -5
	}
	if take("token_patient_injection") {
		resp["patient"] = "../Practitioner/1"
	}
	if take("token_fhircontext_strings") {
		items, _ := resp["fhirContext"].([]FHIRContextItem)
		refs := fhirContextStrings(items)
		if len(refs) == 0 {
			refs = []string{"DiagnosticReport/example"}
		}
		resp["fhirContext"] = refs
	}
	if take("token_banner_string") {
		resp["need_patient_banner"] = "false"
	}
	if take("token_extension_members") {
		resp["__darkMode"] = true // TOK-10 examples
		resp["https://ehr.example.org/props/dark-mode"] = true
	}
	if take("token_crlf_access_token") {
		resp["access_token"] = resp["access_token"].(string) + "\r\nX-Evil: 1"
	}
}
