package launch_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
)

// TestInsecureHTTPIssuer: with InsecureAllowHTTP an EHR on plain http at a host that is not
// loopback launches end to end: its discovery, the absolute http fhirUser of its id_token and the
// Session's FHIR client all follow the opt-in. Without it the Config is refused (CONV-1, SEC-11).
func TestInsecureHTTPIssuer(t *testing.T) {
	t.Parallel()
	const iss = "http://ehr.test/fhir"
	var sandboxAddr string // set before the first request
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == "ehr.test:80" {
			a = sandboxAddr
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 30 * time.Second}
	e := newEnv(t, envOptions{configure: func(c *launch.Config) {
		c.InsecureAllowHTTP = true
		c.AllowedIssuers = []string{iss}
		c.HTTPClient = hc
	}})
	sandboxAddr = e.srv.HTTP.Listener.Addr().String()
	b := newBrowser(t)
	b.Transport = hc.Transport

	p := b.launchOK(t, e, e.app.URL+"/launch?"+url.Values{"iss": {iss}, "launch": {e.newLaunch("")}}.Encode())
	if p.Issuer != iss || !strings.HasPrefix(p.FHIRUser, iss+"/Practitioner/") || !p.FHIRUserInBase {
		t.Errorf("launch = %+v", p)
	}
	fc, err := e.sessionOf(t, b, p.Handle).FHIRClient()
	if err != nil {
		t.Fatal(err)
	}
	var pat fhir.Patient
	if _, err := fc.Read(t.Context(), "Patient", p.Patient, &pat); err != nil {
		t.Errorf("FHIR read over the allowed plain http: %v", err)
	}

	strict := &launch.Config{ClientID: "app", RedirectURL: e.cfg.RedirectURL, AllowedIssuers: []string{iss}}
	if err := strict.Validate(); !errors.Is(err, launch.ErrConfig) || !errors.Is(err, httpx.ErrInsecureURL) {
		t.Errorf("plain http issuer without the opt-in: %v", err)
	}
}
