package bulk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/fhirclient/bulk"
)

func ExampleValidType() {
	for _, s := range []string{"Patient", "MedicationRequest", "patient", "../etc", "Observation.1"} {
		fmt.Println(s, bulk.ValidType(s))
	}
	// Output:
	// Patient true
	// MedicationRequest true
	// patient false
	// ../etc false
	// Observation.1 false
}

func ExampleParseManifest() {
	m, err := bulk.ParseManifest([]byte(`{
		"transactionTime": "2024-01-01T00:00:00Z",
		"requiresAccessToken": false,
		"output": [{"type": "Patient", "url": "https://files.example.org/p1.ndjson?sig=abc", "count": 2}],
		"outcome": [{"url": "https://files.example.org/e1.ndjson"}]
	}`), false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.TransactionTime, m.RequiresAccessToken, m.Output[0].Type, *m.Output[0].Count, m.Error[0].Type)

	_, err = bulk.ParseManifest([]byte(`{"transactionTime":"2024-01-01T00:00:00Z","requiresAccessToken":true,
		"output":[{"type":"Patient","url":"file:///etc/passwd"}]}`), false)
	fmt.Println(err)
	// Output:
	// 2024-01-01T00:00:00Z false Patient 2 OperationOutcome
	// bulk: invalid manifest: output[0]: url: insecure or forbidden URL: scheme "file" is not allowed
}

func ExampleReadNDJSON() {
	in := "{\"resourceType\":\"Patient\",\"id\":\"a\"}\r\n\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n{\"resourceType\":\"Group\"}\n"
	for p, err := range bulk.Decode[fhir.Patient](bulk.ReadNDJSON(strings.NewReader(in), "Patient", "Patient.ndjson")) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(*p.Id)
	}
	// Output:
	// a
	// b
	// bulk: Patient.ndjson:4: invalid NDJSON line: resourceType "Group", want "Patient"
}

// The one-pass typed reader: the same checks and values as Decode over ReadNDJSON, faster.
func ExampleDecodeNDJSON() {
	in := "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"female\"}\n{\"resourceType\":\"Patient\",\"id\":\"b\",\"gender\":\"diverse\"}\n"
	for p, err := range bulk.DecodeNDJSON[fhir.Patient](strings.NewReader(in), "Patient", "Patient.ndjson") {
		if err != nil {
			fmt.Println(errors.Is(err, bulk.ErrInvalidLine), err)
			break
		}
		fmt.Println(*p.Id, p.Gender.Code())
	}
	// Output:
	// a female
	// true bulk: Patient.ndjson:2: invalid NDJSON line: unknown AdministrativeGender code `diverse`
}

// A whole export into a directory, resumable with Exporter.Resume. hc is the authenticated client,
// e.g. backend.Config.Client (SMART Backend Services).
func ExampleExporter() {
	var hc *http.Client // from backend.Config{…}.Client(ctx)
	c, err := bulk.NewClient("https://ehr.example.org/fhir", hc)
	if err != nil {
		log.Fatal(err)
	}
	x := &bulk.Exporter{Client: c, Dir: "export", Validate: true, OnEvent: func(e bulk.Event) {
		if e.Kind == bulk.EventStatus {
			log.Printf("in progress: %s (next poll in %.0fs)", e.Progress, e.WaitSeconds)
		}
	}}
	res, err := x.Start(context.Background(), bulk.ExportRequest{GroupID: "diabetes", Types: []string{"Patient", "Observation"}})
	if err != nil {
		log.Fatal(err) // the error says whether to resume
	}
	log.Printf("%d resources; next _since: %s", res.Resources, res.TransactionTime)
}

// The three steps by hand: kick-off, wait, and stream one file's resources.
func ExampleClient_Kickoff() {
	ctx := context.Background()
	c, err := bulk.NewClient("https://ehr.example.org/fhir", nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err := c.Kickoff(ctx, bulk.ExportRequest{Level: bulk.LevelPatient, Types: []string{"Condition"}})
	if err != nil {
		log.Fatal(err)
	}
	defer job.Cancel(ctx) // Epic allows one export per client: delete it when done
	m, err := job.Wait(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range m.Output {
		for c, err := range bulk.Decode[fhir.Condition](c.Resources(ctx, m, f)) {
			if err != nil {
				log.Fatal(err)
			}
			_ = c.Code
		}
	}
}

// Re-applying a _typeFilter on the client, for servers that ignore it (BULK-08).
func ExampleTypeFilter() {
	f, err := bulk.NewTypeFilter([]string{
		"Observation?category=vital-signs&date=ge2024-01-01",
		"Observation?patient=Patient/1", // a reference: not evaluated on the client
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cannot evaluate:", f.Unsupported())
	for _, line := range []string{
		`{"resourceType":"Observation","category":[{"coding":[{"code":"vital-signs"}]}],"effectiveDateTime":"2024-03-01T10:00:00Z"}`,
		`{"resourceType":"Observation","category":[{"coding":[{"code":"laboratory"}]}],"effectiveDateTime":"2024-03-01T10:00:00Z"}`,
		`{"resourceType":"Patient"}`,
	} {
		fmt.Println(f.Match([]byte(line)))
	}
	// Output:
	// cannot evaluate: [Observation.patient]
	// true true
	// true false
	// true true
}

func ExampleCapabilities_Check() {
	caps, err := bulk.ParseCapabilities([]byte(`{"resourceType":"CapabilityStatement","rest":[{"mode":"server",
		"operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}],
		"resource":[{"type":"Patient","operation":[{"name":"export","definition":"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}]}]}]}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(caps.Levels)
	_, err = caps.Check(bulk.ExportRequest{GroupID: "diabetes"})
	fmt.Println(err)
	// Output:
	// [system patient]
	// bulk: export not supported by the server: the server's CapabilityStatement declares no group-level export ([base]/Group/[id]/$export), only system, patient
}

func ExampleAttachmentURLs() {
	doc := `{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"application/pdf","url":"https://ehr.example.org/fhir/Binary/1"}}]}`
	fmt.Println(bulk.AttachmentURLs([]byte(doc)))
	// Output:
	// [https://ehr.example.org/fhir/Binary/1]
}

// Organised output (organizeOutputBy) read back as resource blocks, a block split across files
// reassembled (BULK-29).
func ExampleExporter_Blocks() {
	x := &bulk.Exporter{Dir: "export"} // a finished export with OrganizeOutputBy: "Patient"
	for b, err := range x.Blocks() {
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("%s: %d resources", b.Reference, len(b.Resources))
	}
}
