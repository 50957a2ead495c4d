package sandbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// faultCheck arms fault name (for client c where the fault is per client) and checks its effect.
type faultCheck func(t *testing.T, h *harness, name string)

// faultChecks holds one check per fault in authFaultNames (SBX-11…14); TestFaultsComplete keeps the two
// lists equal.
var faultChecks = map[string]faultCheck{}

func init() {
	for _, n := range []string{"discovery_404", "discovery_html", "discovery_truncated", "discovery_relative_urls",
		"discovery_plain_pkce", "discovery_no_token_endpoint", "discovery_foreign_endpoints", "discovery_slow",
		"discovery_huge", "discovery_redirect_foreign"} {
		faultChecks[n] = checkDiscoveryFault
	}
	for _, n := range []string{"auth_invalid_client_id", "auth_invalid_redirect_uri", "auth_invalid_scope",
		"auth_access_denied", "auth_wrong_state", "auth_missing_state", "auth_iss_right", "auth_iss_wrong",
		"auth_code_and_error"} {
		faultChecks[n] = checkAuthorizeFault
	}
	for _, n := range []string{"auth_invalid_client_secret", "token_invalid_token", "token_invalid_scope",
		"token_invalid_jti", "token_expired_registration_token", "token_expired_refresh_token", "token_error_401",
		"token_html_502", "token_bare_400"} {
		faultChecks[n] = checkTokenErrorFault
	}
	for _, n := range []string{"token_missing_scope", "token_missing_expires_in", "token_type_lower", "token_type_mac",
		"token_expires_in_string", "token_expires_in_negative", "token_patient_injection", "token_fhircontext_strings",
		"token_banner_string", "token_extension_members", "token_crlf_access_token"} {
		faultChecks[n] = checkTokenShapeFault
	}
	for _, n := range []string{"idtoken_bad_signature", "idtoken_alg_none", "idtoken_hs256", "idtoken_wrong_iss",
		"idtoken_wrong_aud", "idtoken_aud_array_no_azp", "idtoken_expired", "idtoken_future_iat", "idtoken_unknown_kid",
		"idtoken_foreign_fhiruser", "idtoken_wrong_fhiruser_type", "idtoken_profile_only"} {
		faultChecks[n] = checkIDTokenFault
	}
}

func TestFaultsComplete(t *testing.T) {
	t.Parallel()
	var checked []string
	for n := range faultChecks {
		checked = append(checked, n)
	}
	slices.Sort(checked)
	names := slices.Sorted(slices.Values(authFaultNames))
	if !slices.Equal(checked, names) {
		t.Errorf("faults with checks %v\nauthFaultNames %v", checked, names)
	}
	for _, n := range authFaultNames {
		if !knownFault(n) {
			t.Errorf("FaultNames lacks %s", n)
		}
	}
}

// TestFaults runs every fault check, each on its own sandbox (faults are global for discovery).
func TestFaults(t *testing.T) {
	t.Parallel()
	for _, name := range authFaultNames {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			version := "2.2"
			if name == "auth_iss_right" {
				version = "2.0" // where iss is not advertised, so the fault adds it
			}
			h := newHarness(t, Options{Version: version})
			faultChecks[name](t, h, name)
		})
	}
}

