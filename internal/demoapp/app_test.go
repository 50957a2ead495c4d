package demoapp

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
	"github.com/smartfhir/smartfhir/launch"
)

// TestDemoAppLaunch runs the demo app against the sandbox: EHR launch, patient page with banner,
// demographics, vitals chart and labs, token refresh, logout.
func TestDemoAppLaunch(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New(sandbox.Options{Patients: 3})
	if err != nil {
		t.Fatal(err)
	}
	sbSrv := httptest.NewServer(sb)
	defer sbSrv.Close()
	mux := http.NewServeMux()
	appSrv := httptest.NewServer(mux)
	defer appSrv.Close()
	if _, err := sb.RegisterClient(sandbox.Client{ID: "demo", AuthMethod: "none", RedirectURIs: []string{appSrv.URL + "/callback"},
		LaunchURL: appSrv.URL + "/launch", GrantTypes: []string{"authorization_code", "refresh_token"}, SkipLogin: true}); err != nil {
		t.Fatal(err)
	}
	fhirBase := sbSrv.URL + "/fhir"
	app, err := New(Options{
		Launch: &launch.Config{ClientID: "demo", RedirectURL: appSrv.URL + "/callback", LandingURL: "/patient",
			Scopes:         []string{"launch", "openid", "fhirUser", "offline_access", "patient/Patient.rs", "patient/Observation.rs"},
			AllowedIssuers: []string{fhirBase}},
		StandaloneIssuer: fhirBase, LauncherURL: sbSrv.URL + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", app.Handler())

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(u string) (int, string, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Request.URL.String()
	}
	if status, body, _ := get(appSrv.URL + "/"); status != http.StatusOK || !strings.Contains(body, sbSrv.URL+"/") {
		t.Fatalf("start page: %d %s", status, body)
	}

	p := sb.Patients()[1]
	id := sb.NewLaunch(sandbox.LaunchContext{Patient: p.ID, User: "Practitioner/" + sb.Practitioners()[0].ID})
	status, body, final := get(appSrv.URL + "/launch?" + url.Values{"iss": {fhirBase}, "launch": {id}}.Encode())
	if status != http.StatusOK {
		t.Fatalf("launch: %d %s", status, body)
	}
	for _, want := range []string{`id="patient-name">` + p.Name, `id="vitals"`, `id="labs"`, `id="refresh"`, "Practitioner/"} {
		if !strings.Contains(body, want) {
			t.Errorf("patient page lacks %q", want)
		}
	}
	if !strings.Contains(body, "<svg") {
		t.Log("no vitals chart (fewer than two readings of one vital sign)")
	}
	handle := mustQuery(t, final, launch.HandleParam)

	before := sb.Count("token_requests:refresh_token")
	resp, err := c.PostForm(appSrv.URL+"/refresh", url.Values{"handle": {handle}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `id="refreshed"`) || sb.Count("token_requests:refresh_token") != before+1 {
		t.Errorf("refresh: %d, refreshes %d→%d", resp.StatusCode, before, sb.Count("token_requests:refresh_token"))
	}

	resp, err = c.PostForm(appSrv.URL+"/logout", url.Values{"handle": {handle}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, _, _ := get(appSrv.URL + "/patient?handle=" + handle); status != http.StatusUnauthorized {
		t.Errorf("after logout: %d", status)
	}

	// Standalone sign-in lands on the sandbox's default patient.
	if status, body, _ := get(appSrv.URL + "/login"); status != http.StatusOK || !strings.Contains(body, `id="patient-name"`) {
		t.Errorf("standalone: %d", status)
	}
}

func mustQuery(t *testing.T, u, k string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Query().Get(k) == "" {
		t.Fatalf("no %s in %q", k, u)
	}
	return p.Query().Get(k)
}

// TestChart: the SVG is built from numbers and escaped labels only.
func TestChart(t *testing.T) {
	t.Parallel()
	rows := []observation{
		{Code: "8867-4", Display: "Heart <rate>", Unit: "/min", Date: "2024-01-02", Number: 70, HasNumber: true},
		{Code: "8867-4", Display: "Heart <rate>", Unit: "/min", Date: "2024-01-01T10:00:00Z", Number: 80, HasNumber: true},
		{Code: "x", Display: "once", Date: "2024-01-01", Number: 1, HasNumber: true},
	}
	name, unit, pts := chartSeries(rows)
	if name != "Heart <rate>" || unit != "/min" || len(pts) != 2 || !pts[0].t.Before(pts[1].t) {
		t.Fatalf("series %q %q %v", name, unit, pts)
	}
	svg := string(svgChart(name, unit, pts))
	if !strings.HasPrefix(svg, "<svg") || strings.Contains(svg, "<rate>") || !strings.Contains(svg, "Heart &lt;rate&gt;") {
		t.Errorf("svg = %s", svg)
	}
	if got := svgChart(chartSeries(rows[2:])); got != "" {
		t.Errorf("one point should draw nothing: %s", got)
	}
	if got := latest(rows); len(got) != 2 {
		t.Errorf("latest = %v", got)
	}
}
