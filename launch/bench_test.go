package launch_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkEHRLaunch measures a full EHR launch round trip against the in-process sandbox: launch
// URL, discovery (cached), authorize, callback with the code exchange and id_token verification,
// landing page (CONV-9 target: ≥ 500 launches/s). Without openid the sandbox signs no id_token
// (an RS256 signature, the largest single cost of the round trip) and the app verifies none.
func BenchmarkEHRLaunch(b *testing.B) {
	for _, bc := range []struct {
		name   string
		scopes []string
	}{
		{"openid", nil},
		{"no-openid", []string{"offline_access", "patient/*.rs"}},
	} {
		b.Run(bc.name, func(b *testing.B) { benchLaunch(b, bc.scopes) })
	}
}

func benchLaunch(b *testing.B, scopes []string) {
	e := newEnv(b, envOptions{scopes: scopes})
	br := newBrowser(b)
	patient := e.sb.Patients()[0].ID
	u := e.ehrLaunchURL(patient) // warm discovery and JWKS caches
	if resp, err := br.Get(u); err == nil {
		resp.Body.Close()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := br.Get(e.ehrLaunchURL(patient))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %v", resp.StatusCode, e.lastErr())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "launches/s")
}
