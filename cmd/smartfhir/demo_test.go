package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// demoLog is a goroutine-safe stderr for the demo command.
type demoLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *demoLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *demoLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoCommand starts `smartfhir demo` with no server flags (CONV-6): it prints the sandbox,
// launch and redirect URLs, an EHR launch minted by the sandbox reaches the patient page, and the
// command exits 0 when interrupted.
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &demoLog{}
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, []string{"demo", "--addr", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, stderr,
			func(string) string { return "" })
	}()
	lines := regexp.MustCompile(`(?m)^sandbox: (\S+)/ .*\nlaunch: (\S+)\nredirect: (\S+)\n`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no URLs printed:\n%s", stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("demo exited %d:\n%s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		m = lines.FindStringSubmatch(stderr.String())
	}
	sandboxURL, launchURL, redirect := m[1], m[2], m[3]
	if !strings.HasSuffix(launchURL, "/launch") || !strings.HasSuffix(redirect, "/callback") {
		t.Errorf("launch %q redirect %q", launchURL, redirect)
	}

	// Launch as the sandbox's launcher would, and follow it in a cookie-keeping client.
	resp, err := http.Post(sandboxURL+"/sandbox/launch", "application/json",
		strings.NewReader(`{"client_id":"smartfhir-demo","need_patient_banner":true}`))
	if err != nil {
		t.Fatal(err)
	}
	var minted struct{ URL string }
	_ = json.NewDecoder(resp.Body).Decode(&minted)
	resp.Body.Close()
	if !strings.HasPrefix(minted.URL, launchURL+"?") {
		t.Fatalf("sandbox launch URL %q, want the demo's %q", minted.URL, launchURL)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err = c.Get(minted.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="patient-name"`) {
		t.Fatalf("patient page: %d\n%s", resp.StatusCode, body)
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop")
	}
}

// TestDemoUsage: --fhir without --client-id is a usage error (exit 2).
func TestDemoUsage(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := runEnv(t.Context(), []string{"demo", "--addr", "127.0.0.1:0", "--fhir", "https://ehr.example/fhir"},
		strings.NewReader(""), io.Discard, &stderr, func(string) string { return "" })
	if code != exitUsage || !strings.Contains(stderr.String(), "--client-id") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestDemoStoreUsage: demo opens the --store before serving, with its keys from SMARTFHIR_STORE_KEYS.
func TestDemoStoreUsage(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := runEnv(t.Context(), []string{"demo", "--addr", "127.0.0.1:0", "--store", "redis://127.0.0.1:1"},
		strings.NewReader(""), io.Discard, &stderr, func(string) string { return "" })
	if code != exitUsage || !strings.Contains(stderr.String(), "SMARTFHIR_STORE_KEYS") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestStorePasswordNotFromFlag: a --store URL with a password is refused as a flag value (it would
// show in process listings and shell history) and named in SMARTFHIR_STORE instead; the password
// never reaches stderr (CONV-6: no secret from a flag value).
func TestStorePasswordNotFromFlag(t *testing.T) {
	t.Parallel()
	const storeURL = "redis://:hunter2-pw@127.0.0.1:1"
	env := map[string]string{"SMARTFHIR_STORE_KEYS": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}
	var stderr bytes.Buffer
	code := runEnv(t.Context(), []string{"demo", "--addr", "127.0.0.1:0", "--store", storeURL},
		strings.NewReader(""), io.Discard, &stderr, func(k string) string { return env[k] })
	if code != exitUsage || !strings.Contains(stderr.String(), "set SMARTFHIR_STORE") || strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("--store with a password: exit %d: %s", code, stderr.String())
	}

	env["SMARTFHIR_STORE"] = storeURL // the same URL from the environment is used (and fails to connect)
	stderr.Reset()
	code = runEnv(t.Context(), []string{"demo", "--addr", "127.0.0.1:0"},
		strings.NewReader(""), io.Discard, &stderr, func(k string) string { return env[k] })
	if code != exitFail || strings.Contains(stderr.String(), "set SMARTFHIR_STORE") || strings.Contains(stderr.String(), "hunter2") {
		t.Errorf("SMARTFHIR_STORE with a password: exit %d: %s", code, stderr.String())
	}
}
