package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/smart"
)

// sandboxShutdown bounds the graceful shutdown; requests still running then (a stalled discovery
// fault) are cut.
const sandboxShutdown = 5 * time.Second

type sandboxFlags struct {
	addr     string
	patients int
	seed     int64
	clients  string
	version  string
	as       string
	json     bool
}

func newSandboxCmd(g *globals) *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "run the offline sandbox EHR (SMART authorization server + FHIR R4 + Bulk Data)",
		Long: `sandbox runs an offline EHR for development: SMART App Launch 2.2 (EHR and standalone launch,
PKCE, public, symmetric and asymmetric clients, OpenID Connect), Backend Services, open RFC 7591
registration, introspection, revocation, a FHIR R4 API with synthetic patients and Bulk Data $export.

Open the launcher URL in a browser to launch a registered app. --clients FILE registers clients at
start: a JSON array of RFC 7591 client metadata (client_id, client_secret, token_endpoint_auth_method,
redirect_uris, launch_url, jwks or jwks_uri, scope, grant_types, client_name, skip_login), or an
object {"clients": [...]}. The control API under /sandbox/ arms faults and shifts the clock.

--as NAME plays the EHR of a vendor preset, with the quirks its profile exists for: Epic's
Epic-Client-ID header, flaky bare 400 and opaque file names; Oracle Health's comma-only _type,
five-hour Retry-After and persona mismatch; athena's unadvertised PKCE and non-OAuth errors;
MEDITECH's OpenID Connect-only discovery; CMS BCDA's string expires_in and transient file 404s; CMS
AB2D's 429 for polls under 30 s; the VA's X-RateLimit-* headers and refused aud; HAPI's 404 to the
DELETE of a finished job; the SMART launcher's under-advertised discovery. A client passes with
--profile NAME and shows the failure without it (docs/profiles.md).`,
		Example: `  smartfhir sandbox
  smartfhir sandbox --addr 127.0.0.1:0 --patients 100 --version 2.0 --clients clients.json
  smartfhir sandbox --as epic
  smartfhir sandbox --addr 127.0.0.1:0 --json | head -1 | jq -r .fhir   # a script learns the free port`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSandbox(cmd.Context(), g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:9090", "listen address (port 0 picks a free port)")
	fl.IntVar(&f.patients, "patients", 20, "number of synthetic patients")
	fl.Int64Var(&f.seed, "seed", 1, "seed of the synthetic data")
	fl.StringVar(&f.clients, "clients", "", "JSON file of clients to register at start")
	fl.StringVar(&f.version, "version", "2.2", "SMART version to play: 2.2, 2.0 or v1")
	fl.StringVar(&f.as, "as", "", "behave like the EHR of a vendor preset: "+strings.Join(smart.ProfileNames(), ", "))
	fl.BoolVar(&f.json, "json", false, "print the URLs as one JSON object on stdout (and log requests as JSON on stderr)")
	return cmd
}

func runSandbox(ctx context.Context, g *globals, f sandboxFlags) error {
	switch f.version {
	case "2.2", "2.0", "v1":
	default:
		return usagef("--version %q: want 2.2, 2.0 or v1", f.version)
	}
	if f.patients <= 0 {
		return usagef("--patients must be positive")
	}
	if f.as != "" {
		p, ok := smart.LookupProfile(f.as)
		if !ok {
			return usagef("--as %q: want one of %s", f.as, strings.Join(smart.ProfileNames(), ", "))
		}
		f.as = p.Name
	}
	clients, err := readSandboxClients(f.clients)
	if err != nil {
		return err
	}
	var logHandler slog.Handler = slog.NewTextHandler(g.stderr, nil)
	if f.json {
		logHandler = slog.NewJSONHandler(g.stderr, nil)
	}
	sb, err := sandbox.New(sandbox.Options{
		Patients: f.patients, Seed: f.seed, Clients: clients, Version: f.version, As: f.as,
		Logger: slog.New(logHandler),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("sandbox: %w\n(is another sandbox running? choose another --addr, or port 0 for a free one: --addr 127.0.0.1:0)", err)
	}
	origin := "http://" + displayAddr(ln.Addr())
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if err := printSandboxURLs(g, f, origin, clients); err != nil {
		_ = srv.Close()
		return err
	}
	select {
	case err := <-served:
		return fmt.Errorf("sandbox: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), sandboxShutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// printSandboxURLs says where the sandbox listens: lines on stderr, or with --json one JSON object
// on stdout, so that a script that asked for port 0 learns the port without parsing the log.
func printSandboxURLs(g *globals, f sandboxFlags, origin string, clients []sandbox.Client) error {
	if f.json {
		type jsonClient struct {
			ID         string `json:"client_id"`
			AuthMethod string `json:"token_endpoint_auth_method"`
		}
		out := struct {
			FHIR      string       `json:"fhir"`
			Discovery string       `json:"discovery"`
			Launcher  string       `json:"launcher"`
			Register  string       `json:"register"`
			Clients   []jsonClient `json:"clients"`
			As        string       `json:"as,omitempty"`
		}{FHIR: origin + "/fhir", Discovery: origin + "/fhir/.well-known/smart-configuration", Launcher: origin + "/",
			Register: origin + "/auth/register", Clients: []jsonClient{}, As: f.as}
		for _, c := range clients {
			out.Clients = append(out.Clients, jsonClient{c.ID, c.AuthMethod})
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(append(b, '\n'))
		return err
	}
	fmt.Fprintf(g.stderr, "fhir: %s/fhir\ndiscovery: %s/fhir/.well-known/smart-configuration\nlauncher: %s/\nregister: %s/auth/register\n",
		origin, origin, origin, origin)
	for _, c := range clients {
		fmt.Fprintf(g.stderr, "client: %s (%s)\n", c.ID, c.AuthMethod)
	}
	if f.as != "" {
		fmt.Fprintf(g.stderr, "as: %s (test clients with --profile %s)\n", f.as, f.as)
	}
	return nil
}

// readSandboxClients reads --clients: a JSON array of clients or {"clients": [...]}.
func readSandboxClients(path string) ([]sandbox.Client, error) {
	if path == "" {
		return nil, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--clients: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("--clients: %w", err)
	}
	var list []sandbox.Client
	if err := json.Unmarshal(b, &list); err != nil {
		var wrapped struct {
			Clients []sandbox.Client `json:"clients"`
		}
		if err2 := json.Unmarshal(b, &wrapped); err2 != nil || wrapped.Clients == nil {
			return nil, fmt.Errorf("--clients %s: want a JSON array of clients or {\"clients\": [...]}: %w", path, err)
		}
		list = wrapped.Clients
	}
	for i, c := range list {
		// Generated ids and secrets would be unusable: the sandbox never prints a secret.
		if c.ID == "" {
			return nil, fmt.Errorf("--clients %s: client %d: client_id is required", path, i)
		}
		if c.Secret == "" && c.AuthMethod != "none" && c.AuthMethod != "private_key_jwt" && len(c.JWKS) == 0 && c.JWKSURI == "" {
			return nil, fmt.Errorf("--clients %s: client %q: client_secret is required (or token_endpoint_auth_method none / private_key_jwt)", path, c.ID)
		}
	}
	return list, nil
}

// displayAddr prints a listener address as a URL host, naming loopback for an unspecified address.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
