package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
)

// The bytes of output files. Everything here is deterministic for a given job and file, so a
// resumed (Range) download continues the same bytes (BULK-32).

// contentFault distorts one line of a file (SBX-19).
type contentFault uint8

const (
	contentNormal      contentFault = iota
	contentHugeLine                 // file_huge_line: a valid resource line of more than 5 MB
	contentWrongType                // file_wrong_resource_type: a line of another resource type
	contentInvalidJSON              // file_invalid_json_line: a line that is not JSON
)

// contentOptions are the distortions of one file response.
type contentOptions struct {
	fault             contentFault
	crlf              bool // file_crlf: lines end in CRLF
	noTrailingNewline bool // file_no_trailing_newline
}

func (c contentOptions) normal() bool { return c == contentOptions{} }

// ndjsonWriter writes one resource per line and stops at the first write error.
type ndjsonWriter struct {
	w          io.Writer
	eol        string
	holdEOL    bool // write each EOL before the next line, so the last line has none
	distort    func([]byte) []byte
	distortAt  int
	n          int
	err        error
	eolPending bool
}

func (nw *ndjsonWriter) line(b []byte) bool {
	if nw.err != nil {
		return false
	}
	if nw.distort != nil && nw.n == nw.distortAt {
		b = nw.distort(b)
	}
	nw.n++
	if nw.eolPending {
		_, nw.err = io.WriteString(nw.w, nw.eol)
	}
	if nw.err == nil {
		_, nw.err = nw.w.Write(b)
	}
	if nw.err == nil {
		if nw.holdEOL {
			nw.eolPending = true
		} else {
			_, nw.err = io.WriteString(nw.w, nw.eol)
		}
	}
	return nw.err == nil
}

// writeFile writes the content of file o of job to dst.
func (f *fhirState) writeFile(dst io.Writer, job *exportJob, o *outputFile, c contentOptions) error {
	nw := &ndjsonWriter{w: dst, eol: "\n", holdEOL: c.noTrailingNewline}
	if c.crlf {
		nw.eol = "\r\n"
	}
	if o.kind == fileOrganized {
		nw.distortAt = 1 // line 0 is a Parameters header
	}
	nw.distort = f.distortion(c.fault, o)
	switch o.kind {
	case fileErrors:
		for _, msg := range generationErrors {
			nw.line(outcomeJSON(issue{"error", "processing", msg}))
		}
	case fileDeleted:
		nw.line(deletedBundle(job))
	case fileOrganized:
		f.writeOrganized(nw, job, o)
	default:
		f.writeTyped(nw, job, o)
	}
	return nw.err
}

func (f *fhirState) writeTyped(nw *ndjsonWriter, job *exportJob, o *outputFile) {
	if !o.typ.inCompartment() {
		recs := f.data.shared(o.typ, true)
		for i := o.from; i < min(o.to, len(recs)); i++ {
			if job.keep(&recs[i]) && !nw.line(job.project(recs[i].json)) {
				return
			}
		}
		return
	}
	g := f.data.newGenerator(true)
	job.forPopulation(o.from, o.to, func(idx int) bool {
		recs := g.patient(idx, setOf(o.typ))
		for i := range recs {
			if job.keep(&recs[i]) && !nw.line(job.project(recs[i].json)) {
				return false
			}
		}
		return true
	})
}

// writeOrganized writes patient blocks: a Parameters header naming the patient, then the
// patient's resources (BULK-29).
func (f *fhirState) writeOrganized(nw *ndjsonWriter, job *exportJob, o *outputFile) {
	g := f.data.newGenerator(true)
	comp := job.compartmentTypes()
	job.forPopulation(o.from, o.to, func(idx int) bool {
		recs := g.patient(idx, comp)
		header := false
		for i := range recs {
			if !job.keep(&recs[i]) {
				continue
			}
			if !header {
				header = true
				if !nw.line(blockHeader(idx)) {
					return false
				}
			}
			if !nw.line(job.project(recs[i].json)) {
				return false
			}
		}
		return true
	})
}

func blockHeader(idx int) []byte {
	return []byte(`{"resourceType":"Parameters","parameter":[{"name":"header","valueReference":{"reference":"Patient/` +
		patientID(idx) + `"}}]}`)
}

// generationErrors are the OperationOutcomes of the error file (some_file_generation_failed).
var generationErrors = []string{
	"Observation export for Patient/pt-3 failed: the record is locked by another process",
	"Immunization export failed for 2 resources: invalid vaccine code in the source system",
	"DocumentReference export is not available: the document store timed out",
}

// deletedBundle lists resources deleted since _since: a transaction Bundle of DELETEs (BULK-28).
func deletedBundle(job *exportJob) []byte {
	j := jsonBuf{}
	j.obj("")
	j.str("resourceType", "Bundle")
	j.str("id", "deleted-since")
	j.obj("meta")
	j.instant("lastUpdated", job.created)
	j.end()
	j.str("type", "transaction")
	j.arr("entry")
	for _, t := range job.req.types {
		if idPrefix[t] == "" {
			continue
		}
		j.obj("")
		j.obj("request")
		j.str("method", "DELETE")
		j.str("url", t.String()+"/"+idPrefix[t]+"-deleted-1")
		j.end()
		j.end()
	}
	j.endArr()
	j.end()
	return j.b
}

// distortion returns the line rewrite of a content fault (nil for none).
func (f *fhirState) distortion(c contentFault, o *outputFile) func([]byte) []byte {
	switch c {
	case contentHugeLine:
		return hugeLine
	case contentWrongType:
		other := f.data.organizations[0].json
		if o.kind == fileResources && o.typ == rtOrganization {
			other = f.data.practitioners[0].json
		}
		return func([]byte) []byte { return other }
	case contentInvalidJSON:
		return func(b []byte) []byte { return b[:min(len(b), 40)] }
	}
	return nil
}

// hugeLine turns a resource into a valid one of more than 5 MB by giving it a large narrative.
func hugeLine(b []byte) []byte {
	const size = 5<<20 + 1
	var buf bytes.Buffer
	buf.Grow(len(b) + size + 128)
	buf.WriteString(`{"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">`)
	buf.WriteString(strings.Repeat("Lorem ipsum dolor sit amet. ", size/28+1))
	buf.WriteString(`</div>"},`)
	buf.Write(b[1:])
	return buf.Bytes()
}

// project applies _elements: only resourceType, id, meta and the listed elements remain, and meta
// gets the SUBSETTED tag.
func (j *exportJob) project(b []byte) []byte {
	if len(j.req.elements) == 0 {
		return b
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	var rt string
	_ = json.Unmarshal(m["resourceType"], &rt)
	out := map[string]json.RawMessage{}
	for k, v := range m {
		if k == "resourceType" || k == "id" || k == "meta" || j.wantsElement(rt, k) {
			out[k] = v
		}
	}
	var meta map[string]any
	_ = json.Unmarshal(m["meta"], &meta)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["tag"] = []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
		"code": "SUBSETTED", "display": "subsetted"}}
	out["meta"], _ = json.Marshal(meta)
	res, err := json.Marshal(out)
	if err != nil {
		return b
	}
	return res
}

// wantsElement reports whether _elements lists element of resource type rt ("name" or
// "Patient.name").
func (j *exportJob) wantsElement(rt, element string) bool {
	for _, e := range j.req.elements {
		if typ, el, ok := strings.Cut(e, "."); ok {
			if typ == rt && el == element {
				return true
			}
		} else if e == element {
			return true
		}
	}
	return false
}
