package httpx

import (
	"errors"
	"fmt"
	"io"
)

// Default limits (CONV-2).
const (
	MaxSmallBody    = 1 << 20  // discovery, token and error bodies: 1 MiB
	MaxFHIRBody     = 64 << 20 // one FHIR JSON response: 64 MiB
	MaxNDJSONLine   = 64 << 20 // one NDJSON line in a bulk file: 64 MiB
	MaxSearchPages  = 10000    // pages followed by one search
	MaxErrorSnippet = 512      // bytes of a non-JSON error body quoted in an error message
)

// ErrBodyTooLarge is returned (wrapped) when a response body exceeds its limit.
var ErrBodyTooLarge = errors.New("response body too large")

// ReadLimited reads all of r, failing with ErrBodyTooLarge once more than limit bytes arrive.
// It never reads more than limit+1 bytes.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return b, err
	}
	if int64(len(b)) > limit {
		return b[:limit], fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, limit)
	}
	return b, nil
}

// Snippet returns at most MaxErrorSnippet bytes of b with control characters escaped, for quoting a
// non-JSON error body (an HTML error page) in an error message.
func Snippet(b []byte) string {
	if len(b) > MaxErrorSnippet {
		return SanitizeText(string(b[:MaxErrorSnippet])) + "…"
	}
	return SanitizeText(string(b))
}
