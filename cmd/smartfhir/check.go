package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

func newCheckCmd(g *globals) *cobra.Command {
	var reqTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "check [FHIR-BASE-URL]",
		Short: "conformance report of a server's discovery, PKCE, client authentication and tokens",
		Long: `check judges a SMART on FHIR server against the toolkit's checklist and prints one line per
requirement, with its checklist ID (DISC-01…, TOK-…, BS-…), its level (MUST, SHOULD, MAY) and the
outcome: pass, warn (a SHOULD not met, or a tolerated deviation), fail (a MUST not met), info or skip.

  discovery   .well-known/smart-configuration: served, JSON, bounded, absolute URLs, PKCE S256 and
              never plain, client authentication, OpenID Connect members, the CapabilityStatement
  API         a FHIR request without a token must get 401 with WWW-Authenticate
  token       with credentials (--client-id with --key, or SMARTFHIR_CLIENT_SECRET), one
              client_credentials token request; the response is judged as sent (TOK-02…14, BS-04).
              Credentials go only to the FHIR base's origin or a --trust-origin.
  refresh     with a stored login for the server ('smartfhir login'), one refresh (REF-*)

It exits 0 when no MUST fails (warnings do not fail the check) and 1 otherwise.

  smartfhir check http://127.0.0.1:9090/fhir
  smartfhir check --profile backend --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.positionalFHIR(cmd, args); err != nil {
				return err
			}
			return runCheck(cmd.Context(), g, reqTimeout)
		},
	}
	g.serverFlags(cmd)
	cmd.Flags().DurationVar(&reqTimeout, "request-timeout", 10*time.Second, "time limit of each request (DISC-14)")
	return cmd
}

// checker runs the checks against one server.
type checker struct {
	g          *globals
	s          *serverSettings
	rep        report
	reqTimeout time.Duration
	rec        *recorder
	hc         *http.Client
	cfg        *smart.Configuration // nil when no configuration could be read
}

// errCheckFailed is returned when a MUST failed (exit 1).
var errCheckFailed = errors.New("MUST requirement(s) failed")

func runCheck(ctx context.Context, g *globals, reqTimeout time.Duration) error {
	if reqTimeout <= 0 {
		return usagef("--request-timeout must be positive")
	}
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	c := &checker{g: g, s: s, reqTimeout: reqTimeout}
	c.rec = newRecorder(httpx.NewTransport(), httpx.MaxSmallBody+1)
	c.hc = &http.Client{Transport: c.rec, CheckRedirect: httpx.SameOriginRedirects}

	// The vendor profile shapes the requests (headers, discovery fallbacks); the verdicts stay the
	// spec's own.
	vendor := g.vendorProfile(ctx, s)
	c.discovery(ctx)
	c.capabilityStatement(ctx)
	c.unauthenticated(ctx)
	if err := c.token(ctx); err != nil {
		return err
	}
	c.refresh(ctx)

	if g.json {
		if err := printJSON(g.stdout, map[string]any{
			"fhir_base": s.FHIR, "passed": !c.rep.failed(), "findings": c.rep.Findings,
			"profile": map[string]any{"name": vendor.Name, "named": s.VendorNamed, "source": s.VendorReason},
			"summary": map[string]int{"pass": c.rep.count(statusPass), "warn": c.rep.count(statusWarn), "fail": c.rep.count(statusFail),
				"skip": c.rep.count(statusSkip), "info": c.rep.count(statusInfo)},
		}); err != nil {
			return err
		}
	} else if err := printReport(g.stdout, s.FHIR, s.vendorLine(), &c.rep); err != nil {
		return err
	}
	if n := c.rep.count(statusFail); n > 0 {
		return fmt.Errorf("check: %d %w (see the FAIL lines)", n, errCheckFailed)
	}
	return nil
}

// printReport writes the report as a table and a summary line.
func printReport(w io.Writer, base, profile string, r *report) error {
	fmt.Fprintf(w, "SMART conformance of %s\nprofile: %s\n\n", safe(base), safe(profile))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, f := range r.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(f.Status), f.ID, f.Level, f.Title, f.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d passed, %d warnings, %d failed, %d skipped, %d info\n",
		r.count(statusPass), r.count(statusWarn), r.count(statusFail), r.count(statusSkip), r.count(statusInfo))
	return err
}

// discovery checks .well-known/smart-configuration (DISC-01…16).
func (c *checker) discovery(ctx context.Context) {
	d := smart.Discoverer{HTTPClient: c.hc, Header: c.s.Header, InsecureAllowHTTP: c.s.InsecureHTTP,
		Timeout: c.reqTimeout, Fallbacks: []smart.Fallback{}}
	wellKnown := strings.TrimRight(c.s.FHIR, "/") + "/.well-known/smart-configuration"
	cfg, err := d.Discover(ctx, c.s.FHIR)
	x := c.rec.find(func(x *exchange) bool {
		return strings.HasSuffix(strings.SplitN(x.URL, "?", 2)[0], "/.well-known/smart-configuration")
	})
	raw := c.judgeDiscoveryFetch(wellKnown, x, err)
	if cfg == nil && raw != nil {
		// The document arrived but the library refused it: judge it as sent.
		cfg = &smart.Configuration{}
		_ = json.Unmarshal(mustJSON(raw), cfg)
		cfg.FHIRBase = c.s.FHIR
	}
	if cfg != nil {
		lintConfiguration(&c.rep, cfg, raw, c.s.TrustOrigins)
		c.sbx01(cfg, raw)
	}
	if err == nil {
		c.cfg = cfg
		return
	}
	// Go on with whatever configuration a client would end up with (the CapabilityStatement, or the
	// vendor profile's fallbacks).
	d.Fallbacks = nil
	c.s.Vendor.ApplyDiscoverer(&d, c.s.ClientID)
	if cfg, err := d.Discover(ctx, c.s.FHIR); err == nil {
		c.cfg = cfg
		c.rep.add("DISC-12", levelShould, statusInfo, "fallback discovery", "continuing with the configuration from "+cfg.DocumentURL)
	} else {
		c.rep.add("DISC-12", levelShould, statusFail, "fallback discovery", "no usable configuration: "+err.Error())
	}
}

// judgeDiscoveryFetch adds DISC-01, DISC-02 and DISC-14 for the fetch of the discovery document and
// returns the document's members when it is a JSON object.
func (c *checker) judgeDiscoveryFetch(wellKnown string, x *exchange, err error) rawDocument {
	const t01, t02, t14 = "discovery document served", "discovery document is JSON", "discovery bounded (time, size, same-origin redirects)"
	switch {
	case x == nil:
		c.rep.add("DISC-01", levelMust, statusFail, t01, "GET "+wellKnown+": "+errText(firstErr(err, errors.New("no request was sent"))))
		return nil
	case x.Err != nil || isTimeout(err):
		if isTimeout(x.Err) || isTimeout(err) {
			c.rep.add("DISC-14", levelShould, statusFail, t14, fmt.Sprintf("no complete answer within %s (DISC-14: a stalled discovery must not hang clients)", c.reqTimeout))
			c.rep.add("DISC-01", levelMust, statusFail, t01, "GET "+wellKnown+": no answer in time")
		} else {
			c.rep.add("DISC-01", levelMust, statusFail, t01, "GET "+wellKnown+": "+errText(firstErr(x.Err, err)))
		}
		return nil
	case x.Status >= 300 && x.Status < 400:
		to := "?"
		if u, perr := url.Parse(x.Header.Get("Location")); perr == nil {
			if base, perr := url.Parse(wellKnown); perr == nil {
				to = httpx.Origin(base.ResolveReference(u))
			}
		}
		c.rep.add("DISC-14", levelShould, statusFail, t14, fmt.Sprintf("HTTP %d redirect to %s, another origin: refused", x.Status, to))
		c.rep.add("DISC-01", levelMust, statusFail, t01, fmt.Sprintf("GET %s: HTTP %d redirect instead of the document", wellKnown, x.Status))
		return nil
	case x.Status != http.StatusOK:
		c.rep.add("DISC-01", levelMust, statusFail, t01, fmt.Sprintf("GET %s: HTTP %d (SMART 2.x servers SHALL serve it)", wellKnown, x.Status))
		return nil
	}
	c.rep.add("DISC-01", levelMust, statusPass, t01, "GET "+wellKnown+": HTTP 200")
	if errors.Is(err, smart.ErrBodyTooLarge) || x.Truncated {
		c.rep.add("DISC-14", levelShould, statusFail, t14, fmt.Sprintf("the document is larger than %d bytes: refused", httpx.MaxSmallBody))
		return nil
	}
	ct := x.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	var raw rawDocument
	jerr := json.Unmarshal(x.Body, &raw)
	switch {
	case perr != nil || mt != "application/json":
		c.rep.add("DISC-02", levelMust, statusFail, t02, fmt.Sprintf("Content-Type %q, want application/json", ct))
		if jerr != nil {
			return nil
		}
	case jerr != nil || raw == nil:
		c.rep.add("DISC-02", levelMust, statusFail, t02, "the body is not a JSON object (truncated?): "+errText(jerr))
		return nil
	default:
		c.rep.add("DISC-02", levelMust, statusPass, t02, "Content-Type "+ct)
	}
	c.rep.add("DISC-14", levelShould, statusPass, t14, fmt.Sprintf("%d bytes in %s, no redirect", len(x.Body), x.Duration.Round(time.Millisecond)))
	return raw
}

// sbx01 reports whether the document has everything the sandbox's own (SBX-01) has: a useful yardstick
// for a full SMART 2.2 server, not a requirement.
func (c *checker) sbx01(cfg *smart.Configuration, raw rawDocument) {
	var missing []string
	for _, cap := range []smart.Capability{smart.CapLaunchEHR, smart.CapLaunchStandalone, smart.CapClientPublic,
		smart.CapClientConfidentialSymmetric, smart.CapClientConfidentialAsymmetric, smart.CapSSOOpenIDConnect,
		smart.CapContextBanner, smart.CapContextStyle, smart.CapContextEHRPatient, smart.CapContextStandalonePatient,
		smart.CapPermissionPatient, smart.CapPermissionUser, smart.CapPermissionV2, smart.CapAuthorizePost} {
		if !cfg.Supports(cap) {
			missing = append(missing, string(cap))
		}
	}
	if raw == nil {
		missing = append(missing, "a .well-known document")
	}
	st := statusPass
	if len(missing) > 0 {
		st = statusInfo
	}
	c.rep.add("SBX-01", levelMay, st, "full SMART 2.2 feature set",
		pick(len(missing) > 0, "not advertised: "+strings.Join(missing, ", "), "every SMART 2.2 capability the sandbox has"))
}

// capabilityStatement checks the CapabilityStatement's oauth-uris extension (DISC-12): the fallback
// of SMART v1 clients, which must agree with the discovery document.
func (c *checker) capabilityStatement(ctx context.Context) {
	const title = "CapabilityStatement oauth-uris (v1 fallback)"
	ctx, cancel := context.WithTimeout(ctx, c.reqTimeout)
	defer cancel()
	u := strings.TrimRight(c.s.FHIR, "/") + "/metadata"
	body, status, err := c.get(ctx, u, "application/fhir+json", nil)
	if err != nil || status != http.StatusOK {
		c.rep.add("DISC-12", levelShould, statusWarn, title, fmt.Sprintf("GET %s: %s", u, firstNonEmpty(errText(err), fmt.Sprintf("HTTP %d", status))))
		return
	}
	uris, err := oauthURIs(body)
	if err != nil {
		c.rep.add("DISC-12", levelShould, statusWarn, title, err.Error())
		return
	}
	if uris["token"] == "" {
		c.rep.add("DISC-12", levelShould, statusWarn, title, "the oauth-uris extension has no token URI")
		return
	}
	if c.cfg != nil && !c.cfg.Legacy {
		var diff []string
		if uris["token"] != c.cfg.TokenEndpoint {
			diff = append(diff, fmt.Sprintf("token %q vs token_endpoint %q", uris["token"], c.cfg.TokenEndpoint))
		}
		if a := uris["authorize"]; a != "" && a != c.cfg.AuthorizationEndpoint {
			diff = append(diff, fmt.Sprintf("authorize %q vs authorization_endpoint %q", a, c.cfg.AuthorizationEndpoint))
		}
		if len(diff) > 0 {
			c.rep.add("DISC-12", levelShould, statusWarn, title, "disagrees with the discovery document: "+strings.Join(diff, "; "))
			return
		}
	}
	c.rep.add("DISC-12", levelShould, statusPass, title, "token "+uris["token"]+pick(uris["authorize"] != "", ", authorize "+uris["authorize"], ""))
}

// oauthURIs reads the oauth-uris extension of a CapabilityStatement (SMART v1 conformance).
func oauthURIs(body []byte) (map[string]string, error) {
	var cs struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" {
		return nil, errors.New("GET [base]/metadata is not a CapabilityStatement")
	}
	for _, r := range cs.Rest {
		for _, e := range r.Security.Extension {
			if e.URL != "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
				continue
			}
			out := map[string]string{}
			for _, sub := range e.Extension {
				out[sub.URL] = sub.ValueURI
			}
			return out, nil
		}
	}
	return nil, errors.New("the CapabilityStatement has no oauth-uris extension (rest.security)")
}

// unauthenticated checks that the FHIR API refuses a request without a token (SBX-09, RFC 6750 §3).
func (c *checker) unauthenticated(ctx context.Context) {
	const title = "FHIR API refuses requests without a token"
	ctx, cancel := context.WithTimeout(ctx, c.reqTimeout)
	defer cancel()
	u := strings.TrimRight(c.s.FHIR, "/") + "/Patient?_count=1"
	_, status, err := c.get(ctx, u, "application/fhir+json", nil)
	x := c.rec.find(func(x *exchange) bool { return x.URL == u })
	switch {
	case err != nil:
		c.rep.add("SBX-09", levelShould, statusWarn, title, "GET "+u+": "+err.Error())
	case status != http.StatusUnauthorized:
		c.rep.add("SBX-09", levelShould, statusWarn, title, fmt.Sprintf("GET %s without a token: HTTP %d, want 401", u, status))
	case x == nil || !strings.HasPrefix(strings.ToLower(x.Header.Get("WWW-Authenticate")), "bearer"):
		c.rep.add("SBX-09", levelShould, statusWarn, title, "401 without WWW-Authenticate: Bearer (RFC 6750 §3)")
	default:
		c.rep.add("SBX-09", levelShould, statusPass, title, "401 with WWW-Authenticate: "+x.Header.Get("WWW-Authenticate"))
	}
}

// get sends a GET through the recorder and returns at most 16 MiB of body.
func (c *checker) get(ctx context.Context, u, accept string, hdr http.Header) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	for k, vs := range c.s.Header {
		req.Header[k] = vs
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", accept)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, smart.MaxCapabilityStatementBytes)
	return body, resp.StatusCode, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout())
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
