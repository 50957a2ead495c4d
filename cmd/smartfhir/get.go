package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

func newGetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get PATH|URL",
		Short: "read a FHIR resource (pretty JSON on stdout)",
		Long: `get reads one FHIR resource, or any GET below the FHIR base, and prints it as indented JSON
(--json: on one line). PATH is relative to the FHIR base ("Patient/123", "metadata"); an absolute
URL is accepted only on the FHIR base's origin (or a --trust-origin).

It authenticates with the stored login of --fhir/--profile ('smartfhir login'), refreshing it as
needed, else as a backend service with --client-id and --key (or SMARTFHIR_CLIENT_SECRET).

  smartfhir get Patient/123 --fhir http://127.0.0.1:9090/fhir
  smartfhir get --profile sandbox 'Observation?patient=123&_count=5'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runGet(cmd.Context(), g, args[0]) },
	}
	g.serverFlags(cmd)
	g.storeFlag(cmd)
	return cmd
}

func runGet(ctx context.Context, g *globals, target string) error {
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	path, err := s.requestPath(target)
	if err != nil {
		return err
	}
	c, a, err := g.connect(ctx, s)
	if err != nil {
		return err
	}
	req, err := c.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return usagef("%v", err)
	}
	var raw json.RawMessage
	if _, err := c.Do(req, &raw); err != nil {
		return explainFHIRError(err, a)
	}
	return printRawJSON(g.stdout, raw, !g.json)
}

// requestPath turns a get argument into a path relative to the FHIR base, or an absolute URL that
// must be on the base's origin or a trusted one.
func (s *serverSettings) requestPath(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", usagef("%q is not a path or URL: %v", target, err)
	}
	if !u.IsAbs() {
		return strings.TrimPrefix(target, "/"), nil
	}
	base, err := s.baseURL()
	if err != nil {
		return "", usagef("%v", err)
	}
	trusted, _ := httpx.NewOrigins(append([]string{s.FHIR}, s.TrustOrigins...)...)
	if !trusted.Allows(u) {
		return "", usagef("%s is not on the FHIR server's origin %s: the token goes only there (add --trust-origin %s if it belongs to the server)",
			httpx.Redact(target), httpx.Origin(base), httpx.Origin(u))
	}
	return target, nil
}

// explainFHIRError adds what to do next to a FHIR error.
func explainFHIRError(err error, a *authn) error {
	var fe *fhirclient.Error
	if !errors.As(err, &fe) {
		return err
	}
	switch {
	case errors.Is(err, fhirclient.ErrUnauthorized) && a.kind == "login":
		return fmt.Errorf("%w\n(the server refused the stored login: run 'smartfhir login' again)", err)
	case errors.Is(err, fhirclient.ErrUnauthorized):
		return fmt.Errorf("%w\n(the server refused the backend token: check --client-id, the key and --scope)", err)
	case errors.Is(err, fhirclient.ErrForbidden):
		return fmt.Errorf("%w\n(the granted scopes do not allow this: ask for a scope that covers it with --scope)", err)
	}
	return err
}
