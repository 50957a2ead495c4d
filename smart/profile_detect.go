package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// ServerInfo is what a FHIR server says about itself in its CapabilityStatement: who publishes it,
// which software it runs, and the base URL it states for itself. DetectProfile reads the first two;
// AssertionAudienceMetadata uses the last.
type ServerInfo struct {
	// Publisher is CapabilityStatement.publisher ("Oracle Health", "Epic").
	Publisher string `json:"publisher,omitempty"`
	// SoftwareName and SoftwareVersion are CapabilityStatement.software.name and .version.
	SoftwareName    string `json:"software_name,omitempty"`
	SoftwareVersion string `json:"software_version,omitempty"`
	// ImplementationURL is CapabilityStatement.implementation.url, kept only when it is an absolute
	// http(s) URL; ImplementationDescription is .implementation.description.
	ImplementationURL         string `json:"implementation_url,omitempty"`
	ImplementationDescription string `json:"implementation_description,omitempty"`
	// FHIRVersion is CapabilityStatement.fhirVersion ("4.0.1").
	FHIRVersion string `json:"fhir_version,omitempty"`
}

// ParseServerInfo reads a CapabilityStatement (or DSTU2 Conformance) stream, at most
// MaxCapabilityStatementBytes of it, skipping everything it does not need. Server text is bounded
// and control characters are replaced.
func ParseServerInfo(r io.Reader) (*ServerInfo, error) {
	var cs struct {
		ResourceType string `json:"resourceType"`
		Publisher    string `json:"publisher"`
		FHIRVersion  string `json:"fhirVersion"`
		Software     struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"software"`
		Implementation struct {
			URL         string `json:"url"`
			Description string `json:"description"`
		} `json:"implementation"`
	}
	lr := &limitedReader{r: r, n: MaxCapabilityStatementBytes}
	if err := json.NewDecoder(lr).Decode(&cs); err != nil {
		if lr.exceeded {
			return nil, fmt.Errorf("smart: CapabilityStatement: %w (limit %d bytes)", ErrBodyTooLarge, lr.n)
		}
		return nil, fmt.Errorf("smart: CapabilityStatement: %w: %w", ErrNotJSON, err)
	}
	if cs.ResourceType != "CapabilityStatement" && cs.ResourceType != "Conformance" {
		return nil, fmt.Errorf("smart: %w: resourceType %q is not CapabilityStatement", ErrInvalidDocument, sanitize(cs.ResourceType))
	}
	info := &ServerInfo{
		Publisher:                 sanitize(cs.Publisher),
		SoftwareName:              sanitize(cs.Software.Name),
		SoftwareVersion:           sanitize(cs.Software.Version),
		ImplementationDescription: sanitize(cs.Implementation.Description),
		FHIRVersion:               sanitize(cs.FHIRVersion),
	}
	if u, err := url.Parse(cs.Implementation.URL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && len(cs.Implementation.URL) <= 2048 {
		info.ImplementationURL = cs.Implementation.URL
	}
	return info, nil
}

// ServerInfo fetches GET {fhirBase}/metadata with the Discoverer's client, headers, limits and
// redirect policy, and parses it with ParseServerInfo.
func (d *Discoverer) ServerInfo(ctx context.Context, fhirBase string) (*ServerInfo, error) {
	base, ctx, hc, done, err := d.start(ctx, fhirBase, "metadata")
	if err != nil {
		return nil, err
	}
	defer done()
	resp, u, err := d.getMetadata(ctx, hc, base)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	info, err := ParseServerInfo(resp.Body)
	if err != nil {
		return nil, d.errorf(u, resp.StatusCode, err)
	}
	return info, nil
}

// vendorSign is one way of recognising a preset's server.
type vendorSign struct {
	profile string
	// text matches CapabilityStatement.publisher or software.name (lower-cased).
	text *regexp.Regexp
	// hostLabel matches one label of an endpoint's host split at dots and dashes (lower-cased);
	// hostSuffix matches the end of the host.
	hostLabel  *regexp.Regexp
	hostSuffix string
	// path matches an endpoint's path.
	path *regexp.Regexp
	// what names the vendor in the reason.
	what string
}

// vendorSigns lists the signs in the order they are tried. Publisher names come from quirks.md
// ("Detect Oracle by CapabilityStatement.publisher ∈ {Cerner, Oracle Health}") and the vendors' own
// CapabilityStatements; URL layouts from their public sandboxes (fhir.epic.com/interconnect-fhir-oauth,
// authorization.cerner.com/tenants/…/protocols/oauth2/profiles/smart-v1, api.platform.athenahealth.com,
// greenfield-apis.meditech.com). They are compiled once, on first use, and never changed.
var vendorSigns = sync.OnceValue(func() []vendorSign {
	return []vendorSign{
		{profile: ProfileOracle, what: "Oracle Health (Cerner)", text: regexp.MustCompile(`cerner|oracle health`), hostLabel: regexp.MustCompile(`^cerner$`),
			path: regexp.MustCompile(`/tenants/[^/]+/.*protocols/oauth2/profiles/smart-v`)},
		{profile: ProfileEpic, what: "Epic", text: regexp.MustCompile(`\bepic\b`), hostLabel: regexp.MustCompile(`^epic$`),
			path: regexp.MustCompile(`/interconnect-[a-z0-9-]+/|/api/epic/`)},
		{profile: ProfileAthena, what: "athenahealth", text: regexp.MustCompile(`\bathena`), hostLabel: regexp.MustCompile(`^athena`)},
		{profile: ProfileMEDITECH, what: "MEDITECH", text: regexp.MustCompile(`meditech`), hostLabel: regexp.MustCompile(`^meditech`)},
		{profile: ProfileCMSBCDA, what: "CMS BCDA", text: regexp.MustCompile(`\bbcda\b|beneficiary claims data`), hostLabel: regexp.MustCompile(`^bcda$`)},
		{profile: ProfileCMSAB2D, what: "CMS AB2D", text: regexp.MustCompile(`\bab2d\b`), hostLabel: regexp.MustCompile(`^ab2d$`)},
		{profile: ProfileVA, what: "the VA", text: regexp.MustCompile(`veterans affairs|\bva lighthouse`), hostSuffix: ".va.gov"},
		{profile: ProfileSMARTSandbox, what: "the SMART Health IT sandbox", text: regexp.MustCompile(`smart health it|smarthealthit`), hostLabel: regexp.MustCompile(`^smarthealthit$`)},
		{profile: ProfileHAPI, what: "HAPI FHIR", text: regexp.MustCompile(`\bhapi\b`), hostLabel: regexp.MustCompile(`^hapi$`)},
	}
})

// DetectProfile guesses the preset for a server from what it publishes, and says why, so that the
// choice is reported, never silent: first CapabilityStatement.publisher and software.name (info), then
// the hosts and paths of the discovered endpoints and the FHIR base (cfg). Either may be nil. With no
// sign of a known vendor the result is "generic". A detected profile only changes how requests are
// shaped; it must not widen trust (see Profile.TrustedOrigins).
func DetectProfile(cfg *Configuration, info *ServerInfo) (name, reason string) {
	signs := vendorSigns()
	if info != nil {
		for _, field := range []struct{ name, val string }{
			{"publisher", info.Publisher}, {"software.name", info.SoftwareName},
		} {
			v := strings.ToLower(field.val)
			for _, s := range signs {
				if v != "" && s.text.MatchString(v) {
					return s.profile, fmt.Sprintf("CapabilityStatement.%s %q names %s", field.name, sanitize(field.val), s.what)
				}
			}
		}
	}
	if cfg != nil {
		for _, e := range []struct{ name, url string }{
			{"token_endpoint", cfg.TokenEndpoint}, {"authorization_endpoint", cfg.AuthorizationEndpoint},
			{"issuer", cfg.Issuer}, {"jwks_uri", cfg.JWKSURI}, {"FHIR base", cfg.FHIRBase},
		} {
			u, err := url.Parse(e.url)
			if err != nil || u.Host == "" {
				continue
			}
			host := strings.ToLower(u.Hostname())
			for _, s := range signs {
				switch {
				case s.hostLabel != nil && hasLabel(host, s.hostLabel), s.hostSuffix != "" && strings.HasSuffix(host, s.hostSuffix):
					return s.profile, fmt.Sprintf("%s host %s looks like %s", e.name, sanitize(host), s.what)
				case s.path != nil && s.path.MatchString(u.Path):
					return s.profile, fmt.Sprintf("%s path %s has the layout of %s", e.name, sanitize(u.Path), s.what)
				}
			}
		}
	}
	return ProfileGeneric, "no sign of a known vendor in the CapabilityStatement publisher or software, or in the endpoint URLs"
}

// hasLabel reports whether one label of host, split at dots and dashes, matches re: ^athena matches
// api.platform.athenahealth.com and api.athena-like.example.com.
func hasLabel(host string, re *regexp.Regexp) bool {
	for label := range strings.FieldsFuncSeq(host, func(r rune) bool { return r == '.' || r == '-' }) {
		if re.MatchString(label) {
			return true
		}
	}
	return false
}
