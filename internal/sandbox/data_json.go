package sandbox

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// jsonBuf appends compact JSON to a byte slice without reflection. The generator writes every
// resource with it, which is what lets a bulk export stream gigabytes at memory speed.
//
// Separators are implicit: a key or an array element is preceded by a comma unless the previous
// byte opens an object or array, or is the colon after a key.
type jsonBuf struct{ b []byte }

func (j *jsonBuf) sep() {
	if n := len(j.b); n > 0 {
		switch j.b[n-1] {
		case '{', '[', ':':
		default:
			j.b = append(j.b, ',')
		}
	}
}

// key writes `"k":` (k is a trusted identifier that needs no escaping).
func (j *jsonBuf) key(k string) {
	j.sep()
	j.b = append(j.b, '"')
	j.b = append(j.b, k...)
	j.b = append(j.b, '"', ':')
}

// obj opens an object under key k, or an anonymous one (array element) when k is "".
func (j *jsonBuf) obj(k string) {
	if k != "" {
		j.key(k)
	} else {
		j.sep()
	}
	j.b = append(j.b, '{')
}

// arr opens an array under key k.
func (j *jsonBuf) arr(k string) {
	j.key(k)
	j.b = append(j.b, '[')
}

func (j *jsonBuf) end()    { j.b = append(j.b, '}') }
func (j *jsonBuf) endArr() { j.b = append(j.b, ']') }

// str writes "k":"v".
func (j *jsonBuf) str(k, v string) {
	j.key(k)
	j.b = appendJSONString(j.b, v)
}

// elem writes a string array element.
func (j *jsonBuf) elem(v string) {
	j.sep()
	j.b = appendJSONString(j.b, v)
}

// num writes "k":v with the decimal text of v (fixed precision, so values are stable).
func (j *jsonBuf) num(k string, v float64, prec int) {
	j.key(k)
	j.b = strconv.AppendFloat(j.b, v, 'f', prec, 64)
}

func (j *jsonBuf) int(k string, v int) {
	j.key(k)
	j.b = strconv.AppendInt(j.b, int64(v), 10)
}

func (j *jsonBuf) bool(k string, v bool) {
	j.key(k)
	j.b = strconv.AppendBool(j.b, v)
}

// instant writes a FHIR instant in UTC with millisecond precision (the layout fhirInstant,
// formatted by hand: the generator writes several per resource).
func (j *jsonBuf) instant(k string, t time.Time) {
	j.key(k)
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b := append(j.b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1e6, 3)
	j.b = append(b, 'Z', '"')
}

// appendDigits appends n (0 <= n < 10^width) zero-padded to width digits.
func appendDigits(b []byte, n, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

// date writes a FHIR date (YYYY-MM-DD).
func (j *jsonBuf) date(k string, t time.Time) {
	j.key(k)
	j.b = append(j.b, '"')
	j.b = t.UTC().AppendFormat(j.b, time.DateOnly)
	j.b = append(j.b, '"')
}

// plainJSON reports whether s is printable ASCII without '"' or '\\' (the common case).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// fhirInstant is the layout of the instants the sandbox writes.
const fhirInstant = "2006-01-02T15:04:05.000Z07:00"

// appendJSONString appends s as a JSON string, escaping quotes, backslashes, control characters
// and invalid UTF-8 (as U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	if plainJSON(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
