package sandbox

import (
	"net/http"
	"time"
)

// FHIRSettings tunes the FHIR API and Bulk Data export at run time. A zero field means its
// default.
type FHIRSettings struct {
	// ExportDuration is how long an export job reports "in progress" (202 + X-Progress) before its
	// manifest is ready: default 1 s; negative: ready at the first status poll.
	ExportDuration time.Duration
	// RetryAfter is the Retry-After of in-progress status responses (default 1 s).
	RetryAfter time.Duration
	// FileResources is the number of resources after which an output file is split, so that a
	// type spans several files (default 10,000; files break at patient boundaries).
	FileResources int
	// ManifestPageSize is the number of outputs per page of a paged manifest (allowPartialManifests,
	// manifest_partial_pages); default 2.
	ManifestPageSize int
	// FileLifetime is how long output files stay available after the manifest (Expires); default 1 h.
	FileLifetime time.Duration
	// CapabilityURLs serves every job's files without a token: requiresAccessToken is false, the file
	// URLs carry a secret of their own (?token=…, like a pre-signed URL) and a file request that
	// carries Authorization fails (BULK-23). The fault manifest_no_token_required does the same for
	// one job.
	CapabilityURLs bool
	// ForeignOrigin is where the *_foreign faults point (default: the request's port on 127.0.0.2,
	// a loopback origin that is not the sandbox's).
	ForeignOrigin string
	// SlowFileDelay is the pause between 16 KiB chunks under file_slow (default 200 ms).
	SlowFileDelay time.Duration
	// MinPollInterval answers a status poll sooner than this after the job's last answered poll with
	// 429 and Retry-After, as CMS AB2D does (CMSgov/ab2d PR #17). Default: 30 s in the cms-ab2d
	// vendor mode (Options.As), none otherwise; negative: none.
	MinPollInterval time.Duration
}

// SetFHIRSettings replaces the FHIR settings. Jobs already started keep their own copy.
func (s *Server) SetFHIRSettings(fs FHIRSettings) { s.fhir.settings.Store(&fs) }

// FHIRSettings returns the FHIR settings with defaults filled in.
func (s *Server) FHIRSettings() FHIRSettings { return s.fhir.config() }

// config returns the settings with defaults filled in.
func (f *fhirState) config() FHIRSettings {
	c := *f.settings.Load()
	if c.ExportDuration == 0 {
		c.ExportDuration = time.Second
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
	if c.FileResources <= 0 {
		c.FileResources = 10_000
	}
	if c.ManifestPageSize <= 0 {
		c.ManifestPageSize = 2
	}
	if c.FileLifetime <= 0 {
		c.FileLifetime = time.Hour
	}
	if c.SlowFileDelay <= 0 {
		c.SlowFileDelay = 200 * time.Millisecond
	}
	if c.MinPollInterval == 0 {
		c.MinPollInterval = f.s.as.minPollInterval
	}
	return c
}

// foreignOrigin is the origin the *_foreign faults use for responses to r: the configured one,
// else the authorization half's (the request's port on 127.0.0.2, auth.go), so that both halves
// agree on what "foreign" means.
func (f *fhirState) foreignOrigin(r *http.Request) string {
	if o := f.settings.Load().ForeignOrigin; o != "" {
		return o
	}
	return foreignOrigin(r)
}
