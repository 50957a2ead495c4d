package smart_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/smart"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

func fixtureConfig(t *testing.T, file, fhirBase string) *smart.Configuration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "discovery", file))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := smart.ParseConfiguration(b, fhirBase)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return cfg
}

// TestDetectProfileFromDiscovery: the vendor-shaped fixtures are recognised by their endpoint hosts
// and layouts, and the reason names the evidence.
func TestDetectProfileFromDiscovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, base, want, evidence string
	}{
		{"epic-like.json", "https://fhir.epic-like.example.com/interconnect-fhir-oauth/api/FHIR/R4", "epic", "fhir.epic-like.example.com"},
		{"oracle-like.json", "https://fhir-ehr.oracle-like.example.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d", "oracle", "/protocols/oauth2/profiles/smart-v1/token"},
		{"athena-like.json", "https://api.athena-like.example.com/fhir/r4", "athena", "api.athena-like.example.com"},
		{"meditech-like-openid-configuration.json", "https://greenfield.meditech-like.example.com/v1/fhir", "meditech", "greenfield.meditech-like.example.com"},
		{"smart-2.2-full.json", "https://ehr.example.org/fhir", "generic", "no sign"},
		{"v1-wellknown.json", "https://v1.example.org/fhir", "generic", "no sign"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			name, reason := smart.DetectProfile(fixtureConfig(t, tt.file, tt.base), nil)
			if name != tt.want || !strings.Contains(reason, tt.evidence) {
				t.Errorf("= %q (%s); want %q with %q", name, reason, tt.want, tt.evidence)
			}
			if _, ok := smart.LookupProfile(name); !ok {
				t.Errorf("detected %q is not a preset", name)
			}
		})
	}
}

// TestDetectProfileFromPublisher: CapabilityStatement.publisher and software.name come first
// (quirks.md: detect Oracle by publisher ∈ {Cerner, Oracle Health}).
func TestDetectProfileFromPublisher(t *testing.T) {
	t.Parallel()
	epicCfg := fixtureConfig(t, "epic-like.json", "https://fhir.epic-like.example.com/interconnect-fhir-oauth/api/FHIR/R4")
	tests := []struct {
		info *smart.ServerInfo
		cfg  *smart.Configuration
		want string
	}{
		{&smart.ServerInfo{Publisher: "Cerner"}, nil, "oracle"},
		{&smart.ServerInfo{Publisher: "Oracle Health"}, epicCfg, "oracle"}, // the publisher outranks URLs
		{&smart.ServerInfo{Publisher: "Cerner Corporation"}, nil, "oracle"},
		{&smart.ServerInfo{Publisher: "Epic Systems Corporation"}, nil, "epic"},
		{&smart.ServerInfo{SoftwareName: "Epic"}, nil, "epic"},
		{&smart.ServerInfo{Publisher: "Epicurean Health"}, nil, "generic"}, // a word, not a substring
		{&smart.ServerInfo{Publisher: "athenahealth, Inc."}, nil, "athena"},
		{&smart.ServerInfo{Publisher: "MEDITECH"}, nil, "meditech"},
		{&smart.ServerInfo{SoftwareName: "HAPI FHIR Server"}, nil, "hapi"},
		{&smart.ServerInfo{Publisher: "Department of Veterans Affairs"}, nil, "va"},
		{&smart.ServerInfo{Publisher: "SMART Health IT"}, nil, "smart-sandbox"},
		{&smart.ServerInfo{Publisher: "Example Hospital"}, epicCfg, "epic"},
		{&smart.ServerInfo{}, nil, "generic"},
		{nil, nil, "generic"},
		{nil, &smart.Configuration{TokenEndpoint: "https://sandbox.bcda.cms.gov/auth/token"}, "cms-bcda"},
		{nil, &smart.Configuration{TokenEndpoint: "https://api.ab2d.cms.gov/api/v2/token"}, "cms-ab2d"},
		{nil, &smart.Configuration{TokenEndpoint: "https://sandbox-api.va.gov/oauth2/health/v1/token"}, "va"},
		{nil, &smart.Configuration{TokenEndpoint: "https://authorization.cerner.com/tenants/x/protocols/oauth2/profiles/smart-v1/token"}, "oracle"},
		{nil, &smart.Configuration{TokenEndpoint: "https://launch.smarthealthit.org/v/r4/auth/token"}, "smart-sandbox"},
		{nil, &smart.Configuration{TokenEndpoint: "https://nova.example/oauth"}, "generic"}, // "va" only under .va.gov
		{nil, &smart.Configuration{TokenEndpoint: "https://epicenter.example/oauth"}, "generic"},
		{nil, &smart.Configuration{TokenEndpoint: "::bad"}, "generic"},
	}
	for _, tt := range tests {
		name, reason := smart.DetectProfile(tt.cfg, tt.info)
		if name != tt.want || reason == "" {
			t.Errorf("DetectProfile(%+v, %+v) = %q (%s); want %q", tt.cfg, tt.info, name, reason, tt.want)
		}
	}
	// Server text in the reason is bounded and has no control characters.
	_, reason := smart.DetectProfile(nil, &smart.ServerInfo{Publisher: "Epic\r\n" + strings.Repeat("x", 500)})
	if strings.ContainsAny(reason, "\r\n") || len(reason) > 300 {
		t.Errorf("reason %q", reason)
	}
}

