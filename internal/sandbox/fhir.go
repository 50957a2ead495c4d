package sandbox

import "net/http"

// STUB: the FHIR/bulk/data helper replaces this file.

// PatientSummary and PractitionerSummary feed the launch simulator and the patient picker.
type PatientSummary struct{ ID, Name, BirthDate, Gender string }

type PractitionerSummary struct{ ID, Name string }

var fhirFaultNames = []string{}

type fhirState struct{}

func newFHIRState(s *Server) (*fhirState, error) { return &fhirState{}, nil }

func (f *fhirState) routes(mux *http.ServeMux) {}

// Patients lists the generated patients in a stable order.
func (s *Server) Patients() []PatientSummary { return nil }

// Practitioners lists the generated practitioners in a stable order.
func (s *Server) Practitioners() []PractitionerSummary { return nil }
