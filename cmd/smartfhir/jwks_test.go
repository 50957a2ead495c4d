package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJWKSCommand(t *testing.T) { // JWKS-01
	t.Parallel()
	es, esKid := bkKeyFile(t, "ES384")
	rs, rsKid := bkKeyFile(t, "RS384")

	code, out, errOut := bkRun(t, nil, "jwks", es, rs)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0]["kid"] != esKid || set.Keys[1]["kid"] != rsKid ||
		set.Keys[0]["alg"] != "ES384" || set.Keys[1]["alg"] != "RS384" {
		t.Fatalf("keys %v", set.Keys)
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Fatalf("private member %q published", private)
			}
		}
	}

	code, out, _ = bkRun(t, nil, "jwks", es, "--kid", "my-key-2025")
	if code != exitOK || !strings.Contains(out, `"kid": "my-key-2025"`) {
		t.Fatalf("--kid: exit %d, %s", code, out)
	}
}

func TestJWKSCommandErrors(t *testing.T) {
	t.Parallel()
	es, _ := bkKeyFile(t, "ES384")
	dir := t.TempDir()
	pub := filepath.Join(dir, "public.json")
	os.WriteFile(pub, []byte(`{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}`), 0o600)
	tests := []struct {
		args    []string
		want    int
		wantErr string
	}{
		{[]string{"jwks"}, exitUsage, ""},
		{[]string{"jwks", es, es, "--kid", "x"}, exitUsage, "exactly one key"},
		{[]string{"jwks", filepath.Join(dir, "missing.pem")}, exitFail, "no such file"},
		{[]string{"jwks", pub}, exitFail, "public.json"},
	}
	for _, tt := range tests {
		code, out, errOut := bkRun(t, nil, tt.args...)
		if code != tt.want || out != "" || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q", tt.args, code, tt.want, out, errOut)
		}
	}
}
