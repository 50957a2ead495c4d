package backend

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// TestClientInsecureHTTP: with InsecureAllowHTTP a server on plain http at a host that is not
// loopback gets the token from Config.Client (the opt-in reaches smart.NewTransportWithOptions);
// without it the Config is refused on the first request, before anything is sent (CONV-1).
func TestClientInsecureHTTP(t *testing.T) {
	t.Parallel()
	srv := newTokenServer(t, "svc")
	srv.secret = "s3cret-value"
	addr := srv.Listener.Addr().String()
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == "ehr.test:80" {
			a = addr
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 30 * time.Second}
	cfg := func(allow bool) *Config {
		return &Config{ClientID: "svc", ClientSecret: "s3cret-value", FHIRBase: "http://ehr.test/fhir",
			TokenURL: "http://ehr.test/token", HTTPClient: hc, InsecureAllowHTTP: allow}
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://ehr.test/fhir/Patient", nil)
	resp, err := cfg(true).Client(t.Context()).Do(req)
	if err != nil {
		t.Fatalf("with InsecureAllowHTTP: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || srv.apiHeader(0).Get("Authorization") != "Bearer at-1" {
		t.Fatalf("with InsecureAllowHTTP: status %d, Authorization %q", resp.StatusCode, srv.apiHeader(0).Get("Authorization"))
	}

	hits := srv.apiHits.Load()
	_, err = cfg(false).Client(t.Context()).Do(req)
	if !errors.Is(err, httpx.ErrInsecureURL) {
		t.Fatalf("without InsecureAllowHTTP: err = %v, want httpx.ErrInsecureURL", err)
	}
	assertNoSecret(t, err, "s3cret-value", "at-")
	if srv.apiHits.Load() != hits || srv.requests() != 1 {
		t.Fatal("a refused plain-http request reached the server")
	}
}
