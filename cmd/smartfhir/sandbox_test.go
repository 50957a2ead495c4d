package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown after cancel")
	}
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
