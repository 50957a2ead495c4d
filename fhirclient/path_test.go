package fhirclient

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// API-05: a refused path part is quoted in the error sanitised and bounded, whatever its size.
func TestPathErrorsQuoteBounded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("A\u202e\x1b[2J", 5000)
	tests := map[string]func() error{
		"id without type": func() error { _, err := levelPath("", huge, "_history"); return err },
		"bad type":        func() error { _, err := levelPath(huge, "", ""); return err },
		"bad id":          func() error { _, err := resourcePath("Patient", huge, ""); return err },
		"bad version":     func() error { _, err := resourcePath("Patient", "p1", huge); return err },
		"bad operation":   func() error { _, err := operationCall("", "", huge, nil); return err },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := f()
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("err = %v, want ErrInvalidPath", err)
			}
			msg := err.Error()
			if len(msg) > 400 || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\x1b\u202e") {
				t.Errorf("error not sanitised and bounded (%d bytes): %.200q", len(msg), msg)
			}
		})
	}
}
