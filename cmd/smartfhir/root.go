package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/smartfhir/smartfhir/redisstore"
)

// Exit codes (CONV-6).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// globals are the flags shared by every command that talks to a server (CONV-6). Each also reads
// SMARTFHIR_<NAME> from the environment (SMARTFHIR_FHIR, SMARTFHIR_CLIENT_ID, …) when not given.
type globals struct {
	fhir             string
	clientID         string
	keyFile          string
	kid              string
	scope            string
	profile          string
	json             bool
	timeout          time.Duration
	insecureHTTP     bool
	trustOrigins     []string
	clientSecretFile string
	store            string // --store (demo, token, get, search, export)
	verbose          bool   // --verbose/-v: notes that are quiet by default (a generic profile, go-redis logs)

	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	st      *redisstore.Store // the --store, once opened (openStore)
	closers []func()          // run when the command ends
}

// usageError marks an error as a usage problem (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{fmt.Errorf(format, a...)} }

// run executes the CLI with args and returns the exit code. Tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, stdin, stdout, stderr, os.Getenv)
}

func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	defer func() {
		for _, c := range g.closers {
			c()
		}
	}()
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintf(stderr, "smartfhir: %v\nRun 'smartfhir --help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "smartfhir: %v\n", err)
	return exitFail
}

// isCobraUsageError recognises cobra's own argument and flag errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least",
		"requires at most", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "smartfhir",
		Short: "SMART on FHIR toolkit: discover, log in, fetch, export, and run a sandbox EHR",
		Long: `smartfhir talks SMART on FHIR: App Launch (EHR and standalone, PKCE S256),
Backend Services (client_credentials with a signed JWT assertion), FHIR R4 REST and Bulk Data $export.
It also runs an offline sandbox EHR for development.

Every server flag can also be set from the environment as SMARTFHIR_<FLAG>, e.g. SMARTFHIR_FHIR,
SMARTFHIR_CLIENT_ID. A client secret is read from SMARTFHIR_CLIENT_SECRET or --client-secret-file,
never from a flag value.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			resetSharedDefaults(cmd)
			return applyEnv(cmd, g.getenv)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &usageError{err} })
	for _, c := range commands(g) {
		root.AddCommand(c)
	}
	return root
}

// serverFlags adds the CONV-6 shared flags to a command that talks to a server.
func (g *globals) serverFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&g.fhir, "fhir", "", "FHIR base URL (https, or http on loopback)")
	f.StringVar(&g.clientID, "client-id", "", "OAuth client id")
	f.StringVar(&g.keyFile, "key", "", "private key file (PEM, JWK or JWK Set) for private_key_jwt")
	f.StringVar(&g.kid, "kid", "", "key id (default: the key's RFC 7638 thumbprint)")
	f.StringVar(&g.scope, "scope", "", "space-separated scopes (default: least that works)")
	f.StringVar(&g.profile, "profile", "", "profile from the config file, or a vendor preset")
	f.BoolVar(&g.json, "json", false, "machine-readable JSON output")
	f.DurationVar(&g.timeout, "timeout", 5*time.Minute, "overall time limit")
	f.BoolVar(&g.insecureHTTP, "insecure-http", false, "allow plain http to non-loopback hosts (DANGER: tokens in clear text)")
	f.StringSliceVar(&g.trustOrigins, "trust-origin", nil, "extra origin allowed to receive the token (repeatable)")
	f.StringVar(&g.clientSecretFile, "client-secret-file", "", "file holding the client secret (or set SMARTFHIR_CLIENT_SECRET)")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "print more notes on stderr (the detected generic profile, --store client logs)")
}

// resetSharedDefaults gives every flag the running command did not receive its own command's default.
// Commands share the globals struct, so registering a flag on one command writes that command's default
// into the shared field (the last registration would otherwise win: `export` has no timeout while the
// others default to 5 minutes).
func resetSharedDefaults(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			var def []string
			if d := strings.Trim(f.DefValue, "[]"); d != "" {
				def = strings.Split(d, ",")
			}
			_ = sv.Replace(def)
			return
		}
		_ = f.Value.Set(f.DefValue)
	})
}

// noEnv annotates a flag that only the command line may set: one that lowers a safeguard, such as
// --show-token, must not be switched on by a variable left in the environment (CONV-6).
const noEnv = "smartfhir/no-env"

// applyEnv fills every flag the user did not set from SMARTFHIR_<NAME> (dashes become underscores),
// except the flags annotated noEnv.
func applyEnv(cmd *cobra.Command, getenv func(string) string) error {
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, cliOnly := f.Annotations[noEnv]; f.Changed || firstErr != nil || f.Name == "help" || cliOnly {
			return
		}
		env := "SMARTFHIR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				firstErr = usagef("%s=%q: %v", env, v, err)
			}
		}
	})
	return firstErr
}

// clientSecret returns the client secret from SMARTFHIR_CLIENT_SECRET or --client-secret-file ("" if neither).
func (g *globals) clientSecret() (string, error) {
	if g.clientSecretFile != "" {
		b, err := os.ReadFile(g.clientSecretFile)
		if err != nil {
			return "", fmt.Errorf("reading --client-secret-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return g.getenv("SMARTFHIR_CLIENT_SECRET"), nil
}

// commandContext applies --timeout to ctx.
func (g *globals) commandContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.timeout > 0 {
		return context.WithTimeout(ctx, g.timeout)
	}
	return context.WithCancel(ctx)
}
