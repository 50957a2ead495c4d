package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

func newIntrospectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "introspect TOKEN-FILE",
		Short: "ask the server about a token (RFC 7662 introspection)",
		Long: `introspect reads an access or refresh token from TOKEN-FILE ("-" for stdin) and asks the
server's introspection_endpoint about it (SMART token introspection, RFC 7662), authenticating with
a bearer token of the stored login or of backend services (as 'smartfhir get' does). It prints the
answer: active or not, scope, client_id, expiry, launch context. The token itself is never printed.

  smartfhir token --fhir http://127.0.0.1:9090/fhir --client-id ID --key key.pem --show-token \
    | jq -r .access_token > tok.txt
  smartfhir introspect tok.txt --fhir http://127.0.0.1:9090/fhir --client-id ID --key key.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runIntrospect(cmd.Context(), g, args[0]) },
	}
	g.serverFlags(cmd)
	return cmd
}

// maxTokenFile bounds the token file.
const maxTokenFile = 64 << 10

func runIntrospect(ctx context.Context, g *globals, file string) error {
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	token, err := g.readTokenFile(file)
	if err != nil {
		return err
	}
	cfg, err := g.discover(ctx, s)
	if err != nil {
		return err
	}
	if cfg.IntrospectionEndpoint == "" {
		return fmt.Errorf("%s advertises no introspection_endpoint", httpx.Redact(s.FHIR))
	}
	endpoint, err := url.Parse(cfg.IntrospectionEndpoint)
	if err != nil {
		return fmt.Errorf("introspection_endpoint: %w", err)
	}
	trusted := s.trusted(cfg)
	set, _ := httpx.NewOrigins(trusted...)
	if !set.Allows(endpoint) {
		return fmt.Errorf("the introspection endpoint is on %s, which is not trusted with tokens: pass --trust-origin %s if it belongs to the server",
			httpx.Origin(endpoint), httpx.Origin(endpoint))
	}
	a, err := g.authenticate(ctx, s)
	if err != nil {
		return err
	}
	t, err := smart.NewTransport(a.src, httpx.NewTransport(), trusted...)
	if err != nil {
		return err
	}
	resp, body, err := postForm(ctx, noRedirects(&http.Client{Transport: t}), s, cfg.IntrospectionEndpoint, url.Values{"token": {token}}, nil)
	if err != nil {
		return fmt.Errorf("introspection: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("introspection: %w", endpointError(resp, body, token))
	}
	body = []byte(strings.ReplaceAll(string(body), token, "REDACTED")) // a server echoing the token must not make us print it
	var result map[string]any
	if err := json.Unmarshal(body, &result); err != nil {
		return fmt.Errorf("introspection: the answer is not a JSON object: %w", err)
	}
	if g.json {
		return printJSON(g.stdout, result)
	}
	return printIntrospection(g.stdout, result)
}

// readTokenFile reads a token from a file or stdin ("-"), trimmed; it must be one RFC 6750 token.
func (g *globals) readTokenFile(file string) (string, error) {
	var r io.Reader
	if file == "-" {
		r = g.stdin
	} else {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := httpx.ReadLimited(r, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("reading the token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", usagef("%s holds no token", file)
	}
	if !smart.ValidAccessToken(tok) {
		return "", usagef("%s does not hold one token (RFC 6750 characters only, no spaces or line breaks)", file)
	}
	return tok, nil
}

// printIntrospection prints an introspection answer as "name: value" lines, the RFC 7662 and SMART
// members first; server text is escaped.
func printIntrospection(w io.Writer, m map[string]any) error {
	order := []string{"active", "scope", "client_id", "token_type", "exp", "iat", "sub", "iss", "fhirUser", "patient", "encounter"}
	keys := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(order, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range append(order, keys...) {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = fmt.Sprint(x)
			if (k == "exp" || k == "iat") && x > 0 {
				t := time.Unix(int64(x), 0)
				s = fmt.Sprintf("%d (%s, %s)", int64(x), t.UTC().Format(time.RFC3339), until(t, time.Now()))
			}
		default:
			b, _ := json.Marshal(x)
			s = string(b)
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", safe(k), oneLine(s)); err != nil {
			return err
		}
	}
	return nil
}
