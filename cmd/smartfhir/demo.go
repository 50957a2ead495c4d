package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/demoapp"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

const (
	demoDefaultAddr    = "127.0.0.1:8080"
	demoSandboxAddr    = "127.0.0.1:9090"
	demoClientID       = "smartfhir-demo"
	demoDefaultScopes  = "launch openid fhirUser offline_access patient/Patient.rs patient/Observation.rs"
	demoShutdownPeriod = 5 * time.Second
)

// demoOptions are the flags of `smartfhir demo` beyond the shared server flags.
type demoOptions struct {
	addr        string
	redirectURL string
}

func newDemoCmd(g *globals) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run the example SMART app, against the embedded sandbox EHR by default",
		Long: `demo runs the example SMART on FHIR app (a patient summary: banner, demographics, recent vitals
with a chart, labs, token refresh) until interrupted.

Without --fhir it also starts the embedded sandbox EHR on 127.0.0.1:9090 (or a free port), registers
the app with it, and prints the sandbox's launcher URL: open it, pick a patient, launch the app.

With --fhir URL it runs against that EHR instead, allowing only that issuer: register the printed
launch and redirect URLs there, and pass --client-id plus --key FILE (private_key_jwt) or
SMARTFHIR_CLIENT_SECRET / --client-secret-file (client_secret_basic); neither means a public client,
both mean private_key_jwt where the EHR supports it.

--profile NAME applies a vendor profile (without --fhir the embedded sandbox then plays that vendor's
EHR: 'smartfhir demo --profile epic'); against --fhir the profile is otherwise detected and reported.
--store URL keeps launches in Redis (keys in SMARTFHIR_STORE_KEYS), so that several demo processes
behind one proxy share them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), g, o, cmd.Flags().Changed("addr"))
		},
	}
	g.serverFlags(cmd)
	g.storeFlag(cmd)
	cmd.Flags().StringVar(&o.addr, "addr", demoDefaultAddr, "address the app listens on")
	cmd.Flags().StringVar(&o.redirectURL, "redirect-url", "", "the app's redirect URL when it sits behind a proxy (default: http://ADDR/callback)")
	return cmd
}

func runDemo(ctx context.Context, g *globals, o *demoOptions, addrSet bool) error {
	s, err := resolveServer(g, false)
	if err != nil {
		return err
	}
	stderr := g.stderr
	logger := slog.New(httpx.NewRedactingHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))

	appLn, err := listen(o.addr, !addrSet)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer appLn.Close()
	appURL := "http://" + appLn.Addr().String()
	redirect := o.redirectURL
	if redirect == "" {
		redirect = appURL + "/callback"
	}
	if _, err := httpx.ParseAbsURL(redirect, g.insecureHTTP); err != nil {
		return usagef("--redirect-url: %v", err)
	}
	launchURL := strings.TrimSuffix(redirect, "/callback") + "/launch"
	if o.redirectURL == "" {
		launchURL = appURL + "/launch"
	}

	cfg := &launch.Config{
		RedirectURL:       redirect,
		Scopes:            strings.Fields(demoDefaultScopes),
		LandingURL:        "/patient",
		Logger:            logger,
		InsecureAllowHTTP: g.insecureHTTP,
	}
	if g.scope != "" {
		cfg.Scopes = strings.Fields(g.scope)
	}
	if err := g.shareLaunches(ctx, cfg); err != nil { // before anything listens
		return err
	}
	opts := demoapp.Options{Launch: cfg, Logger: logger}

	var servers []*http.Server
	if s.FHIR == "" {
		sb, sbURL, srv, err := startDemoSandbox(logger, s.sandboxMode())
		if err != nil {
			return err
		}
		servers = append(servers, srv)
		if _, err := sb.RegisterClient(sandbox.Client{
			ID: demoClientID, Name: "smartfhir demo app", AuthMethod: "none",
			RedirectURIs: []string{redirect}, LaunchURL: launchURL,
			GrantTypes: []string{"authorization_code", "refresh_token"}, SkipLogin: true,
		}); err != nil {
			return fmt.Errorf("demo: registering the app with the sandbox: %w", err)
		}
		cfg.ClientID = demoClientID
		cfg.AllowedIssuers = []string{sbURL + "/fhir"}
		if s.Vendor != nil {
			s.ClientID = demoClientID
			cfg.Issuers = map[string]launch.IssuerSettings{sbURL + "/fhir": s.issuerSettings()}
		}
		opts.LauncherURL = sbURL + "/"
		opts.StandaloneIssuer = sbURL + "/fhir"
		fmt.Fprintf(stderr, "sandbox: %s/ (open it, pick a patient, launch the demo app)\n", sbURL)
	} else {
		if err := configureDemoClient(g, s, cfg); err != nil {
			return err
		}
		g.vendorProfile(ctx, s)
		cfg.Issuers = map[string]launch.IssuerSettings{s.FHIR: s.issuerSettings()}
		opts.StandaloneIssuer = s.FHIR
	}

	app, err := demoapp.New(opts)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	appSrv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	servers = append(servers, appSrv)
	fmt.Fprintf(stderr, "launch: %s\nredirect: %s\napp: %s/\n", launchURL, redirect, appURL)

	errc := make(chan error, 1)
	go func() { errc <- appSrv.Serve(appLn) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("demo: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), demoShutdownPeriod)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	fmt.Fprintln(stderr, "demo: stopped")
	return nil
}

// configureDemoClient applies the FHIR base, the client id, the key and kid and the client secret
// (with both, launch uses private_key_jwt where the EHR supports it: AUTH-04).
func configureDemoClient(g *globals, s *serverSettings, cfg *launch.Config) error {
	if s.ClientID == "" {
		return usagef("--fhir needs --client-id (the id the EHR registered for the demo app)")
	}
	cfg.ClientID = s.ClientID
	cfg.AllowedIssuers = []string{s.FHIR}
	cfg.InsecureAllowHTTP = s.InsecureHTTP
	secret, err := g.clientSecret()
	if err != nil {
		return err
	}
	cfg.ClientSecret = secret
	if s.KeyFile != "" {
		data, err := os.ReadFile(s.KeyFile)
		if err != nil {
			return fmt.Errorf("demo: reading --key: %w", err)
		}
		key, kid, err := backend.ParsePrivateKey(data)
		if err != nil {
			return fmt.Errorf("demo: --key: %w", err)
		}
		cfg.PrivateKey, cfg.KeyID = key, kid
		if s.Kid != "" {
			cfg.KeyID = s.Kid
		}
	}
	return nil
}

// sandboxMode is the vendor mode of the embedded sandbox: the named profile's preset, if any.
func (s *serverSettings) sandboxMode() string {
	if s.Vendor == nil || !s.VendorNamed {
		return ""
	}
	if p, ok := smart.LookupProfile(s.Vendor.Name); ok {
		return p.Name
	}
	return ""
}

// startDemoSandbox serves the embedded sandbox on 127.0.0.1:9090, or a free loopback port when that
// one is taken, and returns it with its origin.
func startDemoSandbox(logger *slog.Logger, as string) (*sandbox.Server, string, *http.Server, error) {
	ln, err := listen(demoSandboxAddr, true)
	if err != nil {
		return nil, "", nil, fmt.Errorf("demo: sandbox: %w", err)
	}
	origin := "http://" + ln.Addr().String()
	sb, err := sandbox.New(sandbox.Options{PublicURL: origin, As: as})
	if err != nil {
		ln.Close()
		return nil, "", nil, fmt.Errorf("demo: sandbox: %w", err)
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("sandbox stopped", "err", err.Error())
		}
	}()
	return sb, origin, srv, nil
}

// listen opens addr; when fallback is set and addr is taken, it opens a free port on the same host.
func listen(addr string, fallback bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || !fallback {
		return ln, err
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}
