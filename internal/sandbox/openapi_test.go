package sandbox

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/openapi"
	"github.com/smartfhir/smartfhir/internal/openapi/openapitest"
)

// updateGolden is -update (rewrite golden files). Another test file of the package may define the
// flag first; then it is shared.
func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

// fetchOpenAPI serves GET /fhir/openapi.json of s on a fresh mux, as New mounts it (openapiRoutes),
// for the origin http://127.0.0.1:9090.
func fetchOpenAPI(t *testing.T, s *Server) []byte {
	t.Helper()
	mux := http.NewServeMux()
	s.openapiRoutes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1:9090/fhir/openapi.json", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /fhir/openapi.json: %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	return rec.Body.Bytes()
}

// TestOpenAPIGolden validates the sandbox's OpenAPI document structurally and compares it with
// testdata/openapi/sandbox.json (regenerate with go test -run OpenAPI -update).
func TestOpenAPIGolden(t *testing.T) {
	t.Parallel()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := fetchOpenAPI(t, s)
	for _, err := range openapitest.Validate(got) {
		t.Error(err)
	}
	golden := filepath.Join("testdata", "openapi", "sandbox.json")
	if updateGolden() {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run OpenAPI -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the served document (run go test -run OpenAPI -update and review the diff)", golden)
	}
}

// TestOpenAPIScopes checks the meaning of the document: every FHIR type the CapabilityStatement lists
// has a read and a search path whose security names its patient/, user/ and system/ scopes in the v2
// and v1 syntax; $export needs system scopes; discovery needs no token; every scope is defined.
func TestOpenAPIScopes(t *testing.T) {
	t.Parallel()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var doc openapi.Document
	if err := json.Unmarshal(fetchOpenAPI(t, s), &doc); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9090/fhir/metadata", nil)
	api, err := openapi.APIFromCapabilityStatement(s.fhir.capabilityStatement(req))
	if err != nil {
		t.Fatal(err)
	}
	if len(api.Resources) < 5 {
		t.Fatalf("the CapabilityStatement lists %d types", len(api.Resources))
	}
	flows := doc.Components.SecuritySchemes[openapi.SchemeSMART].Flows
	if flows.AuthorizationCode == nil || flows.ClientCredentials == nil || flows.AuthorizationCode.UsePKCE != "SHA-256" {
		t.Fatalf("flows = %+v", flows)
	}
	if flows.AuthorizationCode.TokenURL != "http://127.0.0.1:9090/auth/token" || flows.AuthorizationCode.AuthorizationURL != "http://127.0.0.1:9090/auth/authorize" {
		t.Errorf("authorizationCode = %+v", flows.AuthorizationCode)
	}
	if _, ok := doc.Components.SecuritySchemes[openapi.SchemeOpenID]; !ok {
		t.Error("no openIdConnect scheme although the sandbox advertises sso-openid-connect")
	}
	for _, r := range api.Resources {
		for path, perm := range map[string]string{"/" + r.Type + "/{id}": "r", "/" + r.Type: "s"} {
			item := doc.Paths[path]
			if item == nil || item.Get == nil {
				t.Errorf("%s: no GET", path)
				continue
			}
			var scopes []string
			for _, req := range item.Get.Security {
				scopes = append(scopes, req[openapi.SchemeSMART]...)
			}
			slices.Sort(scopes)
			want := []string{"patient/" + r.Type + ".rs", "patient/" + r.Type + ".read", "system/" + r.Type + ".rs",
				"system/" + r.Type + ".read", "user/" + r.Type + ".rs", "user/" + r.Type + ".read"}
			slices.Sort(want)
			if !slices.Equal(scopes, want) {
				t.Errorf("%s: scopes %v, want %v", path, scopes, want)
			}
			if a := item.Get.SMARTAccess; a == nil || a.Permission != perm || a.ResourceType != r.Type {
				t.Errorf("%s: x-smart-access %+v", path, a)
			}
		}
	}
	for _, p := range []string{"/$export", "/Patient/$export", "/Group/{id}/$export"} {
		item := doc.Paths[p]
		if item == nil || item.Get == nil {
			t.Errorf("%s missing", p)
			continue
		}
		for _, req := range item.Get.Security {
			for _, sc := range req[openapi.SchemeSMART] {
				if !strings.HasPrefix(sc, "system/") {
					t.Errorf("%s: scope %q is not a system scope", p, sc)
				}
			}
		}
	}
	for _, p := range []string{"/metadata", "/.well-known/smart-configuration"} {
		if item := doc.Paths[p]; item == nil || item.Get == nil || item.Get.Security != nil {
			t.Errorf("%s: want a GET without security", p)
		}
	}
}

// TestOpenAPIVersionV1: a SMART v1 sandbox advertises no permission-v2 and no PKCE methods, so its
// document names v1 scopes only.
func TestOpenAPIVersionV1(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	b := fetchOpenAPI(t, s)
	for _, err := range openapitest.Validate(b) {
		t.Error(err)
	}
	var doc openapi.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, req := range doc.Paths["/Patient/{id}"].Get.Security {
		for _, sc := range req[openapi.SchemeSMART] {
			if !strings.HasSuffix(sc, ".read") {
				t.Errorf("v1 sandbox: scope %q", sc)
			}
		}
	}
	if ac := doc.Components.SecuritySchemes[openapi.SchemeSMART].Flows.AuthorizationCode; ac == nil || len(ac.CodeChallengeMethods) != 0 {
		t.Errorf("v1 authorizationCode flow = %+v", ac)
	}
}

// TestOpenAPIKeepsDiscoveryFaults: building the document reads the discovery document without
// consuming an armed discovery fault (SBX-11).
func TestOpenAPIKeepsDiscoveryFaults(t *testing.T) {
	t.Parallel()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Fault("discovery_404", 1, "")
	s.Fault("discovery_plain_pkce", 1, "")
	b := fetchOpenAPI(t, s)
	if bytes.Contains(b, []byte(`"plain"`)) {
		t.Error("the document reflects an armed discovery fault")
	}
	if got := s.ArmedFaults(); !slices.Equal(got, []string{"discovery_404", "discovery_plain_pkce"}) {
		t.Errorf("armed faults after building the document: %v", got)
	}
}
