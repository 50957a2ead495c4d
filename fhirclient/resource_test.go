package fhirclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestCapabilities(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /metadata", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Accept", MediaTypeFHIRJSON)
		writeJSON(w, 200, `{"resourceType":"CapabilityStatement","status":"active","date":"2026-01-01","kind":"instance","fhirVersion":"4.0.1","format":["json"],"publisher":"Vendor X"}`)
	})
	var cs fhir.CapabilityStatement
	if _, err := e.c.Capabilities(t.Context(), &cs); err != nil {
		t.Fatal(err)
	}
	if cs.FhirVersion != fhir.FHIRVersion4_0_1 || *cs.Publisher != "Vendor X" {
		t.Errorf("CapabilityStatement = %+v", cs)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/123", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Authorization", "Bearer "+testToken) // API-01: the header, never the URL
		if strings.Contains(r.URL.RawQuery, "access_token") {
			t.Error("token in the query")
		}
		w.Header().Set("ETag", `W/"2"`)
		writeJSON(w, 200, `{"resourceType":"Patient","id":"123","birthDate":"1970-01-01"}`)
	})
	var p fhir.Patient
	resp, err := e.c.Read(t.Context(), "Patient", "123", &p)
	if err != nil {
		t.Fatal(err)
	}
	if *p.Id != "123" || *p.BirthDate != "1970-01-01" || resp.VersionID != "2" {
		t.Errorf("Patient = %+v, version %q", p, resp.VersionID)
	}
}

// The samply models do not check resourceType; Read does.
func TestReadWrongResourceType(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/1", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"OperationOutcome","issue":[]}`)
	})
	e.mux.HandleFunc("GET /Patient/2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Patient","id":"2"}`)
	})
	e.mux.HandleFunc("GET /Patient/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	for _, v := range []any{new(fhir.Patient), new(json.RawMessage), nil} {
		if _, err := e.c.Read(t.Context(), "Patient", "1", v); v != nil && !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("Read into %T of an OperationOutcome: err = %v", v, err)
		}
	}
	var obs fhir.Observation
	if _, err := e.c.Read(t.Context(), "Patient", "2", &obs); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("Patient into *fhir.Observation: err = %v", err)
	}
	var p fhir.Patient
	if _, err := e.c.Read(t.Context(), "Patient", "empty", &p); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("empty body: err = %v", err)
	}
}

// Truncated JSON and HTML with a 200 status are malformed responses, quoted safely.
func TestMalformedSuccessBodies(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/trunc", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Patient","id":"trunc","name":[{"fam`)
	})
	e.mux.HandleFunc("GET /Patient/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html><body>Please log in \x1b[2J</body></html>"))
	})
	var p fhir.Patient
	_, err := e.c.Read(t.Context(), "Patient", "trunc", &p)
	if !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("truncated: err = %v", err)
	}
	_, err = e.c.Read(t.Context(), "Patient", "html", &p)
	if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), "Please log in") || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("html: err = %v", err)
	}
}

// The raw path returns a resource with contained resources, primitive extensions, a null in a
// primitive array, decimals and an unknown element byte for byte; the typed path loses them (which is
// why the raw path exists).
func TestReadRawRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	orig := fixture(t, "patient-contained.json")
	e.mux.HandleFunc("GET /Patient/example-contained", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", MediaTypeFHIRJSON)
		w.Write(orig)
	})
	var echoed []byte
	e.mux.HandleFunc("PUT /Patient/example-contained", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		echoed = buf.Bytes()
		w.Header().Set("Content-Type", MediaTypeFHIRJSON)
		w.Write(echoed)
	})
	raw, _, err := e.c.ReadRaw(t.Context(), "Patient", "example-contained")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, orig) {
		t.Fatalf("ReadRaw changed the bytes:\n%s\nwant\n%s", raw, orig)
	}
	// Written back unchanged, and read back unchanged.
	var back json.RawMessage
	if _, err := e.c.Update(t.Context(), raw, "3", &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(echoed, orig) || !bytes.Equal(back, orig) {
		t.Errorf("Update of raw bytes changed them:\nsent %s\ngot  %s", echoed, back)
	}
	// Bundle entries keep their resources raw too.
	bundle := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + string(orig) + `}]}`
	var b fhir.Bundle
	if err := unmarshal([]byte(bundle), &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Entry[0].Resource, bytes.TrimSpace(orig)) {
		t.Errorf("Bundle entry resource changed:\n%s", b.Entry[0].Resource)
	}
	// The typed model drops what the raw path keeps.
	var p fhir.Patient
	if err := unmarshal(orig, &p); err != nil {
		t.Fatal(err)
	}
	typed, _ := json.Marshal(p)
	for _, lost := range []string{`"contained"`, `"_birthDate"`, `"x-vendor-flag"`} {
		if bytes.Contains(typed, []byte(lost)) || !bytes.Contains(raw, []byte(lost)) {
			t.Errorf("%s: typed has it = %v, raw has it = %v", lost, bytes.Contains(typed, []byte(lost)), bytes.Contains(raw, []byte(lost)))
		}
	}
}

