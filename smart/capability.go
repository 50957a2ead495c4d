package smart

import "slices"

// Capability is a SMART capability string of the discovery document
// (https://hl7.org/fhir/smart-app-launch/conformance.html#capabilities). Other IGs add their own,
// HL7 ones as plain strings and others as full URIs; unknown capabilities are kept and ignored
// (DISC-08).
type Capability string

// The capabilities SMART App Launch 2.2 defines.
const (
	CapLaunchEHR                    Capability = "launch-ehr"
	CapLaunchStandalone             Capability = "launch-standalone"
	CapAuthorizePost                Capability = "authorize-post"
	CapClientPublic                 Capability = "client-public"
	CapClientConfidentialSymmetric  Capability = "client-confidential-symmetric"
	CapClientConfidentialAsymmetric Capability = "client-confidential-asymmetric"
	CapSSOOpenIDConnect             Capability = "sso-openid-connect"
	CapContextBanner                Capability = "context-banner"
	CapContextStyle                 Capability = "context-style"
	CapContextEHRPatient            Capability = "context-ehr-patient"
	CapContextEHREncounter          Capability = "context-ehr-encounter"
	CapContextStandalonePatient     Capability = "context-standalone-patient"
	CapContextStandaloneEncounter   Capability = "context-standalone-encounter"
	CapPermissionOffline            Capability = "permission-offline"
	CapPermissionOnline             Capability = "permission-online"
	CapPermissionPatient            Capability = "permission-patient"
	CapPermissionUser               Capability = "permission-user"
	CapPermissionV1                 Capability = "permission-v1"
	CapPermissionV2                 Capability = "permission-v2"
	CapSMARTAppState                Capability = "smart-app-state"
)

// capabilitySynonyms maps the names the IG's own examples use to the defined ones (DISC-08).
func canonicalCapability(c string) Capability {
	switch c {
	case "context-passthrough-banner":
		return CapContextBanner
	case "context-passthrough-style":
		return CapContextStyle
	}
	return Capability(c)
}

// Supports reports whether the server advertises capability c. context-passthrough-banner and
// context-passthrough-style count as context-banner and context-style (DISC-08). A configuration
// from a CapabilityStatement usually lists none (Legacy).
func (c *Configuration) Supports(capability Capability) bool {
	want := canonicalCapability(string(capability))
	for _, have := range c.Capabilities {
		if canonicalCapability(have) == want {
			return true
		}
	}
	return false
}

// CapabilitySet is one of the four Capability Sets of SMART App Launch
// (https://hl7.org/fhir/smart-app-launch/conformance.html#capability-sets).
type CapabilitySet string

// The four Capability Sets.
const (
	SetPatientStandalone   CapabilitySet = "patient-access-standalone"
	SetPatientEHR          CapabilitySet = "patient-access-ehr"
	SetClinicianStandalone CapabilitySet = "clinician-access-standalone"
	SetClinicianEHR        CapabilitySet = "clinician-access-ehr"
)

// capabilitySetRequirements lists each set's required capabilities; every set also needs
// client-public or client-confidential-symmetric.
func capabilitySetRequirements(s CapabilitySet) []Capability {
	switch s {
	case SetPatientStandalone:
		return []Capability{CapLaunchStandalone, CapContextStandalonePatient, CapPermissionPatient}
	case SetPatientEHR:
		return []Capability{CapLaunchEHR, CapContextEHRPatient, CapPermissionPatient}
	case SetClinicianStandalone:
		return []Capability{CapLaunchStandalone, CapPermissionUser, CapPermissionPatient}
	case SetClinicianEHR:
		return []Capability{CapLaunchEHR, CapContextEHRPatient, CapContextEHREncounter, CapPermissionUser, CapPermissionPatient}
	}
	return nil
}

// SupportsSet reports whether the advertised capabilities satisfy the Capability Set s (DISC-09).
func (c *Configuration) SupportsSet(s CapabilitySet) bool {
	req := capabilitySetRequirements(s)
	if req == nil {
		return false
	}
	if !c.Supports(CapClientPublic) && !c.Supports(CapClientConfidentialSymmetric) {
		return false
	}
	return !slices.ContainsFunc(req, func(r Capability) bool { return !c.Supports(r) })
}

// CapabilitySets returns the Capability Sets the server satisfies, in the order the IG lists them
// (DISC-09).
func (c *Configuration) CapabilitySets() []CapabilitySet {
	var out []CapabilitySet
	for _, s := range []CapabilitySet{SetPatientStandalone, SetPatientEHR, SetClinicianStandalone, SetClinicianEHR} {
		if c.SupportsSet(s) {
			out = append(out, s)
		}
	}
	return out
}

// ScopeStyle returns the resource scope grammar to request from this server (DISC-16, SCOPE-12):
// ScopeStyleV2 when it advertises permission-v2, else ScopeStyleV1 (v1 servers, servers that list
// neither, and CapabilityStatement-only servers).
func (c *Configuration) ScopeStyle() ScopeStyle {
	if c.Supports(CapPermissionV2) {
		return ScopeStyleV2
	}
	return ScopeStyleV1
}
