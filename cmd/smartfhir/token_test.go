package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// bkRun runs the CLI with args and an environment holding only env, returning the exit code and
// outputs.
func bkRun(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runEnv(t.Context(), args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

// bkKeyFile writes a new key with `smartfhir keygen` and returns its path and kid.
func bkKeyFile(t *testing.T, alg string) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	code, out, errOut := bkRun(t, nil, "keygen", "--alg", alg, "--out", path)
	if code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	return path, strings.TrimSpace(out)
}

// bkSandbox starts the sandbox EHR with a backend client registered for the key in keyFile.
func bkSandbox(t *testing.T, keyFile string) (*sandbox.Server, string, string) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Options{Patients: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	keys, err := readKeys(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := backend.PublicJWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sb.RegisterClient(sandbox.Client{AuthMethod: "private_key_jwt", JWKS: jwks,
		GrantTypes: []string{"client_credentials"}, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	return sb, ts.URL + "/fhir", c.ID
}

func TestTokenCommand(t *testing.T) { // CONV-6, BS-02, BS-04
	t.Parallel()
	for _, alg := range []string{"ES384", "RS384"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			key, _ := bkKeyFile(t, alg)
			_, fhir, clientID := bkSandbox(t, key)

			code, out, errOut := bkRun(t, nil, "token", "--fhir", fhir, "--client-id", clientID, "--key", key)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var tok tokenOutput
			if err := json.Unmarshal([]byte(out), &tok); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if tok.AccessToken != "REDACTED" || tok.TokenType != "Bearer" || tok.Scope != "system/*.rs" || tok.ExpiresIn <= 0 {
				t.Fatalf("output %+v", tok)
			}
			if !strings.Contains(out, "\n  ") {
				t.Fatal("default output should be indented JSON")
			}

			// Flags from the environment; --show-token prints the token; --json prints one line.
			env := map[string]string{"SMARTFHIR_FHIR": fhir, "SMARTFHIR_CLIENT_ID": clientID, "SMARTFHIR_KEY": key}

			// Only the flag itself shows the token: a SMARTFHIR_SHOW_TOKEN left in the environment
			// does not (CONV-6: tokens never printed unless --show-token).
			code, out, errOut = bkRun(t, map[string]string{"SMARTFHIR_FHIR": fhir, "SMARTFHIR_CLIENT_ID": clientID,
				"SMARTFHIR_KEY": key, "SMARTFHIR_SHOW_TOKEN": "true"}, "token", "--json")
			if err := json.Unmarshal([]byte(out), &tok); code != exitOK || err != nil || tok.AccessToken != "REDACTED" {
				t.Fatalf("SMARTFHIR_SHOW_TOKEN=true: exit %d, %q (%v): %s", code, out, err, errOut)
			}
			code, out, errOut = bkRun(t, env, "token", "--show-token", "--json", "--scope", "system/Patient.rs")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.AccessToken == "REDACTED" || tok.AccessToken == "" ||
				strings.Count(out, "\n") != 1 || tok.Scope != "system/Patient.rs" {
				t.Fatalf("--show-token --json: %q (%v)", out, err)
			}
		})
	}
}

func TestTokenCommandClientSecret(t *testing.T) { // CONV-4, AUTH-03
	t.Parallel()
	sb, err := sandbox.New(sandbox.Options{Patients: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(sb)
	t.Cleanup(ts.Close)
	c, err := sb.RegisterClient(sandbox.Client{AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scope: "system/*.read"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SMARTFHIR_CLIENT_SECRET": c.Secret}
	code, out, errOut := bkRun(t, env, "token", "--fhir", ts.URL+"/fhir", "--client-id", c.ID, "--scope", "system/*.read")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Count(errOut, "plain OAuth 2.0") != 1 {
		t.Fatalf("stderr must say once that this is plain OAuth 2.0: %q", errOut)
	}
	if strings.Contains(out+errOut, c.Secret) {
		t.Fatal("the secret was printed")
	}
	// From a file as well, with a wrong secret: a clear error, no secret in it.
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("wrong-secret-value\n"), 0o600)
	code, out, errOut = bkRun(t, nil, "token", "--fhir", ts.URL+"/fhir", "--client-id", c.ID, "--client-secret-file", secretFile, "--scope", "system/*.read")
	if code != exitFail || !strings.Contains(errOut, "invalid_client") || strings.Contains(out+errOut, "wrong-secret-value") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestTokenCommandErrors(t *testing.T) { // CONV-6 exit codes
	t.Parallel()
	key, kid := bkKeyFile(t, "ES384")
	sb, fhir, clientID := bkSandbox(t, key)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a key"), 0o600)

	tests := []struct {
		name    string
		args    []string
		arm     func()
		want    int
		wantErr string
	}{
		{"no client id", []string{"token", "--fhir", fhir, "--key", key}, nil, exitUsage, "--client-id"},
		{"no key or secret", []string{"token", "--fhir", fhir, "--client-id", clientID}, nil, exitUsage, "--key"},
		{"no fhir", []string{"token", "--client-id", clientID, "--key", key}, nil, exitUsage, "--fhir"},
		{"plain http to a remote host", []string{"token", "--fhir", "http://ehr.example.org/fhir", "--client-id", clientID, "--key", key}, nil, exitUsage, "http"},
		{"positional argument", []string{"token", "extra", "--fhir", fhir}, nil, exitUsage, ""},
		{"bad key file", []string{"token", "--fhir", fhir, "--client-id", clientID, "--key", garbage}, nil, exitFail, "no private signing key"},
		{"missing key file", []string{"token", "--fhir", fhir, "--client-id", clientID, "--key", garbage + ".missing"}, nil, exitFail, "no such file"},
		{"wrong kid", []string{"token", "--fhir", fhir, "--client-id", clientID, "--key", key, "--kid", "not-" + kid}, nil, exitFail, "invalid_client"},
		{"patient scope", []string{"token", "--fhir", fhir, "--client-id", clientID, "--key", key, "--scope", "patient/*.rs"}, nil, exitFail, "system/"},
		{"revoked key", []string{"token", "--fhir", fhir, "--client-id", clientID, "--key", key}, func() { _ = sb.RevokeClientKey(clientID, kid) }, exitFail, "revoked"},
	}
	for _, tt := range tests { // sequential: the last case revokes the key
		if tt.arm != nil {
			tt.arm()
		}
		code, out, errOut := bkRun(t, nil, tt.args...)
		if code != tt.want || !strings.Contains(errOut, tt.wantErr) || out != "" {
			t.Errorf("%s: exit %d (want %d), stdout %q, stderr %q (want %q)", tt.name, code, tt.want, out, errOut, tt.wantErr)
		}
	}
}
