package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// devEnv is an in-process sandbox and a private config directory: the setting of the developer
// commands' end-to-end tests, which drive the CLI through runEnv.
type devEnv struct {
	t    *testing.T
	sb   *sandbox.Server
	srv  *httptest.Server
	fhir string
	dir  string            // SMARTFHIR_CONFIG_DIR
	env  map[string]string // the environment the command sees
}

func newDevEnv(t *testing.T, opts sandbox.Options) *devEnv {
	t.Helper()
	sb, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	return &devEnv{t: t, sb: sb, srv: srv, fhir: srv.URL + "/fhir", dir: dir,
		env: map[string]string{"SMARTFHIR_CONFIG_DIR": dir}}
}

// run runs the CLI and returns its exit code, stdout and stderr.
func (e *devEnv) run(args ...string) (int, string, string) {
	e.t.Helper()
	return e.runIn(nil, args...)
}

func (e *devEnv) runIn(stdin []byte, args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	code := runEnv(ctx, args, bytes.NewReader(stdin), &out, &errOut, func(k string) string { return e.env[k] })
	return code, out.String(), errOut.String()
}

// keyPair makes a fresh ES384 key, saved as PEM, and returns its public JWK Set and the file.
func (e *devEnv) keyPair() (jwks []byte, keyFile string) {
	e.t.Helper()
	key, err := backend.GenerateKey(backend.ES384, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if jwks, err = backend.PublicJWKS(backend.Key{Signer: key}); err != nil {
		e.t.Fatal(err)
	}
	pemBytes, err := backend.MarshalPrivateKey(key)
	if err != nil {
		e.t.Fatal(err)
	}
	keyFile = filepath.Join(e.t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return jwks, keyFile
}

// backendClient registers a private_key_jwt backend client and returns its id and key file.
func (e *devEnv) backendClient() (clientID, keyFile string) {
	e.t.Helper()
	jwks, keyFile := e.keyPair()
	c, err := e.sb.RegisterClient(sandbox.Client{Name: "cli backend", AuthMethod: "private_key_jwt", JWKS: jwks,
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs system/*.read"})
	if err != nil {
		e.t.Fatal(err)
	}
	return c.ID, keyFile
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// loginClient registers a public client that skips the sandbox's login and picker pages, for
// redirect URI http://127.0.0.1:PORT/callback, and returns its id and the port.
func (e *devEnv) loginClient() (clientID string, port int) {
	e.t.Helper()
	port = freePort(e.t)
	c, err := e.sb.RegisterClient(sandbox.Client{Name: "cli login", AuthMethod: "none", SkipLogin: true,
		RedirectURIs: []string{"http://127.0.0.1:" + strconv.Itoa(port) + "/callback"},
		GrantTypes:   []string{"authorization_code", "refresh_token"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return c.ID, port
}

// headlessBrowser sets BROWSER to a script that follows the authorize URL with curl, as a browser
// whose user approves at once would (the sandbox's skip_login clients approve without a page).
func (e *devEnv) headlessBrowser() {
	e.t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			e.t.Fatal("curl is needed to drive login without a browser")
		}
		e.t.Skip("curl not found: cannot drive login without a browser")
	}
	script := filepath.Join(e.t.TempDir(), "browser.sh")
	body := "#!/bin/sh\nexec " + curl + " -sS -o /dev/null -L --max-redirs 10 --max-time 30 \"$1\"\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		e.t.Fatal(err)
	}
	e.env["BROWSER"] = script
}

// login logs in with a fresh public client through the headless browser and returns the client id.
func (e *devEnv) login(extra ...string) string {
	e.t.Helper()
	e.headlessBrowser()
	id, port := e.loginClient()
	args := append([]string{"login", "--fhir", e.fhir, "--client-id", id, "--redirect-port", strconv.Itoa(port), "--timeout", "30s"}, extra...)
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("login: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	return id
}

// writeConfig writes the config file.
func (e *devEnv) writeConfig(body string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, configFileName), []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// mustContain fails unless s contains every part.
func mustContain(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, s)
		}
	}
}
