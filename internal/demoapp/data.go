package demoapp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/fhirclient"
)

// maxObservations bounds what one page load reads per category.
const maxObservations = 200

// patientView is what the patient page shows about the patient.
type patientView struct {
	ID, Name, Gender, BirthDate string
	Identifiers, Addresses      []string
	Telecom                     []string
}

// observation is one row of the vitals or labs table.
type observation struct {
	Code, Display, Value, Unit, Date string
	Number                           float64
	HasNumber                        bool
}

func loadPatient(ctx context.Context, fc *fhirclient.Client, id string) (*patientView, error) {
	var p fhir.Patient
	if _, err := fc.Read(ctx, "Patient", id, &p); err != nil {
		return nil, fmt.Errorf("reading Patient/%s: %w", id, err)
	}
	v := &patientView{ID: id, Name: humanName(p.Name)}
	if p.Gender != nil {
		v.Gender = p.Gender.Display()
	}
	if p.BirthDate != nil {
		v.BirthDate = *p.BirthDate
	}
	for _, idf := range p.Identifier {
		if idf.Value != nil {
			v.Identifiers = append(v.Identifiers, *idf.Value)
		}
	}
	for _, a := range p.Address {
		parts := slices.Clone(a.Line)
		for _, s := range []*string{a.City, a.State, a.PostalCode, a.Country} {
			if s != nil && *s != "" {
				parts = append(parts, *s)
			}
		}
		if len(parts) > 0 {
			v.Addresses = append(v.Addresses, strings.Join(parts, ", "))
		}
	}
	for _, t := range p.Telecom {
		if t.Value != nil {
			v.Telecom = append(v.Telecom, *t.Value)
		}
	}
	return v, nil
}

func humanName(names []fhir.HumanName) string {
	for _, n := range names {
		if n.Text != nil && *n.Text != "" {
			return *n.Text
		}
		parts := slices.Clone(n.Given)
		if n.Family != nil {
			parts = append(parts, *n.Family)
		}
		if len(parts) > 0 {
			return strings.Join(parts, " ")
		}
	}
	return "(no name)"
}

// loadObservations searches the patient's observations of one category, newest first.
func loadObservations(ctx context.Context, fc *fhirclient.Client, patient, category string) ([]observation, error) {
	q := url.Values{"patient": {patient}, "category": {category}, "_count": {"100"}}
	var out []observation
	for e, err := range fc.SearchIter(ctx, "Observation", q) {
		if err != nil {
			return out, fmt.Errorf("searching %s observations: %w", category, err)
		}
		if len(e.Resource) == 0 {
			continue
		}
		var o fhir.Observation
		if err := json.Unmarshal(e.Resource, &o); err != nil {
			continue
		}
		out = append(out, rows(&o)...)
		if len(out) >= maxObservations {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b observation) int { return strings.Compare(b.Date, a.Date) })
	return out, nil
}

// rows turns an observation into table rows: one, or one per component (blood pressure).
func rows(o *fhir.Observation) []observation {
	date := ""
	switch {
	case o.EffectiveDateTime != nil:
		date = *o.EffectiveDateTime
	case o.EffectiveInstant != nil:
		date = *o.EffectiveInstant
	case o.Issued != nil:
		date = *o.Issued
	}
	if len(o.Component) > 0 && o.ValueQuantity == nil {
		var out []observation
		for _, c := range o.Component {
			r := observation{Code: codeOf(c.Code), Display: display(c.Code), Date: date}
			setQuantity(&r, c.ValueQuantity)
			out = append(out, r)
		}
		return out
	}
	r := observation{Code: codeOf(o.Code), Display: display(o.Code), Date: date}
	switch {
	case o.ValueQuantity != nil:
		setQuantity(&r, o.ValueQuantity)
	case o.ValueString != nil:
		r.Value = *o.ValueString
	case o.ValueCodeableConcept != nil:
		r.Value = display(*o.ValueCodeableConcept)
	}
	return []observation{r}
}

func setQuantity(r *observation, q *fhir.Quantity) {
	if q == nil || q.Value == nil {
		return
	}
	r.Value = q.Value.String()
	if f, err := strconv.ParseFloat(r.Value, 64); err == nil {
		r.Number, r.HasNumber = f, true
	}
	if q.Unit != nil {
		r.Unit = *q.Unit
	} else if q.Code != nil {
		r.Unit = *q.Code
	}
}

func codeOf(c fhir.CodeableConcept) string {
	for _, cd := range c.Coding {
		if cd.Code != nil {
			return *cd.Code
		}
	}
	return display(c)
}

func display(c fhir.CodeableConcept) string {
	if c.Text != nil && *c.Text != "" {
		return *c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != nil && *cd.Display != "" {
			return *cd.Display
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != nil {
			return *cd.Code
		}
	}
	return "(unnamed)"
}

// latest keeps the newest row per code (rows are newest first).
func latest(rows []observation) []observation {
	seen := map[string]bool{}
	var out []observation
	for _, r := range rows {
		if !seen[r.Code] {
			seen[r.Code] = true
			out = append(out, r)
		}
	}
	return out
}
