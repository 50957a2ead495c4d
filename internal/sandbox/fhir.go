package sandbox

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/smartfhir/smartfhir/smart"
)

// fhirState is the FHIR half of the sandbox: the synthetic data, the REST API under /fhir and
// Bulk Data export under /fhir/$export and /bulk.
type fhirState struct {
	s        *Server
	data     *dataset
	bulk     bulkState
	settings atomic.Pointer[FHIRSettings]
	bomb     struct {
		once   sync.Once
		member []byte
	}
}

func newFHIRState(s *Server) (*fhirState, error) {
	f := &fhirState{s: s, data: newDataset(s.opts.Seed, s.opts.Patients)}
	f.bulk.jobs = map[string]*exportJob{}
	f.settings.Store(&FHIRSettings{})
	return f, nil
}

// routes mounts the FHIR API and the bulk endpoints. The authorization half owns
// /fhir/.well-known/*; its literal patterns win over the wildcards here.
func (f *fhirState) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /fhir/metadata", f.metadata)
	mux.HandleFunc("GET /fhir/{type}", f.api(f.search))
	mux.HandleFunc("POST /fhir/{type}/_search", f.api(f.search))
	mux.HandleFunc("GET /fhir/{type}/{id}", f.api(f.readOrSearch))
	for _, path := range []string{"/fhir/$export", "/fhir/Patient/$export", "/fhir/Group/{id}/$export"} {
		mux.HandleFunc("GET "+path, f.kickoff)
		mux.HandleFunc("POST "+path, f.kickoff)
	}
	mux.HandleFunc("GET /bulk/status/{job}", f.status)
	mux.HandleFunc("DELETE /bulk/status/{job}", f.cancel)
	mux.HandleFunc("GET /bulk/files/{job}/{name}", f.file)
	mux.HandleFunc("/fhir/", f.unsupported)
}

// api wraps a FHIR REST handler: it counts the request, requires a live bearer token (401
// otherwise), negotiates the format and applies the armed API faults (SBX-15).
func (f *fhirState) api(h func(http.ResponseWriter, *http.Request, *Grant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.s.incr("fhir_requests")
		g, ok := f.authenticate(w, r)
		if !ok || !negotiate(w, r) || f.asRateLimited(w, g.ClientID) || f.apiFault(w, r, g.ClientID) {
			return
		}
		h(w, r, g)
	}
}

// unsupported answers every other /fhir request with an OperationOutcome.
func (f *fhirState) unsupported(w http.ResponseWriter, r *http.Request) {
	f.s.incr("fhir_requests")
	if f.asUnsupportedOperation(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeOutcome(w, http.StatusMethodNotAllowed, issue{"error", "not-supported",
			"the sandbox FHIR server is read-only: " + r.Method + " is not supported"})
		return
	}
	writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "no such FHIR endpoint"})
}

// typeAccess resolves the {type} path value and the grant's access to it for perm (verb names
// the interaction in the 403). It writes 404 for a type the sandbox does not serve and 403 when no
// granted scope reaches the type.
func (f *fhirState) typeAccess(w http.ResponseWriter, r *http.Request, g *Grant, perm smart.Perm,
	verb string) (rtype, access, bool) {
	t, ok := typeByName(r.PathValue("type"))
	if !ok {
		writeOutcome(w, http.StatusNotFound, issue{"error", "not-supported",
			"resource type " + quoteText(r.PathValue("type")) + " is not supported by this server"})
		return t, nil, false
	}
	acc := f.access(g, t, perm)
	if len(acc) == 0 {
		forbidden(w, "no granted scope allows "+verb+" "+t.String())
		return t, nil, false
	}
	return t, acc, true
}
