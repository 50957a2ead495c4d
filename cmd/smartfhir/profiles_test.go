package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/smart"
)

func profilesRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runEnv(t.Context(), append([]string{"profiles"}, args...), strings.NewReader(""), &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// TestProfilesCommand: `smartfhir profiles` lists every preset with its description; --json prints
// every setting of each; NAME shows one; an unknown NAME is a usage error listing the presets.
func TestProfilesCommand(t *testing.T) {
	t.Parallel()
	names := smart.ProfileNames()

	code, out, errOut := profilesRun(t)
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(names)+1 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("listing:\n%s", out)
	}
	for i, p := range smart.Presets() {
		if f := strings.Fields(lines[i+1]); len(f) < 2 || f[0] != p.Name || !strings.Contains(lines[i+1], p.Description) {
			t.Errorf("line %q, want %s and its description", lines[i+1], p.Name)
		}
	}

	code, out, _ = profilesRun(t, "--json")
	var all []map[string]json.RawMessage
	if code != exitOK || json.Unmarshal([]byte(out), &all) != nil || len(all) != len(names) {
		t.Fatalf("--json: exit %d\n%s", code, out)
	}
	for i, m := range all {
		for _, k := range smart.ProfileKeys() {
			if _, ok := m[k]; !ok && k != "preset" {
				t.Errorf("%s: --json lacks %q", names[i], k)
			}
		}
		// The JSON form reads back as the preset.
		b, _ := json.Marshal(m)
		p, err := smart.ParseProfile(b)
		if want, _ := smart.LookupProfile(names[i]); err != nil || p.Name != want.Name || p.RetryAfterCap() != want.RetryAfterCap() {
			t.Errorf("%s: %v", names[i], err)
		}
	}

	code, out, _ = profilesRun(t, "Oracle")
	if code != exitOK || !strings.Contains(out, "introspection_endpoint") || !strings.Contains(out, "https://authorization.cerner.com/tokeninfo") ||
		!strings.Contains(out, "30m0s") {
		t.Errorf("profiles Oracle: exit %d\n%s", code, out)
	}
	code, out, _ = profilesRun(t, "epic", "--json")
	var epic smart.Profile
	if code != exitOK || json.Unmarshal([]byte(out), &epic) != nil || epic.ClientIDHeader != "Epic-Client-ID" {
		t.Errorf("profiles epic --json: exit %d\n%s", code, out)
	}

	code, _, errOut = profilesRun(t, "epik")
	if code != exitUsage || !strings.Contains(errOut, `unknown profile "epik"`) {
		t.Errorf("unknown name: exit %d: %s", code, errOut)
	}
	for _, n := range names {
		if !strings.Contains(errOut, n) {
			t.Errorf("the error does not list %q: %s", n, errOut)
		}
	}
	if code, _, _ := profilesRun(t, "epic", "oracle"); code != exitUsage {
		t.Errorf("two names: exit %d", code)
	}
}
