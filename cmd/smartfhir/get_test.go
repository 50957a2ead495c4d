package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// TestGetBackend reads with a SMART Backend Services token (--client-id, --key): pretty JSON by
// default, one line with --json.
func TestGetBackend(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	id, key := e.backendClient()
	auth := []string{"--fhir", e.fhir, "--client-id", id, "--key", key}
	code, out, errOut := e.run(append([]string{"get", "Patient/pt-1"}, auth...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(out), &p); err != nil || p["id"] != "pt-1" || !strings.Contains(out, "\n  \"") {
		t.Errorf("get: %v %s", err, out)
	}
	code, out, _ = e.run(append([]string{"get", e.fhir + "/Patient/pt-1", "--json"}, auth...)...)
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("get absolute URL --json: exit %d: %q", code, out)
	}
	code, out, _ = e.run(append([]string{"get", "/metadata"}, auth...)...)
	if code != 0 || !strings.Contains(out, "CapabilityStatement") {
		t.Errorf("get /metadata: exit %d", code)
	}
}

// TestGetRefusals: a URL on another origin and a path climbing out of the base are usage errors
// before any request (API-02, API-05); server errors say what to do.
func TestGetRefusals(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	id, key := e.backendClient()
	auth := []string{"--fhir", e.fhir, "--client-id", id, "--key", key}
	before := e.sb.Count("token_requests")
	for _, target := range []string{"https://evil.example/fhir/Patient/1", "http://127.0.0.2:1/fhir/Patient/1", "../auth/token", "Patient/..%2F..%2Fx"} {
		code, _, errOut := e.run(append([]string{"get", target}, auth...)...)
		if code == 0 {
			t.Errorf("get %s: exit 0", target)
		}
		if target[0] != 'P' && code != exitUsage {
			t.Errorf("get %s: exit %d: %s", target, code, errOut)
		}
	}
	if n := e.sb.Count("token_requests"); n > before+1 {
		t.Errorf("%d token requests for refused URLs", n-before)
	}
	code, _, errOut := e.run(append([]string{"get", "Patient/no-such-patient"}, auth...)...)
	if code != exitFail || !strings.Contains(errOut, "404") {
		t.Errorf("404: exit %d: %s", code, errOut)
	}
	code, _, errOut = e.run("get", "Patient/pt-1", "--fhir", e.fhir)
	if code != exitFail || !strings.Contains(errOut, "not logged in") || !strings.Contains(errOut, "--key") {
		t.Errorf("no credentials: exit %d: %s", code, errOut)
	}
}

// TestSearchBackend covers the output modes, paging and usage errors of search.
func TestSearchBackend(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	id, key := e.backendClient()
	auth := []string{"--fhir", e.fhir, "--client-id", id, "--key", key}
	code, out, errOut := e.run(append([]string{"search", "Patient", "_count=3"}, auth...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "Patient/") {
		t.Errorf("first page: %q", out)
	}
	mustContain(t, "stderr", errOut, "3 resource(s); more pages: add --all")

	code, out, errOut = e.run(append([]string{"search", "Patient", "_count=3", "--all", "--json"}, auth...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var r struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.ResourceType != "Patient" || seen[r.ID] {
			t.Errorf("line %q: %v", l, err)
		}
		seen[r.ID] = true
	}
	if len(seen) != 20 {
		t.Errorf("--all: %d patients, want 20", len(seen))
	}

	for _, args := range [][]string{{"search", "patient"}, {"search", "../x"}, {"search", "Patient", "name"}, {"search"}} {
		if code, _, errOut := e.run(append(args, auth...)...); code != exitUsage {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
}

// TestSearchWithSecret: a client secret gives plain OAuth client_credentials, said once (CONV-4).
func TestSearchWithSecret(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	c, err := e.sb.RegisterClient(sandbox.Client{Name: "secret", AuthMethod: "client_secret_basic",
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	e.env["SMARTFHIR_CLIENT_SECRET"] = c.Secret
	code, out, errOut := e.run("search", "Practitioner", "--fhir", e.fhir, "--client-id", c.ID)
	if code != 0 || !strings.HasPrefix(out, "Practitioner/") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if strings.Count(errOut, "not SMART Backend Services") != 1 || strings.Contains(out+errOut, c.Secret) {
		t.Errorf("stderr: %s", errOut)
	}
}

// TestIntrospect asks the server about a live and an unknown token; the token never reaches the
// output (CONV-4).
func TestIntrospect(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	id, keyFile := e.backendClient()
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, kid, err := backend.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	bc := &backend.Config{ClientID: id, FHIRBase: e.fhir, PrivateKey: key, KeyID: kid}
	tok, err := bc.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tok.txt")
	if err := os.WriteFile(file, []byte(tok.AccessToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--fhir", e.fhir, "--client-id", id, "--key", keyFile}
	code, out, errOut := e.run(append([]string{"introspect", file}, auth...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "introspect", out, "active: true", "scope: system/*.rs", "client_id: "+id, "exp: ")
	if strings.Contains(out+errOut, tok.AccessToken) {
		t.Error("the token was printed")
	}

	code, out, errOut = e.runIn([]byte("unknown-token"), append([]string{"introspect", "-", "--json"}, auth...)...)
	var res map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res["active"] != false {
		t.Errorf("unknown token: exit %d: %s %s", code, out, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("two tokens"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.run(append([]string{"introspect", bad}, auth...)...); code != exitUsage {
		t.Errorf("a file with a space: exit %d", code)
	}
}
