package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// TestLoginGetSearchLogout is the developer's round trip: login through the loopback redirect with
// a headless browser (PKCE S256, state), then get and search with the stored login, then logout,
// which revokes at the revocation endpoint (RFC 7009) and deletes the tokens.
func TestLoginGetSearchLogout(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.headlessBrowser()
	id, port := e.loginClient()
	code, out, errOut := e.run("login", "--fhir", e.fhir, "--client-id", id, "--redirect-port", strconv.Itoa(port), "--timeout", "30s", "--json")
	if code != 0 {
		t.Fatalf("login: exit %d: %s", code, errOut)
	}
	var res struct {
		Scope, Patient, FHIRUser string
		Refreshable              bool
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Patient == "" || !res.Refreshable || !strings.Contains(res.Scope, "patient/*.rs") {
		t.Errorf("login result = %s", out)
	}
	// The URL is always printed on stderr, and it asks for PKCE S256 and a state (LAUNCH-04).
	mustContain(t, "login stderr", errOut, "Open this URL", "code_challenge_method=S256", "state=", "redirect_uri=http%3A%2F%2F127.0.0.1%3A"+strconv.Itoa(port))

	// The tokens are stored encrypted: no file in the store holds them as text (SEC-07).
	assertNoPlainTokens(t, e)

	code, out, errOut = e.run("get", "Patient/"+res.Patient, "--fhir", e.fhir)
	if code != 0 {
		t.Fatalf("get: exit %d: %s", code, errOut)
	}
	var pat map[string]any
	if err := json.Unmarshal([]byte(out), &pat); err != nil || pat["resourceType"] != "Patient" || pat["id"] != res.Patient {
		t.Errorf("get: %v %s", err, out)
	}
	if !strings.Contains(out, "\n  \"") {
		t.Errorf("get: not pretty JSON: %s", out)
	}

	code, out, errOut = e.run("search", "Observation", "patient="+res.Patient, "_count=2", "--all", "--json", "--fhir", e.fhir)
	if code != 0 {
		t.Fatalf("search: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 {
		t.Errorf("search --all with _count=2 gave %d lines", len(lines))
	}
	for _, l := range lines {
		var r struct {
			ResourceType string
			Subject      struct{ Reference string }
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("NDJSON line %q: %v", l, err)
		}
		if r.ResourceType != "Observation" || r.Subject.Reference != "Patient/"+res.Patient {
			t.Errorf("NDJSON line: %+v", r)
		}
	}

	// An expired access token is refreshed with the stored refresh token (TOK-15, REF-01).
	before := e.sb.Count("token_requests:refresh_token")
	e.sb.ExpireAccessTokens()
	if code, _, errOut := e.run("get", "Patient/"+res.Patient, "--fhir", e.fhir, "--json"); code != 0 {
		t.Fatalf("get after expiry: exit %d: %s", code, errOut)
	}
	if e.sb.Count("token_requests:refresh_token") != before+1 {
		t.Errorf("refreshes: %d, want %d", e.sb.Count("token_requests:refresh_token"), before+1)
	}

	code, _, errOut = e.run("logout", "--fhir", e.fhir)
	if code != 0 || !strings.Contains(errOut, "revoked: refresh_token, access_token") {
		t.Fatalf("logout: exit %d: %s", code, errOut)
	}
	code, _, errOut = e.run("get", "Patient/"+res.Patient, "--fhir", e.fhir)
	if code != exitFail || !strings.Contains(errOut, "not logged in") || !strings.Contains(errOut, "smartfhir login") {
		t.Errorf("get after logout: exit %d: %s", code, errOut)
	}
	if code, _, _ := e.run("logout", "--fhir", e.fhir); code != exitFail {
		t.Errorf("second logout: exit %d", code)
	}
}

// assertNoPlainTokens reads every file of the login store and fails if one holds a live token of
// the sandbox in clear text.
func assertNoPlainTokens(t *testing.T, e *devEnv) {
	t.Helper()
	var files [][]byte
	_ = filepath.WalkDir(filepath.Join(e.dir, loginDirName), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			files = append(files, b)
			if fi, _ := d.Info(); fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is readable by others: %v", p, fi.Mode())
			}
		}
		return nil
	})
	if len(files) < 3 {
		t.Fatalf("login store has %d files", len(files))
	}
	for _, b := range files {
		for _, word := range []string{"access_token", "refresh_token", "Bearer"} {
			if strings.Contains(string(b), word) {
				t.Errorf("a login store file holds %q in clear text", word)
			}
		}
	}
}

