package sandbox_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// BenchmarkAsModeRead measures what a vendor mode's hooks cost a FHIR read: generic (no hook does
// anything), epic (the Epic-Client-ID check) and va (the rate-limit window, kept open by a long
// sandbox clock: every request counts, none is refused).
func BenchmarkAsModeRead(b *testing.B) {
	for _, as := range []string{"generic", "epic", "va"} {
		b.Run(as, func(b *testing.B) {
			s, err := sandbox.New(sandbox.Options{Patients: 1, As: as})
			if err != nil {
				b.Fatal(err)
			}
			tok := s.IssueAccessToken(sandbox.Grant{ClientID: "bench", Scopes: []string{"system/*.rs"}, Expiry: time.Now().Add(time.Hour)})
			req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/pt-0", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Epic-Client-ID", "bench")
			var step time.Duration
			for b.Loop() {
				if as == "va" { // a fresh window every 5 requests: measure the bookkeeping, not the 429
					step += time.Second
					s.SetClockOffset(step)
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
