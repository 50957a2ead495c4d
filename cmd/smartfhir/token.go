package main

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/backend"
)

// newTokenCmd builds `smartfhir token`: a SMART Backend Services access token (client_credentials
// with a signed JWT assertion), printed as JSON with the token itself redacted unless --show-token.
func newTokenCmd(g *globals) *cobra.Command {
	var showToken bool
	cmd := &cobra.Command{
		Use:   "token --fhir URL --client-id ID --key FILE [--kid KID] [--scope SCOPES]",
		Short: "get a SMART Backend Services access token",
		Long: `token discovers the server's token endpoint from --fhir, signs a client assertion with --key
(RS384 or ES384; the kid defaults to the key's RFC 7638 thumbprint) and requests a token with the
client_credentials grant. It prints the token response as JSON; access_token is "REDACTED" unless
--show-token. The scope defaults to system/*.rs when the server advertises permission-v2, else
system/*.read. A granted scope narrower than the requested one is reported on stderr.

With SMARTFHIR_CLIENT_SECRET or --client-secret-file instead of --key, the client authenticates with
client_secret_basic: that is plain OAuth 2.0, for APIs that require it, not SMART Backend Services.`,
		Example: `  smartfhir token --fhir https://ehr.example.org/fhir --client-id my-service --key backend-key.pem
  smartfhir token --fhir https://ehr.example.org/fhir --client-id my-service --key key.pem --scope 'system/Patient.rs' --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runToken(cmd.Context(), g, showToken) },
	}
	g.serverFlags(cmd)
	cmd.Flags().BoolVar(&showToken, "show-token", false, "print the access token itself (it is a credential: keep it out of logs)")
	return cmd
}

// tokenOutput is what `token` prints: the token response members, never a refresh token (BS-04).
type tokenOutput struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresIn   int64     `json:"expires_in"`
	Expiry      time.Time `json:"expiry"`
	Scope       string    `json:"scope"`
}

func runToken(ctx context.Context, g *globals, showToken bool) error {
	s, err := resolveServer(g, true)
	if err != nil {
		return err
	}
	if s.ClientID == "" {
		return usagef("token needs --client-id (or SMARTFHIR_CLIENT_ID)")
	}
	if s.Auth != authKeyJWT && s.Auth != authSecret {
		return usagef("token needs --key FILE (SMART Backend Services), or SMARTFHIR_CLIENT_SECRET / --client-secret-file (plain OAuth 2.0)")
	}
	cr, err := g.credentials(s)
	if err != nil {
		return err
	}
	if cr.key == nil {
		g.notef("note: client_credentials with a client secret is plain OAuth 2.0, not SMART Backend Services (which needs --key)")
	}
	cfg := &backend.Config{
		ClientID: s.ClientID, FHIRBase: s.FHIR, Scopes: strings.Fields(s.Scope),
		PrivateKey: cr.key, KeyID: cr.kid, ClientSecret: cr.secret,
		Header: s.Header, HTTPClient: httpClient(), TrustedOrigins: s.TrustOrigins, InsecureAllowHTTP: s.InsecureHTTP,
	}
	ctx, cancel := g.commandContext(ctx)
	defer cancel()
	tok, err := cfg.Token(ctx)
	if err != nil {
		return err
	}
	for _, w := range tok.Warnings {
		g.warnf("%s", oneLine(w))
	}
	out := tokenOutput{AccessToken: "REDACTED", TokenType: tok.TokenType, ExpiresIn: tok.ExpiresIn, Expiry: tok.Expiry.UTC().Truncate(time.Second), Scope: tok.Scope}
	if showToken {
		out.AccessToken = tok.AccessToken
	}
	if g.json {
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(append(b, '\n'))
		return err
	}
	return printJSON(g.stdout, out)
}