// TestLoginProfileKeyed: logins are keyed by FHIR base and profile; a profile's login is not used
// without --profile.
func TestLoginProfileKeyed(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.headlessBrowser()
	id, port := e.loginClient()
	e.writeConfig(`{"profiles":{"sb":{"fhir":"` + e.fhir + `","client_id":"` + id + `","auth":"public","scope":"launch/patient patient/*.rs"}}}`)
	if code, _, errOut := e.run("login", "--profile", "sb", "--redirect-port", strconv.Itoa(port), "--timeout", "30s"); code != 0 {
		t.Fatalf("login: exit %d: %s", code, errOut)
	}
	if code, out, errOut := e.run("search", "Patient", "--profile", "sb"); code != 0 || out == "" {
		t.Errorf("search with the profile: exit %d: %s", code, errOut)
	}
	if code, _, errOut := e.run("search", "Patient", "--fhir", e.fhir); code != exitFail || !strings.Contains(errOut, "not logged in") {
		t.Errorf("search without the profile: exit %d: %s", code, errOut)
	}
}

// TestLoginFailures: a refused authorization, a timeout without a redirect, and usage errors.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.headlessBrowser()
	id, port := e.loginClient()

	e.sb.Fault("auth_access_denied", 1, "")
	code, _, errOut := e.run("login", "--fhir", e.fhir, "--client-id", id, "--redirect-port", strconv.Itoa(port), "--timeout", "30s")
	if code != exitFail || !strings.Contains(errOut, "access_denied") {
		t.Errorf("access denied: exit %d: %s", code, errOut)
	}

	code, _, errOut = e.run("login", "--fhir", e.fhir, "--client-id", id, "--redirect-port", strconv.Itoa(port), "--timeout", "300ms", "--no-browser")
	if code != exitFail || !strings.Contains(errOut, "no redirect arrived") || !strings.Contains(errOut, "Open this URL") {
		t.Errorf("timeout: exit %d: %s", code, errOut)
	}

	if code, _, errOut := e.run("login", "--fhir", e.fhir); code != exitUsage || !strings.Contains(errOut, "--client-id") {
		t.Errorf("no client id: exit %d: %s", code, errOut)
	}
	if code, _, errOut := e.run("login", "--fhir", e.fhir, "--client-id", "x", "--redirect-port", "70000"); code != exitUsage {
		t.Errorf("bad port: exit %d: %s", code, errOut)
	}
}

// TestLoginStolenStateRefused: a callback whose state the login did not issue is refused, nothing
// is exchanged (LAUNCH-10, SEC-01), and the login goes on waiting for its own callback, so that a
// stray redirect cannot end it.
func TestLoginStolenStateRefused(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.headlessBrowser()
	id, port := e.loginClient()
	e.sb.Fault("auth_wrong_state", 1, "")
	before := e.sb.Count("token_requests")
	code, _, errOut := e.run("login", "--fhir", e.fhir, "--client-id", id, "--redirect-port", strconv.Itoa(port), "--timeout", "3s")
	if code != exitFail || !strings.Contains(errOut, "without this login's state was refused") || !strings.Contains(errOut, "no redirect arrived") {
		t.Errorf("wrong state: exit %d: %s", code, errOut)
	}
	if n := e.sb.Count("token_requests"); n != before {
		t.Errorf("%d token requests after a forged state", n-before)
	}
}

