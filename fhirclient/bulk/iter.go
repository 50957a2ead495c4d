package bulk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"

	gojson "github.com/goccy/go-json"
)

// errStop ends a push-based read when the consumer of an iterator stops early.
var errStop = errors.New("bulk: iteration stopped")

// Resources streams the resources of one manifest file in constant memory (BULK-24, BULK-25):
// the download engine (gzip, Range resume, retries, token rules) feeds the NDJSON line reader,
// and each non-blank line is checked to be a JSON object of the file's type (any type in
// organised output) before it is yielded. Each yielded message is the caller's to keep. An error
// is yielded once, last; a *LineError locates a bad line.
func (c *Client) Resources(ctx context.Context, m *Manifest, f File) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		if err := c.readFile(ctx, m, f, func(want, name string) func([]byte, int64) error {
			return yieldLines(want, name, yield)
		}); err != nil {
			yield(nil, err)
		}
	}
}

// DecodeResources streams the resources of one manifest file decoded into T, as
// Decode[T](c.Resources(ctx, m, f)) does, with the same checks and values, in one pass: each line
// is decoded straight from the line reader, and its resourceType is not decoded separately when the
// line plainly starts with it. A line that does not decode is a *LineError (ErrInvalidLine).
func DecodeResources[T any](ctx context.Context, c *Client, m *Manifest, f File) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		if err := c.readFile(ctx, m, f, func(want, name string) func([]byte, int64) error {
			return yieldTyped(want, name, yield)
		}); err != nil {
			yield(nil, err)
		}
	}
}

// readFile downloads one manifest file through the line reader; lines(want, name) returns the
// callback for its lines, given the file's type and name. Stopping early is not an error.
func (c *Client) readFile(ctx context.Context, m *Manifest, f File, lines func(want, name string) func([]byte, int64) error) error {
	t, err := c.fileTarget(m, f)
	if err != nil {
		return err
	}
	ls := newLineSplitter(intOr(c.MaxLine, DefaultMaxLine), lines(f.Type, t.name))
	_, err = c.fetch(ctx, t, 0, ls, fetchHooks{})
	if err == nil {
		err = ls.Close()
	}
	if err == nil || errors.Is(err, errStop) {
		return nil
	}
	return locate(err, t.name)
}

// ReadNDJSON streams the resources of NDJSON read from r (a downloaded file, say) with the same
// line reader and checks as Client.Resources. want is the expected resourceType ("" for any);
// name labels errors. Each yielded message is the caller's to keep.
func ReadNDJSON(r io.Reader, want, name string) iter.Seq2[json.RawMessage, error] {
	return readNDJSON(r, DefaultMaxLine, want, name)
}

// readNDJSON is ReadNDJSON with the line limit maxLine (a Client's MaxLine).
func readNDJSON(r io.Reader, maxLine int64, want, name string) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		if err := readLines(r, maxLine, name, yieldLines(want, name, yield)); err != nil {
			yield(nil, err)
		}
	}
}

// DecodeNDJSON streams the resources of NDJSON read from r decoded into T, as
// Decode[T](ReadNDJSON(r, want, name)) does, with the same checks and values, in one pass (see
// DecodeResources).
func DecodeNDJSON[T any](r io.Reader, want, name string) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		if err := readLines(r, DefaultMaxLine, name, yieldTyped(want, name, yield)); err != nil {
			yield(nil, err)
		}
	}
}

// readLines pushes r through the line reader, bounded by maxLine, with the callback onLine.
// Stopping early is not an error.
func readLines(r io.Reader, maxLine int64, name string, onLine func([]byte, int64) error) error {
	ls := newLineSplitter(maxLine, onLine)
	_, err := copyBody(ls, r)
	if err == nil {
		err = ls.Close()
	}
	var se *sinkError
	if errors.As(err, &se) {
		err = se.err
	}
	if err == nil || errors.Is(err, errStop) {
		return nil
	}
	return locate(err, name)
}

// yieldLines returns the onLine callback of the iterators: check, copy, yield.
func yieldLines(want, name string, yield func(json.RawMessage, error) bool) func([]byte, int64) error {
	return func(line []byte, n int64) error {
		if err := checkResource(line, want); err != nil {
			return &LineError{File: name, Line: n, Err: err}
		}
		if !yield(json.RawMessage(append([]byte(nil), line...)), nil) {
			return errStop
		}
		return nil
	}
}

// yieldTyped returns the onLine callback of the typed iterators: check (skipped when the line
// plainly has the one resourceType want, which the decode then validates with the rest of the
// line), decode, yield. The line is copied once, into memory the decoded strings share (see
// decodeLine), and is never written again.
func yieldTyped[T any](want, name string, yield func(*T, error) bool) func([]byte, int64) error {
	return func(line []byte, n int64) error {
		if !leadsWithType(line, want) {
			if err := checkResource(line, want); err != nil {
				return &LineError{File: name, Line: n, Err: err}
			}
		}
		v := new(T)
		if err := decodeLine(append([]byte(nil), line...), v); err != nil {
			return &LineError{File: name, Line: n, Err: err}
		}
		if !yield(v, nil) {
			return errStop
		}
		return nil
	}
}

// locate fills in the file name of a *LineError raised without one.
func locate(err error, name string) error {
	var le *LineError
	if errors.As(err, &le) && le.File == "" {
		le.File = name
	}
	return err
}

// Decode turns raw resources into typed ones, e.g. Decode[fhir.Observation](c.Resources(…)), with
// goccy/go-json (several times faster than encoding/json on FHIR models, same results). It stops
// at the first error. DecodeResources and DecodeNDJSON give the same values in one pass, faster
// (BenchmarkDecodeTyped).
func Decode[T any](seq iter.Seq2[json.RawMessage, error]) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		for raw, err := range seq {
			if err != nil {
				yield(nil, err)
				return
			}
			v := new(T)
			if err := gojson.Unmarshal(raw, v); err != nil {
				yield(nil, fmt.Errorf("%w: %v", ErrInvalidLine, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}
