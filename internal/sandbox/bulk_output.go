package sandbox

import (
	"slices"
	"strconv"
)

// fileKind says what an output file holds.
type fileKind uint8

const (
	fileResources fileKind = iota // resources of one type
	fileOrganized                 // organizeOutputBy=Patient blocks (BULK-29)
	fileErrors                    // OperationOutcomes (some_file_generation_failed)
	fileDeleted                   // a transaction Bundle of DELETEs (_since given, BULK-28)
)

// outputFile is one file of the manifest. Files break at patient boundaries: a file covers the
// population's patients in [from, to) (for types outside compartments, records [from, to)).
type outputFile struct {
	name     string
	kind     fileKind
	typ      rtype
	from, to int
	count    int
}

// manifestType is the type member of the file's manifest entry.
func (o *outputFile) manifestType() string {
	switch o.kind {
	case fileErrors:
		return "OperationOutcome"
	case fileDeleted:
		return "Bundle"
	case fileOrganized:
		return ""
	}
	return o.typ.String()
}

// jobOutput is what a completed job's manifest lists.
type jobOutput struct {
	files   []outputFile // output, in type order
	errors  []outputFile // error
	deleted []outputFile // deleted
	noToken bool         // capability URLs (requiresAccessToken false)
	paged   bool         // manifest split into pages linked by next (BULK-21)
	// capability is the secret that capability URLs carry (?token=…, redacted from the request
	// log): the job id alone, which the status URL shows to anyone who sees it, must not open the
	// files without a token.
	capability string
}

func (o *jobOutput) file(name string) (*outputFile, bool) {
	for _, list := range [][]outputFile{o.files, o.errors, o.deleted} {
		for i := range list {
			if list[i].name == name {
				return &list[i], true
			}
		}
	}
	return nil, false
}

// keep reports whether r belongs to the export: _since/_until on meta.lastUpdated, _typeFilter
// (any query of the type) and the token's access.
func (j *exportJob) keep(r *record) bool {
	if !j.req.since.IsZero() && !r.lastUpdated.After(j.req.since) {
		return false
	}
	if !j.req.until.IsZero() && r.lastUpdated.After(j.req.until) {
		return false
	}
	if qs, ok := j.req.filters[r.typ]; ok && !slices.ContainsFunc(qs, func(q query) bool { return q.matches(r) }) {
		return false
	}
	return j.access[r.typ].allows(r)
}

// compartmentTypes returns the job's types inside patient compartments.
func (j *exportJob) compartmentTypes() typeSet {
	var s typeSet
	for _, t := range j.req.types {
		if t.inCompartment() {
			s |= setOf(t)
		}
	}
	return s
}

// forPopulation calls fn for each exported patient index in [from, to), in order, until fn
// returns false.
func (j *exportJob) forPopulation(from, to int, fn func(idx int) bool) {
	if j.population == nil {
		for idx := from; idx < to; idx++ {
			if !fn(idx) {
				return
			}
		}
		return
	}
	start, _ := slices.BinarySearch(j.population, from)
	for _, idx := range j.population[start:] {
		if idx >= to || !fn(idx) {
			return
		}
	}
}

// population combines the group's members, patient= and the token's compartments (nil: all).
func (f *fhirState) population(j *exportJob) []int {
	pop := j.req.patients
	if j.req.level == levelGroup && j.req.group != groupAll {
		members := []int{}
		for idx := range f.data.patients {
			if groupMember(j.req.group, idx) {
				members = append(members, idx)
			}
		}
		pop = intersectCandidates(pop, members)
	}
	var reach []int
	for _, acc := range j.access {
		c := acc.candidates()
		if c == nil {
			return pop
		}
		reach = append(reach, c...)
	}
	slices.Sort(reach)
	return intersectCandidates(pop, slices.Compact(reach))
}

// computeOutput runs the counting pass (no JSON) that decides the files and their counts.
func (f *fhirState) computeOutput(j *exportJob) *jobOutput {
	out := &jobOutput{}
	if j.req.organize {
		out.files = f.organizedFiles(j)
	} else {
		out.files = f.typedFiles(j)
	}
	if !j.req.since.IsZero() {
		out.deleted = []outputFile{{name: "deleted.ndjson", kind: fileDeleted, count: 1}}
	}
	f.asOutputNames(j, out)
	return out
}

// typedFiles splits each type's resources into files of about cfg.FileResources resources.
func (f *fhirState) typedFiles(j *exportJob) []outputFile {
	byType := map[rtype][]outputFile{}
	open := map[rtype]*outputFile{}
	g := f.data.newGenerator(false)
	comp := j.compartmentTypes()
	j.forPopulation(0, f.data.patients, func(idx int) bool {
		var counts [numTypes]int
		recs := g.patient(idx, comp)
		for i := range recs {
			if j.keep(&recs[i]) {
				counts[recs[i].typ]++
			}
		}
		for t, n := range counts {
			if n == 0 {
				continue
			}
			o := open[rtype(t)]
			if o == nil {
				o = &outputFile{kind: fileResources, typ: rtype(t), from: idx, to: f.data.patients}
				open[rtype(t)] = o
			}
			o.count += n
			if o.count >= j.cfg.FileResources {
				o.to = idx + 1
				byType[rtype(t)] = append(byType[rtype(t)], *o)
				open[rtype(t)] = nil
			}
		}
		return true
	})
	for t, o := range open {
		if o != nil {
			byType[t] = append(byType[t], *o)
		}
	}
	for _, t := range j.req.types {
		if t.inCompartment() {
			continue
		}
		recs := f.data.shared(t, false)
		o := outputFile{kind: fileResources, typ: t, to: len(recs)}
		for i := range recs {
			if j.keep(&recs[i]) {
				o.count++
			}
		}
		if o.count > 0 {
			byType[t] = []outputFile{o}
		}
	}
	var files []outputFile
	for _, t := range allTypes.types() {
		list := byType[t]
		for i := range list {
			list[i].name = fileName(t.String(), i, len(list))
		}
		files = append(files, list...)
	}
	return files
}

// organizedFiles splits the population into files of patient blocks (a Parameters header, then
// the patient's resources).
func (f *fhirState) organizedFiles(j *exportJob) []outputFile {
	var files []outputFile
	var o *outputFile
	g := f.data.newGenerator(false)
	comp := j.compartmentTypes()
	j.forPopulation(0, f.data.patients, func(idx int) bool {
		n := 0
		recs := g.patient(idx, comp)
		for i := range recs {
			if j.keep(&recs[i]) {
				n++
			}
		}
		if n == 0 {
			return true
		}
		if o == nil {
			o = &outputFile{kind: fileOrganized, from: idx, to: f.data.patients}
		}
		o.count += n + 1
		if o.count >= j.cfg.FileResources {
			o.to = idx + 1
			files = append(files, *o)
			o = nil
		}
		return true
	})
	if o != nil {
		files = append(files, *o)
	}
	for i := range files {
		files[i].name = fileName("patients", i, len(files))
	}
	return files
}

// fileName is "<base>.ndjson" for a single file, "<base>.<n>.ndjson" (from 1) for several.
func fileName(base string, i, n int) string {
	if n == 1 {
		return base + ".ndjson"
	}
	return base + "." + strconv.Itoa(i+1) + ".ndjson"
}
