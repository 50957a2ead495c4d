package sandbox

import "slices"

// FaultNames lists every fault name the sandbox honours. Each half of the sandbox owns its list:
// authFaultNames (auth*.go) and fhirFaultNames (fhir*.go / bulk*.go).
func FaultNames() []string {
	out := slices.Concat(authFaultNames, fhirFaultNames, asFaultNames)
	slices.Sort(out)
	return out
}

func knownFault(name string) bool { return slices.Contains(FaultNames(), name) }
