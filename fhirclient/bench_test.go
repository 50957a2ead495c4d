package fhirclient

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// BenchmarkSearchIter pages through 10,000 Observations (20 pages of 500) served by a local httptest
// server, decoding every entry into fhir.Observation; it reports resources/s. The server writes
// precomputed pages, so the figure is the client's cost plus loopback HTTP.
func BenchmarkSearchIter(b *testing.B) {
	const pages, perPage = 20, 500
	e := setup(b)
	bodies := make([][]byte, pages)
	for i := range bodies {
		next := ""
		if i+1 < pages {
			next = "Observation?_count=500&page=" + strconv.Itoa(i+1)
		}
		bodies[i] = observationBundle(perPage, next)
	}
	e.mux.HandleFunc("GET /Observation", func(w http.ResponseWriter, r *http.Request) {
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		w.Header().Set("Content-Type", MediaTypeFHIRJSON)
		w.Write(bodies[p])
	})
	q := url.Values{"_count": {"500"}}
	b.SetBytes(int64(len(bodies[0]) * pages))
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		n := 0
		for entry, err := range e.c.SearchIter(b.Context(), "Observation", q) {
			if err != nil {
				b.Fatal(err)
			}
			var o fhir.Observation
			if err := unmarshal(entry.Resource, &o); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != pages*perPage {
			b.Fatalf("resources = %d", n)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
}
