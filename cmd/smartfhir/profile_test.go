package main

import (
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

func TestProfileParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, wantErr string
	}{
		{"valid", `{"profiles":{"a":{"fhir":"https://h/fhir","client_id":"c","auth":"public","scope":"openid","preset":"epic",
			"headers":{"Epic-Client-ID":"x"},"trust_origins":["https://files.h"],"insecure_http":false,"key_file":"k","kid":"1"}}}`, ""},
		{"empty", `{}`, ""},
		{"unknown top-level key", `{"profiles":{},"defaults":{}}`, `unknown key "defaults"`},
		{"unknown profile key", `{"profiles":{"a":{"fhir":"https://h","clientid":"x"}}}`, `profile "a": unknown key "clientid"`},
		{"bad auth", `{"profiles":{"a":{"auth":"basic"}}}`, `auth "basic"`},
		{"credential header", `{"profiles":{"a":{"headers":{"Authorization":"Bearer x"}}}}`, `credentials do not belong`},
		{"bad name", `{"profiles":{"../x":{}}}`, `profile name "../x"`},
		{"not an object", `[]`, `not a JSON object`},
		{"profiles not an object", `{"profiles":[]}`, `"profiles" must be an object`},
		{"wrong type", `{"profiles":{"a":{"insecure_http":"yes"}}}`, `profile "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig([]byte(tt.body))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestProfileResolve: a profile stands for a line of flags; flags and SMARTFHIR_* override it.
func TestProfileResolve(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.writeConfig(`{"profiles":{"sb":{"fhir":"` + e.fhir + `","client_id":"from-profile","scope":"patient/*.rs",
		"preset":"smart-sandbox","headers":{"X-Vendor":"1"},"trust_origins":["https://files.example"]}}}`)
	g := &globals{getenv: func(k string) string { return e.env[k] }, profile: "sb", clientID: "from-flag"}
	s, err := resolveServer(g, true)
	if err != nil {
		t.Fatal(err)
	}
	if s.FHIR != e.fhir || s.ClientID != "from-flag" || s.Scope != "patient/*.rs" || s.Preset != "smart-sandbox" ||
		s.Header.Get("X-Vendor") != "1" || s.Auth != authPublic || len(s.TrustOrigins) != 1 {
		t.Errorf("settings = %+v", s)
	}
	// A credential flag or variable decides the client authentication.
	g.keyFile = "k.pem"
	if s, err := resolveServer(g, true); err != nil || s.Auth != authKeyJWT {
		t.Errorf("with --key: %+v, %v", s, err)
	}
	g.keyFile = ""
	e.env["SMARTFHIR_CLIENT_SECRET"] = "s"
	g.getenv = func(k string) string { return e.env[k] }
	if s, err := resolveServer(g, true); err != nil || s.Auth != authSecret {
		t.Errorf("with SMARTFHIR_CLIENT_SECRET: %+v, %v", s, err)
	}
}

// TestProfileErrors: an unknown profile is a usage error (exit 2) naming the known ones; problems in
// the file name the key.
func TestProfileErrors(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	code, _, errOut := e.run("discover", "--profile", "nope")
	if code != exitUsage || !strings.Contains(errOut, "no config file") {
		t.Errorf("no config file: exit %d, stderr %s", code, errOut)
	}
	e.writeConfig(`{"profiles":{"beta":{"fhir":"` + e.fhir + `"},"alpha":{"fhir":"` + e.fhir + `"}}}`)
	code, _, errOut = e.run("discover", "--profile", "nope")
	if code != exitUsage || !strings.Contains(errOut, "known profiles: alpha, beta") {
		t.Errorf("unknown profile: exit %d, stderr %s", code, errOut)
	}
	e.writeConfig(`{"profiles":{"a":{"fhir":"` + e.fhir + `","scopes":"x"}}}`)
	code, _, errOut = e.run("discover", "--profile", "a")
	if code != exitFail || !strings.Contains(errOut, `unknown key "scopes"`) {
		t.Errorf("unknown key: exit %d, stderr %s", code, errOut)
	}
	e.writeConfig(`{"profiles":{"k":{"fhir":"` + e.fhir + `","auth":"private_key_jwt"}}}`)
	code, _, errOut = e.run("discover", "--profile", "k")
	if code != exitUsage || !strings.Contains(errOut, "names no key_file") {
		t.Errorf("private_key_jwt without key: exit %d, stderr %s", code, errOut)
	}
	code, _, errOut = e.run("discover")
	if code != exitUsage || !strings.Contains(errOut, "pass --fhir URL or --profile NAME") {
		t.Errorf("no server: exit %d, stderr %s", code, errOut)
	}
	code, _, errOut = e.run("discover", "--fhir", "http://example.org/fhir")
	if code != exitUsage || !strings.Contains(errOut, "--insecure-http") {
		t.Errorf("plain http off loopback (CONV-1): exit %d, stderr %s", code, errOut)
	}
}

// TestProfileUsedByCommand: --profile replaces --fhir, and SMARTFHIR_PROFILE works too.
func TestProfileUsedByCommand(t *testing.T) {
	t.Parallel()
	e := newDevEnv(t, sandbox.Options{})
	e.writeConfig(`{"profiles":{"sb":{"fhir":"` + e.fhir + `"}}}`)
	code, out, errOut := e.run("discover", "--profile", "sb")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "discover output", out, "SMART configuration of "+e.fhir)
	e.env["SMARTFHIR_PROFILE"] = "sb"
	if code, _, errOut := e.run("discover"); code != 0 {
		t.Errorf("SMARTFHIR_PROFILE: exit %d: %s", code, errOut)
	}
}
