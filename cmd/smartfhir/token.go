package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/smart"
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
client_secret_basic: that is plain OAuth 2.0, for APIs that require it, not SMART Backend Services.

--profile NAME applies a vendor profile (Epic's Epic-Client-ID header and retried bare 400, …);
without it the profile is detected from the server's CapabilityStatement and reported on stderr.
--store URL (keys in SMARTFHIR_STORE_KEYS) shares the token through Redis: runs in parallel get
the same token while it is fresh, fetched by one of them.`,
		Example: `  smartfhir token --fhir https://ehr.example.org/fhir --client-id my-service --key backend-key.pem
  smartfhir token --fhir https://ehr.example.org/fhir --client-id my-service --key key.pem --scope 'system/Patient.rs' --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runToken(cmd.Context(), g, showToken) },
	}
	g.serverFlags(cmd)
	g.storeFlag(cmd)
	cmd.Flags().BoolVar(&showToken, "show-token", false, "print the access token itself (it is a credential: keep it out of logs; no SMARTFHIR_ variable)")
	_ = cmd.Flags().SetAnnotation("show-token", noEnv, []string{"true"})
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
	ctx, cancel := g.commandContext(ctx)
	defer cancel()
	cfg := &backend.Config{
		ClientID: s.ClientID, FHIRBase: s.FHIR, Scopes: strings.Fields(s.Scope),
		PrivateKey: cr.key, KeyID: cr.kid, ClientSecret: cr.secret, Profile: g.vendorProfile(ctx, s),
		Header: s.Header, HTTPClient: httpClient(), TrustedOrigins: s.TrustOrigins, InsecureAllowHTTP: s.InsecureHTTP,
	}
	if err := g.shareTokens(ctx, cfg); err != nil {
		return err
	}
	var tok *smart.Token
	if cfg.Store != nil {
		tok, err = cfg.TokenSource(ctx).Current(ctx) // the shared token while it is fresh
	} else {
		tok, err = cfg.Token(ctx)
	}
	if err != nil {
		return tokenError(err)
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

// tokenError adds to a token endpoint failure what it means and what to do (smart.ExplainTokenError:
// Oracle Health's persona mismatch, Epic's bare 400s, athenaPractice's non-OAuth errors, the OAuth
// codes), with the server's error_uri.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%w\n%s", err, smart.ExplainTokenError(err))
}
