package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// newJWKSCmd builds `smartfhir jwks KEYFILE…`: the public JWK Set to register with a server (JWKS-01).
func newJWKSCmd(g *globals) *cobra.Command {
	var kid string
	cmd := &cobra.Command{
		Use:   "jwks KEYFILE...",
		Short: "print the public JWK Set of private keys, for registration with a server",
		Long: `jwks reads private keys (PEM: PKCS#8, PKCS#1 or SEC 1; a private JWK; or a private JWK Set) and
prints their public JWK Set on stdout: public members only, each key with its kid, alg, "use":"sig"
and "key_ops":["verify"]. The kid is the key's own (JWK) or its RFC 7638 thumbprint; --kid sets it
when there is a single key.

Paste the output into the server's client registration, or serve it at your jwks_uri. To rotate,
list the current and the next key together.`,
		Example: `  smartfhir jwks backend-key.pem
  smartfhir jwks current.pem next.pem > jwks.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runJWKS(g, args, kid) },
	}
	cmd.Flags().StringVar(&kid, "kid", "", "key id to publish (only with a single key)")
	return cmd
}

func runJWKS(g *globals, files []string, kid string) error {
	var keys []backend.Key
	for _, name := range files {
		ks, err := readKeys(name)
		if err != nil {
			return err
		}
		keys = append(keys, ks...)
	}
	if kid != "" {
		if len(keys) != 1 {
			return usagef("--kid needs exactly one key; the files hold %d", len(keys))
		}
		keys[0].ID = kid
	}
	jwks, err := backend.PublicJWKS(keys...)
	if err != nil {
		return err
	}
	return printRawJSON(g.stdout, jwks, true)
}

// readKeys reads every private signing key of a key file (1 MiB at most).
func readKeys(name string) ([]backend.Key, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := httpx.ReadLimited(f, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer clear(b)
	keys, err := backend.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return keys, nil
}
