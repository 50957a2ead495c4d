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
SMARTFHIR_CLIENT_SECRET / --client-secret-file (client_secret_basic); neither means a public client.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), g, o, cmd.Flags().Changed("addr"))
		},
	}
	g.serverFlags(cmd)
	cmd.Flags().StringVar(&o.addr, "addr", demoDefaultAddr, "address the app listens on")
	cmd.Flags().StringVar(&o.redirectURL, "redirect-url", "", "the app's redirect URL when it sits behind a proxy (default: http://ADDR/callback)")
	return cmd
}

func runDemo(ctx context.Context, g *globals, o *demoOptions, addrSet bool) error {
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
	opts := demoapp.Options{Launch: cfg, Logger: logger}

	var servers []*http.Server
	if g.fhir == "" {
		sb, sbURL, srv, err := startDemoSandbox(logger)
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
		opts.LauncherURL = sbURL + "/"
		opts.StandaloneIssuer = sbURL + "/fhir"
		fmt.Fprintf(stderr, "sandbox: %s/ (open it, pick a patient, launch the demo app)\n", sbURL)
	} else {
		if err := configureDemoClient(g, cfg); err != nil {
			return err
		}
		opts.StandaloneIssuer = g.fhir
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

// configureDemoClient applies --fhir, --client-id, --key/--kid and the client secret.
func configureDemoClient(g *globals, cfg *launch.Config) error {
	if g.clientID == "" {
		return usagef("--fhir needs --client-id (the id the EHR registered for the demo app)")
	}
	if _, err := httpx.ParseAbsURL(g.fhir, g.insecureHTTP); err != nil {
		return usagef("--fhir: %v", err)
	}
	cfg.ClientID = g.clientID
	cfg.AllowedIssuers = []string{g.fhir}
	secret, err := g.clientSecret()
	if err != nil {
		return err
	}
	switch {
	case g.keyFile != "" && secret != "":
		return usagef("give --key or a client secret, not both")
	case g.keyFile != "":
		data, err := os.ReadFile(g.keyFile)
		if err != nil {
			return fmt.Errorf("demo: reading --key: %w", err)
		}
		key, kid, err := backend.ParsePrivateKey(data)
		if err != nil {
			return fmt.Errorf("demo: --key: %w", err)
		}
		cfg.PrivateKey, cfg.KeyID = key, kid
		if g.kid != "" {
			cfg.KeyID = g.kid
		}
	case secret != "":
		cfg.ClientSecret = secret
	}
	return nil
}

// startDemoSandbox serves the embedded sandbox on 127.0.0.1:9090, or a free loopback port when that
// one is taken, and returns it with its origin.
func startDemoSandbox(logger *slog.Logger) (*sandbox.Server, string, *http.Server, error) {
	ln, err := listen(demoSandboxAddr, true)
	if err != nil {
		return nil, "", nil, fmt.Errorf("demo: sandbox: %w", err)
	}
	origin := "http://" + ln.Addr().String()
	sb, err := sandbox.New(sandbox.Options{PublicURL: origin})
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
