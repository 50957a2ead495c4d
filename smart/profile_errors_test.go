package smart_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

// tokenError runs ExchangeToken against a token endpoint that answers status and body, with a
// client assertion in the form, and returns the error.
func tokenError(t *testing.T, status int, contentType, body string) error {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion": {"eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJhcHAifQ.c2VjcmV0LXNpZw"}}
	_, err := smart.ExchangeToken(t.Context(), srv.Client(), srv.URL, form, nil)
	if err == nil {
		t.Fatal("no error")
	}
	return err
}

// TestProfileTokenErrors: non-OAuth errors become *NonOAuthError (athenaPractice, apiserver-athenaFlex
// #319), bare 400s are retried only by the epic profile (CONV-3), and ExplainTokenError explains
// Oracle's client-persona-mismatch (yourphr #338) without quoting credentials.
func TestProfileTokenErrors(t *testing.T) {
	t.Parallel()
	epic, generic := mustPreset(t, "epic"), mustPreset(t, "generic")
	tests := []struct {
		name        string
		status      int
		ctype, body string
		nonOAuth    string // the NonOAuthError message, "" when the error is not one
		epicRetries bool
		explain     []string
	}{
		{"athenaPractice", 401, "application/json", `{"message":"Invalid client credentials","id":401}`, "Invalid client credentials", false,
			[]string{"HTTP 401", "Invalid client credentials", "non-OAuth"}},
		{"description without error", 400, "application/json", `{"error_description":"bad assertion"}`, "bad assertion", false,
			[]string{"bad assertion"}},
		{"bare 400", 400, "text/html", `<html><body>Bad Request</body></html>`, "", true, []string{"Epic", "fresh client assertion"}},
		{"empty 400", 400, "", ``, "", true, []string{"HTTP 400"}},
		{"invalid_grant", 400, "application/json", `{"error":"invalid_grant","error_description":"code used"}`, "", false,
			[]string{"already used", `"code used"`}},
		{"invalid_client 401", 401, "application/json", `{"error":"invalid_client"}`, "", false, []string{"kid"}},
		{"persona mismatch", 400, "application/json", `{"error":"unauthorized_client","error_uri":"https://authorization.cerner.com/errors/urn%3Acerner%3Aerror%3Aauthorization-server%3Aoauth2%3Agrant%3Aclient-persona-mismatch/instances/1?persona=provider&tenant=ec2458f2"}`,
			"", false, []string{"client-persona-mismatch", "provider persona", "Tenant: ec2458f2", "More: https://authorization.cerner.com/errors/"}},
		{"unknown code", 400, "application/json", `{"error":"consent_required","error_uri":"https://ehr.example/help"}`, "", false,
			[]string{`"consent_required"`, "More: https://ehr.example/help"}},
		{"echoed assertion", 400, "application/json", `{"error":"invalid_client","error_description":"assertion eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJhcHAifQ.c2VjcmV0LXNpZw is bad"}`,
			"", false, []string{"REDACTED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tokenError(t, tt.status, tt.ctype, tt.body)
			classified := smart.ClassifyTokenError(err)
			var no *smart.NonOAuthError
			if got := errors.As(classified, &no); got != (tt.nonOAuth != "") {
				t.Fatalf("ClassifyTokenError = %v (%T)", classified, classified)
			}
			if no != nil && (no.Message != tt.nonOAuth || no.StatusCode != tt.status || !strings.Contains(no.Error(), tt.nonOAuth)) {
				t.Errorf("NonOAuthError %+v", no)
			}
			if no != nil && strings.Contains(tt.body, `"id":401`) && no.ID != "401" {
				t.Errorf("NonOAuthError.ID = %q, want 401 (the body must reach ClassifyTokenError)", no.ID)
			}
			var re *oauth2.RetrieveError
			if !errors.As(classified, &re) {
				t.Error("the classified error no longer unwraps to *oauth2.RetrieveError")
			}
			if got := epic.ShouldRetryToken(err); got != tt.epicRetries {
				t.Errorf("epic ShouldRetryToken = %v", got)
			}
			if generic.ShouldRetryToken(err) {
				t.Error("generic retries a token request")
			}
			msg := smart.ExplainTokenError(classified)
			for _, s := range tt.explain {
				if !strings.Contains(msg, s) {
					t.Errorf("explanation %q lacks %q", msg, s)
				}
			}
			if strings.Contains(msg, "c2VjcmV0LXNpZw") || strings.ContainsAny(msg, "\r\n") {
				t.Errorf("explanation leaks the assertion or breaks lines: %q", msg)
			}
		})
	}
	if smart.ExplainTokenError(nil) != "" || smart.ClassifyTokenError(nil) != nil {
		t.Error("nil handled as an error")
	}
	other := errors.New("smart: token request to https://e: dial tcp: refused")
	if smart.ExplainTokenError(other) != other.Error() || smart.ClassifyTokenError(other) != other || epic.ShouldRetryToken(other) {
		t.Error("a transport error was changed or retried")
	}
	// A RetrieveError built elsewhere, with the JSON body intact: the id is kept.
	re := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}, Body: []byte(`{"message":"Unauthorized","id":401}`)}
	var no *smart.NonOAuthError
	if !errors.As(smart.ClassifyTokenError(fmt.Errorf("backend: %w", re)), &no) || no.ID != "401" || no.Message != "Unauthorized" {
		t.Errorf("NonOAuthError %+v", no)
	}
}
