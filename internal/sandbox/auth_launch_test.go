package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func (h *harness) postJSON(path, body string) (*http.Response, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url(path), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// TestLaunchAPI mints launches over HTTP (SBX-02) and runs an EHR launch with one.
func TestLaunchAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone, func(c *Client) { c.LaunchURL = "http://127.0.0.1:4000/launch?app=1" })
	resp, body := h.postJSON("/sandbox/launch", `{"patient":"pat-1","encounter":"enc-1","client_id":"`+c.ID+`",
		"user":"Practitioner/prac-1","fhirContext":["DiagnosticReport/7",{"reference":"List/3","role":"med-list"}],
		"need_patient_banner":true,"intent":"summary","tenant":"t","smart_style_url":"https://ehr.example/s.json","skip_login":true}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d %v", resp.StatusCode, body)
	}
	launch := body["launch"].(string)
	u, err := url.Parse(body["url"].(string))
	if err != nil || u.Host != "127.0.0.1:4000" || u.Path != "/launch" || u.Query().Get("app") != "1" ||
		u.Query().Get("iss") != h.base || u.Query().Get("launch") != launch {
		t.Fatalf("url %v", body["url"])
	}
	code, v := h.code(c, "launch patient/*.rs", func(p url.Values) {
		p.Set("launch", u.Query().Get("launch"))
		p.Del("sandbox_skip_login")
	})
	_, tok := h.exchange(c, code, v)
	ctx, _ := json.Marshal(tok["fhirContext"])
	if tok["patient"] != "pat-1" || tok["encounter"] != "enc-1" || tok["intent"] != "summary" ||
		string(ctx) != `[{"reference":"DiagnosticReport/7"},{"reference":"List/3","role":"med-list"}]` {
		t.Errorf("token %v", tok)
	}

	for name, bad := range map[string]string{
		"patient path":    `{"patient":"../Practitioner/1"}`,
		"user type":       `{"user":"Organization/1"}`,
		"unknown client":  `{"client_id":"nobody"}`,
		"style url":       `{"smart_style_url":"javascript:alert(1)"}`,
		"empty context":   `{"fhirContext":[{"role":"x"}]}`,
		"absolute ref":    `{"fhirContext":["https://evil.example/Patient/1"]}`,
		"malformed JSON":  `{"patient":`,
		"wrong JSON type": `{"patient":1}`,
	} {
		if resp, body := h.postJSON("/sandbox/launch", bad); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Errorf("%s: %d %v", name, resp.StatusCode, body)
		}
	}
	if resp, body := h.postJSON("/sandbox/launch", `{}`); resp.StatusCode != http.StatusOK || body["url"] != nil {
		t.Errorf("unbound launch: %d %v", resp.StatusCode, body)
	}
}

// TestLaunchExpiry: a launch id is refused after an hour.
func TestLaunchExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone)
	launch := h.s.NewLaunch(LaunchContext{Patient: "pat-1"})
	h.s.SetClockOffset(61 * time.Minute)
	p, _ := h.authParams(c, "launch patient/*.rs")
	p.Set("launch", launch)
	if q := h.authorize(p); q.Get("error") != "invalid_request" {
		t.Errorf("callback %v", q)
	}
}

// TestLauncherPage renders the simulator and launches an app from its form (SBX-02).
func TestLauncherPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	c := h.app(authNone, func(c *Client) { c.LaunchURL = "http://127.0.0.1:4000/launch"; c.Name = "Cardiac <Risk>" })
	h.app(authNone) // no launch URL: listed as a client, not as an app
	resp, _ := h.get("/")
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"Cardiac &lt;Risk&gt;", c.ID, h.s.Patients()[0].Name, h.s.Practitioners()[0].Name, h.base} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if resp, _ := h.get("/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d", resp.StatusCode)
	}
	resp, _ = h.post("/sandbox/launch", url.Values{"client_id": {c.ID}, "patient": {"pat-2"}, "user": {"Practitioner/prac-1"}})
	u, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || u.Host != "127.0.0.1:4000" || u.Query().Get("iss") != h.base {
		t.Fatalf("launch: %d %v", resp.StatusCode, u)
	}
	lc, ok := h.s.auth.launches.get(u.Query().Get("launch"), h.s.Now())
	if !ok || lc.Patient != "pat-2" || lc.User != "Practitioner/prac-1" || lc.ClientID != c.ID {
		t.Errorf("launch %+v", lc)
	}
	resp, _ = h.post("/sandbox/launch", url.Values{"client_id": {"nobody"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown app: %d", resp.StatusCode)
	}
}
