package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// The user's config file holds named profiles, each standing for a line of server flags:
//
//	{
//	  "profiles": {
//	    "sandbox": {
//	      "fhir": "http://127.0.0.1:9090/fhir",
//	      "client_id": "my-app",
//	      "auth": "public",
//	      "scope": "launch/patient patient/*.rs offline_access"
//	    },
//	    "epic-backend": {
//	      "fhir": "https://fhir.example.org/api/FHIR/R4",
//	      "client_id": "…",
//	      "auth": "private_key_jwt",
//	      "key_file": "~/keys/epic.pem",
//	      "preset": "epic",
//	      "quirks": {"retry_after_cap": "10m", "extra_scopes": ["sandbox"]}
//	    }
//	  }
//	}
//
// It lives at os.UserConfigDir()/smartfhir/config.json (SMARTFHIR_CONFIG_DIR overrides the
// directory). Flags and SMARTFHIR_* variables override a profile's values. A secret never goes in
// the file: use SMARTFHIR_CLIENT_SECRET or --client-secret-file.
//
// "preset" names a vendor preset (smartfhir profiles) whose quirks the profile inherits; "quirks"
// changes single settings of it, in the JSON form 'smartfhir profiles --json' prints, read strictly
// (an unknown key is an error naming it). --profile NAME takes a profile of this file, else a vendor
// preset of that name.

// configFileName is the name of the config file inside the config directory.
const configFileName = "config.json"

// maxConfigFile bounds the config file.
const maxConfigFile = 1 << 20

// Client authentication kinds of a profile ("auth").
const (
	authPublic  = "public"          // no client authentication: client_id in the form
	authSecret  = "secret"          // client_secret_basic, secret from SMARTFHIR_CLIENT_SECRET or --client-secret-file
	authKeyJWT  = "private_key_jwt" // signed client assertion with --key
	authUnknown = ""
)

// profile is one named profile of the config file. Unknown keys are an error, so a typo never
// silently drops a setting.
type profile struct {
	FHIR         string            `json:"fhir,omitempty"`
	ClientID     string            `json:"client_id,omitempty"`
	Auth         string            `json:"auth,omitempty"`
	KeyFile      string            `json:"key_file,omitempty"`
	Kid          string            `json:"kid,omitempty"`
	Scope        string            `json:"scope,omitempty"`
	Preset       string            `json:"preset,omitempty"` // a vendor preset whose quirks the profile inherits
	Quirks       json.RawMessage   `json:"quirks,omitempty"` // settings of a smart.Profile over the preset's
	Headers      map[string]string `json:"headers,omitempty"`
	TrustOrigins []string          `json:"trust_origins,omitempty"`
	InsecureHTTP bool              `json:"insecure_http,omitempty"`

	vendor *smart.Profile // built from Preset and Quirks; nil when the profile has neither
}

// userConfig is the whole config file.
type userConfig struct {
	Profiles map[string]*profile `json:"profiles"`
}

// configDir returns the directory of the config file and of stored logins: SMARTFHIR_CONFIG_DIR, else
// os.UserConfigDir()/smartfhir.
func (g *globals) configDir() (string, error) {
	if d := g.getenv("SMARTFHIR_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (set SMARTFHIR_CONFIG_DIR): %w", err)
	}
	return filepath.Join(d, "smartfhir"), nil
}

// errNoConfig is returned (wrapped) by loadConfig when the file does not exist.
var errNoConfig = errors.New("no config file")

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// loadConfig reads and checks the config file at path. Every problem names the file, the profile and
// the key, and says what to do.
func loadConfig(path string) (*userConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", errNoConfig, path)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := httpx.ReadLimited(f, maxConfigFile)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := parseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig decodes a config file strictly: unknown keys at any level are errors naming the key.
func parseConfig(b []byte) (*userConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	for k := range top {
		if k != "profiles" {
			return nil, fmt.Errorf("unknown key %q (the file has one key, \"profiles\")", k)
		}
	}
	var raw map[string]json.RawMessage
	if p, ok := top["profiles"]; ok {
		if err := json.Unmarshal(p, &raw); err != nil {
			return nil, fmt.Errorf("\"profiles\" must be an object of named profiles: %w", err)
		}
	}
	cfg := &userConfig{Profiles: map[string]*profile{}}
	for name, pb := range raw {
		if !profileNameRE.MatchString(name) {
			return nil, fmt.Errorf("profile name %q: use letters, digits, '.', '_' or '-'", name)
		}
		p, err := parseProfile(pb)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", name, err)
		}
		cfg.Profiles[name] = p
	}
	return cfg, nil
}

