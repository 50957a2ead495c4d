package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/internal/openapi"
	"github.com/smartfhir/smartfhir/smart"
)

func newDiscoverCmd(g *globals) *cobra.Command {
	var asOpenAPI bool
	cmd := &cobra.Command{
		Use:   "discover [FHIR-BASE-URL]",
		Short: "explain a server's SMART configuration",
		Long: `discover reads a FHIR server's SMART configuration (.well-known/smart-configuration, or the
CapabilityStatement of older servers) and explains it: endpoints, capabilities in plain words, the
capability sets the server supports, PKCE, client authentication, and every place where the server
deviates from SMART App Launch 2.2 (printed as warnings on stderr).

  smartfhir discover http://127.0.0.1:9090/fhir
  smartfhir discover --profile sandbox --json       # the raw configuration plus derived facts
  smartfhir discover https://ehr.example/fhir --openapi > openapi.json

--openapi prints an OpenAPI 3.1 document: components.securitySchemes describes SMART as an oauth2
scheme (authorizationCode with PKCE S256, clientCredentials for backend services, and openIdConnect
when advertised); when the server's CapabilityStatement can be read, every FHIR read, search and
$export path is listed with the SMART scopes it needs.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.positionalFHIR(cmd, args); err != nil {
				return err
			}
			return runDiscover(cmd.Context(), g, asOpenAPI)
		},
	}
	g.serverFlags(cmd)
	cmd.Flags().BoolVar(&asOpenAPI, "openapi", false, "print an OpenAPI 3.1 document with the SMART security schemes and the FHIR paths")
	return cmd
}

// positionalFHIR takes a FHIR base URL given as the only argument. It conflicts with a different
// --fhir flag; it overrides SMARTFHIR_FHIR.
func (g *globals) positionalFHIR(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.Flags().Changed("fhir") && g.fhir != args[0] {
		return usagef("the FHIR base is given twice (%s and --fhir %s)", args[0], g.fhir)
	}
	g.fhir = args[0]
	return nil
}

// discoveryFacts are the facts derived from a configuration, for --json.
type discoveryFacts struct {
	FHIRBase            string            `json:"fhir_base"`
	DocumentURL         string            `json:"document_url"`
	Legacy              bool              `json:"legacy"`
	CapabilitySets      []string          `json:"capability_sets"`
	UnknownCapabilities []string          `json:"unknown_capabilities,omitempty"`
	PKCES256            bool              `json:"pkce_s256"`
	ScopeStyle          string            `json:"scope_style"`
	UserLaunch          bool              `json:"user_launch"`
	BackendServices     bool              `json:"backend_services"`
	OpenIDConnect       bool              `json:"openid_connect"`
	EndpointOrigins     map[string]string `json:"endpoint_origins"`
	Warnings            []string          `json:"warnings"`
}

func runDiscover(ctx context.Context, g *globals, asOpenAPI bool) error {
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	cfg, err := g.discover(ctx, s)
	if err != nil {
		return err
	}
	if asOpenAPI {
		doc, err := buildOpenAPI(ctx, g, s, cfg)
		if err != nil {
			return err
		}
		return printJSON(g.stdout, doc)
	}
	var raw rawDocument
	if !cfg.Legacy {
		if err := cfg.Claims(&raw); err != nil {
			return err
		}
	}
	var rep report
	lintConfiguration(&rep, cfg, raw, s.TrustOrigins)
	facts := deriveFacts(cfg, &rep)
	if g.json {
		var doc any = cfg
		if raw != nil {
			doc = raw
		}
		return printJSON(g.stdout, map[string]any{"configuration": doc, "derived": facts})
	}
	for _, w := range facts.Warnings {
		g.warnf("%s", oneLine(w))
	}
	return printDiscovery(g.stdout, cfg, facts)
}

// deriveFacts computes the facts of cfg; warnings are cfg's tolerated deviations plus every finding
// that is not a pass.
func deriveFacts(cfg *smart.Configuration, rep *report) discoveryFacts {
	f := discoveryFacts{
		FHIRBase:        cfg.FHIRBase,
		DocumentURL:     cfg.DocumentURL,
		Legacy:          cfg.Legacy,
		CapabilitySets:  []string{},
		PKCES256:        len(cfg.CodeChallengeMethodsSupported) == 0 || slices.Contains(cfg.CodeChallengeMethodsSupported, "S256"),
		ScopeStyle:      cfg.ScopeStyle().String(),
		UserLaunch:      cfg.RequireLaunch() == nil,
		BackendServices: cfg.RequireBackend() == nil,
		OpenIDConnect:   cfg.Supports(smart.CapSSOOpenIDConnect) && cfg.RequireOpenID() == nil,
		EndpointOrigins: map[string]string{},
		Warnings:        []string{},
	}
	for _, s := range cfg.CapabilitySets() {
		f.CapabilitySets = append(f.CapabilitySets, string(s))
	}
	for _, c := range cfg.Capabilities {
		if capabilityInfo[c] == "" {
			f.UnknownCapabilities = append(f.UnknownCapabilities, c)
		}
	}
	for name, v := range map[string]string{"authorization_endpoint": cfg.AuthorizationEndpoint, "token_endpoint": cfg.TokenEndpoint,
		"registration_endpoint": cfg.RegistrationEndpoint, "introspection_endpoint": cfg.IntrospectionEndpoint,
		"revocation_endpoint": cfg.RevocationEndpoint, "jwks_uri": cfg.JWKSURI} {
		if u, err := url.Parse(v); err == nil && v != "" {
			f.EndpointOrigins[name] = httpx.Origin(u)
		}
	}
	for _, w := range cfg.Warnings {
		f.Warnings = append(f.Warnings, oneLine(w))
	}
	for _, x := range rep.Findings {
		if x.Status == statusWarn || x.Status == statusFail {
			f.Warnings = append(f.Warnings, x.ID+": "+x.Detail)
		}
	}
	return f
}

// printDiscovery writes the human-readable explanation of cfg. Every server string (URLs, capability
// names, PKCE methods, …) is printed on one line with its control characters escaped (CONV-6).
func printDiscovery(w io.Writer, cfg *smart.Configuration, f discoveryFacts) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	p("SMART configuration of %s\n", oneLine(cfg.FHIRBase))
	src := "document"
	if cfg.Legacy {
		src = "document (fallback: no .well-known/smart-configuration)"
	}
	p("  %s:\t%s\n", src, oneLine(cfg.DocumentURL))
	if cfg.Issuer != "" {
		p("  issuer:\t%s\n", oneLine(cfg.Issuer))
	}
	p("\nEndpoints\n")
	for _, e := range []struct{ name, url string }{
		{"authorize", cfg.AuthorizationEndpoint}, {"token", cfg.TokenEndpoint}, {"register", cfg.RegistrationEndpoint},
		{"introspect", cfg.IntrospectionEndpoint}, {"revoke", cfg.RevocationEndpoint}, {"manage", cfg.ManagementEndpoint},
		{"jwks", cfg.JWKSURI},
	} {
		if e.url != "" {
			p("  %s:\t%s\n", e.name, oneLine(e.url))
		}
	}
	p("\nCapabilities (%d)\n", len(cfg.Capabilities))
	for _, c := range cfg.Capabilities {
		desc := capabilityInfo[c]
		if desc == "" {
			desc = "(not a SMART 2.2 capability; ignored)"
		}
		p("  %s\t%s\n", oneLine(c), desc)
	}
	p("\nCapability sets\n")
	if len(f.CapabilitySets) == 0 {
		p("  none complete\n")
	}
	for _, s := range f.CapabilitySets {
		p("  %s\n", s)
	}
	p("\nWhat a client can do\n")
	p("  user-facing launch:\t%s\n", yesNo(f.UserLaunch, "yes (authorization code with PKCE S256)"))
	p("  backend services:\t%s\n", yesNo(f.BackendServices, "yes (client_credentials with a signed JWT)"))
	p("  OpenID Connect:\t%s\n", yesNo(f.OpenIDConnect, "yes (openid fhirUser)"))
	p("  scope syntax:\t%s\n", f.ScopeStyle)
	pkce := strings.Join(cfg.CodeChallengeMethodsSupported, ", ")
	if pkce == "" {
		pkce = "not advertised (S256 is sent anyway)"
	}
	p("  PKCE methods:\t%s\n", oneLine(pkce))
	p("  client authentication:\t%s\n", oneLine(firstNonEmpty(strings.Join(cfg.TokenEndpointAuthMethodsSupported, ", "), "not advertised")))
	if algs := cfg.TokenEndpointAuthSigningAlgValuesSupported; len(algs) > 0 {
		p("  assertion algorithms:\t%s\n", oneLine(strings.Join(algs, ", ")))
	}
	if gt := cfg.GrantTypesSupported; len(gt) > 0 {
		p("  grant types:\t%s\n", oneLine(strings.Join(gt, ", ")))
	}
	if sc := cfg.ScopesSupported; len(sc) > 0 {
		p("  scopes (a hint):\t%s\n", oneLine(strings.Join(sc, " ")))
	}
	if n := len(f.Warnings); n > 0 {
		p("\n%d deviation(s) from the spec: see the warnings above, or 'smartfhir check' for a full report.\n", n)
	}
	return tw.Flush()
}

func yesNo(ok bool, yes string) string {
	if ok {
		return yes
	}
	return "no"
}

// buildOpenAPI builds the OpenAPI document of a server: its security schemes, and its FHIR paths when
// the CapabilityStatement can be read (else a warning, and the security schemes alone).
func buildOpenAPI(ctx context.Context, g *globals, s *serverSettings, cfg *smart.Configuration) (*openapi.Document, error) {
	opts := openapi.Options{Config: cfg, FHIRBase: s.FHIR, Title: "SMART on FHIR API of " + s.FHIR}
	api, err := fetchAPI(ctx, s)
	if err != nil {
		g.warnf("the FHIR paths are left out: %v", err)
	} else {
		opts.API = api
	}
	doc, err := openapi.New(opts)
	if err != nil {
		return nil, fmt.Errorf("building the OpenAPI document: %w", err)
	}
	return doc, nil
}

// fetchAPI reads GET [base]/metadata (no token needed) into an openapi.API.
func fetchAPI(ctx context.Context, s *serverSettings) (*openapi.API, error) {
	u := strings.TrimSuffix(s.FHIR, "/") + "/metadata"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range s.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the CapabilityStatement: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", httpx.Redact(u), resp.StatusCode)
	}
	body, err := httpx.ReadLimited(resp.Body, smart.MaxCapabilityStatementBytes)
	if err != nil {
		return nil, fmt.Errorf("reading the CapabilityStatement: %w", err)
	}
	return openapi.APIFromCapabilityStatement(body)
}
