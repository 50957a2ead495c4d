package sandbox_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// TestMetadata: the CapabilityStatement needs no token, is valid R4 and carries the SMART
// oauth-uris extension with absolute endpoints, the SMART-on-FHIR service and the three $export
// operations (SBX-01, BULK-34).
func TestMetadata(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	resp, b := e.get("/metadata", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/fhir+json" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	cs, err := fhir.UnmarshalCapabilityStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	if cs.FhirVersion != fhir.FHIRVersion4_0_1 || *cs.Publisher != "smartfhir sandbox" || cs.Kind != fhir.CapabilityStatementKindInstance {
		t.Errorf("fhirVersion %v publisher %v kind %v", cs.FhirVersion, *cs.Publisher, cs.Kind)
	}
	rest := cs.Rest[0]
	uris := map[string]string{}
	for _, ext := range rest.Security.Extension {
		if ext.Url == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			for _, sub := range ext.Extension {
				uris[sub.Url] = *sub.ValueUri
			}
		}
	}
	for _, ep := range []string{"authorize", "token", "register", "introspect", "revoke"} {
		if uris[ep] != e.srv.URL+"/auth/"+ep {
			t.Errorf("oauth-uris %s = %q", ep, uris[ep])
		}
	}
	if *rest.Security.Service[0].Coding[0].Code != "SMART-on-FHIR" {
		t.Errorf("service %v", rest.Security.Service)
	}
	if rest.Operation[0].Name != "export" || !strings.HasSuffix(rest.Operation[0].Definition, "/OperationDefinition/export") {
		t.Errorf("system operation %v", rest.Operation)
	}
	ops := map[string]string{}
	params := map[string][]string{}
	for _, r := range rest.Resource {
		for _, op := range r.Operation {
			ops[r.Type.Code()] = op.Definition
		}
		for _, p := range r.SearchParam {
			params[r.Type.Code()] = append(params[r.Type.Code()], p.Name)
		}
	}
	if !strings.HasSuffix(ops["Patient"], "patient-export") || !strings.HasSuffix(ops["Group"], "group-export") {
		t.Errorf("type operations %v", ops)
	}
	for _, p := range []string{"_id", "_lastUpdated", "name", "family", "gender", "birthdate"} {
		if !slices.Contains(params["Patient"], p) {
			t.Errorf("Patient search params %v lack %s", params["Patient"], p)
		}
	}
	if !slices.Contains(params["Observation"], "category") || !slices.Contains(params["Observation"], "patient") {
		t.Errorf("Observation search params %v", params["Observation"])
	}
}

// TestFHIRRequiresToken: every FHIR route but metadata answers 401 + WWW-Authenticate
// (error="invalid_token") + OperationOutcome without a live token (SBX-09).
func TestFHIRRequiresToken(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	expired := e.s.IssueAccessToken(sandbox.Grant{Scopes: []string{"system/*.rs"}, Expiry: e.s.Now().Add(-time.Second)})
	for _, tc := range []struct{ name, path, auth, desc string }{
		{"missing", "/Patient", "", "required"},
		{"unknown", "/Patient/pt-1", "Bearer nope", "not valid"},
		{"expired", "/Observation", "Bearer " + expired, "expired"},
		{"basic scheme", "/Patient", "Basic " + e.systemToken(), "required"},
		{"export", "/$export", "", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hdr := []string{}
			if tc.auth != "" {
				hdr = append(hdr, "Authorization", tc.auth)
			}
			resp, b := e.get(tc.path, "", hdr...)
			wantOutcome(t, resp, b, http.StatusUnauthorized, "login")
			wa := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, `Bearer realm="sandbox", error="invalid_token"`) || !strings.Contains(wa, tc.desc) {
				t.Errorf("WWW-Authenticate %q", wa)
			}
		})
	}
	if got := e.getOK("/Patient/pt-1", "", "Authorization", "bearer "+e.systemToken()); len(got) == 0 {
		t.Error("lower-case bearer scheme refused")
	}
}

