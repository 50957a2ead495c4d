package sandbox

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/smartfhir/smartfhir/smart"
)

// vendorMode is what Options.As changes (issue 11): one field per quirk of a real EHR, each the one a
// smart.Profile preset of the same name exists to handle (quirks.md §4). The zero value is the plain
// sandbox. The quirks are on for every request, so that a client without the right profile fails the
// way it would against the real server; faults (Fault) stay available on top.
type vendorMode struct {
	name string
	// publisher is CapabilityStatement.publisher and software.name, what smart.DetectProfile reads.
	publisher string

	// Authorization server.
	clientIDHeader    string // epic: token and FHIR requests must carry the client id in this header
	bareTokenOnce     bool   // epic: each client's first client_credentials request gets a bare HTTP 400
	personaMismatch   bool   // oracle: a provider client's patient launch gets unauthorized_client + error_uri
	noPKCEAdvert      bool   // athena: code_challenge_methods_supported is left out (S256 still works)
	nonOAuthErrors    bool   // athena: token errors are {"message": …, "id": status}
	noSMARTConfig     bool   // meditech: no .well-known/smart-configuration, no oauth-uris; OIDC discovery only
	underAdvertise    bool   // smart-sandbox: discovery leaves out private_key_jwt, its algorithms and capabilities
	expiresInString   bool   // cms-bcda: expires_in is a JSON string
	audMustBeOmitted  bool   // va: an authorization request with aud is refused
	rateLimitHeaders  bool   // va: the FHIR API rate-limits with X-RateLimit-* and no Retry-After
	noEverything      bool   // epic: $everything answers 404 not-supported
	commaTypeOnly     bool   // oracle: a repeated _type is refused
	longRetryAfter    bool   // oracle: in-progress status polls ask for five hours
	minPollInterval   time.Duration
	transientFile404  bool // cms-bcda: the first bcdaFile404s downloads of each output file answer 404
	opaqueFileNames   bool // epic, hapi: output file names say nothing about their type
	deleteFinished404 bool // hapi: DELETE of a finished job answers 404 (it removed the job itself)
}

// Constants of the vendor modes.
const (
	oracleRetryAfter  = 5 * time.Hour    // smart-fetch bulk_utils.py: Oracle Health asks for five hours
	ab2dPollInterval  = 30 * time.Second // cms-ab2d: polls sooner than this after the last one get 429
	vaRateLimit       = 5                // va: FHIR API requests per window and client
	vaRateWindow      = 5 * time.Second  // va: the rate-limit window
	bcdaFile404s      = 2                // cms-bcda: 404s before an output file is served
	personaErrorURI   = "https://fhir.sandbox.invalid/errors/client-persona-mismatch"
	opaqueNameBytes   = 16
	maxTrackedEntries = 100_000 // bounds the per-client and per-file memory of a mode
)

// asMode builds the mode of a preset name; ok is false for a name that is no preset.
func asMode(name string) (vendorMode, bool) {
	p, ok := smart.LookupProfile(name)
	if !ok {
		return vendorMode{}, false
	}
	m := vendorMode{name: p.Name}
	switch p.Name {
	case smart.ProfileGeneric:
	case smart.ProfileEpic:
		m.publisher = "Epic Systems Corporation"
		m.clientIDHeader = "Epic-Client-ID"
		m.bareTokenOnce = true
		m.noEverything = true
		m.opaqueFileNames = true
	case smart.ProfileOracle:
		m.publisher = "Oracle Health"
		m.personaMismatch = true
		m.commaTypeOnly = true
		m.longRetryAfter = true
	case smart.ProfileAthena:
		m.publisher = "athenahealth"
		m.noPKCEAdvert = true
		m.nonOAuthErrors = true
	case smart.ProfileMEDITECH:
		m.publisher = "MEDITECH"
		m.noSMARTConfig = true
	case smart.ProfileCMSBCDA:
		m.publisher = "CMS Beneficiary Claims Data API (BCDA)"
		m.expiresInString = true
		m.transientFile404 = true
	case smart.ProfileCMSAB2D:
		m.publisher = "CMS AB2D"
		m.minPollInterval = ab2dPollInterval
	case smart.ProfileVA:
		m.publisher = "Department of Veterans Affairs (VA Lighthouse)"
		m.audMustBeOmitted = true
		m.rateLimitHeaders = true
	case smart.ProfileHAPI:
		m.publisher = "HAPI FHIR"
		m.opaqueFileNames = true
		m.deleteFinished404 = true
	case smart.ProfileSMARTSandbox:
		m.publisher = "SMART Health IT"
		m.underAdvertise = true
	default:
		return vendorMode{}, false
	}
	return m, true
}

// AsNames lists the names Options.As accepts: the smart.Profile presets.
func AsNames() []string { return smart.ProfileNames() }

// asState is the vendor mode of a Server and the little state its quirks keep.
type asState struct {
	vendorMode
	mu      sync.Mutex
	bare400 map[string]int         // epic: clients that had their bare 400
	file404 map[string]int         // cms-bcda: "job/name" of files → 404s answered
	windows map[string]*rateWindow // va: per-client rate-limit windows
}

// rateWindow is one client's fixed rate-limit window (va).
type rateWindow struct {
	start time.Time
	used  int
}

// newAsState checks Options.As and builds the mode ("" is generic).
func newAsState(name string) (*asState, error) {
	if name == "" {
		name = smart.ProfileGeneric
	}
	m, ok := asMode(name)
	if !ok {
		return nil, fmt.Errorf("sandbox: unknown vendor mode %q (known: %s)", name, strings.Join(AsNames(), ", "))
	}
	return &asState{vendorMode: m, bare400: map[string]int{}, file404: map[string]int{}, windows: map[string]*rateWindow{}}, nil
}

// As returns the vendor mode the sandbox plays ("generic" when none).
func (s *Server) As() string { return s.as.name }

// times reports whether key has been seen fewer than n times in set, and counts this time. The set is
// bounded: once full it takes no new key, and a new key counts as seen (the quirk then stops, never
// the server).
func (a *asState) times(set map[string]int, key string, n int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen, ok := set[key]
	if seen >= n || !ok && len(set) >= maxTrackedEntries {
		return false
	}
	set[key] = seen + 1
	return true
}
