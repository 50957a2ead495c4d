package fhirclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/fhirclient"
)

func ExampleNextLink() {
	var b fhir.Bundle
	if err := json.Unmarshal([]byte(`{"resourceType":"Bundle","type":"searchset","link":[
		{"relation":"self","url":"https://ehr.example.org/fhir/Observation?patient=123"},
		{"relation":"next","url":"https://ehr.example.org/fhir/Observation?patient=123&_page=2"}]}`), &b); err != nil {
		log.Fatal(err)
	}
	fmt.Println(fhirclient.NextLink(&b))
	fmt.Printf("%q\n", fhirclient.NextLink(&fhir.Bundle{}))
	// Output:
	// https://ehr.example.org/fhir/Observation?patient=123&_page=2
	// ""
}

// Building a search URL: paths are relative to the base, and query values are encoded.
func ExampleClient_NewRequest() {
	c, err := fhirclient.NewClient("https://ehr.example.org/fhir/r4", nil)
	if err != nil {
		log.Fatal(err)
	}
	q := url.Values{"patient": {"123"}, "code": {"http://loinc.org|8867-4"}, "_count": {"50"}}
	req, err := c.NewRequest(context.Background(), http.MethodGet, "Observation?"+q.Encode(), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(req.URL)
	fmt.Println(req.Header.Get("Accept"))

	_, err = c.NewRequest(context.Background(), http.MethodGet, "../admin", nil)
	fmt.Println(errors.Is(err, fhirclient.ErrInvalidPath))
	_, err = c.NewRequest(context.Background(), http.MethodGet, "https://evil.example/fhir/Patient", nil)
	fmt.Println(err)
	// Output:
	// https://ehr.example.org/fhir/r4/Observation?_count=50&code=http%3A%2F%2Floinc.org%7C8867-4&patient=123
	// application/fhir+json
	// true
	// fhirclient: request URL to origin https://evil.example:443 refused: not the FHIR base origin https://ehr.example.org:443 nor a trusted origin (the access token would leak)
}

// CheckResponse turns a FHIR error answer into an *Error that lists the OperationOutcome's issues.
func ExampleCheckResponse() {
	req, _ := http.NewRequest(http.MethodGet, "https://ehr.example.org/fhir/Patient/nope?_elements=name", nil)
	resp := &http.Response{
		StatusCode: http.StatusNotFound,
		Status:     "404 Not Found",
		Header:     http.Header{"Content-Type": {"application/fhir+json"}},
		Request:    req,
		Body: io.NopCloser(strings.NewReader(`{"resourceType":"OperationOutcome","issue":[
			{"severity":"error","code":"not-found","diagnostics":"Patient/nope is not known"},
			{"severity":"information","code":"informational","diagnostics":"search the Patient list instead"}]}`)),
	}
	err := fhirclient.CheckResponse(resp)
	fmt.Println(err)
	fmt.Println(errors.Is(err, fhirclient.ErrNotFound))
	// Output:
	// fhirclient: GET https://ehr.example.org/fhir/Patient/nope: 404 Not Found: error not-found: Patient/nope is not known; information informational: search the Patient list instead
	// true
}

func ExampleDecodeResource() {
	v, err := fhirclient.DecodeResource([]byte(`{"resourceType":"Observation","id":"hr","status":"final",
		"code":{"text":"Heart rate"},"valueQuantity":{"value":72,"unit":"/min"}}`))
	if err != nil {
		log.Fatal(err)
	}
	switch r := v.(type) {
	case *fhir.Observation:
		fmt.Println(*r.Code.Text, r.ValueQuantity.Value, *r.ValueQuantity.Unit)
	}
	_, err = fhirclient.DecodeResource([]byte(`{"resourceType":"Starship"}`))
	fmt.Println(err)
	// Output:
	// Heart rate 72 /min
	// fhirclient: unknown resourceType "Starship" (not a FHIR R4 resource type)
}

// Reading every Observation of a patient across pages, with an authenticated *http.Client (from
// smart.NewTransport, backend.Config.Client or oauth2.Config.Client).
func ExampleClient_SearchIter() {
	var hc *http.Client // adds Authorization: Bearer … for the FHIR base origin only
	c, err := fhirclient.NewClient("https://ehr.example.org/fhir/r4", hc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for entry, err := range c.SearchIter(ctx, "Observation", url.Values{"patient": {"123"}, "_count": {"200"}}) {
		if err != nil {
			log.Fatal(err) // *fhirclient.Error, *fhirclient.OriginError, ErrNextLinkRepeats, …
		}
		v, err := fhirclient.DecodeResource(entry.Resource)
		if err != nil {
			continue // e.g. an unknown code; entry.Resource still holds the raw JSON
		}
		if o, ok := v.(*fhir.Observation); ok {
			fmt.Println(o.Status)
		}
	}
}

func ExampleClient_Read() {
	c, err := fhirclient.NewClient("https://ehr.example.org/fhir/r4", nil)
	if err != nil {
		log.Fatal(err)
	}
	var p fhir.Patient
	resp, err := c.Read(context.Background(), "Patient", "123", &p)
	switch {
	case errors.Is(err, fhirclient.ErrNotFound), errors.Is(err, fhirclient.ErrGone):
		fmt.Println("no such patient")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(*p.Id, "version", resp.VersionID)
	}
}