// TestFHIRNegotiation: application/json and application/fhir+json are both served as
// application/fhir+json (CONV-7); XML only is 406.
func TestFHIRNegotiation(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	for _, accept := range []string{"application/json", "application/fhir+json", "application/fhir+json; fhirVersion=4.0",
		"text/html, */*;q=0.1", ""} {
		resp, _ := e.get("/Patient/pt-0", tok, "Accept", accept)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/fhir+json" {
			t.Errorf("Accept %q: %d %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	resp, b := e.get("/Patient/pt-0", tok, "Accept", "application/fhir+xml")
	wantOutcome(t, resp, b, http.StatusNotAcceptable, "not-supported")
}

// TestFHIRRead covers read, 404 for unknown ids and types, and OperationOutcome on errors.
func TestFHIRRead(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	p, err := fhir.UnmarshalPatient(e.getOK("/Patient/pt-3", tok))
	if err != nil || *p.Id != "pt-3" || p.BirthDate == nil || len(p.Name) == 0 {
		t.Fatalf("%+v %v", p, err)
	}
	for _, path := range []string{"/Observation/obs-3-0", "/Practitioner/prac-1", "/Organization/org-0",
		"/Group/all-patients", "/Group/diabetes-registry", "/Encounter/enc-3-0"} {
		e.getOK(path, tok)
	}
	for _, tc := range []struct{ path, code string }{
		{"/Patient/pt-20", "not-found"}, {"/Patient/nope", "not-found"}, {"/Observation/obs-3-9999", "not-found"},
		{"/Basic/1", "not-supported"}, {"/Patient/pt-1/_history/1", "not-found"},
	} {
		resp, b := e.get(tc.path, tok)
		wantOutcome(t, resp, b, http.StatusNotFound, tc.code)
	}
	resp, b := e.do(http.MethodDelete, e.base+"/Patient/pt-1", tok, nil)
	wantOutcome(t, resp, b, http.StatusMethodNotAllowed, "not-supported")
}

// TestFHIRSearchPaging pages a search with next links (absolute URLs, opaque tokens) and finds
// every resource once; _total=accurate and _summary=count give the total (CONV-7).
func TestFHIRSearchPaging(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{Patients: 12})
	tok := e.systemToken()
	v := decodeBundle(t, e.getOK("/Observation?_count=7&_total=accurate", tok))
	total := *v.Total
	if len(v.Entry) != 7 || total < 50 || v.Type != fhir.BundleTypeSearchset {
		t.Fatalf("first page: %d entries, total %d, type %v", len(v.Entry), total, v.Type)
	}
	next := v.link("next")
	if !strings.HasPrefix(next, e.base+"/Observation?") || !strings.HasPrefix(v.link("self"), e.base+"/Observation?") {
		t.Errorf("links: self %q next %q", v.link("self"), next)
	}
	ids := e.searchAll("/Observation?_count=7", tok)
	if len(ids) != total {
		t.Fatalf("paged %d ids, total %d", len(ids), total)
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != total {
		t.Error("duplicate ids across pages")
	}
	count := decodeBundle(t, e.getOK("/Observation?_summary=count", tok))
	if *count.Total != total || len(count.Entry) != 0 {
		t.Errorf("_summary=count: total %d entries %d", *count.Total, len(count.Entry))
	}
	def := decodeBundle(t, e.getOK("/Observation", tok))
	if len(def.Entry) != 50 || def.Total != nil {
		t.Errorf("default page: %d entries, total %v", len(def.Entry), def.Total)
	}
	big := decodeBundle(t, e.getOK("/Observation?_count=5000", tok))
	if len(big.Entry) != min(total, 1000) {
		t.Errorf("_count=5000 gave %d entries", len(big.Entry))
	}
	for _, en := range def.Entry {
		if !strings.HasPrefix(*en.FullUrl, e.base+"/Observation/") {
			t.Fatalf("fullUrl %q", *en.FullUrl)
		}
	}
}

// TestFHIRSearchPOST: POST _search with a form body equals the GET search.
func TestFHIRSearchPOST(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	get := decodeBundle(t, e.getOK("/Observation?patient=pt-2&category=laboratory", tok))
	resp, b := e.do(http.MethodPost, e.base+"/Observation/_search", tok,
		strings.NewReader(url.Values{"patient": {"Patient/pt-2"}, "category": {"laboratory"}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	post := decodeBundle(t, b)
	if !slices.Equal(get.ids, post.ids) || len(get.ids) == 0 {
		t.Errorf("GET %v, POST %v", get.ids, post.ids)
	}
	resp, b = e.do(http.MethodPost, e.base+"/Observation/_search", tok, strings.NewReader("{}"), "Content-Type", "application/json")
	wantOutcome(t, resp, b, http.StatusBadRequest, "invalid")
}

// TestFHIRSearchParams checks each supported parameter against the resources it returns.
func TestFHIRSearchParams(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	pt3, _ := fhir.UnmarshalPatient(e.getOK("/Patient/pt-3", tok))
	family, given, birth := *pt3.Name[0].Family, pt3.Name[0].Given[0], *pt3.BirthDate
	for _, tc := range []struct {
		name, query string
		check       func(t *testing.T, v bundleView)
	}{
		{"_id", "Patient?_id=pt-1,pt-4", wantIDs("pt-1", "pt-4")},
		{"_id compartment", "Observation?_id=obs-2-0", wantIDs("obs-2-0")},
		{"family", "Patient?family=" + strings.ToLower(family[:3]), wantContains("pt-3")},
		{"family exact", "Patient?family:exact=" + family, wantContains("pt-3")},
		{"name given", "Patient?name=" + url.QueryEscape(given), wantContains("pt-3")},
		{"name nobody", "Patient?name=Zzzyx", wantIDs()},
		{"birthdate eq", "Patient?birthdate=" + birth, wantContains("pt-3")},
		{"birthdate year", "Patient?birthdate=" + birth[:4], wantContains("pt-3")},
		{"birthdate gt", "Patient?birthdate=gt" + birth, wantAbsent("pt-3")},
		{"gender", "Patient?gender=" + pt3.Gender.Code(), wantContains("pt-3")},
		{"identifier", "Patient?identifier=urn:oid:2.16.840.1.113883.19.5|MRN-0100003", wantIDs("pt-3")},
		{"patient", "Condition?patient=Patient/pt-1", wantAllPrefix("cond-1-")},
		{"subject", "Observation?subject=pt-5&_count=1000", wantAllPrefix("obs-5-")},
		{"patient absolute", "Immunization?patient=" + url.QueryEscape(e.base+"/Patient/pt-6"), wantAllPrefix("imm-6-")},
		{"category", "Observation?patient=pt-1&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
			wantCategory(t, e, tok, "laboratory")},
		{"code", "Observation?code=http://loinc.org|8867-4&patient=pt-2", wantAllPrefix("obs-2-")},
		{"code no system", "Observation?code=85354-9", wantNonEmpty},
		{"_lastUpdated window", "Observation?_lastUpdated=ge2024-01-01T00:00:00Z&_lastUpdated=lt2024-07-01", wantNonEmpty},
		{"_lastUpdated future", "Observation?_lastUpdated=gt2030-01-01", wantIDs()},
		{"clinical-status", "Condition?clinical-status=active", wantNonEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := decodeBundle(t, e.getOK("/"+tc.query+sep(tc.query)+"_count=1000", tok))
			tc.check(t, v)
		})
	}
}

func sep(q string) string {
	if strings.Contains(q, "?") {
		return "&"
	}
	return "?"
}

func wantIDs(ids ...string) func(*testing.T, bundleView) {
	return func(t *testing.T, v bundleView) {
		t.Helper()
		if !slices.Equal(v.ids, ids) && !(len(ids) == 0 && len(v.ids) == 0) {
			t.Errorf("ids %v, want %v", v.ids, ids)
		}
	}
}

func wantContains(id string) func(*testing.T, bundleView) {
	return func(t *testing.T, v bundleView) {
		t.Helper()
		if !slices.Contains(v.ids, id) {
			t.Errorf("ids %v lack %s", v.ids, id)
		}
	}
}

func wantAbsent(id string) func(*testing.T, bundleView) {
	return func(t *testing.T, v bundleView) {
		t.Helper()
		if slices.Contains(v.ids, id) {
			t.Errorf("ids %v contain %s", v.ids, id)
		}
	}
}

func wantAllPrefix(prefix string) func(*testing.T, bundleView) {
	return func(t *testing.T, v bundleView) {
		t.Helper()
		if len(v.ids) == 0 {
			t.Fatal("no results")
		}
		for _, id := range v.ids {
			if !strings.HasPrefix(id, prefix) {
				t.Errorf("id %s lacks prefix %s", id, prefix)
			}
		}
	}
}

func wantNonEmpty(t *testing.T, v bundleView) {
	t.Helper()
	if len(v.ids) == 0 {
		t.Error("no results")
	}
}

// wantCategory checks that every Observation has the category code.
func wantCategory(_ *testing.T, _ *fhirEnv, _ string, cat string) func(*testing.T, bundleView) {
	return func(t *testing.T, v bundleView) {
		t.Helper()
		if len(v.Entry) == 0 {
			t.Fatal("no results")
		}
		for _, en := range v.Entry {
			o, err := fhir.UnmarshalObservation(en.Resource)
			if err != nil || *o.Category[0].Coding[0].Code != cat {
				t.Errorf("%s: category %v (%v)", *o.Id, o.Category, err)
			}
		}
	}
}

// TestFHIRSearchErrors: bad parameters get 400 OperationOutcomes; Prefer: handling=lenient ignores
// unknown ones.
func TestFHIRSearchErrors(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	for _, tc := range []struct{ query, code string }{
		{"Patient?_count=abc", "invalid"},
		{"Patient?_count=-1", "invalid"},
		{"Patient?birthdate=1980-13", "invalid"},
		{"Patient?birthdate=ap1980", "invalid"},
		{"Observation?_lastUpdated=ge2024-01-01T00:00:00 05:00", "invalid"}, // '+' sent unencoded
		{"Patient?shoe-size=9", "not-supported"},
		{"Patient?category=x", "not-supported"},
		{"Patient?name:fuzzy=x", "not-supported"},
		{"Patient?_sort=name", "not-supported"},
		{"Patient?_include=Patient:organization", "not-supported"},
		{"Patient?_summary=true", "not-supported"},
		{"Patient?_total=exact", "invalid"},
		{"Patient?_page=%%%", "invalid"},
		{"Patient?_page=bm90LWEtdG9rZW4", "invalid"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			u := e.base + "/" + strings.Replace(tc.query, " ", "%20", 1)
			resp, b := e.get(u, tok)
			wantOutcome(t, resp, b, http.StatusBadRequest, tc.code)
		})
	}
	e.getOK("/Patient?shoe-size=9&_sort=name", tok, "Prefer", "handling=lenient")
}

// TestFHIRScopes: v1 and v2 scopes, patient compartments, granular filters and 403s (SBX-09,
// API-03).
func TestFHIRScopes(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	type call struct {
		path   string
		status int
		check  func(*testing.T, bundleView)
	}
	for _, tc := range []struct {
		name, scopes, patient string
		calls                 []call
	}{
		{"v1 patient read", "launch/patient patient/*.read openid fhirUser", "pt-4", []call{
			{"/Observation?_count=1000", 200, wantAllPrefix("obs-4-")},
			{"/Patient", 200, wantIDs("pt-4")},
			{"/Observation/obs-4-0", 200, nil},
			{"/Observation/obs-5-0", 403, nil},
			{"/Patient/pt-5", 403, nil},
			{"/Observation?patient=pt-5", 200, wantIDs()},
			{"/Practitioner/prac-0", 200, nil},
			{"/Group?_count=10", 200, wantIDs()},
		}},
		{"v2 search only", "patient/Observation.s", "pt-4", []call{
			{"/Observation?_count=1000", 200, wantAllPrefix("obs-4-")},
			{"/Observation/obs-4-0", 403, nil},
			{"/Condition", 403, nil},
		}},
		{"v2 granular category", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "pt-1", []call{
			{"/Observation?_count=1000", 200, wantCategory(t, e, "", "laboratory")},
			{"/Observation?category=vital-signs", 200, wantIDs()},
			{"/Observation/obs-1-0", 403, nil}, // a vital sign
		}},
		{"patient scope without patient context", "patient/*.rs", "", []call{
			{"/Observation", 403, nil},
		}},
		{"user scopes", "user/Patient.read user/Observation.rs", "", []call{
			{"/Patient?_count=100", 200, func(t *testing.T, v bundleView) {
				if len(v.ids) != 20 {
					t.Errorf("%d patients", len(v.ids))
				}
			}},
			{"/Condition", 403, nil},
		}},
		{"system wildcard", "system/*.read", "", []call{
			{"/Group/all-patients", 200, nil},
			{"/Encounter/enc-19-0", 200, nil},
		}},
		{"write only", "system/*.cud", "", []call{
			{"/Patient/pt-0", 403, nil},
		}},
		{"no resource scope", "openid fhirUser launch", "pt-1", []call{
			{"/Patient/pt-1", 403, nil},
		}},
		{"unparseable granular", "patient/Observation.rs?shoe-size=9", "pt-1", []call{
			{"/Observation", 403, nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := e.token(tc.scopes, tc.patient)
			for _, c := range tc.calls {
				resp, b := e.get(c.path, tok)
				if c.status != 200 {
					wantOutcome(t, resp, b, c.status, "forbidden")
					if resp.Header.Get("WWW-Authenticate") == "" {
						t.Errorf("%s: 403 without WWW-Authenticate", c.path)
					}
					continue
				}
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", c.path, resp.StatusCode, b)
				}
				if c.check != nil {
					c.check(t, decodeBundle(t, b))
				}
			}
		})
	}
}

// TestFHIRRequestCounter: s.Count("fhir_requests") counts FHIR API requests.
func TestFHIRRequestCounter(t *testing.T) {
	t.Parallel()
	e := newFHIREnv(t, sandbox.Options{})
	tok := e.systemToken()
	e.getOK("/metadata", "")
	e.getOK("/Patient/pt-0", tok)
	e.get("/Patient", "")
	if n := e.s.Count("fhir_requests"); n != 3 {
		t.Errorf("fhir_requests = %d, want 3", n)
	}
}