func TestVRead(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Observation/o1/_history/4", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Observation","id":"o1","meta":{"versionId":"4"},"status":"final","code":{"text":"HR"}}`)
	})
	var o fhir.Observation
	if _, err := e.c.VRead(t.Context(), "Observation", "o1", "4", &o); err != nil {
		t.Fatal(err)
	}
	if *o.Meta.VersionId != "4" || o.Status != fhir.ObservationStatusFinal {
		t.Errorf("Observation = %+v", o)
	}
	if _, err := e.c.VRead(t.Context(), "Observation", "o1", "", &o); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("empty version: err = %v", err)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("POST /Patient", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", MediaTypeFHIRJSON)
		testHeader(t, r, "If-None-Exist", "")
		testJSONBody(t, r, `{"resourceType":"Patient","gender":"male"}`)
		w.Header().Set("Location", e.srv.URL+basePath+"/Patient/new1/_history/1")
		writeJSON(w, http.StatusCreated, `{"resourceType":"Patient","id":"new1","gender":"male","meta":{"versionId":"1"}}`)
	})
	e.mux.HandleFunc("POST /Observation", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "Observation/o9/_history/1")
		w.WriteHeader(http.StatusCreated) // Prefer: return=minimal
	})
	male := fhir.AdministrativeGenderMale
	var got fhir.Patient
	resp, err := e.c.Create(t.Context(), fhir.Patient{Gender: &male}, &got)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || *got.Id != "new1" || resp.VersionID != "1" ||
		!strings.HasSuffix(resp.Location, "/Patient/new1/_history/1") {
		t.Errorf("Create: status %d, id %v, version %q, location %q", resp.StatusCode, got.Id, resp.VersionID, resp.Location)
	}
	var obs fhir.Observation
	resp, err = e.c.Create(t.Context(), json.RawMessage(`{"resourceType":"Observation","status":"final","code":{}}`), &obs)
	if err != nil || resp.VersionID != "1" || obs.Id != nil {
		t.Errorf("minimal create: err %v, version %q, obs %+v", err, resp.VersionID, obs)
	}
	for _, bad := range []any{nil, json.RawMessage(`{"id":"x"}`), json.RawMessage(`{"resourceType":"../admin"}`), json.RawMessage(`not json`)} {
		if _, err := e.c.Create(t.Context(), bad, nil); err == nil {
			t.Errorf("Create(%s) succeeded", bad)
		}
	}
}

func TestConditionalCreate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var n atomic.Int64
	e.mux.HandleFunc("POST /Patient", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "If-None-Exist", "identifier=http%3A%2F%2Fhospital.example%2Fmrn%7C123")
		switch n.Add(1) {
		case 1:
			writeJSON(w, http.StatusCreated, `{"resourceType":"Patient","id":"p1"}`)
		case 2:
			writeJSON(w, http.StatusOK, `{"resourceType":"Patient","id":"p1"}`)
		default:
			writeJSON(w, http.StatusPreconditionFailed, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"duplicate","diagnostics":"2 matches"}]}`)
		}
	})
	q := url.Values{"identifier": {"http://hospital.example/mrn|123"}}
	pat := json.RawMessage(`{"resourceType":"Patient","identifier":[{"system":"http://hospital.example/mrn","value":"123"}]}`)
	for _, want := range []int{201, 200} {
		resp, err := e.c.ConditionalCreate(t.Context(), pat, q, nil)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("ConditionalCreate: %v, want %d", err, want)
		}
	}
	if _, err := e.c.ConditionalCreate(t.Context(), pat, q, nil); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("several matches: err = %v", err)
	}
	if _, err := e.c.ConditionalCreate(t.Context(), pat, nil, nil); err == nil {
		t.Error("ConditionalCreate without parameters succeeded")
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("PUT /Patient/p1", func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("If-Match") {
		case `W/"2"`, "":
			w.Header().Set("ETag", `W/"3"`)
			writeJSON(w, 200, `{"resourceType":"Patient","id":"p1","active":true}`)
		default:
			writeJSON(w, http.StatusPreconditionFailed, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict","diagnostics":"version mismatch"}]}`)
		}
	})
	active := true
	id := "p1"
	var got fhir.Patient
	resp, err := e.c.Update(t.Context(), &fhir.Patient{Id: &id, Active: &active}, "2", &got)
	if err != nil || resp.VersionID != "3" || !*got.Active {
		t.Fatalf("Update: %v, version %q", err, resp.VersionID)
	}
	if _, err := e.c.Update(t.Context(), fhir.Patient{Id: &id}, "1", nil); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("stale version: err = %v", err)
	}
	if _, err := e.c.Update(t.Context(), fhir.Patient{Id: &id}, "", nil); err != nil {
		t.Errorf("unconditional update: %v", err)
	}
	if _, err := e.c.Update(t.Context(), fhir.Patient{}, "", nil); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("no id: err = %v", err)
	}
	if _, err := e.c.Update(t.Context(), fhir.Patient{Id: &id}, `2" , W/"3`, nil); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("header injection in version: err = %v", err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("DELETE /Patient/p1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	resp, err := e.c.Delete(t.Context(), "Patient", "p1")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.c.Delete(t.Context(), "Patient", ""); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("Delete without id: err = %v (a type-level DELETE would be a conditional delete of everything)", err)
	}
}

func TestPatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("PATCH /Patient/p1", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", MediaTypeJSONPatch)
		testHeader(t, r, "If-Match", `W/"5"`)
		testJSONBody(t, r, `[{"op":"replace","path":"/active","value":false},{"op":"remove","path":"/telecom/0"},{"op":"add","path":"/deceasedBoolean","value":null}]`)
		writeJSON(w, 200, `{"resourceType":"Patient","id":"p1","active":false}`)
	})
	ops := []PatchOp{
		{Op: "replace", Path: "/active", Value: false},
		{Op: "remove", Path: "/telecom/0"},
		{Op: "add", Path: "/deceasedBoolean", Value: json.RawMessage("null")},
	}
	var p fhir.Patient
	if _, err := e.c.Patch(t.Context(), "Patient", "p1", ops, "5", &p); err != nil || *p.Active {
		t.Fatalf("Patch: %v", err)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	e := setup(t)
	hist := `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Patient","id":"p1"}}]}`
	for _, p := range []string{"GET /_history", "GET /Patient/_history", "GET /Patient/p1/_history"} {
		e.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			testHeader(t, r, "Accept", MediaTypeFHIRJSON)
			if r.URL.Query().Get("_count") != "1" {
				t.Errorf("%s: query %q", p, r.URL.RawQuery)
			}
			writeJSON(w, 200, hist)
		})
	}
	for _, lv := range [][2]string{{"", ""}, {"Patient", ""}, {"Patient", "p1"}} {
		b, _, err := e.c.History(t.Context(), lv[0], lv[1], url.Values{"_count": {"1"}})
		if err != nil || b.Type != fhir.BundleTypeHistory || len(b.Entry) != 1 {
			t.Errorf("History(%q, %q): %v", lv[0], lv[1], err)
		}
	}
	if _, _, err := e.c.History(t.Context(), "", "p1", nil); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("id without type: err = %v", err)
	}
}

