package smart

import (
	"fmt"
	"strings"
	"time"
)

// Preset names.
const (
	ProfileGeneric      = "generic"
	ProfileEpic         = "epic"
	ProfileOracle       = "oracle"
	ProfileAthena       = "athena"
	ProfileMEDITECH     = "meditech"
	ProfileCMSBCDA      = "cms-bcda"
	ProfileCMSAB2D      = "cms-ab2d"
	ProfileVA           = "va"
	ProfileHAPI         = "hapi"
	ProfileSMARTSandbox = "smart-sandbox"
)

// presetName lower-cases name and maps the other names users type for a preset to its own.
func presetName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	switch name {
	case "cerner", "oracle-health":
		return ProfileOracle
	case "athenahealth":
		return ProfileAthena
	case "greenfield":
		return ProfileMEDITECH
	case "bcda":
		return ProfileCMSBCDA
	case "ab2d":
		return ProfileCMSAB2D
	case "smarthealthit":
		return ProfileSMARTSandbox
	}
	return name
}

// genericProfile is SMART App Launch 2.2 and Bulk Data 2.0 as written, with the defaults that cost
// nothing anywhere; every preset starts from it.
func genericProfile() Profile {
	return Profile{
		Name:         ProfileGeneric,
		Description:  "SMART App Launch 2.2 and Bulk Data as written; no vendor quirks",
		Aud:          AudienceExact,
		AssertionAud: AssertionAudienceTokenURL,
		ScopeStyle:   ScopeAuto,
		TypeParam:    TypeComma,
		// CONV-3: bulk status polling honours waits up to an hour.
		MaxRetryAfter: DefaultMaxRetryAfter,
		// DISC-12: SMART v1 servers publish their endpoints in the CapabilityStatement only.
		DiscoveryFallbacks: []DiscoverySource{DiscoveryCapabilityStatement},
		// Keycloak and OpenEMR need client_id on a public refresh (client-js PR #175, openemr #7182);
		// RFC 6749 §3.2.1 allows it everywhere.
		RefreshClientID: true,
		// RFC 6749 §6: a confidential client authenticates on the refresh grant too.
		RefreshAssertion:  true,
		AssertionBackdate: DefaultAssertionBackdate,
	}
}

// presetNames lists the presets, sorted.
func presetNames() []string {
	return []string{ProfileAthena, ProfileCMSAB2D, ProfileCMSBCDA, ProfileEpic, ProfileGeneric, ProfileHAPI, ProfileMEDITECH,
		ProfileOracle, ProfileSMARTSandbox, ProfileVA}
}

// preset builds the named preset afresh (canonical name only), so that no caller can change
// another's copy: presets are code, not package state.
func preset(name string) (Profile, bool) {
	p := genericProfile()
	p.Name = name
	switch name {
	case ProfileGeneric:
	case ProfileEpic:
		p.Description = "Epic: Epic-Client-ID header, legacy Accept, one retry of a bare token 400, no $everything"
		p.ClientIDHeader = "Epic-Client-ID"               // cumulus-fhir-support client.py; cumulus-etl PR #249
		p.Accept = "application/json+fhir"                // fasten-sources definitions/platform/epic.yaml client_headers
		p.RetryBare400 = true                             // cumulus-fhir-support auth.py; CONV-3
		p.UnsupportedOperations = []string{"$everything"} // fasten-sources epic.yaml missing_op_patient_everything
		p.RefreshAssertion = true                         // as generic, and enforced: client-js #145; fasten-sources epic.yaml
	case ProfileOracle:
		p.Description = "Oracle Health (Cerner): comma-joined _type, Retry-After capped at 30 min, tokeninfo introspection"
		p.TypeParam = TypeComma                                                // smart-fetch bulk_utils.py: a repeated _type is refused
		p.MaxRetryAfter = 30 * time.Minute                                     // smart-fetch bulk_utils.py (5 h asked); cerner/fhir.cerner.com PR #899 (poll every 10–30 min)
		p.IntrospectionEndpoint = "https://authorization.cerner.com/tokeninfo" // fasten-sources lighthouse_endpoint_definition.go
	case ProfileAthena:
		p.Description = "athenahealth: PKCE S256 forced (not advertised), aud exactly the FHIR base"
		p.ForcePKCE = true    // client-js #174
		p.Aud = AudienceExact // as generic, and enforced: apiserver-athenaFlex #313
	case ProfileMEDITECH:
		p.Description = "MEDITECH Greenfield: OpenID Connect discovery fallback, legacy Accept"
		p.Accept = "application/json+fhir"                                                                   // fasten-sources meditech.yaml client_headers
		p.DiscoveryFallbacks = []DiscoverySource{DiscoveryCapabilityStatement, DiscoveryOpenIDConfiguration} // fasten-sources meditech.yaml
	case ProfileCMSBCDA:
		p.Description = "CMS BCDA: transient bulk output-file 404s retried"
		p.FileNotFoundRetries = 3 // bulk_fhir_tools client.go GetData
	case ProfileCMSAB2D:
		p.Description = "CMS AB2D: bulk status polled at most every 30 s (429 when polled too often)"
		p.MinPollInterval = 30 * time.Second // CMSgov/ab2d PR #17 (the interval is ours: AB2D publishes none)
	case ProfileVA:
		p.Description = "VA Lighthouse: no aud, X-RateLimit-* headers instead of Retry-After"
		p.Aud = AudienceOmit      // fasten-sources lighthouse_endpoint_definition.go Populate
		p.RateLimitHeaders = true // fasten-sources vahealth.yaml client_rate_limited, pkg/utils/xratelimit.go
	case ProfileHAPI:
		p.Description = "HAPI FHIR: DELETE of a bulk job it already removed answers 404"
		p.DeleteNotFoundOK = true // smart-fetch _delete_export; bulk-data-client forceStandardFileNames
	case ProfileSMARTSandbox:
		p.Description = "SMART Health IT launcher and bulk-data server: under-advertised discovery tolerated"
		p.LenientDiscovery = true // smart-launcher #60, #63; HL7 client-confidential-asymmetric.md
	default:
		return Profile{}, false
	}
	return p, true
}

// Presets returns every preset, sorted by name. Each is a fresh copy.
func Presets() []Profile {
	names := presetNames()
	out := make([]Profile, len(names))
	for i, n := range names {
		out[i], _ = preset(n)
	}
	return out
}

// ProfileNames lists the preset names, sorted.
func ProfileNames() []string { return presetNames() }

// LookupProfile returns the preset called name (case-insensitive; "cerner" and "oracle-health" name
// oracle, and a few other aliases work). The CLI's user profiles name a preset this way.
func LookupProfile(name string) (Profile, bool) {
	return preset(presetName(name))
}

// ProfileByName is LookupProfile with an error, wrapping ErrUnknownProfile, that lists the presets.
func ProfileByName(name string) (Profile, error) {
	if p, ok := LookupProfile(name); ok {
		return p, nil
	}
	return Profile{}, fmt.Errorf("smart: %w %q (known: %s)", ErrUnknownProfile, sanitize(name), strings.Join(ProfileNames(), ", "))
}
