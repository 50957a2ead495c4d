package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Output rules (CONV-6): data goes to stdout, everything else (warnings, notes, progress) to stderr;
// text that came from a server is printed with control characters escaped; tokens are never printed.

// printJSON writes v to w as indented JSON and a newline.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// printRawJSON writes a JSON document from a server: indented when pretty, else on one line (for
// NDJSON). Invalid JSON is an error rather than passed through.
func printRawJSON(w io.Writer, raw []byte, pretty bool) error {
	var buf bytes.Buffer
	var err error
	if pretty {
		err = json.Indent(&buf, raw, "", "  ")
	} else {
		err = json.Compact(&buf, raw)
	}
	if err != nil {
		return fmt.Errorf("the server sent invalid JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// safe escapes control characters (ANSI escapes, CR, …) in server text for a terminal.
func safe(s string) string { return httpx.SanitizeText(s) }

// oneLine escapes server text and keeps it on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\t", " ").Replace(httpx.SanitizeText(s))
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// warnf prints a warning on stderr.
func (g *globals) warnf(format string, a ...any) {
	fmt.Fprintf(g.stderr, "smartfhir: warning: %s\n", fmt.Sprintf(format, a...))
}

// notef prints a note on stderr.
func (g *globals) notef(format string, a ...any) {
	fmt.Fprintf(g.stderr, "smartfhir: %s\n", fmt.Sprintf(format, a...))
}

// until describes how far t lies in the future ("in 59m", "2m ago").
func until(t, now time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	d := t.Sub(now).Round(time.Second)
	if d == 0 {
		return "now"
	}
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}