func TestBatchAndTransaction(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		var b fhir.Bundle
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Error(err)
		}
		out := fhir.Bundle{Type: fhir.BundleTypeBatchResponse}
		if b.Type == fhir.BundleTypeTransaction {
			out.Type = fhir.BundleTypeTransactionResponse
		}
		for range b.Entry {
			out.Entry = append(out.Entry, fhir.BundleEntry{Response: &fhir.BundleEntryResponse{Status: "201 Created"}})
		}
		body, _ := json.Marshal(out)
		writeJSON(w, 200, string(body))
	})
	in := &fhir.Bundle{Type: fhir.BundleTypeCollection, Entry: []fhir.BundleEntry{{
		Resource: json.RawMessage(`{"resourceType":"Patient"}`),
		Request:  &fhir.BundleEntryRequest{Method: fhir.HTTPVerbPOST, Url: "Patient"},
	}}}
	out, _, err := e.c.Batch(t.Context(), in)
	if err != nil || out.Type != fhir.BundleTypeBatchResponse || len(out.Entry) != 1 || out.Entry[0].Response.Status != "201 Created" {
		t.Fatalf("Batch: %v %+v", err, out)
	}
	out, _, err = e.c.Transaction(t.Context(), in)
	if err != nil || out.Type != fhir.BundleTypeTransactionResponse {
		t.Fatalf("Transaction: %v", err)
	}
	if in.Type != fhir.BundleTypeCollection {
		t.Error("Batch changed the caller's Bundle")
	}
}

func TestOperation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/p1/$everything", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("_type") != "Observation" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		writeJSON(w, 200, `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o"}}]}`)
	})
	e.mux.HandleFunc("POST /ValueSet/$validate-code", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "Content-Type", MediaTypeFHIRJSON)
		testJSONBody(t, r, `{"resourceType":"Parameters","parameter":[{"name":"code","valueCode":"8867-4"}]}`)
		writeJSON(w, 200, `{"resourceType":"Parameters","parameter":[{"name":"result","valueBoolean":true}]}`)
	})
	e.mux.HandleFunc("GET /$meta", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Parameters"}`)
	})
	b, _, err := e.c.Everything(t.Context(), "p1", url.Values{"_type": {"Observation"}})
	if err != nil || len(b.Entry) != 1 {
		t.Fatalf("Everything: %v", err)
	}
	code := "8867-4"
	var out fhir.Parameters
	if _, err := e.c.Operation(t.Context(), "ValueSet", "", "$validate-code",
		&fhir.Parameters{Parameter: []fhir.ParametersParameter{{Name: "code", ValueCode: &code}}}, &out); err != nil {
		t.Fatal(err)
	}
	if !*out.Parameter[0].ValueBoolean {
		t.Errorf("Parameters = %+v", out)
	}
	if _, err := e.c.Operation(t.Context(), "", "", "meta", nil, &out); err != nil {
		t.Errorf("system-level operation: %v", err)
	}
	for _, bad := range []string{"", "$", "../x", "$a/b", "$a?b=1", "$1x"} {
		if _, err := e.c.Operation(t.Context(), "Patient", "", bad, nil, nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Operation(%q): err = %v", bad, err)
		}
	}
}

// API-05: ids and types are validated; nothing reaches the server for a bad one.
func TestInvalidIDsNeverSent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var n atomic.Int64
	e.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { n.Add(1); writeJSON(w, 200, `{}`) })
	ids := []string{"", "a/b", "..", ".", "a?b=1", "a#b", "a b", "%2e%2e", "a\nb", strings.Repeat("x", 65), "ü"}
	for _, id := range ids {
		if _, err := e.c.Read(t.Context(), "Patient", id, nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Read(Patient, %q): err = %v", id, err)
		}
		if _, err := e.c.VRead(t.Context(), "Patient", "1", id, nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("VRead(Patient, 1, %q): err = %v", id, err)
		}
	}
	for _, typ := range []string{"", "patient", "Patient/1", "../Patient", "Pat ient", "Patient?x"} {
		if _, err := e.c.Read(t.Context(), typ, "1", nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Read(%q, 1): err = %v", typ, err)
		}
		if _, _, err := e.c.Search(t.Context(), typ+"x", nil); typ != "" && !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Search(%q): err = %v", typ+"x", err)
		}
	}
	if n.Load() != 0 {
		t.Errorf("%d requests reached the server", n.Load())
	}
}

