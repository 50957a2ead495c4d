package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// checkResult is check --json.
type checkResult struct {
	Passed   bool           `json:"passed"`
	Findings []finding      `json:"findings"`
	Summary  map[string]int `json:"summary"`
}

// check runs check --json (each request bounded by 2 s unless args say otherwise).
func (e *devEnv) check(args ...string) (int, checkResult, string) {
	e.t.Helper()
	code, out, errOut := e.run(append([]string{"check", e.fhir, "--json", "--request-timeout", "2s"}, args...)...)
	var r checkResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("check --json: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	return code, r, errOut
}

// line returns the findings with id.
func (r checkResult) line(id string) []finding {
	var out []finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// TestCheckCleanSandbox: the sandbox passes every MUST, with a real backend token (TOK-02…14, BS-01,
// BS-04) and the API refusing tokenless requests (SBX-09).
func TestCheckCleanSandbox(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	id, key := e.backendClient()
	code, r, errOut := e.check("--client-id", id, "--key", key)
	if code != 0 || !r.Passed {
		t.Fatalf("exit %d, passed %v: %+v\n%s", code, r.Passed, r.Findings, errOut)
	}
	for _, id := range []string{"DISC-01", "DISC-02", "DISC-03", "DISC-04", "DISC-05", "DISC-06", "DISC-07", "DISC-10", "DISC-11",
		"DISC-12", "DISC-13", "DISC-14", "DISC-16", "SBX-01", "SBX-09", "BS-01", "TOK-02", "TOK-03", "TOK-04", "TOK-06", "TOK-12", "TOK-13", "TOK-14", "BS-04", "TOK-10"} {
		ls := r.line(id)
		if len(ls) == 0 {
			t.Errorf("%s: no line", id)
		}
		for _, f := range ls {
			if f.Status != statusPass {
				t.Errorf("%s: %s (%s)", id, f.Status, f.Detail)
			}
		}
	}
	if r.line("REF-01")[0].Status != statusSkip {
		t.Errorf("REF-01 without a stored login: %+v", r.line("REF-01"))
	}
}

// TestCheckWithoutCredentials: the token lines are skipped, saying how to run them.
func TestCheckWithoutCredentials(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	code, r, _ := e.check()
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, id := range []string{"TOK-02", "TOK-13", "BS-04"} {
		if f := r.line(id); len(f) != 1 || f[0].Status != statusSkip || !strings.Contains(f[0].Detail, "--key") {
			t.Errorf("%s = %+v", id, f)
		}
	}
	// The human report carries the IDs, levels and a summary.
	code, out, _ := e.run("check", e.fhir)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	mustContain(t, "report", out, "PASS  DISC-01  MUST", "SKIP  TOK-02", "passed,", "failed")
}

// faultExpectation says how check reports an armed sandbox fault: the checklist ID of a line, its
// status, and text its detail must contain.
type faultExpectation struct {
	id, status, detail string
	exit               int
}

// checkFaults maps every discovery and token-endpoint fault of the sandbox to its finding (SBX-11,
// SBX-13). A fault the sandbox adds later without an entry here fails TestCheckDetectsEveryFault.
var checkFaults = map[string]faultExpectation{
	"discovery_404":               {"DISC-01", statusFail, "HTTP 404", 1},
	"discovery_html":              {"DISC-02", statusFail, "text/html", 1},
	"discovery_truncated":         {"DISC-02", statusFail, "not a JSON object", 1},
	"discovery_relative_urls":     {"DISC-06", statusFail, "token_endpoint is relative", 1},
	"discovery_plain_pkce":        {"DISC-05", statusFail, "lists plain", 1},
	"discovery_no_token_endpoint": {"DISC-03", statusFail, "missing: token_endpoint", 1},
	"discovery_foreign_endpoints": {"DISC-07", statusWarn, "127.0.0.2", 0},
	"discovery_slow":              {"DISC-14", statusFail, "no complete answer within", 1},
	"discovery_huge":              {"DISC-14", statusFail, "larger than", 1},
	"discovery_redirect_foreign":  {"DISC-14", statusFail, "redirect to http://127.0.0.2", 1},

	"auth_invalid_client_secret":       {"BS-06", statusFail, "invalid_client", 1},
	"token_invalid_token":              {"BS-06", statusFail, "invalid_client", 1},
	"token_invalid_scope":              {"BS-06", statusFail, "invalid_scope", 1},
	"token_invalid_jti":                {"TOK-12", statusPass, "jti has already been used", 0},
	"token_expired_registration_token": {"BS-06", statusFail, "registration has expired", 1},
	"token_missing_scope":              {"TOK-04", statusFail, "scope is missing", 1},
	"token_missing_expires_in":         {"BS-04", statusFail, "expires_in is missing", 1},
	"token_type_lower":                 {"TOK-02", statusPass, `"bearer"`, 0},
	"token_type_mac":                   {"TOK-02", statusFail, `"mac" is not bearer`, 1},
	"token_expires_in_string":          {"TOK-03", statusWarn, "a string", 0},
	"token_expires_in_negative":        {"TOK-03", statusFail, "negative", 1},
	"token_patient_injection":          {"TOK-06", statusFail, "not a FHIR id", 1},
	"token_fhircontext_strings":        {"TOK-08", statusWarn, "SMART 2.0 form", 0},
	"token_banner_string":              {"TOK-09", statusFail, "not a JSON boolean", 1},
	"token_extension_members":          {"TOK-10", statusPass, "__darkMode", 0},
	"token_crlf_access_token":          {"TOK-13", statusFail, "b64token", 1},
	"token_error_401":                  {"TOK-12", statusPass, "HTTP 401 invalid_scope", 1},
	"token_html_502":                   {"TOK-12", statusFail, "HTTP 502", 1},
	"token_bare_400":                   {"TOK-12", statusFail, "an empty body", 1},
	"token_expired_refresh_token":      {"REF-06", statusFail, "invalid_grant", 1},
	"token_persona_mismatch":           {"BS-06", statusFail, "unauthorized_client", 1},
}

// TestCheckDetectsEveryFault arms each discovery and token fault of the in-process sandbox in turn and
// asserts that the report names it by checklist ID, and that the exit code follows the MUST rule.
func TestCheckDetectsEveryFault(t *testing.T) {
	t.Parallel()
	var faults []string
	for _, name := range sandbox.FaultNames() {
		if strings.HasPrefix(name, "discovery_") || strings.HasPrefix(name, "token_") || name == "auth_invalid_client_secret" {
			faults = append(faults, name)
		}
	}
	if len(faults) < 20 {
		t.Fatalf("only %d faults: %v", len(faults), faults)
	}
	for _, name := range faults {
		want, ok := checkFaults[name]
		if !ok {
			t.Errorf("fault %s has no expected finding: add it to checkFaults", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newDevEnv(t, sandbox.Options{})
			id, key := e.backendClient()
			client := []string{"--client-id", id, "--key", key}
			if name == "token_expired_refresh_token" {
				// The refresh grant needs a stored login, checked as its own client.
				client = []string{"--client-id", e.login()}
			}
			e.sb.Fault(name, 1, "")
			code, res, _ := e.check(append([]string{"--request-timeout", "1s"}, client...)...)
			lines := res.line(want.id)
			i := slices.IndexFunc(lines, func(f finding) bool { return f.Status == want.status && strings.Contains(f.Detail, want.detail) })
			if i < 0 {
				t.Errorf("no %s line with status %s and %q: %+v", want.id, want.status, want.detail, lines)
			}
			if code != want.exit {
				t.Errorf("exit %d, want %d; fails: %+v", code, want.exit, failures(res))
			}
		})
	}
}

func failures(r checkResult) []finding {
	var out []finding
	for _, f := range r.Findings {
		if f.Status == statusFail {
			out = append(out, f)
		}
	}
	return out
}

// TestCheckUntrustedTokenEndpoint: credentials never go to a token endpoint on another origin
// unless --trust-origin names it (AUTH-09, DISC-07).
func TestCheckUntrustedTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	id, key := e.backendClient()
	e.sb.Fault("discovery_foreign_endpoints", 1, "")
	before := e.sb.Count("token_requests")
	_, r, _ := e.check("--client-id", id, "--key", key)
	if f := r.line("AUTH-09"); len(f) != 1 || f[0].Status != statusSkip || !strings.Contains(f[0].Detail, "--trust-origin http://127.0.0.2:") {
		t.Errorf("AUTH-09 = %+v", f)
	}
	if n := e.sb.Count("token_requests"); n != before {
		t.Errorf("%d token requests reached the sandbox", n-before)
	}
}

// TestCheckLoginOfAnotherClient: a stored login made with another client than --client-id names is
// not refreshed with this client's key (the server would rightly refuse it, and check would blame it
// with a false REF-01 failure): REF-01 is skipped with what to do instead.
func TestCheckLoginOfAnotherClient(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	loginID := e.login()
	id, key := e.backendClient()
	code, r, errOut := e.check("--client-id", id, "--key", key)
	ref := r.line("REF-01")
	if code != 0 || !r.Passed || len(ref) != 1 || ref[0].Status != statusSkip || !strings.Contains(ref[0].Detail, loginID) {
		t.Errorf("exit %d, passed %v, REF-01 %+v\n%s", code, r.Passed, ref, errOut)
	}
	// With the login's own client, its refresh is checked.
	code, r, errOut = e.check("--client-id", loginID)
	if ref := r.line("REF-01"); len(ref) != 1 || ref[0].Status != statusPass {
		t.Errorf("with the login's client: exit %d, REF-01 %+v\n%s", code, ref, errOut)
	}
}
