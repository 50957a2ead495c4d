package sandbox

import (
	"net/http"

	"github.com/smartfhir/smartfhir/smart"
)

// readOrSearch serves GET /fhir/{type}/{id}, where "_search" as id is a search by GET.
func (f *fhirState) readOrSearch(w http.ResponseWriter, r *http.Request, g *Grant) {
	if r.PathValue("id") == "_search" {
		f.search(w, r, g)
		return
	}
	f.read(w, r, g)
}

// read serves GET /fhir/{type}/{id}: 404 for an unknown id, 403 when the grant's scopes do not
// reach the resource (another patient's compartment, or outside a granular scope) (SBX-09).
func (f *fhirState) read(w http.ResponseWriter, r *http.Request, g *Grant) {
	t, acc, ok := f.typeAccess(w, r, g, smart.PermRead, "reading")
	if !ok {
		return
	}
	id := r.PathValue("id")
	rec, ok := f.data.find(t, id)
	if !ok {
		writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", t.String() + "/" + quoteText(id) + " is not known"})
		return
	}
	if !acc.allows(&rec) {
		forbidden(w, t.String()+"/"+id+" is outside the granted scopes")
		return
	}
	w.Header().Set("ETag", `W/"1"`)
	w.Header().Set("Last-Modified", rec.lastUpdated.UTC().Format(http.TimeFormat))
	f.respond(w, g.ClientID, http.StatusOK, rec.json)
}
