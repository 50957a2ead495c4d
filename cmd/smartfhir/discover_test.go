package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/openapi"
	"github.com/smartfhir/smartfhir/internal/openapi/openapitest"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart"
)

func TestDiscoverHuman(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	code, out, errOut := e.run("discover", e.fhir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "stdout", out, "SMART configuration of "+e.fhir, "token:", e.srv.URL+"/auth/token",
		"launch-standalone", "standalone launch lets the user pick a patient", "patient-access-standalone",
		"clinician-access-ehr", "user-facing launch:", "yes (authorization code with PKCE S256)", "PKCE methods:", "S256")
	if strings.Contains(errOut, "warning") {
		t.Errorf("the sandbox deviates from nothing, but: %s", errOut)
	}
}

// TestDiscoverWarnings: deviations go to stderr as warnings with their checklist IDs (DISC-05, DISC-06).
func TestDiscoverWarnings(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.sb.Fault("discovery_relative_urls", 1, "")
	code, out, errOut := e.run("discover", "--fhir", e.fhir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "stderr", errOut, "warning: DISC-06", "token_endpoint is relative")
	mustContain(t, "stdout", out, "deviation(s) from the spec")
	e.sb.Fault("discovery_plain_pkce", 1, "")
	_, _, errOut = e.run("discover", "--fhir", e.fhir)
	mustContain(t, "stderr", errOut, "DISC-04", "DISC-05")
}

// TestDiscoverJSON: --json is the raw configuration plus derived facts.
func TestDiscoverJSON(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	code, out, errOut := e.run("discover", e.fhir, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Configuration map[string]any `json:"configuration"`
		Derived       discoveryFacts `json:"derived"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Configuration["token_endpoint"] != e.srv.URL+"/auth/token" || got.Configuration["capabilities"] == nil {
		t.Errorf("configuration = %v", got.Configuration)
	}
	d := got.Derived
	if !d.PKCES256 || !d.UserLaunch || !d.BackendServices || !d.OpenIDConnect || d.ScopeStyle != "v2" || len(d.CapabilitySets) != 4 || len(d.Warnings) != 0 {
		t.Errorf("derived = %+v", d)
	}
}

// TestDiscoverOpenAPI: --openapi prints a valid OpenAPI 3.1 document with the security schemes and
// the FHIR paths from the CapabilityStatement.
func TestDiscoverOpenAPI(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	code, out, errOut := e.run("discover", e.fhir, "--openapi")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, err := range openapitest.Validate([]byte(out)) {
		t.Error(err)
	}
	var doc openapi.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	sch := doc.Components.SecuritySchemes[openapi.SchemeSMART]
	if sch == nil || sch.Flows.AuthorizationCode == nil || sch.Flows.ClientCredentials == nil || doc.Components.SecuritySchemes[openapi.SchemeOpenID] == nil {
		t.Fatalf("schemes = %+v", doc.Components.SecuritySchemes)
	}
	if doc.Paths["/Patient/{id}"] == nil || doc.Paths["/$export"] == nil {
		t.Errorf("paths = %v", len(doc.Paths))
	}
	if !strings.Contains(sch.Description, "PKCE with S256 is required") {
		t.Errorf("description = %q", sch.Description)
	}
}

// TestDiscoverUsage: the base given twice differently is a usage error; a server without discovery
// is exit 1 with advice; a CapabilityStatement-only server works with a warning (DISC-12).
func TestDiscoverUsage(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	if code, _, errOut := e.run("discover", e.fhir, "--fhir", e.fhir+"x"); code != exitUsage {
		t.Errorf("exit %d: %s", code, errOut)
	}
	// No discovery document and no CapabilityStatement: exit 1 with advice.
	code, _, errOut := e.run("discover", e.srv.URL+"/nothing")
	if code != exitFail || !strings.Contains(errOut, "smartfhir check") {
		t.Errorf("exit %d, stderr %s", code, errOut)
	}
	e.sb.Fault("discovery_html", 1, "")
	code, out, errOut := e.run("discover", e.fhir)
	if code != 0 || !strings.Contains(errOut, "used "+e.fhir+"/metadata") || !strings.Contains(out, "fallback") {
		t.Errorf("fallback: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
}

// TestDiscoverHumanEscapesServerText: every server string of the text report stays on its own line
// with control characters escaped, so a hostile configuration cannot forge report lines or send
// terminal escapes (CONV-6).
func TestDiscoverHumanEscapesServerText(t *testing.T) {
	t.Parallel()
	evil := "x\nforged: line\x1b[31m\r"
	cfg := &smart.Configuration{
		FHIRBase: "https://ehr.example/fhir", DocumentURL: "https://ehr.example/fhir/.well-known/smart-configuration" + evil,
		Issuer: "https://ehr.example" + evil, TokenEndpoint: "https://ehr.example/token" + evil,
		Capabilities: []string{"launch-standalone" + evil}, CodeChallengeMethodsSupported: []string{"S256" + evil},
		TokenEndpointAuthMethodsSupported: []string{"private_key_jwt" + evil}, ScopesSupported: []string{"openid" + evil},
		GrantTypesSupported: []string{"authorization_code" + evil}, TokenEndpointAuthSigningAlgValuesSupported: []string{"ES384" + evil},
	}
	var out strings.Builder
	if err := printDiscovery(&out, cfg, discoveryFacts{}); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "forged:") {
			t.Errorf("line %d is forged by the server: %q", i, line)
		}
		if strings.ContainsAny(line, "\x1b\r") {
			t.Errorf("line %d keeps a control character: %q", i, line)
		}
	}
	if n := strings.Count(out.String(), `x\nforged: line\u001b[31m\u000d`); n != 9 {
		t.Errorf("escaped server strings: %d, want 9:\n%s", n, out.String())
	}
}
