package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryFHIRFaultIsTested: each fault of the FHIR half appears, quoted, in a test table
// outside the fault lists, so none ships without a test proving it misbehaves as named.
func TestEveryFHIRFaultIsTested(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range files {
		if f == "fhir_faultlist_test.go" || strings.HasPrefix(f, "auth") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, name := range fhirFaultNames {
		if !strings.Contains(src.String(), `"`+name+`"`) {
			t.Errorf("fault %s has no test", name)
		}
	}
}
