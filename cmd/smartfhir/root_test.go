package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeEHR is a minimal hostile server: discovery, a client_secret_basic token endpoint that answers
// with token (or, when token is "", an invalid_client error quoting evil), and fhir for the rest.
func fakeEHR(t *testing.T, token, evil string, fhir http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": base + "/fhir", "token_endpoint": base + "/token", "authorization_endpoint": base + "/authorize",
			"capabilities":                          []string{"client-confidential-symmetric", "permission-v2"},
			"code_challenge_methods_supported":      []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
			"grant_types_supported":                 []string{"client_credentials"},
		})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if token == "" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": evil})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "bearer", "expires_in": 300, "scope": "system/*.rs"})
	})
	if fhir != nil {
		mux.HandleFunc("/fhir/", fhir)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL
	return srv.URL + "/fhir"
}

// TestErrorEscapesServerText: text a server puts in an OAuth error (error_description) reaches the
// final error line with its control characters escaped, so that a hostile server cannot move the
// cursor, retitle the terminal or overwrite a line (CONV-6).
func TestErrorEscapesServerText(t *testing.T) {
	t.Parallel()
	const evil = "\x1b[31mRED\x1b]0;pwned\x07\rOVER"
	fhirBase := fakeEHR(t, "", evil, nil)
	code, _, errOut := bkRun(t, map[string]string{"SMARTFHIR_CLIENT_SECRET": "s3cret"},
		"token", "--fhir", fhirBase, "--client-id", "app", "--profile", "generic")
	if code != exitFail {
		t.Fatalf("exit %d, want %d: %s", code, exitFail, errOut)
	}
	if strings.ContainsAny(errOut, "\x1b\x07\r") {
		t.Errorf("stderr holds raw control characters: %q", errOut)
	}
	mustContain(t, "stderr", errOut, "RED", "OVER")
	if strings.Contains(errOut, "s3cret") {
		t.Errorf("stderr holds the client secret: %q", errOut)
	}
}

// TestSearchIDsOnOneLine: without --json, search prints one "Type/id" line per match; an id from the
// server that holds a line break cannot forge extra lines on stdout, which scripts read line by line
// (CONV-6: server text escaped).
func TestSearchIDsOnOneLine(t *testing.T) {
	t.Parallel()
	fhirBase := fakeEHR(t, "tok-123", "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","entry":[` +
			`{"resource":{"resourceType":"Patient","id":"a\nPatient/forged"}},{"resource":{"resourceType":"Patient","id":"b"}}]}`))
	})
	code, out, errOut := bkRun(t, map[string]string{"SMARTFHIR_CLIENT_SECRET": "s3cret"},
		"search", "Patient", "--fhir", fhirBase, "--client-id", "app", "--profile", "generic")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 || lines[1] != "Patient/b" {
		t.Errorf("stdout has %d lines, want 2 (one per match): %q", len(lines), out)
	}
}

// TestRedisLogger: go-redis's own log lines reach the command's stderr only with --verbose, on one
// line each with control characters escaped; otherwise they are dropped (CONV-6: stderr is for the
// command's own messages).
func TestRedisLogger(t *testing.T) {
	t.Parallel()
	for _, verbose := range []bool{false, true} {
		var errOut strings.Builder
		g := &globals{stderr: &errOut, verbose: verbose}
		g.redisLogger().Printf(t.Context(), "redis: %s:%d: connection pool: %v", "pool.go", 42, "dial tcp\nforged\x1b[0m")
		want := ""
		if verbose {
			want = "smartfhir: store: redis: pool.go:42: connection pool: dial tcp\\nforged\\u001b[0m\n"
		}
		if got := errOut.String(); got != want {
			t.Errorf("verbose=%v: stderr %q, want %q", verbose, got, want)
		}
	}
}
