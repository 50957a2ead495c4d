package sandbox

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkTokenEndpointES384 measures client_credentials grants with ES384 assertions over loopback
// HTTP, assertions signed beforehand (CONV-9 target: ≥ 1,000 tokens/s).
func BenchmarkTokenEndpointES384(b *testing.B) {
	h := newHarness(b, Options{})
	key := newTestKey(b, "ES384")
	c := h.backend(key)
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = url.Values{
			"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {jwtBearer}, "client_assertion": {key.sign(b, h.claims(c.ID), nil)},
		}.Encode()
	}
	tokenURL := h.url("/auth/token")
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			resp, err := h.hc.Post(tokenURL, "application/x-www-form-urlencoded", strings.NewReader(bodies[i]))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
