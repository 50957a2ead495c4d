package sandbox

import (
	"crypto/rand"
	"errors"
	"net/http"
	"strings"

	"github.com/smartfhir/smartfhir/smart"
)

// bulkKickoffFaults are the kick-off faults (SBX-16).
var bulkKickoffFaults = []string{
	"bulk_kickoff_429",               // 429 + Retry-After: another export is running
	"bulk_no_content_location",       // 202 without Content-Location
	"bulk_relative_content_location", // 202 with a relative Content-Location
	"bulk_foreign_content_location",  // 202 with a Content-Location on another origin
	"bulk_typefilter_400",            // 400 OperationOutcome when _typeFilter is used
	"bulk_ignore_typefilter",         // accept _typeFilter and ignore it (BULK-08)
	"bulk_strict_v1_headers",         // refuse a kick-off without Accept: application/fhir+json and Prefer: respond-async
}

// kickoff serves the three $export endpoints, GET and POST (BULK-01…11).
func (f *fhirState) kickoff(w http.ResponseWriter, r *http.Request) {
	f.s.incr("fhir_requests")
	g, ok := f.authenticate(w, r)
	if !ok {
		return
	}
	take := func(name string) bool { return f.s.takeFault(name, g.ClientID) }
	if (f.s.opts.Version == "v1" || take("bulk_strict_v1_headers")) && !strictHeaders(w, r) {
		return
	}
	if take("bulk_kickoff_429") {
		w.Header().Set("Retry-After", f.retryAfter("seconds"))
		writeOutcome(w, http.StatusTooManyRequests, issue{"error", "throttled", "another export is already running for this client"})
		return
	}
	req, ok := f.kickoffRequest(w, r, take)
	if !ok {
		return
	}
	job, err := f.newJob(g, req, preferLenient(r))
	var denied *accessDenied
	switch {
	case errors.As(err, &denied):
		forbidden(w, denied.msg)
		return
	case err != nil:
		writeParamError(w, err)
		return
	}
	job.separate = preferSeparateStatus(r) || take("bulk_separate_export_status")
	if !f.bulk.add(job, f.s.Now()) {
		w.Header().Set("Retry-After", "60")
		writeOutcome(w, http.StatusTooManyRequests, issue{"error", "throttled", "too many export jobs; delete finished ones"})
		return
	}
	f.acceptKickoff(w, r, job, take)
}

// kickoffRequest parses and validates the kick-off request; it answers 400 or 404 itself.
func (f *fhirState) kickoffRequest(w http.ResponseWriter, r *http.Request, take func(string) bool) (exportRequest, bool) {
	level, group := exportLevelOf(r)
	if level == levelGroup && !knownGroup(group) {
		writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "Group/" + quoteText(group) + " is not known"})
		return exportRequest{}, false
	}
	params, err := kickoffValues(r)
	if err == nil {
		err = f.asKickoffParams(params)
	}
	var req exportRequest
	if err == nil {
		req, err = f.data.parseExport(level, params, preferLenient(r))
	}
	if err == nil && req.hasFilters && take("bulk_typefilter_400") {
		err = unsupportedParam("_typeFilter", "this server does not support _typeFilter")
	}
	if err != nil {
		writeParamError(w, err)
		return req, false
	}
	if take("bulk_ignore_typefilter") {
		req.filters = nil
	}
	req.group = group
	req.url = f.s.Origin(r) + r.URL.Path
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		req.url += "?" + r.URL.RawQuery
	}
	return req, true
}

// acceptKickoff answers 202 with the status URL in Content-Location (BULK-10), or as a
// Content-Location fault dictates.
func (f *fhirState) acceptKickoff(w http.ResponseWriter, r *http.Request, job *exportJob, take func(string) bool) {
	path := "/bulk/status/" + job.id
	switch {
	case take("bulk_no_content_location"):
	case take("bulk_relative_content_location"):
		w.Header().Set("Content-Location", path)
	case take("bulk_foreign_content_location"):
		w.Header().Set("Content-Location", f.foreignOrigin(r)+path)
	default:
		w.Header().Set("Content-Location", f.s.Origin(r)+path)
	}
	if job.separate {
		w.Header().Set("Preference-Applied", "respond-async, separate-export-status")
	}
	writeOutcome(w, http.StatusAccepted, issue{"information", "informational", "export job accepted"})
}

// strictHeaders enforces the v1 kick-off headers (BULK-02).
func strictHeaders(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Accept") != mediaFHIRJSON {
		writeOutcome(w, http.StatusBadRequest, issue{"error", "invalid", "the kick-off request needs Accept: application/fhir+json"})
		return false
	}
	if !preferHas(r, "respond-async") {
		writeOutcome(w, http.StatusBadRequest, issue{"error", "invalid", "the kick-off request needs Prefer: respond-async"})
		return false
	}
	return true
}

func preferSeparateStatus(r *http.Request) bool { return preferHas(r, "separate-export-status") }

// preferHas reports whether a Prefer header lists token.
func preferHas(r *http.Request, token string) bool {
	for _, v := range r.Header.Values("Prefer") {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

func exportLevelOf(r *http.Request) (exportLevel, string) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/fhir/Group/"):
		return levelGroup, r.PathValue("id")
	case strings.HasPrefix(r.URL.Path, "/fhir/Patient/"):
		return levelPatient, ""
	}
	return levelSystem, ""
}

// accessDenied is a kick-off the token's scopes do not allow (403).
type accessDenied struct{ msg string }

func (e *accessDenied) Error() string { return "sandbox: " + e.msg }

// newJob decides the exported types and the access to each (SBX-09 applies to exports too):
// a type requested with _type must be readable with the token's scopes (else *accessDenied);
// without _type, every readable type of the level is exported. Patient and Group exports cover
// the patient compartment types only (another type in _type is a *paramError).
func (f *fhirState) newJob(g *Grant, req exportRequest, lenient bool) (*exportJob, error) {
	candidates := req.types
	if candidates == nil {
		candidates = allTypes.types()
	}
	job := &exportJob{id: rand.Text(), clientID: g.ClientID, req: req, access: map[rtype]access{},
		created: f.s.Now(), cfg: f.config()}
	var types []rtype
	for _, t := range candidates {
		if req.level != levelSystem && !t.inCompartment() {
			if req.types != nil && !lenient {
				return nil, unsupportedParam("_type", t.String()+" is not in the Patient compartment; use a system-level export")
			}
			continue
		}
		acc := f.access(g, t, smart.PermRead)
		if len(acc) == 0 {
			if req.types != nil {
				return nil, &accessDenied{"no granted scope allows reading " + t.String()}
			}
			continue
		}
		job.access[t] = acc
		types = append(types, t)
	}
	if len(types) == 0 {
		return nil, &accessDenied{"no granted scope allows exporting any resource type"}
	}
	job.req.types = types
	job.ready = job.created.Add(max(job.cfg.ExportDuration, 0))
	job.population = f.population(job)
	return job, nil
}
