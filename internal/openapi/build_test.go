package openapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/openapi"
	"github.com/smartfhir/smartfhir/internal/openapi/openapitest"
	"github.com/smartfhir/smartfhir/smart"
)

const base = "https://ehr.example.org/fhir"

// full is a SMART 2.2 configuration with both flows, OpenID Connect and both scope syntaxes.
func full() *smart.Configuration {
	return &smart.Configuration{
		Issuer:                            base,
		JWKSURI:                           "https://ehr.example.org/auth/jwks",
		AuthorizationEndpoint:             "https://ehr.example.org/auth/authorize",
		TokenEndpoint:                     "https://ehr.example.org/auth/token",
		GrantTypesSupported:               []string{"authorization_code", "refresh_token", "client_credentials"},
		TokenEndpointAuthMethodsSupported: []string{"private_key_jwt", "client_secret_basic"},
		TokenEndpointAuthSigningAlgValuesSupported: []string{"RS384", "ES384"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ScopesSupported:                            []string{"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs", "system/*.rs", "__vendor"},
		Capabilities:                               []string{"launch-standalone", "sso-openid-connect", "permission-v1", "permission-v2", "client-confidential-asymmetric"},
		FHIRBase:                                   base,
	}
}

var api = &openapi.API{
	SystemExport: true,
	Resources: []openapi.Resource{
		{Type: "Patient", Read: true, Search: true, Export: true, SearchParams: []openapi.SearchParam{{Name: "name", Type: "string", Documentation: "a name"}, {Name: "birthdate", Type: "date"}}},
		{Type: "Observation", Read: true, Search: true, SearchParams: []openapi.SearchParam{{Name: "code", Type: "token"}, {Name: "patient", Type: "reference"}}},
		{Type: "Group", Read: true, Export: true},
		{Type: "Practitioner", Read: true},
	},
}

func encode(t *testing.T, doc *openapi.Document) []byte {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustValid(t *testing.T, b []byte) {
	t.Helper()
	for _, err := range openapitest.Validate(b) {
		t.Error(err)
	}
}

// reqScopes returns the scopes named by an operation's security requirements.
func reqScopes(op *openapi.Operation) []string {
	var out []string
	for _, r := range op.Security {
		for _, s := range r[openapi.SchemeSMART] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func TestOpenAPISecuritySchemes(t *testing.T) {
	t.Parallel()
	backendOnly := full()
	backendOnly.AuthorizationEndpoint = ""
	backendOnly.Capabilities = []string{"permission-v2", "client-confidential-asymmetric"}
	v1 := full()
	v1.GrantTypesSupported, v1.CodeChallengeMethodsSupported = nil, nil
	v1.Capabilities = []string{"launch-standalone", "permission-v1"}
	plain := full()
	plain.CodeChallengeMethodsSupported = []string{"plain"}
	noIssuer := full()
	noIssuer.Issuer = ""
	publicOnly := full()
	publicOnly.GrantTypesSupported = []string{"authorization_code"}

	tests := []struct {
		name          string
		cfg           *smart.Configuration
		authCode      bool
		clientCreds   bool
		refresh       bool
		openID        bool
		readPatient   []string // scopes of GET /Patient/{id}
		exportPresent bool
		descHas       string
	}{
		{"full SMART 2.2", full(), true, true, true, true,
			[]string{"patient/Patient.read", "patient/Patient.rs", "system/Patient.read", "system/Patient.rs", "user/Patient.read", "user/Patient.rs"}, true, "PKCE with S256 is required"},
		{"backend only (BS-01)", backendOnly, false, true, false, false,
			[]string{"system/Patient.rs"}, true, "private_key_jwt client assertion signed with RS384 or ES384"},
		{"v1 server without grant types (DISC-04, DISC-16)", v1, true, true, true, false,
			[]string{"patient/Patient.read", "system/Patient.read", "user/Patient.read"}, true, "PKCE"},
		{"plain-only PKCE is flagged (DISC-05)", plain, true, true, true, true,
			[]string{"patient/Patient.read", "patient/Patient.rs", "system/Patient.read", "system/Patient.rs", "user/Patient.read", "user/Patient.rs"}, true, "does not advertise S256"},
		{"sso-openid-connect without issuer has no openid scheme (DISC-11)", noIssuer, true, true, true, false,
			[]string{"patient/Patient.read", "patient/Patient.rs", "system/Patient.read", "system/Patient.rs", "user/Patient.read", "user/Patient.rs"}, true, ""},
		{"no client_credentials: no system scopes, no export", publicOnly, true, false, false, true,
			[]string{"patient/Patient.read", "patient/Patient.rs", "user/Patient.read", "user/Patient.rs"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, err := openapi.New(openapi.Options{Config: tt.cfg, API: api})
			if err != nil {
				t.Fatal(err)
			}
			mustValid(t, encode(t, doc))
			sch := doc.Components.SecuritySchemes[openapi.SchemeSMART]
			if sch == nil || sch.Type != "oauth2" {
				t.Fatalf("no oauth2 scheme: %+v", doc.Components.SecuritySchemes)
			}
			ac, cc := sch.Flows.AuthorizationCode, sch.Flows.ClientCredentials
			if (ac != nil) != tt.authCode || (cc != nil) != tt.clientCreds {
				t.Fatalf("flows: authorizationCode %v clientCredentials %v, want %v %v", ac != nil, cc != nil, tt.authCode, tt.clientCreds)
			}
			if ac != nil {
				if ac.AuthorizationURL != tt.cfg.AuthorizationEndpoint || ac.TokenURL != tt.cfg.TokenEndpoint || ac.UsePKCE != "SHA-256" {
					t.Errorf("authorizationCode flow = %+v", ac)
				}
				if (ac.RefreshURL != "") != tt.refresh {
					t.Errorf("refreshUrl = %q, want present %v", ac.RefreshURL, tt.refresh)
				}
				for s := range ac.Scopes {
					if strings.HasPrefix(s, "system/") {
						t.Errorf("authorizationCode flow defines system scope %q", s)
					}
				}
				if _, ok := ac.Scopes["openid"]; !ok {
					t.Errorf("scopes_supported openid not defined: %v", ac.Scopes)
				}
			}
			if cc != nil {
				for s := range cc.Scopes {
					if !strings.HasPrefix(s, "system/") {
						t.Errorf("clientCredentials flow defines non-system scope %q", s)
					}
				}
			}
			if _, ok := doc.Components.SecuritySchemes[openapi.SchemeOpenID]; ok != tt.openID {
				t.Errorf("openid scheme present = %v, want %v", ok, tt.openID)
			}
			if tt.openID && doc.Components.SecuritySchemes[openapi.SchemeOpenID].OpenIDConnectURL != base+"/.well-known/openid-configuration" {
				t.Errorf("openIdConnectUrl = %q", doc.Components.SecuritySchemes[openapi.SchemeOpenID].OpenIDConnectURL)
			}
			read := doc.Paths["/Patient/{id}"]
			if read == nil || read.Get == nil {
				t.Fatal("no GET /Patient/{id}")
			}
			if got := reqScopes(read.Get); !slices.Equal(got, tt.readPatient) {
				t.Errorf("read Patient scopes = %v, want %v", got, tt.readPatient)
			}
			if a := read.Get.SMARTAccess; a == nil || a.ResourceType != "Patient" || a.Permission != "r" {
				t.Errorf("x-smart-access = %+v", a)
			}
			_, hasExport := doc.Paths["/$export"]
			if hasExport != tt.exportPresent {
				t.Errorf("/$export present = %v, want %v", hasExport, tt.exportPresent)
			}
			if tt.descHas != "" && !strings.Contains(sch.Description, tt.descHas) {
				t.Errorf("description %q lacks %q", sch.Description, tt.descHas)
			}
			if doc.Paths["/metadata"].Get.Security != nil || doc.Paths["/.well-known/smart-configuration"].Get.Security != nil {
				t.Error("discovery endpoints must need no token")
			}
		})
	}
}

func TestOpenAPINoFlow(t *testing.T) {
	t.Parallel()
	none := full()
	none.AuthorizationEndpoint = ""
	none.GrantTypesSupported = []string{"authorization_code"}
	noToken := full()
	noToken.TokenEndpoint = ""
	for name, cfg := range map[string]*smart.Configuration{"no flow": none, "no token endpoint (DISC-03)": noToken, "nil": nil} {
		if _, err := openapi.New(openapi.Options{Config: cfg, API: api}); err == nil {
			t.Errorf("%s: no error", name)
		} else if cfg != nil && !errors.Is(err, openapi.ErrNoFlow) {
			t.Errorf("%s: %v, want ErrNoFlow", name, err)
		}
	}
	cfg := full()
	cfg.FHIRBase = ""
	if _, err := openapi.New(openapi.Options{Config: cfg}); err == nil {
		t.Error("no FHIR base: no error")
	}
}

// TestOpenAPISecurityOnly: without an API, the document holds the discovery path and the schemes.
func TestOpenAPISecurityOnly(t *testing.T) {
	t.Parallel()
	doc, err := openapi.New(openapi.Options{Config: full(), Title: "EHR", APIVersion: "2.2"})
	if err != nil {
		t.Fatal(err)
	}
	b := encode(t, doc)
	mustValid(t, b)
	if len(doc.Paths) != 1 || doc.Paths["/.well-known/smart-configuration"] == nil {
		t.Errorf("paths = %v", doc.Paths)
	}
	if doc.Info.Title != "EHR" || doc.Info.Version != "2.2" || doc.OpenAPI != openapi.Version {
		t.Errorf("info = %+v, openapi %q", doc.Info, doc.OpenAPI)
	}
	if doc.Servers[0].URL != base {
		t.Errorf("server = %q", doc.Servers[0].URL)
	}
}

func TestAPIFromCapabilityStatement(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 400)
	cs := `{"resourceType":"CapabilityStatement","rest":[
	  {"mode":"client","resource":[{"type":"Secret","interaction":[{"code":"read"}]}]},
	  {"mode":"server","operation":[{"name":"export"}],"resource":[
	    {"type":"Patient","interaction":[{"code":"read"},{"code":"search-type"},{"code":"update"}],
	     "searchParam":[{"name":"name","type":"string","documentation":"Name\u001b[31m red` + long + `"},
	                    {"name":"bad name","type":"string"},{"name":"x","type":"weird"}],
	     "operation":[{"name":"export"}]},
	    {"type":"../Practitioner","interaction":[{"code":"read"}]},
	    {"type":"Patient","interaction":[{"code":"read"}]},
	    {"type":"Observation/..","interaction":[{"code":"read"}]},
	    {"type":"Observation","interaction":[{"code":"search-type"}],"operation":[{"name":"export"}]}
	  ]}]}`
	got, err := openapi.APIFromCapabilityStatement([]byte(cs))
	if err != nil {
		t.Fatal(err)
	}
	if !got.SystemExport || len(got.Resources) != 2 {
		t.Fatalf("api = %+v", got)
	}
	p, o := got.Resources[0], got.Resources[1]
	if p.Type != "Patient" || !p.Read || !p.Search || !p.Export || o.Type != "Observation" || o.Read || !o.Search || o.Export {
		t.Errorf("resources = %+v", got.Resources)
	}
	if len(p.SearchParams) != 2 || p.SearchParams[0].Name != "name" || p.SearchParams[1].Type != "" {
		t.Errorf("search params = %+v", p.SearchParams)
	}
	doc := p.SearchParams[0].Documentation
	if strings.ContainsRune(doc, '\x1b') || len(doc) > 310 || !strings.HasSuffix(doc, "…") {
		t.Errorf("documentation not escaped and bounded: %q", doc)
	}

	for name, body := range map[string]string{
		"not JSON":    `<html>`,
		"not a CS":    `{"resourceType":"Bundle"}`,
		"array":       `[]`,
		"wrong types": `{"resourceType":"CapabilityStatement","rest":{}}`,
	} {
		if _, err := openapi.APIFromCapabilityStatement([]byte(body)); !errors.Is(err, openapi.ErrCapabilityStatement) {
			t.Errorf("%s: err = %v, want ErrCapabilityStatement", name, err)
		}
	}
}

// TestOpenAPIHostileResourceTypes: a resource type that is not a FHIR name never becomes a path,
// even when a caller builds the API by hand (SEC-12).
func TestOpenAPIHostileResourceTypes(t *testing.T) {
	t.Parallel()
	doc, err := openapi.New(openapi.Options{Config: full(), API: &openapi.API{Resources: []openapi.Resource{
		{Type: "../admin", Read: true}, {Type: "Patient/{id}", Search: true}, {Type: "Patient", Search: true,
			SearchParams: []openapi.SearchParam{{Name: "a&b=c"}, {Name: "name"}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for p := range doc.Paths {
		if strings.Contains(p, "..") || strings.Count(p, "{") > 1 {
			t.Errorf("path %q built from a hostile type", p)
		}
	}
	for _, prm := range doc.Paths["/Patient"].Get.Parameters {
		if prm.Name == "a&b=c" {
			t.Error("hostile search parameter documented")
		}
	}
	mustValid(t, encode(t, doc))
}

func ExampleDescribeScope() {
	for _, s := range []string{"patient/Observation.rs", "user/*.cruds", "system/Patient.read", "launch/patient", "offline_access"} {
		fmt.Printf("%s: %s\n", s, openapi.DescribeScope(s))
	}
	// Output:
	// patient/Observation.rs: read, search Observation resources of the patient in context
	// user/*.cruds: create, read, update, delete, search resources of any type that the user may access
	// system/Patient.read: read, search Patient resources the client is pre-authorized for (backend services) (SMART v1 syntax)
	// launch/patient: standalone launch: the user picks the Patient in context
	// offline_access: a refresh token that outlives the user's session
}

func BenchmarkOpenAPINew(b *testing.B) {
	cfg := full()
	b.ReportAllocs()
	for b.Loop() {
		doc, err := openapi.New(openapi.Options{Config: cfg, API: api})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(doc); err != nil {
			b.Fatal(err)
		}
	}
}
