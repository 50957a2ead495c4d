package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/backend"
)

// newKeygenCmd builds `smartfhir keygen`: a new signing key for SMART Backend Services (JWKS-06).
func newKeygenCmd(g *globals) *cobra.Command {
	var alg, out string
	var bits int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen [--alg ES384|RS384] [--bits 2048|3072|4096] [--out key.pem [--json]]",
		Short: "generate a signing key for SMART Backend Services and print its kid",
		Long: `keygen generates a private key for private_key_jwt client authentication: ECDSA P-384 for ES384
(the default) or RSA for RS384, saved as PKCS#8 PEM.

With --out the key is written to a new file, readable by you alone (mode 0600; an existing file is
never overwritten) and the kid (its RFC 7638 thumbprint) is printed on stdout. Without --out the PEM
goes to stdout and the kid to stderr. --json (with --out) prints {"kid", "alg", "file"} on stdout
instead of the kid; the private key is never part of it.

Register the public half with the server: 'smartfhir jwks key.pem' prints its JWK Set.`,
		Example: `  smartfhir keygen --out backend-key.pem
  smartfhir keygen --alg RS384 --bits 3072 --out backend-key.pem
  smartfhir keygen --out backend-key.pem --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeygen(g, strings.ToUpper(alg), bits, cmd.Flags().Changed("bits"), out, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&alg, "alg", backend.ES384, "signature algorithm: ES384 or RS384")
	f.IntVar(&bits, "bits", 2048, "RSA key size for RS384: 2048, 3072 or 4096")
	f.StringVar(&out, "out", "", "write the key to this new file (mode 0600) instead of stdout")
	f.BoolVar(&asJSON, "json", false, `print {"kid","alg","file"} as JSON (needs --out)`)
	return cmd
}

func runKeygen(g *globals, alg string, bits int, bitsSet bool, out string, asJSON bool) error {
	if asJSON && out == "" {
		return usagef("--json needs --out: without it the private key itself goes to stdout")
	}
	switch alg {
	case backend.ES384:
		if bitsSet {
			return usagef("--bits applies to RS384 only (ES384 keys are P-384)")
		}
		bits = 0
	case backend.RS384:
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return usagef("--bits %d: want 2048, 3072 or 4096", bits)
		}
	default:
		return usagef("--alg %q: want ES384 or RS384", alg)
	}
	key, err := backend.GenerateKey(alg, bits)
	if err != nil {
		return err
	}
	pemBytes, err := backend.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	defer clear(pemBytes)
	kid, err := backend.Thumbprint(key.Public())
	if err != nil {
		return err
	}
	if out == "" {
		if _, err := g.stdout.Write(pemBytes); err != nil {
			return err
		}
		g.notef("kid: %s", kid)
		return nil
	}
	if err := writeNewFile(out, pemBytes); err != nil {
		return err
	}
	if asJSON {
		return printJSON(g.stdout, struct {
			Kid  string `json:"kid"`
			Alg  string `json:"alg"`
			File string `json:"file"`
		}{kid, alg, out})
	}
	fmt.Fprintln(g.stdout, kid)
	return nil
}

// writeNewFile creates path with mode 0600 and writes b, refusing to overwrite an existing file; a
// failed write leaves no partial key behind.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists: refusing to overwrite a key (choose another --out)", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
