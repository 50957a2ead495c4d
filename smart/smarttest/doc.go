// Package smarttest starts the smartfhir sandbox EHR in-process for tests, in the spirit of
// net/http/httptest: a SMART App Launch 2.2 authorization server (EHR and standalone launch, PKCE,
// public, symmetric and asymmetric clients, OpenID Connect), SMART Backend Services, and a FHIR R4 API
// with deterministic synthetic patients and Bulk Data $export, on a loopback httptest.Server that is
// closed when the test ends.
//
//	func TestMyBackend(t *testing.T) {
//		srv := smarttest.NewServer(t)
//		bc := srv.RegisterBackendClient(t, "ES384")
//		// sign assertions with bc.Signer and bc.KeyID for bc.TokenURL, then call srv.FHIRBase …
//		srv.Fault("token_invalid_jti", 1) // the next token request fails with invalid_client
//	}
//
// The authorize endpoint shows a login/consent page with a patient picker, unless the app or the launch
// has SkipLogin or the authorization request carries sandbox_skip_login=1; the patient is then the
// launch's, else sandbox_patient=ID, else the first patient, and the user the launch's, else
// sandbox_user=Practitioner/ID, else a default. A test can then follow the redirect with a plain
// http.Client.
//
// The sandbox is strict where a real EHR is: exact redirect_uri and aud, single-use codes, S256 only,
// assertions checked as SMART's client-confidential-asymmetric profile says (typ, kid, RS384/ES384, iss =
// sub, aud = the token URL, exp ≤ 5 minutes, jti replay). Faults make it misbehave on purpose;
// FaultNames lists them (discovery_*, auth_*, token_*, idtoken_*, and the FHIR and bulk faults).
//
// Specifications: SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/), SMART Backend Services
// (https://hl7.org/fhir/smart-app-launch/backend-services.html), FHIR Bulk Data Access
// (https://hl7.org/fhir/uv/bulkdata/).
package smarttest
