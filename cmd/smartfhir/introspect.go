package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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
a bearer token of the stored login or of backend services (as 'smartfhir get' does). A vendor profile
may name the endpoint instead (--profile oracle: Oracle Health's tokeninfo); it is used only when its
origin is trusted. It prints the answer: active or not, scope, client_id, expiry, launch context; an
active answer whose exp has passed is shown inactive (expired: true). The token itself is never
printed.

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
	endpoint := s.Vendor.IntrospectionURL(cfg) // Oracle Health's tokeninfo, or the discovered one
	if endpoint == "" {
		return fmt.Errorf("%s advertises no introspection_endpoint (and profile %s names none)", httpx.Redact(s.FHIR), s.Vendor.Name)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("introspection_endpoint: %w", err)
	}
	trusted := s.trusted(cfg)
	if set, _ := httpx.NewOrigins(trusted...); !set.Allows(u) {
		return fmt.Errorf("the introspection endpoint is on %s, which is not trusted with tokens: pass --trust-origin %s if it belongs to the server",
			httpx.Origin(u), httpx.Origin(u))
	}
	a, err := g.authenticate(ctx, s)
	if err != nil {
		return err
	}
	in := &smart.Introspector{Endpoint: endpoint, HTTPClient: httpClient(), TokenSource: a.src, Header: s.Header,
		InsecureAllowHTTP: s.InsecureHTTP}
	res, err := in.Introspect(ctx, token)
	if err != nil {
		return fmt.Errorf("introspection: %w", err)
	}
	if g.json {
		return printJSON(g.stdout, res)
	}
	return printIntrospection(g.stdout, res)
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
// members in their usual order; server text is escaped.
func printIntrospection(w io.Writer, in *smart.Introspection) error {
	when := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmt.Sprintf("%d (%s, %s)", t.Unix(), t.UTC().Format(time.RFC3339), until(t, time.Now()))
	}
	fhirContext := ""
	if len(in.FHIRContext) > 0 {
		b, _ := json.Marshal(in.FHIRContext)
		fhirContext = string(b)
	}
	lines := []struct{ name, value string }{
		{"active", fmt.Sprint(in.Active)}, {"expired", pick(in.Expired, "true", "")}, {"scope", in.Scope},
		{"client_id", in.ClientID}, {"token_type", in.TokenType}, {"exp", when(in.Expiry)}, {"iat", when(in.IssuedAt)},
		{"nbf", when(in.NotBefore)}, {"sub", in.Subject}, {"iss", in.Issuer}, {"fhirUser", in.FHIRUser},
		{"username", in.Username}, {"aud", strings.Join(in.Audience, " ")}, {"patient", in.Patient},
		{"encounter", in.Encounter}, {"fhirContext", fhirContext}, {"intent", in.Intent}, {"tenant", in.Tenant},
	}
	for _, k := range slices.Sorted(maps.Keys(in.Extensions)) {
		lines = append(lines, struct{ name, value string }{k, string(in.Extensions[k])})
	}
	for _, wn := range in.Warnings {
		lines = append(lines, struct{ name, value string }{"warning", wn})
	}
	for _, l := range lines {
		if l.value == "" {
			continue
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", safe(l.name), oneLine(l.value)); err != nil {
			return err
		}
	}
	return nil
}
