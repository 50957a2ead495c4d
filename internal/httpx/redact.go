package httpx

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// sensitive lists lower-cased names whose values are never logged (CONV-4, SEC-08).
var sensitive = map[string]bool{
	"access_token": true, "refresh_token": true, "id_token": true, "code": true, "code_verifier": true,
	"client_secret": true, "client_assertion": true, "assertion": true, "authorization": true,
	"password": true, "token": true, "state": true, "secret": true, "private_key": true, "key": true,
	"cookie": true, "set-cookie": true, "launch": true, "proxy-authorization": true,
}

// IsSensitive reports whether a parameter, header or attribute name carries a secret.
func IsSensitive(name string) bool { return sensitive[strings.ToLower(name)] }

// Redact returns s with the values of sensitive query parameters replaced by "REDACTED". It works on
// the raw query, pair by pair (split on & and ;), so a value with a bad %-escape is redacted too.
// Strings without a query are returned unchanged.
func Redact(s string) string {
	q := strings.IndexByte(s, '?')
	if q < 0 {
		return s
	}
	query, frag, hasFrag := strings.Cut(s[q+1:], "#")
	changed := false
	var b strings.Builder
	b.WriteString(s[:q+1])
	for i := 0; len(query) > 0 || i == 0; i++ {
		n := strings.IndexAny(query, "&;")
		pair, sep := query, ""
		if n >= 0 {
			pair, sep, query = query[:n], query[n:n+1], query[n+1:]
		} else {
			query = ""
		}
		key, _, hasValue := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if hasValue && IsSensitive(key) {
			pair = pair[:strings.IndexByte(pair, '=')+1] + "REDACTED"
			changed = true
		}
		b.WriteString(pair)
		b.WriteString(sep)
	}
	if !changed {
		return s
	}
	if hasFrag {
		b.WriteString("#" + frag)
	}
	return b.String()
}

// SanitizeText escapes control characters (including ANSI escapes) in server-supplied text such as
// X-Progress or OperationOutcome diagnostics before it reaches a terminal or a log (CONV-6, BULK-14).
// Newlines and tabs are kept.
func SanitizeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// RedactingHandler wraps a slog.Handler and replaces the value of every attribute whose key is
// sensitive (at any group depth) with "REDACTED", and redacts sensitive query parameters inside
// attribute values that look like URLs.
type RedactingHandler struct{ slog.Handler }

// NewRedactingHandler returns h wrapped in a RedactingHandler.
func NewRedactingHandler(h slog.Handler) *RedactingHandler { return &RedactingHandler{h} }

// Handle implements slog.Handler.
func (h *RedactingHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(redactAttr(a)); return true })
	return h.Handler.Handle(ctx, nr)
}

// WithAttrs implements slog.Handler.
func (h *RedactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(a)
	}
	return &RedactingHandler{h.Handler.WithAttrs(out)}
}

// WithGroup implements slog.Handler.
func (h *RedactingHandler) WithGroup(name string) slog.Handler {
	return &RedactingHandler{h.Handler.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	if IsSensitive(a.Key) {
		return slog.String(a.Key, "REDACTED")
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = redactAttr(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindString:
		if s := v.String(); strings.Contains(s, "?") {
			return slog.String(a.Key, Redact(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
