package bulk

import (
	"bytes"
	"fmt"

	gojson "github.com/goccy/go-json"
)

// lineSplitter is the one NDJSON line reader of this package (BULK-25). Bytes are pushed into it
// with Write, in chunks of any size; it finds lines without bufio.Scanner's 64 KiB limit, enforces
// the line limit, skips blank lines, trims a trailing CR, counts resources, and, when onLine is
// set, hands each non-blank line to it. The download engine writes into it while writing the
// file; the iterators push the HTTP body through it.
//
// Without onLine it never buffers: it only counts, so memory stays constant whatever the line
// length. With onLine it buffers one line at a time, up to max bytes.
type lineSplitter struct {
	max    int64
	onLine func(line []byte, n int64) error // n is the 1-based line number

	buf    []byte
	cur    int64 // bytes in the current line so far
	blank  bool  // the current line is only white space so far
	lineNo int64 // lines completed
	lines  int64 // non-blank lines completed (resources)
	err    error // sticky
}

func newLineSplitter(max int64, onLine func([]byte, int64) error) *lineSplitter {
	return &lineSplitter{max: max, onLine: onLine, blank: true}
}

// Write implements io.Writer. An error is sticky.
func (s *lineSplitter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if err := s.take(seg); err != nil {
			s.err = err
			return 0, err
		}
		if i < 0 {
			break
		}
		if err := s.endLine(); err != nil {
			s.err = err
			return 0, err
		}
		p = p[i+1:]
	}
	return n, nil
}

func (s *lineSplitter) take(seg []byte) error {
	if len(seg) == 0 {
		return nil
	}
	s.cur += int64(len(seg))
	if s.cur > s.max {
		return &LineError{Line: s.lineNo + 1, Err: fmt.Errorf("%w (limit %d bytes)", ErrLineTooLong, s.max)}
	}
	if s.blank && !isSpace(seg) {
		s.blank = false
	}
	if s.onLine != nil {
		s.buf = append(s.buf, seg...)
	}
	return nil
}

func (s *lineSplitter) endLine() error {
	s.lineNo++
	var err error
	if !s.blank {
		s.lines++
		if s.onLine != nil {
			err = s.onLine(bytes.TrimSpace(s.buf), s.lineNo)
		}
	}
	if cap(s.buf) > 4<<20 {
		s.buf = nil // give back the memory of an unusually long line
	} else {
		s.buf = s.buf[:0]
	}
	s.cur, s.blank = 0, true
	return err
}

// Close ends the last line when the input has no trailing newline.
func (s *lineSplitter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.cur > 0 {
		s.err = s.endLine()
	}
	return s.err
}

// reset forgets everything, for a restart from byte zero.
func (s *lineSplitter) reset() {
	*s = lineSplitter{max: s.max, onLine: s.onLine, blank: true}
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// resourceHead is what line validation decodes: only resourceType. goccy/go-json still checks the
// whole line's syntax while skipping the rest, at about 1 GB/s.
type resourceHead struct {
	ResourceType string `json:"resourceType"`
}

// checkResource validates one NDJSON line: a JSON object with a resourceType, which is want unless
// want is "". UnmarshalOf with DecodeNoCopyString decodes without an allocation: h stays on the
// stack and its string refers to line, which outlives it.
func checkResource(line []byte, want string) error {
	if len(line) == 0 || line[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrInvalidLine)
	}
	var h resourceHead
	if err := gojson.UnmarshalOf(line, &h, gojson.DecodeNoCopyString()); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidLine, err)
	}
	if h.ResourceType == "" {
		return fmt.Errorf("%w: no resourceType", ErrInvalidLine)
	}
	if want != "" && h.ResourceType != want {
		got := h.ResourceType
		if len(got) > 64 {
			got = got[:64] + "…"
		}
		return fmt.Errorf("%w: resourceType %q, want %q", ErrInvalidLine, got, want)
	}
	return nil
}

// typeKey is how a line plainly starts when its first member is its resourceType.
const typeKey = `{"resourceType":"`

// leadsWithType reports whether line certainly has the one top-level resourceType want, which
// checkResource then need not decode: it starts {"resourceType":"want" and nothing after that could
// name another member resourceType. Decoders match member names case-insensitively (ſ folds to s),
// and an escape can spell any name, so a line with an escape, a ſ or any case of "resourcetype"
// after its first member is left to checkResource. It does not validate the line: the typed decode
// which follows does.
func leadsWithType(line []byte, want string) bool {
	if want == "" || !plainName(want) || len(line) < len(typeKey)+len(want)+2 ||
		string(line[:len(typeKey)]) != typeKey || string(line[len(typeKey):len(typeKey)+len(want)]) != want {
		return false
	}
	rest := line[len(typeKey)+len(want):]
	if rest[0] != '"' || (rest[1] != ',' && rest[1] != '}') {
		return false
	}
	rest = rest[2:]
	return bytes.IndexByte(rest, '\\') < 0 && !bytes.Contains(rest, []byte("\u017f")) && !containsFoldName(rest)
}

// plainName reports whether s is ASCII letters and digits only, as resource types are, so that its
// JSON string is itself between quotes.
func plainName(s string) bool {
	for i := range len(s) {
		if c := s[i] | 0x20; (c < 'a' || c > 'z') && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// containsFoldName reports whether b has "resourcetype" in any case (ASCII), found from its one y.
func containsFoldName(b []byte) bool {
	const name, y = "resourcetype", 9 // name[y] == 'y'
	for _, c := range []byte{'y', 'Y'} {
		for i := 0; ; i++ {
			j := bytes.IndexByte(b[i:], c)
			if j < 0 {
				break
			}
			i += j
			if i >= y && i+len(name)-y <= len(b) && bytes.EqualFold(b[i-y:i+len(name)-y], []byte(name)) {
				return true
			}
		}
	}
	return false
}

// decodeLine decodes line, which the caller gives away (it is never written again), into v with
// goccy/go-json, whose results are encoding/json's. The decoded strings refer to line instead of
// being copied one by one (DecodeNoCopyString): one allocation per resource instead of one per
// string. A resource kept so keeps its line's memory, which is about twice that of its strings.
func decodeLine(line []byte, v any) error {
	if err := gojson.UnmarshalWithOption(line, v, gojson.DecodeNoCopyString()); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidLine, err)
	}
	return nil
}