func parseProfile(b []byte) (*profile, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p profile
	if err := dec.Decode(&p); err != nil {
		// encoding/json says `json: unknown field "x"`; say it in our words.
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, fmt.Errorf("unknown key %s (known: %s)", name, strings.Join(profileKeys(), ", "))
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the profile")
	}
	switch p.Auth {
	case authUnknown, authPublic, authSecret, authKeyJWT:
	default:
		return nil, fmt.Errorf("auth %q: want public, secret or private_key_jwt", p.Auth)
	}
	for k := range p.Headers {
		if strings.EqualFold(k, "Authorization") || httpx.IsSensitive(k) {
			return nil, fmt.Errorf("header %q: credentials do not belong in the config file", k)
		}
	}
	vendor, err := vendorOf(p.Preset, p.Quirks)
	if err != nil {
		return nil, err
	}
	p.vendor = vendor
	return &p, nil
}

// vendorOf builds the vendor profile of a config profile: the preset, with quirks over it. Both
// empty give nil. An unknown preset lists the presets; an unknown quirks key names itself.
func vendorOf(preset string, quirks json.RawMessage) (*smart.Profile, error) {
	if preset == "" && len(quirks) == 0 {
		return nil, nil
	}
	if len(quirks) == 0 {
		p, err := smart.ProfileByName(preset)
		if err != nil {
			return nil, fmt.Errorf("preset: %w", err)
		}
		return &p, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(quirks, &obj); err != nil || obj == nil {
		return nil, errors.New("quirks must be a JSON object of profile settings (see 'smartfhir profiles --json')")
	}
	if preset != "" {
		var inner string
		if raw, ok := obj["preset"]; ok && (json.Unmarshal(raw, &inner) != nil || !strings.EqualFold(inner, preset)) {
			return nil, fmt.Errorf("quirks: preset %s differs from the profile's preset %q", raw, preset)
		}
		obj["preset"], _ = json.Marshal(preset)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	p, err := smart.ParseProfile(b)
	if err != nil {
		return nil, fmt.Errorf("quirks: %w", err)
	}
	return &p, nil
}

// profileKeys lists the keys a profile may have, from the struct tags.
func profileKeys() []string {
	t := reflect.TypeFor[profile]()
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

// serverSettings are the effective settings of a command that talks to a server: flags and
// SMARTFHIR_* variables over the profile named by --profile. Commands get them from resolveServer.
type serverSettings struct {
	Profile      string // --profile, "" when none
	FHIR         string // FHIR base as given
	ClientID     string // --client-id
	Auth         string // public, secret or private_key_jwt
	KeyFile      string // --key
	Kid          string // --kid
	Scope        string // --scope
	Preset       string // the profile's vendor preset, for the vendor-profile code to apply
	Header       http.Header
	TrustOrigins []string // --trust-origin plus the profile's
	InsecureHTTP bool     // --insecure-http or the profile's

	// Vendor is the vendor profile the requests follow (CONV-5): the one --profile names (a preset,
	// or a config profile's preset and quirks), else, once vendorProfile has run, the detected one.
	// Its headers are in Header.
	Vendor *smart.Profile
	// VendorNamed says the user chose Vendor; only then does it add trusted origins (a detected
	// profile never widens trust).
	VendorNamed bool
	// VendorReason says where Vendor came from, for the report.
	VendorReason string
}

// resolveServer returns the effective server settings of g. With --profile NAME the profile is
// read from the config file; each flag or SMARTFHIR_* variable that is set overrides its value.
// An unknown profile is a usage error listing the known ones. requireFHIR makes a missing FHIR base a
// usage error. The export and token commands use it as well.
func resolveServer(g *globals, requireFHIR bool) (*serverSettings, error) {
	s := &serverSettings{
		Profile: g.profile, FHIR: g.fhir, ClientID: g.clientID, KeyFile: g.keyFile, Kid: g.kid, Scope: g.scope,
		TrustOrigins: slices.Clone(g.trustOrigins), InsecureHTTP: g.insecureHTTP, Header: http.Header{},
	}
	if g.profile != "" {
		p, err := g.lookupProfile(g.profile)
		if err != nil {
			return nil, err
		}
		first := func(flag, prof string) string {
			if flag != "" {
				return flag
			}
			return prof
		}
		s.FHIR = first(s.FHIR, p.FHIR)
		s.ClientID = first(s.ClientID, p.ClientID)
		s.KeyFile = first(s.KeyFile, expandHome(p.KeyFile))
		s.Kid = first(s.Kid, p.Kid)
		s.Scope = first(s.Scope, p.Scope)
		s.Auth = p.Auth
		s.Preset = p.Preset
		s.InsecureHTTP = s.InsecureHTTP || p.InsecureHTTP
		s.TrustOrigins = append(s.TrustOrigins, p.TrustOrigins...)
		for k, v := range p.Headers {
			s.Header.Set(k, v)
		}
		if p.vendor != nil {
			v := p.vendor.Clone()
			if v.Name == "" {
				v.Name = g.profile
			}
			s.useVendor(&v, true, "named by --profile "+g.profile)
		}
	}
	// A credential flag decides over the profile's auth; SMARTFHIR_CLIENT_SECRET only where the
	// profile names none, so that a stray variable never turns a key-based client into a
	// secret-based one (DISC-10: no downgrade).
	switch {
	case g.keyFile != "":
		s.Auth = authKeyJWT
	case g.clientSecretFile != "":
		s.Auth = authSecret
	case s.Auth != authUnknown:
	case s.KeyFile != "":
		s.Auth = authKeyJWT
	case g.getenv("SMARTFHIR_CLIENT_SECRET") != "":
		s.Auth = authSecret
	default:
		s.Auth = authPublic
	}
	if s.Auth == authKeyJWT && s.KeyFile == "" {
		return nil, usagef("profile %q uses private_key_jwt but names no key_file (or pass --key FILE)", s.Profile)
	}
	if s.FHIR == "" {
		if requireFHIR {
			return nil, usagef("no FHIR server: pass --fhir URL or --profile NAME (or set SMARTFHIR_FHIR)")
		}
		return s, nil
	}
	if _, err := s.baseURL(); err != nil {
		return nil, usagef("--fhir %s", err)
	}
	if _, err := httpx.NewOrigins(s.TrustOrigins...); err != nil {
		return nil, usagef("--trust-origin: %v", err)
	}
	return s, nil
}

// begin starts a command that talks to a server: the settings (a FHIR base is required) and ctx
// bounded by --timeout.
func (g *globals) begin(ctx context.Context) (*serverSettings, context.Context, context.CancelFunc, error) {
	s, err := resolveServer(g, true)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := g.commandContext(ctx)
	return s, ctx, cancel, nil
}

// baseURL parses the FHIR base and applies CONV-1.
func (s *serverSettings) baseURL() (*url.URL, error) {
	u, err := httpx.ParseAbsURL(s.FHIR, s.InsecureHTTP)
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a FHIR base URL has no query or fragment", httpx.Redact(s.FHIR))
	}
	return u, nil
}

// lookupProfile returns the named profile of the config file, else the vendor preset of that name
// as a profile with only a preset (CONV-6). An unknown name is a usage error that lists the
// profiles of the file and the presets.
func (g *globals) lookupProfile(name string) (*profile, error) {
	dir, err := g.configDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, configFileName)
	cfg, err := loadConfig(path)
	if err != nil && !errors.Is(err, errNoConfig) {
		return nil, err
	}
	if cfg != nil {
		if p, ok := cfg.Profiles[name]; ok {
			return p, nil
		}
	}
	if vp, ok := smart.LookupProfile(name); ok {
		return &profile{Preset: vp.Name, vendor: &vp}, nil
	}
	presets := "vendor presets: " + strings.Join(smart.ProfileNames(), ", ")
	switch known := slices.Sorted(maps.Keys(cfgProfiles(cfg))); {
	case cfg == nil:
		return nil, usagef("--profile %q: not a vendor preset, and there is no config file at %s to define it in (see 'smartfhir login --help'); %s",
			name, path, presets)
	case len(known) == 0:
		return nil, usagef("--profile %q: not a vendor preset, and %s defines no profiles; %s", name, path, presets)
	default:
		return nil, usagef("--profile %q: no such profile in %s; known profiles: %s; %s", name, path, strings.Join(known, ", "), presets)
	}
}

func cfgProfiles(cfg *userConfig) map[string]*profile {
	if cfg == nil {
		return nil
	}
	return cfg.Profiles
}

// useVendor makes p the settings' vendor profile and adds its headers (Epic-Client-ID with the
// client id) to Header, where a header already set wins. A named profile's own trusted origins (an
// introspection endpoint) join TrustOrigins.
func (s *serverSettings) useVendor(p *smart.Profile, named bool, reason string) {
	s.Vendor, s.VendorNamed, s.VendorReason = p, named, reason
	p.ApplyHeaders(s.Header, s.ClientID)
	if named {
		s.TrustOrigins = append(s.TrustOrigins, p.TrustedOrigins()...)
	}
}

// expandHome expands a leading "~/" in a path from the config file.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, rest)
		}
	}
	return p
}