// TestFaultControlAPI arms a fault over HTTP and sees it used once (control.go + authFaultNames).
func TestFaultControlAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	req, _ := http.NewRequest(http.MethodPost, h.url("/sandbox/faults"), strings.NewReader(`{"name":"discovery_404","count":1}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, _ := h.do(req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("arm: %d", resp.StatusCode)
	}
	if resp, _ := h.get("/fhir/.well-known/smart-configuration"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("armed: %d", resp.StatusCode)
	}
	if resp, _ := h.get("/fhir/.well-known/smart-configuration"); resp.StatusCode != http.StatusOK {
		t.Errorf("after one use: %d", resp.StatusCode)
	}
}

func checkDiscoveryFault(t *testing.T, h *harness, name string) {
	h.s.Fault(name, 1, "")
	ctx, cancel := context.WithCancel(t.Context())
	if name == "discovery_slow" {
		ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	}
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/.well-known/smart-configuration", nil)
	resp, err := h.hc.Do(req)
	if name == "discovery_slow" {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stall: err %v", err)
		}
		checkConsumed(t, h)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if name == "discovery_huge" {
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || n < 50<<20 {
			t.Errorf("read %d bytes: %v", n, err)
		}
		checkConsumed(t, h)
		return
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	jsonErr := json.Unmarshal(body, &doc)
	switch name {
	case "discovery_404":
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d", resp.StatusCode)
		}
	case "discovery_html":
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	case "discovery_truncated":
		if jsonErr == nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("truncated document parses: %s", body)
		}
	case "discovery_relative_urls":
		if doc["token_endpoint"] != "/auth/token" || doc["issuer"] != h.base {
			t.Errorf("document %v", doc)
		}
	case "discovery_plain_pkce":
		if !slices.Equal(strs(doc["code_challenge_methods_supported"]), []string{"plain"}) {
			t.Errorf("methods %v", doc["code_challenge_methods_supported"])
		}
	case "discovery_no_token_endpoint":
		if _, ok := doc["token_endpoint"]; ok || jsonErr != nil {
			t.Errorf("document %v", doc)
		}
	case "discovery_foreign_endpoints":
		te, _ := url.Parse(doc["token_endpoint"].(string))
		if te.Host == "" || strings.HasPrefix(doc["token_endpoint"].(string), h.ts.URL) || te.Hostname() != "127.0.0.2" {
			t.Errorf("token_endpoint %v", doc["token_endpoint"])
		}
	case "discovery_redirect_foreign":
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Hostname() != "127.0.0.2" {
			t.Errorf("status %d Location %q", resp.StatusCode, loc)
		}
	}
	checkConsumed(t, h)
}

// checkConsumed: the fault was armed once; discovery is normal again.
func checkConsumed(t *testing.T, h *harness) {
	t.Helper()
	if resp, doc := h.get("/fhir/.well-known/smart-configuration"); resp.StatusCode != http.StatusOK || doc["token_endpoint"] != h.url("/auth/token") {
		t.Errorf("after the fault: %d %v", resp.StatusCode, doc)
	}
}

func checkAuthorizeFault(t *testing.T, h *harness, name string) {
	c := h.app(authNone)
	h.s.Fault(name, 1, c.ID)
	p, _ := h.authParams(c, "openid fhirUser patient/*.rs launch/patient")
	if name == "auth_invalid_client_id" || name == "auth_invalid_redirect_uri" {
		resp, _ := h.get("/auth/authorize?" + p.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return
	}
	q := h.authorize(p)
	ok := map[string]bool{
		"auth_invalid_scope":  q.Get("error") == "invalid_scope" && q.Get("state") == p.Get("state"),
		"auth_access_denied":  q.Get("error") == "access_denied" && q.Get("state") == p.Get("state"),
		"auth_wrong_state":    q.Get("code") != "" && q.Get("state") != "" && q.Get("state") != p.Get("state"),
		"auth_missing_state":  q.Get("code") != "" && !q.Has("state"),
		"auth_iss_right":      q.Get("code") != "" && q.Get("iss") == h.base,
		"auth_iss_wrong":      q.Get("code") != "" && q.Get("iss") != "" && q.Get("iss") != h.base,
		"auth_code_and_error": q.Get("code") != "" && q.Get("error") == "access_denied",
	}[name]
	if !ok {
		t.Errorf("callback %v", q)
	}
	if q := h.authorize(p); q.Get("code") == "" || q.Get("state") != p.Get("state") || q.Has("error") {
		t.Errorf("after the fault: %v", q)
	}
}

func checkTokenErrorFault(t *testing.T, h *harness, name string) {
	c := h.app(authNone)
	tok := h.tokens(c, "patient/*.rs launch/patient offline_access")
	h.s.Fault(name, 1, c.ID)
	code, v := h.code(c, "patient/*.rs launch/patient")
	send := func() (*http.Response, map[string]any) { return h.exchange(c, code, v) }
	if name == "token_expired_refresh_token" {
		if resp, _ := send(); resp.StatusCode != http.StatusOK {
			t.Errorf("a code exchange consumed the refresh fault: %d", resp.StatusCode)
		}
		send = func() (*http.Response, map[string]any) { return h.refresh(c, tok["refresh_token"].(string), nil) }
	}
	resp, body := send()
	switch name {
	case "token_html_502":
		if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	case "token_bare_400":
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusBadRequest || len(b) != 0 {
			t.Errorf("status %d body %q", resp.StatusCode, b)
		}
	default:
		want := map[string]struct {
			status int
			code   string
		}{
			"auth_invalid_client_secret": {401, "invalid_client"}, "token_invalid_token": {400, "invalid_grant"},
			"token_invalid_scope": {400, "invalid_scope"}, "token_invalid_jti": {401, "invalid_client"},
			"token_expired_registration_token": {401, "invalid_client"}, "token_expired_refresh_token": {400, "invalid_grant"},
			"token_error_401": {401, "invalid_scope"},
		}[name]
		wantOAuthError(t, resp, body, want.status, want.code)
	}
	if name != "token_expired_refresh_token" { // the code is still unused: the fault answered first
		if resp, body := send(); resp.StatusCode != http.StatusOK {
			t.Errorf("after the fault: %d %v", resp.StatusCode, body)
		}
	}
}

func checkTokenShapeFault(t *testing.T, h *harness, name string) {
	c := h.app(authNone)
	launch := h.s.NewLaunch(LaunchContext{Patient: "pat-1", SkipLogin: true, NeedPatientBanner: true,
		FHIRContext: []FHIRContextItem{{Reference: "Encounter/e1", Role: "launch"}}})
	h.s.Fault(name, 1, c.ID)
	code, v := h.code(c, "launch patient/*.rs", func(p url.Values) { p.Set("launch", launch) })
	resp, body := h.exchange(c, code, v)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %v", resp.StatusCode, body)
	}
	_, has := body[map[string]string{"token_missing_scope": "scope", "token_missing_expires_in": "expires_in"}[name]]
	ok := map[string]bool{
		"token_missing_scope":       !has,
		"token_missing_expires_in":  !has,
		"token_type_lower":          body["token_type"] == "bearer",
		"token_type_mac":            body["token_type"] == "mac",
		"token_expires_in_string":   body["expires_in"] == "3600",
		"token_expires_in_negative": body["expires_in"] == float64(-5),
		"token_patient_injection":   body["patient"] == "../Practitioner/1",
		"token_fhircontext_strings": slices.Equal(strs(body["fhirContext"]), []string{"Encounter/e1"}),
		"token_banner_string":       body["need_patient_banner"] == "false",
		"token_extension_members":   body["__darkMode"] == true && body["https://ehr.example.org/props/dark-mode"] == true,
		"token_crlf_access_token":   strings.Contains(body["access_token"].(string), "\r\n"),
	}[name]
	if !ok {
		t.Errorf("response %v", body)
	}
}

// decodeJWT returns the header and claims of a compact JWS without verifying it.
func decodeJWT(t *testing.T, tok string) (hdr, claims map[string]any, parts []string) {
	t.Helper()
	parts = strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token has %d parts", len(parts))
	}
	for i, v := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("id_token part %d does not decode", i)
		}
	}
	return hdr, claims, parts
}

func checkIDTokenFault(t *testing.T, h *harness, name string) {
	c := h.app(authNone)
	before, err := jwk.Fetch(t.Context(), h.url("/auth/jwks"))
	if err != nil {
		t.Fatal(err)
	}
	h.s.Fault(name, 1, c.ID)
	code, v := h.code(c, "openid fhirUser patient/*.rs launch/patient", func(p url.Values) { p.Set("sandbox_user", "Practitioner/prac-1") })
	_, body := h.exchange(c, code, v)
	tok := body["id_token"].(string)
	hdr, claims, parts := decodeJWT(t, tok)
	now := h.s.Now().Unix()
	verifies := func(set jwk.Set) bool {
		_, err := jws.Verify([]byte(tok), jws.WithKeySet(set, jws.WithRequireKid(true)))
		return err == nil
	}
	var ok bool
	switch name {
	case "idtoken_bad_signature":
		ok = !verifies(before)
	case "idtoken_alg_none":
		ok = hdr["alg"] == "none" && parts[2] == ""
	case "idtoken_hs256":
		k, _ := before.Key(0)
		var raw any
		_ = k.Raw(&raw)
		der, _ := x509.MarshalPKIXPublicKey(raw)
		mac := hmac.New(sha256.New, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		mac.Write([]byte(parts[0] + "." + parts[1]))
		ok = hdr["alg"] == "HS256" && parts[2] == base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	case "idtoken_wrong_iss":
		ok = claims["iss"] != h.base && verifies(before)
	case "idtoken_wrong_aud":
		ok = claims["aud"] != c.ID
	case "idtoken_aud_array_no_azp":
		aud, _ := claims["aud"].([]any)
		ok = len(aud) == 2 && aud[0] == c.ID && claims["azp"] == nil
	case "idtoken_expired":
		ok = claims["exp"].(float64) < float64(now)
	case "idtoken_future_iat":
		ok = claims["iat"].(float64) > float64(now+60)
	case "idtoken_unknown_kid":
		after, _ := jwk.Fetch(t.Context(), h.url("/auth/jwks"))
		_, inBefore := before.LookupKeyID(hdr["kid"].(string))
		ok = !inBefore && !verifies(before) && verifies(after) && after.Len() == 2
	case "idtoken_foreign_fhiruser":
		u, _ := url.Parse(claims["fhirUser"].(string))
		ok = u.Hostname() == "127.0.0.2"
	case "idtoken_wrong_fhiruser_type":
		ok = strings.HasPrefix(claims["fhirUser"].(string), h.base+"/Organization/")
	case "idtoken_profile_only":
		ok = claims["fhirUser"] == nil && claims["profile"] == h.base+"/Practitioner/prac-1"
	}
	if !ok {
		t.Errorf("header %v claims %v", hdr, claims)
	}
	code, v = h.code(c, "openid fhirUser patient/*.rs launch/patient")
	_, body = h.exchange(c, code, v)
	verifyIDToken(t, h, body["id_token"].(string), c.ID) // the next one is sound
}
