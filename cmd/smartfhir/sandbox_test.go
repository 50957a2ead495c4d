package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer safe for the server goroutines and the test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitStopped waits for a cancelled `smartfhir sandbox` run to exit 0.
func waitStopped(t *testing.T, done <-chan int, stderr *lockedBuffer) {
	t.Helper()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown after cancel")
	}
}

// TestSandboxCommand starts `smartfhir sandbox` on a free port, uses it, and stops it by cancelling the
// context (CONV-7).
func TestSandboxCommand(t *testing.T) {
	t.Parallel()
	clients := filepath.Join(t.TempDir(), "clients.json")
	const secret = "s3cret-value-0123456789"
	if err := os.WriteFile(clients, []byte(`{"clients":[{"client_id":"cli-backend","client_secret":"`+secret+`",
		"token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],"scope":"system/*.rs"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- run(ctx, []string{"sandbox", "--addr", "127.0.0.1:0", "--patients", "3", "--seed", "5",
			"--version", "2.0", "--clients", clients}, strings.NewReader(""), &stdout, &stderr)
	}()
	discoveryRE := regexp.MustCompile(`(?m)^discovery: (\S+)$`)
	var discovery string
	for discovery == "" {
		select {
		case code := <-done:
			t.Fatalf("exited %d: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if m := discoveryRE.FindStringSubmatch(stderr.String()); m != nil {
			discovery = m[1]
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no discovery line: %s", stderr.String())
		}
	}
	t.Logf("started in %v", time.Since(start))
	for _, line := range []string{"fhir: ", "launcher: ", "register: ", "client: cli-backend (client_secret_basic)"} {
		if !strings.Contains(stderr.String(), line) {
			t.Errorf("stderr lacks %q:\n%s", line, stderr.String())
		}
	}
	resp, err := http.Get(discovery)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	tokenURL, _ := doc["token_endpoint"].(string)
	if !strings.HasPrefix(tokenURL, "http://127.0.0.1:") {
		t.Fatalf("discovery %v", doc)
	}
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("cli-backend", secret)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token from the --clients client: %d %s", resp.StatusCode, body)
	}
	cancel()
	waitStopped(t, done, &stderr)
	if strings.Contains(stderr.String(), secret) || strings.Contains(stderr.String(), string(body)) {
		t.Error("a secret or token reached stderr")
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestSandboxCommandErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad version", []string{"--version", "3"}, exitUsage, "--version"},
		{"bad patients", []string{"--patients", "0"}, exitUsage, "--patients"},
		{"unknown vendor mode", []string{"--as", "cerner-millennium"}, exitUsage, "want one of athena, cms-ab2d, cms-bcda, epic"},
		{"argument", []string{"extra"}, exitUsage, "unknown command"},
		{"missing clients file", []string{"--clients", filepath.Join(dir, "nope.json")}, exitFail, "--clients"},
		{"malformed clients file", []string{"--clients", write("bad.json", `{"clients":`)}, exitFail, "--clients"},
		{"client without id", []string{"--clients", write("noid.json", `[{"token_endpoint_auth_method":"none","redirect_uris":["https://a.example/cb"]}]`)}, exitFail, "client_id is required"},
		{"client without secret", []string{"--clients", write("nosecret.json", `[{"client_id":"x","redirect_uris":["https://a.example/cb"]}]`)}, exitFail, "client_secret is required"},
		{"client refused", []string{"--clients", write("refused.json", `[{"client_id":"x","token_endpoint_auth_method":"none","redirect_uris":["http://a.example/cb"]}]`)}, exitFail, "redirect_uri"},
		{"address in use or bad", []string{"--addr", "256.0.0.1:1"}, exitFail, "sandbox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"sandbox", "--addr", "127.0.0.1:0"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.msg)
			}
		})
	}
}

// TestSandboxCommandJSON: with --json the sandbox prints its URLs as one JSON object on stdout, the
// data a script needs after asking for a free port, and logs its requests as JSON lines on stderr
// (CONV-6: --json everywhere, data on stdout).
func TestSandboxCommandJSON(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sandbox", "--addr", "127.0.0.1:0", "--patients", "1", "--json"}, strings.NewReader(""), &stdout, &stderr)
	}()
	var urls struct {
		FHIR, Discovery, Launcher, Register string
		Clients                             []any
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasSuffix(stdout.String(), "\n") {
		select {
		case code := <-done:
			t.Fatalf("exited %d: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JSON on stdout; stderr: %s", stderr.String())
		}
	}
	if err := json.Unmarshal([]byte(stdout.String()), &urls); err != nil {
		t.Fatalf("stdout is not one JSON object: %v: %q", err, stdout.String())
	}
	if !strings.HasPrefix(urls.FHIR, "http://127.0.0.1:") || urls.Discovery != urls.FHIR+"/.well-known/smart-configuration" ||
		urls.Register == "" || urls.Launcher == "" || urls.Clients == nil {
		t.Errorf("urls = %+v", urls)
	}
	resp, err := http.Get(urls.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("discovery: %d", resp.StatusCode)
	}
	cancel()
	waitStopped(t, done, &stderr)
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] != "request" {
			t.Errorf("stderr line is not a JSON request log: %q", line)
		}
	}
}

// TestSandboxCommandPortInUse: a port already taken fails with exit 1 and says what to do next.
func TestSandboxCommandPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"sandbox", "--addr", ln.Addr().String()}, strings.NewReader(""), &stdout, &stderr)
	if code != exitFail || !strings.Contains(stderr.String(), "--addr 127.0.0.1:0") {
		t.Errorf("exit %d, stderr %q; want %d and a hint to pick another --addr", code, stderr.String(), exitFail)
	}
}
