package fhirclient

import (
	"encoding/json"
	"fmt"

	gojson "github.com/goccy/go-json"
)

// The decoder choice lives here alone. github.com/goccy/go-json v0.12.0 decodes the samply models
// exactly as encoding/json does (TestDecoderEquivalence: same values, same raw members, same
// failures) and faster on the 2-core reference machine (BenchmarkDecodeBundle: about 4-5x on a
// 2,000-entry Observation searchset decoded typed; BenchmarkDecodeNDJSON: about 2-3x on Observation
// lines). The price is binary size: about 3.2 MB more than encoding/json in a program that reads
// Patients and Bundles. Versions below v0.12.0 must not be used: they spend about a second and
// 70-96 MB of heap compiling a decoder for the FHIR type graph.
//
// Encoding stays with encoding/json: the models' MarshalJSON methods call it anyway.

// unmarshal is the JSON decoder used for every typed decode in this package. A panic inside the
// third-party decoder on hostile input becomes an error.
func unmarshal(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fhirclient: JSON decoder panic: %v", r)
		}
	}()
	return gojson.Unmarshal(b, v)
}

// valid reports whether b is one well-formed JSON value.
func valid(b []byte) bool { return gojson.Valid(b) }

// marshal is the JSON encoder used for request bodies.
func marshal(v any) ([]byte, error) { return json.Marshal(v) }
