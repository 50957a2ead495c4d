package main

import (
	"context"
	"fmt"
	"time"

	"github.com/smartfhir/smartfhir/smart"
)

// detectTimeout bounds the CapabilityStatement fetch of vendor detection: a server too slow to
// answer it is reported as undetected, never waited on for the whole command.
const detectTimeout = 15 * time.Second

// vendorProfile returns the vendor profile the command's requests follow (CONV-5, CONV-6): the one
// --profile names, else the one smart.DetectProfile guesses from the CapabilityStatement's publisher
// and software (GET [base]/metadata) and from the FHIR base URL. Detection runs before discovery,
// because a profile can change discovery itself (MEDITECH's OpenID Connect document). A detected
// vendor profile is reported on stderr, never applied silently, and never adds trusted origins; the
// generic profile (no vendor found) is reported only with --verbose, keeping normal output quiet.
func (g *globals) vendorProfile(ctx context.Context, s *serverSettings) *smart.Profile {
	if s.Vendor != nil {
		return s.Vendor
	}
	ctx, cancel := context.WithTimeout(ctx, detectTimeout)
	defer cancel()
	d := smart.Discoverer{HTTPClient: httpClient(), Header: s.Header, InsecureAllowHTTP: s.InsecureHTTP}
	info, err := d.ServerInfo(ctx, s.FHIR)
	name, reason := smart.DetectProfile(&smart.Configuration{FHIRBase: s.FHIR}, info)
	if err != nil && name == smart.ProfileGeneric {
		reason = "no CapabilityStatement to read (" + oneLine(err.Error()) + ")"
	}
	p, ok := smart.LookupProfile(name)
	if !ok { // DetectProfile names presets only
		p, _ = smart.LookupProfile(smart.ProfileGeneric)
	}
	s.useVendor(&p, false, "detected: "+reason)
	if p.Name != smart.ProfileGeneric || g.verbose {
		g.notef("profile: %s (detected: %s; pass --profile NAME to choose one)", p.Name, reason)
	}
	return s.Vendor
}

// vendorLine describes the settings' vendor profile for a report: "epic (named by --profile epic)".
func (s *serverSettings) vendorLine() string {
	if s.Vendor == nil {
		return "none"
	}
	return fmt.Sprintf("%s (%s)", s.Vendor.Name, s.VendorReason)
}
