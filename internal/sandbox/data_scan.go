package sandbox

// position is where a scan resumes: a patient index and an offset into that patient's records of
// the scanned type. For types outside patient compartments, patient is 0 and n indexes the list.
type position struct{ patient, n int }

// scan calls yield for every record of type t from position from on, in a stable order, visiting
// only the candidate patients (sorted; nil means all). It stops when yield returns false. The
// records (and their JSON) are valid only during the yield call.
func (d *dataset) scan(g *generator, t rtype, from position, candidates []int, yield func(position, *record) bool) {
	if !t.inCompartment() {
		recs := d.shared(t, g.encode)
		for n := from.n; n < len(recs); n++ {
			if !yield(position{0, n}, &recs[n]) {
				return
			}
		}
		return
	}
	visit := func(idx int) bool {
		recs := g.patient(idx, setOf(t))
		start := 0
		if idx == from.patient {
			start = from.n
		}
		for n := start; n < len(recs); n++ {
			if !yield(position{idx, n}, &recs[n]) {
				return false
			}
		}
		return true
	}
	if candidates != nil {
		for _, idx := range candidates {
			if idx >= from.patient && idx < d.patients && !visit(idx) {
				return
			}
		}
		return
	}
	for idx := from.patient; idx < d.patients; idx++ {
		if !visit(idx) {
			return
		}
	}
}

// find returns the resource t/id with its own copy of the JSON.
func (d *dataset) find(t rtype, id string) (record, bool) {
	var candidates []int
	if t.inCompartment() {
		idx, ok := d.parsePatientIndex(t, id)
		if !ok {
			return record{}, false
		}
		candidates = []int{idx}
	}
	var found record
	ok := false
	d.scan(d.newGenerator(true), t, position{}, candidates, func(_ position, r *record) bool {
		if r.id == id {
			found, ok = r.clone(), true
		}
		return !ok
	})
	return found, ok
}
