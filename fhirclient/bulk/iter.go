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
		t, err := c.fileTarget(m, f)
		if err != nil {
			yield(nil, err)
			return
		}
		ls := newLineSplitter(intOr(c.MaxLine, DefaultMaxLine), yieldLines(f.Type, t.name, yield))
		_, err = c.fetch(ctx, t, 0, ls, fetchHooks{})
		if err == nil {
			err = ls.Close()
		}
		if err != nil && !errors.Is(err, errStop) {
			yield(nil, locate(err, t.name))
		}
	}
}

// ReadNDJSON streams the resources of NDJSON read from r (a downloaded file, say) with the same
// line reader and checks as Client.Resources. want is the expected resourceType ("" for any);
// name labels errors. Each yielded message is the caller's to keep.
func ReadNDJSON(r io.Reader, want, name string) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		ls := newLineSplitter(DefaultMaxLine, yieldLines(want, name, yield))
		_, err := copyBody(ls, r)
		if err == nil {
			err = ls.Close()
		}
		var se *sinkError
		if errors.As(err, &se) {
			err = se.err
		}
		if err != nil && !errors.Is(err, errStop) {
			yield(nil, locate(err, name))
		}
	}
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
// at the first error.
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
