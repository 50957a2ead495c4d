package sandbox

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// generator turns (seed, patient index) into records. It reuses its buffers: the records it
// returns, and the JSON they point to, are valid until its next call. A generator is not safe for
// concurrent use; make one per goroutine (they are cheap).
type generator struct {
	d                    *dataset
	encode               bool // write JSON (false: index fields only, for counting)
	j                    jsonBuf
	start                int // offset of the current record's JSON in j
	recs                 []record
	plan                 patientPlan
	planRS, vitals, labs *stream
}

func (d *dataset) newGenerator(encode bool) *generator {
	return &generator{d: d, encode: encode, planRS: newStream(), vitals: newStream(), labs: newStream()}
}

// stream is a seekable random stream: PCG seeded by (data set seed, index, section). Each patient
// draws from independent streams per section, so generating only some resource types yields
// exactly the same resources as generating all of them.
type stream struct {
	pcg rand.PCG
	*rand.Rand
}

const (
	secPlan = iota
	secVitals
	secLabs
	secPractitioner
	secOrganization
)

func newStream() *stream {
	s := &stream{}
	s.Rand = rand.New(&s.pcg)
	return s
}

// at reseeds s for (index, section) of data set d and returns it.
func (s *stream) at(d *dataset, idx, section int) *stream {
	s.pcg.Seed(d.seed, uint64(idx)<<4|uint64(section))
	return s
}

// patientPlan is the skeleton of one patient's record: demographics and the timeline every
// resource is drawn from. Planning is cheap (no JSON), so Patients() plans every patient.
type patientPlan struct {
	idx        int
	id         string
	female     bool
	given      []string
	family     string
	birth      time.Time
	street     string
	city       int
	phone      string
	updated    time.Time
	gp, org    int
	heightCm   float64
	weightKg   float64
	encounters []encounterPlan
	conds      []condPlan
	allergies  []datedIndex
	vaccines   []datedIndex
}

type encounterPlan struct {
	kind       int // index into encounterTypes
	start, end time.Time
	prac       int
	labs       bool
}

type condPlan struct {
	def      conditionDef
	onset    time.Time
	resolved time.Time // zero when active
}

type datedIndex struct {
	i    int
	date time.Time
}

func (p *patientPlan) gender() string { return choose(p.female, "female", "male") }

func (p *patientPlan) displayName() string { return strings.Join(p.given, " ") + " " + p.family }

// hasDiabetes decides type 2 diabetes from the index alone, so the diabetes registry group needs
// no generation.
func hasDiabetes(idx int) bool { return idx%4 == 1 }

// planPatient draws patient idx's plan (reusing the generator's plan storage).
func (g *generator) planPatient(idx int) *patientPlan {
	r := g.planRS.at(g.d, idx, secPlan).Rand
	p := &g.plan
	*p = patientPlan{idx: idx, id: patientID(idx), given: p.given[:0], encounters: p.encounters[:0],
		conds: p.conds[:0], allergies: p.allergies[:0], vaccines: p.vaccines[:0]}
	p.female = r.IntN(2) == 0
	names := choose(p.female, givenFemale, givenMale)
	p.given = append(p.given, pick(r, names))
	if r.IntN(3) == 0 {
		p.given = append(p.given, pick(r, names))
	}
	p.family = pick(r, familyNames)
	p.birth = dataEpoch.AddDate(-18-r.IntN(70), 0, -r.IntN(365))
	p.street = strconv.Itoa(1+r.IntN(9999)) + " " + pick(r, streets)
	p.city = r.IntN(len(cities))
	p.phone = "555-" + pad(r.IntN(1000), 3) + "-" + pad(r.IntN(10000), 4)
	p.updated = dataEpoch.Add(-time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Second)
	p.gp = r.IntN(len(g.d.practitioners))
	p.org = r.IntN(len(orgNames))
	p.heightCm = clamp(normal(r, choose(p.female, 163.0, 177), 7), 140, 205)
	p.weightKg = clamp(normal(r, choose(p.female, 70.0, 85), 14), 42, 180)
	g.planConditions(p, r)
	g.planEncounters(p, r)
	g.planAllergiesAndVaccines(p, r)
	return p
}

func (g *generator) planConditions(p *patientPlan, r *rand.Rand) {
	adult := p.birth.AddDate(18, 0, 0)
	if hasDiabetes(p.idx) {
		p.conds = append(p.conds, condPlan{def: condDiabetes, onset: between(r, adult, dataEpoch.AddDate(-1, 0, 0))})
	}
	for _, i := range r.Perm(len(conditions))[:r.IntN(3)] {
		c := condPlan{def: conditions[i], onset: between(r, adult, dataEpoch.AddDate(0, -1, 0))}
		if c.def.acute {
			c.resolved = c.onset.AddDate(0, 0, 7+r.IntN(21))
		}
		p.conds = append(p.conds, c)
	}
}

func (g *generator) planEncounters(p *patientPlan, r *rand.Rand) {
	n := 2 + r.IntN(5)
	from := dataEpoch.AddDate(-3, 0, 0)
	span := dataEpoch.Sub(from) / time.Duration(n)
	for i := range n {
		day := from.Add(time.Duration(i)*span + time.Duration(r.Int64N(int64(span)))).Truncate(24 * time.Hour)
		start := day.Add(time.Duration(8*60+r.IntN(9*60)) * time.Minute)
		e := encounterPlan{kind: r.IntN(len(encounterTypes)), start: start,
			end: start.Add(time.Duration(15+r.IntN(46)) * time.Minute), prac: p.gp, labs: r.IntN(2) == 0}
		if r.IntN(4) == 0 {
			e.prac = r.IntN(len(g.d.practitioners))
		}
		p.encounters = append(p.encounters, e)
	}
}

func (g *generator) planAllergiesAndVaccines(p *patientPlan, r *rand.Rand) {
	for _, i := range r.Perm(len(allergies))[:r.IntN(3)] {
		p.allergies = append(p.allergies, datedIndex{i, between(r, p.birth.AddDate(2, 0, 0), dataEpoch)})
	}
	for _, i := range r.Perm(len(vaccines))[:1+r.IntN(4)] {
		p.vaccines = append(p.vaccines, datedIndex{i, between(r, dataEpoch.AddDate(-6, 0, 0), dataEpoch)})
	}
}

func pick(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }

func pad(n, width int) string {
	s := strconv.Itoa(n)
	return strings.Repeat("0", max(0, width-len(s))) + s
}

// choose returns a when c holds, else b.
func choose[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

func normal(r *rand.Rand, mu, sd float64) float64 { return mu + sd*r.NormFloat64() }

func clamp(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// round rounds v to prec decimals, so the index and the JSON agree.
func round(v float64, prec int) float64 {
	p := math.Pow10(prec)
	return math.Round(v*p) / p
}

// between returns a time uniformly in [a, b) truncated to the minute (a when b <= a).
func between(r *rand.Rand, a, b time.Time) time.Time {
	if !b.After(a) {
		return a
	}
	return a.Add(time.Duration(r.Int64N(int64(b.Sub(a))))).Truncate(time.Minute)
}
