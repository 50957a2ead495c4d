package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoginKeyNormalises(t *testing.T) {
	t.Parallel()
	a := loginKey("HTTPS://EHR.example.org/fhir/", "")
	for _, same := range []string{"https://ehr.example.org/fhir", "https://ehr.EXAMPLE.org/fhir//"} {
		if loginKey(same, "") != a {
			t.Errorf("%q keyed apart from %q", same, "HTTPS://EHR.example.org/fhir/")
		}
	}
	for _, other := range []string{loginKey("https://ehr.example.org/fhir", "p"), loginKey("https://ehr.example.org/FHIR", ""), loginKey("https://ehr.example.org:8443/fhir", "")} {
		if other == a {
			t.Errorf("%q keyed like %q", other, a)
		}
	}
}

func TestOutputHelpers(t *testing.T) {
	t.Parallel()
	if got := oneLine("a\x1b[31mb\nc\td"); got != `a\u001b[31mb\nc d` {
		t.Errorf("oneLine = %q", got)
	}
	if got := clip("héllo wörld", 2); got != "h…" {
		t.Errorf("clip = %q", got)
	}
	if got := clip("short", 10); got != "short" {
		t.Errorf("clip = %q", got)
	}
	now := time.Unix(1000, 0)
	for _, tt := range []struct {
		t    time.Time
		want string
	}{{now.Add(90 * time.Second), "in 1m30s"}, {now.Add(-5 * time.Second), "5s ago"}, {now, "now"}, {time.Time{}, "unknown"}} {
		if got := until(tt.t, now); got != tt.want {
			t.Errorf("until(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

// TestLoginBrowserCommand: $BROWSER gets the URL as one argument, appended or in place of %s; the
// URL never passes through a shell.
func TestLoginBrowserCommand(t *testing.T) { // not parallel: t.Setenv
	dir := t.TempDir()
	script := filepath.Join(dir, "browser.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done > \"$OUT\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	const u = "http://127.0.0.1:1/authorize?a=1&b=$(touch pwned);x"
	for _, tt := range []struct{ browser, want string }{
		{script, "[" + u + "]"},
		{script + " --new-window", "[--new-window][" + u + "]"},
		{script + " --url=%s --x", "[--url=" + u + "][--x]"},
	} {
		out := filepath.Join(dir, "out")
		os.Remove(out)
		g := &globals{getenv: func(k string) string { return map[string]string{"BROWSER": tt.browser}[k] }}
		t.Setenv("OUT", out) // the script's own environment
		if err := g.openBrowser(u); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for i := 0; i < 100 && len(got) == 0; i++ {
			time.Sleep(20 * time.Millisecond)
			got, _ = os.ReadFile(out)
		}
		if string(got) != tt.want {
			t.Errorf("BROWSER=%q: args %s, want %s", tt.browser, got, tt.want)
		}
	}
	if _, err := os.Stat("pwned"); err == nil {
		os.Remove("pwned")
		t.Error("the URL was run by a shell")
	}
	g := &globals{getenv: func(string) string { return "/nonexistent/browser" }}
	if err := g.openBrowser(u); err == nil {
		t.Error("a missing browser program is not an error")
	}
}