func TestResourceTypesAndDecodeResource(t *testing.T) {
	t.Parallel()
	types := ResourceTypes()
	if len(types) != 146 || types[0] != "Account" || !isResourceType("Patient") || isResourceType("Resource") {
		t.Fatalf("ResourceTypes() = %d types, first %q", len(types), types[0])
	}
	for _, name := range types {
		v, err := NewResource(name)
		if err != nil || modelName(v) != name {
			t.Errorf("NewResource(%q) = %T, %v", name, v, err)
		}
	}
	v, err := DecodeResource(fixture(t, "patient-contained.json"))
	if p, ok := v.(*fhir.Patient); err != nil || !ok || *p.Id != "example-contained" {
		t.Fatalf("DecodeResource = %T %v", v, err)
	}
	_, err = DecodeResource([]byte(`{"resourceType":"Spaceship","id":"1"}`))
	if !errors.Is(err, ErrUnknownResourceType) || !strings.Contains(err.Error(), `"Spaceship"`) {
		t.Errorf("unknown type: err = %v", err)
	}
	if _, err := DecodeResource([]byte(`{"resourceType":"Patient","gender":"diverse"}`)); err == nil {
		t.Error("unknown code accepted")
	}
}

// The raw path checks the bytes are JSON (a truncated body is an error, not a short resource).
func TestReadRawTruncated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.mux.HandleFunc("GET /Patient/trunc", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"resourceType":"Patient","id":"trunc","name":[{"fam`)
	})
	raw, _, err := e.c.ReadRaw(t.Context(), "Patient", "trunc")
	if !errors.Is(err, ErrMalformedResponse) || raw != nil {
		t.Errorf("ReadRaw of truncated JSON = %q, %v", raw, err)
	}
}

func TestScanResourceType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`{"resourceType":"Bundle","entry":[]}`, "Bundle", true},
		{" \n{ \"resourceType\" : \"Patient\" }", "Patient", true},
		{`{"id":"x","meta":{"resourceType":"Nope","a":[1,{"b":"}"}]},"n":1.5e3,"t":true,"s":"a\"b","resourceType":"Observation"}`, "Observation", true},
		{`{"id":"x","total":5}`, "", false},
		{`{"resource\u0054ype":"Patient"}`, "", false},
		{`{"resourceType":"Pat\u0069ent"}`, "", false},
		{`{"id":"x"`, "", false},
		{`["resourceType","Patient"]`, "", false},
		{`{"a":{"b":[}`, "", false},
		{``, "", false},
		// A repeated resourceType (in any case: the decoders fold case and keep the last) is left to
		// the full decode, so the check and the decode agree.
		{`{"resourceType":"Patient","id":"x","resourceType":"Observation"}`, "", false},
		{`{"resourceType":"Patient","RESOURCETYPE":"Observation"}`, "", false},
		{`{"resourcetype":"Observation","resourceType":"Patient"}`, "", false},
		{`{"resourceType":"Patient","n":[1,2],"resource\u0054ype":"Observation"}`, "", false},
	}
	for _, tt := range tests {
		got, ok := scanResourceType([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("scanResourceType(%s) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		// Whatever the scanner says, checkType agrees with a full decode.
		var h resourceHeader
		if err := json.Unmarshal([]byte(tt.in), &h); err == nil && h.ResourceType != "" {
			if err := checkType([]byte(tt.in), h.ResourceType); err != nil {
				t.Errorf("checkType(%s, %q) = %v", tt.in, h.ResourceType, err)
			}
		}
	}
}