// TestLogoutJSON: logout --json reports the revocation; a second logout has nothing to do.
func TestLogoutJSON(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	if code, _, errOut := e.run("logout", "--fhir", e.fhir); code != exitFail || !strings.Contains(errOut, "nothing to log out") {
		t.Errorf("logout without a login: exit %d: %s", code, errOut)
	}
	e.login()
	code, out, errOut := e.run("logout", "--fhir", e.fhir, "--json")
	var res struct {
		LoggedOut  bool   `json:"logged_out"`
		Revocation string `json:"revocation"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || !res.LoggedOut || res.Revocation != "revoked: refresh_token, access_token" {
		t.Errorf("logout --json: exit %d: %s %s", code, out, errOut)
	}
	// The login is gone: nothing uses it again.
	if code, _, _ := e.run("search", "Patient", "--fhir", e.fhir); code != exitFail {
		t.Errorf("search after logout: exit %d", code)
	}
}

// TestLoginConfidentialKey: a confidential-asymmetric client logs in, refreshes and revokes with a
// fresh client assertion each time; later commands need the key again (it is never stored).
func TestLoginConfidentialKey(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	_, keyFile, login := e.confidentialLogin(t)
	if code, _, errOut := e.run("search", "Patient", "--fhir", e.fhir); code != exitUsage || !strings.Contains(errOut, "pass --key") {
		t.Errorf("without the key: exit %d: %s", code, errOut)
	}
	e.sb.ExpireAccessTokens()
	if code, _, errOut := e.run("search", "Patient", "--fhir", e.fhir, "--key", keyFile); code != 0 {
		t.Errorf("refresh with an assertion: exit %d: %s", code, errOut)
	}
	code, _, errOut := e.run("logout", "--fhir", e.fhir, "--key", keyFile)
	if code != 0 || !strings.Contains(errOut, "revoked: refresh_token, access_token") {
		t.Errorf("logout: exit %d: %s", code, errOut)
	}

	// Without the key nothing can be revoked, but the tokens are deleted all the same.
	login()
	code, _, errOut = e.run("logout", "--fhir", e.fhir)
	if code != 0 || !strings.Contains(errOut, "not revoked") || !strings.Contains(errOut, "--key") {
		t.Errorf("logout without the key: exit %d: %s", code, errOut)
	}
	if files, _ := os.ReadDir(filepath.Join(e.dir, loginDirName, "sessions")); len(files) != 0 {
		t.Errorf("%d token files left after logout", len(files))
	}
}

// TestLoginConcurrentCommands: commands started at once after the access token died refresh the
// login once, under the store's lock file, and all use the new token; the sandbox would revoke the
// login if a refresh token came twice (REF-04, SEC-06). The lock file is gone afterwards.
func TestLoginConcurrentCommands(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.login()
	patient := e.sb.Patients()[0].ID
	for round := 1; round <= 2; round++ {
		before := e.sb.Count("token_requests:refresh_token")
		e.sb.ExpireAccessTokens()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if code, _, errOut := e.run("get", "Patient/"+patient, "--fhir", e.fhir, "--json"); code != 0 {
					t.Errorf("round %d: get: exit %d: %s", round, code, errOut)
				}
			})
		}
		wg.Wait()
		if n := e.sb.Count("token_requests:refresh_token") - before; n != 1 {
			t.Errorf("round %d: %d refresh requests from 4 commands, want 1", round, n)
		}
	}
	locks, _ := os.ReadDir(filepath.Join(e.dir, loginDirName, "locks"))
	if len(locks) != 0 {
		t.Errorf("%d lock files left", len(locks))
	}
}

// TestLoginStoredWithoutKey: a login stored by an older smartfhir (a cookie and handle, no key)
// is reported as expired with what to do, not as an error of the store.
func TestLoginStoredWithoutKey(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.login()
	st, err := openLoginStore(e.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	key := loginKey(e.fhir, "")
	rec, err := st.get(key)
	if err != nil || rec.Key == "" {
		t.Fatalf("stored login: %+v, %v", rec, err)
	}
	rec.Key = ""
	if err := st.put(key, rec); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := e.run("search", "Patient", "--fhir", e.fhir)
	if code != exitFail || !strings.Contains(errOut, "has expired: run 'smartfhir login' again") {
		t.Errorf("search with a keyless login: exit %d: %s", code, errOut)
	}
}

// TestLoginOtherClientNotUsed: a stored login is used only for the client it was made with. A command
// that names another client (a backend client with its key) authenticates as that client, instead of
// sending the backend key under the login's client_id and quietly running with the login's
// patient-level access (one patient instead of all).
func TestLoginOtherClientNotUsed(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{Patients: 3})
	loginID := e.login()
	backendID, keyFile := e.backendClient()
	code, out, errOut := e.run("search", "Patient", "--all", "--json", "--fhir", e.fhir, "--client-id", backendID, "--key", keyFile)
	if code != exitOK {
		t.Fatalf("search: exit %d: %s", code, errOut)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 3 {
		t.Errorf("search as the backend client found %d patients, want all 3 (the login of %s was used?)\n%s", n, loginID, errOut)
	}
	mustContain(t, "stderr", errOut, "belongs to client "+loginID)

	// Without --client-id, or with the login's own, the login is used (LAUNCH resume, CONV-6).
	for _, extra := range [][]string{nil, {"--client-id", loginID}} {
		code, out, errOut = e.run(append([]string{"search", "Patient", "--all", "--json", "--fhir", e.fhir}, extra...)...)
		if n := len(strings.Split(strings.TrimSpace(out), "\n")); code != exitOK || n != 1 {
			t.Errorf("search %v with the login: exit %d, %d patients, want 1: %s", extra, code, n, errOut)
		}
	}
}

// TestLogoutOtherClient: logout revokes as the client the login belongs to, not as the client
// --client-id names: a public login's tokens are revoked with its own client_id even when a backend
// client's id and key are given, and the backend key never goes out under the login's client_id.
func TestLogoutOtherClient(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.login()
	backendID, keyFile := e.backendClient()
	code, out, errOut := e.run("logout", "--fhir", e.fhir, "--client-id", backendID, "--key", keyFile, "--json")
	var res struct {
		LoggedOut  bool   `json:"logged_out"`
		Revocation string `json:"revocation"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.LoggedOut || res.Revocation != "revoked: refresh_token, access_token" {
		t.Errorf("logout --client-id OTHER: exit %d: %s %s", code, out, errOut)
	}
}

// TestLogoutOtherClientConfidential: when the login's client is confidential and --client-id names
// another, its credentials are not at hand: logout says so (naming the login's client) instead of
// refreshing or revoking with the other client's key, and deletes the tokens as any failed revocation does.
func TestLogoutOtherClientConfidential(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	loginID, _, _ := e.confidentialLogin(t)
	backendID, backendKey := e.backendClient()
	e.sb.ExpireAccessTokens() // a refresh with the other client's key would show as a token request
	before := e.sb.Count("token_requests")
	code, _, errOut := e.run("logout", "--fhir", e.fhir, "--client-id", backendID, "--key", backendKey)
	if code != exitOK || !strings.Contains(errOut, "not revoked") || !strings.Contains(errOut, "belongs to client "+loginID) {
		t.Errorf("logout --client-id OTHER: exit %d: %s", code, errOut)
	}
	if n := e.sb.Count("token_requests") - before; n != 0 {
		t.Errorf("%d token requests with another client's credentials", n)
	}
	if files, _ := os.ReadDir(filepath.Join(e.dir, loginDirName, "sessions")); len(files) != 0 {
		t.Errorf("%d token files left after logout", len(files))
	}
}

// confidentialLogin registers a private_key_jwt client in e's sandbox, logs in with it, and returns
// its id and key file, and a function that logs in again.
func (e *devEnv) confidentialLogin(t *testing.T) (id, keyFile string, login func()) {
	t.Helper()
	e.headlessBrowser()
	jwks, keyFile := e.keyPair()
	port := freePort(t)
	c, err := e.sb.RegisterClient(sandbox.Client{Name: "confidential", AuthMethod: "private_key_jwt", JWKS: jwks, SkipLogin: true,
		RedirectURIs: []string{"http://127.0.0.1:" + strconv.Itoa(port) + "/callback"},
		GrantTypes:   []string{"authorization_code", "refresh_token"}})
	if err != nil {
		t.Fatal(err)
	}
	login = func() {
		t.Helper()
		if code, _, errOut := e.run("login", "--fhir", e.fhir, "--client-id", c.ID, "--key", keyFile,
			"--redirect-port", strconv.Itoa(port), "--timeout", "30s"); code != 0 {
			t.Fatalf("login: exit %d: %s", code, errOut)
		}
	}
	login()
	return c.ID, keyFile, login
}
