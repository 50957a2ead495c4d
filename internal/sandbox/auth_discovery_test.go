package sandbox

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestDiscovery checks the smart-configuration of each version mode (SBX-01, SBX-20).
func TestDiscovery(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"2.2", "2.0", "v1"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Options{Version: version})
			req, _ := http.NewRequest(http.MethodGet, h.base+"/.well-known/smart-configuration", nil)
			req.Header.Set("Accept", "text/html") // JSON regardless (DISC-02)
			resp, doc := h.do(req)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if doc["issuer"] != h.base {
				t.Errorf("issuer %v", doc["issuer"])
			}
			for k, path := range map[string]string{"jwks_uri": "/auth/jwks", "authorization_endpoint": "/auth/authorize",
				"token_endpoint": "/auth/token", "registration_endpoint": "/auth/register",
				"introspection_endpoint": "/auth/introspect", "revocation_endpoint": "/auth/revoke"} {
				if doc[k] != h.url(path) {
					t.Errorf("%s = %v, want %s", k, doc[k], h.url(path))
				}
			}
			caps := strs(doc["capabilities"])
			for _, want := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
				"client-confidential-asymmetric", "sso-openid-connect", "context-passthrough-banner", "context-passthrough-style",
				"context-ehr-patient", "context-standalone-patient", "permission-offline", "permission-online",
				"permission-patient", "permission-user", "permission-v1", "authorize-post"} {
				if !slices.Contains(caps, want) {
					t.Errorf("capability %s missing", want)
				}
			}
			if got := strs(doc["token_endpoint_auth_signing_alg_values_supported"]); !slices.Equal(got, []string{"RS384", "ES384"}) {
				t.Errorf("signing algs %v", got)
			}
			switch version {
			case "v1":
				if doc["grant_types_supported"] != nil || doc["code_challenge_methods_supported"] != nil || slices.Contains(caps, "permission-v2") {
					t.Errorf("v1 document has v2 members: %v", doc)
				}
			default:
				if !slices.Equal(strs(doc["code_challenge_methods_supported"]), []string{"S256"}) ||
					!slices.Contains(strs(doc["grant_types_supported"]), "client_credentials") || !slices.Contains(caps, "permission-v2") {
					t.Errorf("document %v", doc)
				}
			}
			if iss, _ := doc["authorization_response_iss_parameter_supported"].(bool); iss != (version == "2.2") {
				t.Errorf("authorization_response_iss_parameter_supported = %v", iss)
			}
		})
	}
}

// strs converts a decoded JSON array of strings; anything else becomes nil.
func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// TestOpenIDConfigurationAndJWKS: issuer is the FHIR base; the JWKS holds public RS256 keys only
// (SBX-04, JWKS-02).
func TestOpenIDConfigurationAndJWKS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	_, oidc := h.get("/fhir/.well-known/openid-configuration")
	if oidc["issuer"] != h.base || oidc["jwks_uri"] != h.url("/auth/jwks") ||
		!slices.Equal(strs(oidc["id_token_signing_alg_values_supported"]), []string{"RS256"}) {
		t.Errorf("openid-configuration %v", oidc)
	}
	resp, set := h.get("/auth/jwks")
	if resp.Header.Get("Cache-Control") == "" {
		t.Error("JWKS without Cache-Control")
	}
	keys := set["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	k := keys[0].(map[string]any)
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] == "" || k["d"] != nil || k["p"] != nil {
		t.Errorf("key %v", k)
	}
}
