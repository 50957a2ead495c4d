package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

const (
	discoveryStall = 30 * time.Second // discovery_slow: SBX-11's 30 s stall
	discoveryHuge  = 50 << 20         // discovery_huge: SBX-11's 50 MB body
)

// smartConfiguration is the SMART 2.2 discovery document (conformance.md › Metadata).
type smartConfiguration struct {
	Issuer                      string   `json:"issuer"`
	JWKSURI                     string   `json:"jwks_uri"`
	AuthorizationEndpoint       string   `json:"authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint,omitempty"`
	RegistrationEndpoint        string   `json:"registration_endpoint"`
	IntrospectionEndpoint       string   `json:"introspection_endpoint"`
	RevocationEndpoint          string   `json:"revocation_endpoint"`
	GrantTypesSupported         []string `json:"grant_types_supported,omitempty"`
	TokenAuthMethodsSupported   []string `json:"token_endpoint_auth_methods_supported"`
	TokenAuthSigningAlgs        []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	CodeChallengeMethods        []string `json:"code_challenge_methods_supported,omitempty"`
	ScopesSupported             []string `json:"scopes_supported"`
	ResponseTypesSupported      []string `json:"response_types_supported"`
	Capabilities                []string `json:"capabilities"`
	AuthorizationResponseIssuer bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
}

var (
	authMethods    = []string{authPrivateJWT, authSecretBas, authSecretPost, authNone}
	assertionAlgs  = []string{"RS384", "ES384"}
	scopesV2       = strings.Fields("openid fhirUser launch launch/patient launch/encounter offline_access online_access patient/*.cruds patient/*.rs user/*.cruds user/*.rs system/*.cruds system/*.rs patient/*.read user/*.read system/*.read")
	scopesV1       = strings.Fields("openid profile fhirUser launch launch/patient launch/encounter offline_access online_access patient/*.read patient/*.* user/*.read user/*.* system/*.read system/*.*")
	capabilitiesV2 = strings.Fields("launch-ehr launch-standalone client-public client-confidential-symmetric client-confidential-asymmetric sso-openid-connect context-passthrough-banner context-passthrough-style context-ehr-patient context-ehr-encounter context-standalone-patient context-standalone-encounter permission-offline permission-online permission-patient permission-user permission-v1 permission-v2 authorize-post")
)

// smartDoc builds the discovery document for the version mode (SBX-01, SBX-20). Endpoint URLs are
// absolute, from the request's origin.
func (a *authState) smartDoc(r *http.Request) *smartConfiguration {
	doc := &smartConfiguration{
		Issuer:                      a.s.FHIRBase(r),
		JWKSURI:                     a.endpoint(r, "/auth/jwks"),
		AuthorizationEndpoint:       a.endpoint(r, "/auth/authorize"),
		TokenEndpoint:               a.endpoint(r, "/auth/token"),
		RegistrationEndpoint:        a.endpoint(r, "/auth/register"),
		IntrospectionEndpoint:       a.endpoint(r, "/auth/introspect"),
		RevocationEndpoint:          a.endpoint(r, "/auth/revoke"),
		GrantTypesSupported:         []string{grantCode, grantRefresh, grantClient},
		TokenAuthMethodsSupported:   authMethods,
		TokenAuthSigningAlgs:        assertionAlgs,
		CodeChallengeMethods:        []string{"S256"},
		ScopesSupported:             scopesV2,
		ResponseTypesSupported:      []string{"code"},
		Capabilities:                capabilitiesV2,
		AuthorizationResponseIssuer: a.issParameter(),
	}
	if a.v1() {
		// SMART v1 documents had neither field, nor v2 permissions (checklist §4).
		doc.GrantTypesSupported, doc.CodeChallengeMethods, doc.ScopesSupported = nil, nil, scopesV1
		doc.Capabilities = slices.DeleteFunc(slices.Clone(capabilitiesV2), func(c string) bool { return c == "permission-v2" })
	}
	a.asDiscovery(doc)
	return doc
}

// smartConfiguration is GET /fhir/.well-known/smart-configuration: JSON whatever the Accept header,
// or one of the armed discovery faults (SBX-11).
func (a *authState) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	take := func(name string) bool { return a.s.takeFault(name, "") }
	switch {
	case a.s.as.noSMARTConfig: // meditech: OpenID Connect discovery only
		http.NotFound(w, r)
		return
	case take("discovery_404"):
		http.NotFound(w, r)
		return
	case take("discovery_redirect_foreign"):
		http.Redirect(w, r, foreignOrigin(r)+r.URL.Path, http.StatusFound)
		return
	case take("discovery_html"):
		renderPage(w, http.StatusOK, "error", "Please sign in to continue.")
		return
	case take("discovery_slow"):
		t := time.NewTimer(discoveryStall)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	doc := a.smartDoc(r)
	if take("discovery_relative_urls") {
		origin := a.s.Origin(r)
		for _, p := range []*string{&doc.JWKSURI, &doc.AuthorizationEndpoint, &doc.TokenEndpoint,
			&doc.RegistrationEndpoint, &doc.IntrospectionEndpoint, &doc.RevocationEndpoint} {
			*p = strings.TrimPrefix(*p, origin) // "/auth/token": resolves the same against any base
		}
	}
	if take("discovery_plain_pkce") {
		doc.CodeChallengeMethods = []string{"plain"}
	}
	if take("discovery_no_token_endpoint") {
		doc.TokenEndpoint = ""
	}
	if take("discovery_foreign_endpoints") {
		foreign := foreignOrigin(r)
		doc.AuthorizationEndpoint, doc.TokenEndpoint = foreign+"/auth/authorize", foreign+"/auth/token"
	}
	body, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case take("discovery_truncated"):
		body = body[:len(body)/2]
	case take("discovery_huge"):
		writeHuge(w, r, body)
		return
	}
	_, _ = w.Write(body)
}

// writeHuge streams the document with a 50 MB string member inside, until done or the client leaves.
func writeHuge(w http.ResponseWriter, r *http.Request, doc []byte) {
	if _, err := w.Write(append(doc[:len(doc)-1:len(doc)-1], `,"padding":"`...)); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for n := 0; n < discoveryHuge; n += len(chunk) {
		if r.Context().Err() != nil {
			return
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	_, _ = w.Write([]byte(`"}`))
}

// openIDConfiguration is GET /fhir/.well-known/openid-configuration (issuer = the FHIR base).
func (a *authState) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	doc := a.smartDoc(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                           doc.Issuer,
		"jwks_uri":                                         doc.JWKSURI,
		"authorization_endpoint":                           doc.AuthorizationEndpoint,
		"token_endpoint":                                   doc.TokenEndpoint,
		"registration_endpoint":                            doc.RegistrationEndpoint,
		"introspection_endpoint":                           doc.IntrospectionEndpoint,
		"revocation_endpoint":                              doc.RevocationEndpoint,
		"response_types_supported":                         doc.ResponseTypesSupported,
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{"RS256"},
		"scopes_supported":                                 doc.ScopesSupported,
		"claims_supported":                                 []string{"iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser", "profile"},
		"grant_types_supported":                            []string{grantCode, grantRefresh, grantClient},
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            doc.TokenAuthMethodsSupported,
		"token_endpoint_auth_signing_alg_values_supported": doc.TokenAuthSigningAlgs,
		"authorization_response_iss_parameter_supported":   doc.AuthorizationResponseIssuer,
	})
}