func ExampleDetectProfile() {
	cfg := &smart.Configuration{TokenEndpoint: "https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token"}
	name, reason := smart.DetectProfile(cfg, &smart.ServerInfo{Publisher: "Example Hospital"})
	fmt.Println(name)
	fmt.Println(reason)
	// Output:
	// epic
	// token_endpoint host fhir.epic.com looks like Epic
}

// TestDetectServerInfo reads publisher, software and implementation from /metadata, with the
// Discoverer's headers, limits and redirect policy, and refuses what is not a CapabilityStatement.
func TestDetectServerInfo(t *testing.T) {
	t.Parallel()
	const capStmt = `{"resourceType":"CapabilityStatement","publisher":"Oracle Health","fhirVersion":"4.0.1",
		"software":{"name":"Oracle Health Millennium Platform","version":"2025.1"},
		"implementation":{"description":"Tenant X","url":"https://fhir-ehr.example.com/r4/abc"},"rest":[]}`
	var gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get("Epic-Client-ID")
		switch r.URL.Path {
		case "/ok/metadata":
			w.Header().Set("Content-Type", "application/fhir+json")
			fmt.Fprint(w, capStmt)
		case "/dstu2/metadata":
			w.Header().Set("Content-Type", "application/json+fhir")
			fmt.Fprint(w, `{"resourceType":"Conformance","publisher":"Epic","implementation":{"url":"javascript:alert(1)"}}`)
		case "/html/metadata":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>login</html>")
		case "/patient/metadata":
			w.Header().Set("Content-Type", "application/fhir+json")
			fmt.Fprint(w, `{"resourceType":"Patient","publisher":"Epic"}`)
		case "/huge/metadata":
			w.Header().Set("Content-Type", "application/fhir+json")
			fmt.Fprint(w, `{"resourceType":"CapabilityStatement","text":"`)
			chunk := strings.Repeat("x", 1<<20)
			for range 17 {
				if _, err := fmt.Fprint(w, chunk); err != nil {
					return
				}
			}
		case "/redirect/metadata":
			http.Redirect(w, r, "https://elsewhere.example/metadata", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	d := &smart.Discoverer{Header: http.Header{"Epic-Client-ID": {"c1"}}}
	info, err := d.ServerInfo(t.Context(), srv.URL+"/ok")
	if err != nil {
		t.Fatal(err)
	}
	want := smart.ServerInfo{Publisher: "Oracle Health", SoftwareName: "Oracle Health Millennium Platform", SoftwareVersion: "2025.1",
		ImplementationURL: "https://fhir-ehr.example.com/r4/abc", ImplementationDescription: "Tenant X", FHIRVersion: "4.0.1"}
	if *info != want || gotHeader != "c1" {
		t.Errorf("info %+v, header %q", info, gotHeader)
	}
	if name, _ := smart.DetectProfile(nil, info); name != "oracle" {
		t.Errorf("detected %q", name)
	}
	info, err = d.ServerInfo(t.Context(), srv.URL+"/dstu2")
	if err != nil || info.Publisher != "Epic" || info.ImplementationURL != "" {
		t.Errorf("DSTU2: %+v, %v (a non-http implementation.url must be dropped)", info, err)
	}
	for path, want := range map[string]error{
		"/html": smart.ErrNotJSON, "/patient": smart.ErrInvalidDocument, "/huge": smart.ErrBodyTooLarge,
		"/missing": smart.ErrHTTPStatus, "/redirect": smart.ErrRedirectRefused,
	} {
		var de *smart.DiscoveryError
		if _, err := d.ServerInfo(t.Context(), srv.URL+path); !errors.Is(err, want) || !errors.As(err, &de) {
			t.Errorf("%s: %v, want %v in a *DiscoveryError", path, err, want)
		}
	}
	if _, err := d.ServerInfo(t.Context(), "http://ehr.example.com/fhir"); !errors.Is(err, smart.ErrInsecureURL) {
		t.Errorf("plain http: %v", err)
	}
}

// TestDetectSandbox: the in-process sandbox is a plain SMART 2.2 server: generic, with its base as
// implementation.url (what AssertionAudienceMetadata would use).
func TestDetectSandbox(t *testing.T) {
	t.Parallel()
	srv := smarttest.NewServer(t)
	var d smart.Discoverer
	cfg, err := d.Discover(t.Context(), srv.FHIRBase)
	if err != nil {
		t.Fatal(err)
	}
	info, err := d.ServerInfo(t.Context(), srv.FHIRBase)
	if err != nil {
		t.Fatal(err)
	}
	if name, reason := smart.DetectProfile(cfg, info); name != "generic" {
		t.Errorf("sandbox detected as %q (%s)", name, reason)
	}
	aud, err := smart.Profile{AssertionAud: smart.AssertionAudienceMetadata}.AssertionAudience(cfg.TokenEndpoint, info)
	if err != nil || aud != srv.FHIRBase {
		t.Errorf("metadata aud %q, %v; want %q", aud, err, srv.FHIRBase)
	}
}

func BenchmarkDetectProfile(b *testing.B) {
	cfg := &smart.Configuration{TokenEndpoint: "https://ehr.example.org/auth/token", AuthorizationEndpoint: "https://ehr.example.org/auth/authorize",
		Issuer: "https://ehr.example.org", JWKSURI: "https://ehr.example.org/jwks", FHIRBase: "https://ehr.example.org/fhir"}
	info := &smart.ServerInfo{Publisher: "Example Hospital", SoftwareName: "Example EHR"}
	for b.Loop() {
		if name, _ := smart.DetectProfile(cfg, info); name != "generic" {
			b.Fatal(name)
		}
	}
}
