package sandbox

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// LaunchContext is what the EHR knows when it launches an app, bound to a launch id by NewLaunch (SBX-02;
// SMART scopes-and-launch-context.md › "Launch context arrives with your access_token"). The token
// response returns it to the app that redeems a code from this launch.
type LaunchContext struct {
	Patient           string            `json:"patient,omitempty"`   // FHIR id
	Encounter         string            `json:"encounter,omitempty"` // FHIR id
	FHIRContext       []FHIRContextItem `json:"fhirContext,omitempty"`
	Intent            string            `json:"intent,omitempty"`
	NeedPatientBanner bool              `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string            `json:"smart_style_url,omitempty"`
	Tenant            string            `json:"tenant,omitempty"`
	// User is the logged-in user as a relative reference ("Practitioner/123"): the id_token's fhirUser.
	User string `json:"user,omitempty"`
	// ClientID binds the launch to one client; "" lets any client use it.
	ClientID string `json:"client_id,omitempty"`
	// SkipLogin skips the login/consent and patient-picker pages for authorizations of this launch.
	SkipLogin bool `json:"skip_login,omitempty"`
}

// FHIRContextItem is one fhirContext entry (SMART 2.1+ object form; a 2.0 string is read as a reference).
type FHIRContextItem struct {
	Reference  string          `json:"reference,omitempty"`
	Canonical  string          `json:"canonical,omitempty"`
	Identifier json.RawMessage `json:"identifier,omitempty"`
	Type       string          `json:"type,omitempty"`
	Role       string          `json:"role,omitempty"`
}

// UnmarshalJSON accepts the object form and the SMART 2.0 string form ("DiagnosticReport/123").
func (it *FHIRContextItem) UnmarshalJSON(b []byte) error {
	var ref string
	if json.Unmarshal(b, &ref) == nil {
		*it = FHIRContextItem{Reference: ref}
		return nil
	}
	type plain FHIRContextItem
	return json.Unmarshal(b, (*plain)(it))
}

// NewLaunch mints a launch id for lc, valid for an hour (SBX-02). Pass it to the app's launch URL as
// launch=…, with iss = the FHIR base.
func (s *Server) NewLaunch(lc LaunchContext) string {
	id := randomToken()
	now := s.Now()
	s.auth.launches.put(id, lc, now.Add(launchLifetime), now)
	return id
}

var (
	fhirIDRE    = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`) // FHIR id grammar (TOK-06)
	fhirUserRE  = regexp.MustCompile(`^(Practitioner|PractitionerRole|Patient|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$`)
	relativeRef = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}/[A-Za-z0-9\-.]{1,64}$`)
)

// validate checks a launch posted to the control API.
func (a *authState) validateLaunch(lc *LaunchContext) error {
	for name, id := range map[string]string{"patient": lc.Patient, "encounter": lc.Encounter} {
		if id != "" && !fhirIDRE.MatchString(id) {
			return fmt.Errorf("%s %q is not a FHIR id", name, id)
		}
	}
	if lc.User != "" && !fhirUserRE.MatchString(lc.User) {
		return fmt.Errorf("user %q is not a Practitioner, PractitionerRole, Patient, RelatedPerson or Person reference", lc.User)
	}
	if lc.SmartStyleURL != "" {
		if _, err := httpx.ParseAbsURL(lc.SmartStyleURL, false); err != nil {
			return fmt.Errorf("smart_style_url: %w", err)
		}
	}
	for i, it := range lc.FHIRContext {
		if it.Reference == "" && it.Canonical == "" && len(it.Identifier) == 0 {
			return fmt.Errorf("fhirContext[%d] needs reference, canonical or identifier", i)
		}
		if it.Reference != "" && !relativeRef.MatchString(it.Reference) {
			return fmt.Errorf("fhirContext[%d].reference %q is not a relative reference", i, it.Reference)
		}
	}
	if lc.ClientID != "" {
		if _, ok := a.clients.get(lc.ClientID); !ok {
			return fmt.Errorf("unknown client_id %q", lc.ClientID)
		}
	}
	return nil
}

// appLaunchURL is the client's launch URL with iss and launch added, or "" without a launch URL.
func (a *authState) appLaunchURL(r *http.Request, clientID, launch string) string {
	c, ok := a.clients.get(clientID)
	if !ok || c.LaunchURL == "" {
		return ""
	}
	u, err := url.Parse(c.LaunchURL)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("iss", a.s.FHIRBase(r))
	q.Set("launch", launch)
	u.RawQuery = q.Encode()
	return u.String()
}

// launchHandler is POST /sandbox/launch. A JSON LaunchContext gets {"launch": id, "url": app launch
// URL}; the launcher page's form is redirected to the app's launch URL.
func (a *authState) launchHandler(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		a.launchFromForm(w, r)
		return
	}
	body, err := httpx.ReadLimited(r.Body, httpx.MaxSmallBody)
	var lc LaunchContext
	if err == nil {
		err = json.Unmarshal(body, &lc)
	}
	if err == nil {
		err = a.validateLaunch(&lc)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	id := a.s.NewLaunch(lc)
	resp := map[string]string{"launch": id}
	if u := a.appLaunchURL(r, lc.ClientID, id); u != "" {
		resp["url"] = u
	}
	noStore(w)
	writeJSON(w, http.StatusOK, resp)
}

// launchFromForm handles the launcher page's form: mint a launch and open the app.
func (a *authState) launchFromForm(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(r)
	if oe != nil {
		errorPage(w, http.StatusBadRequest, oe.desc)
		return
	}
	lc := LaunchContext{
		Patient:           form.Get("patient"),
		Encounter:         strings.TrimSpace(form.Get("encounter")),
		Intent:            strings.TrimSpace(form.Get("intent")),
		NeedPatientBanner: form.Get("need_patient_banner") != "",
		SmartStyleURL:     strings.TrimSpace(form.Get("smart_style_url")),
		Tenant:            strings.TrimSpace(form.Get("tenant")),
		User:              form.Get("user"),
		ClientID:          form.Get("client_id"),
		SkipLogin:         form.Get("skip_login") != "",
	}
	if err := a.validateLaunch(&lc); err != nil {
		errorPage(w, http.StatusBadRequest, err.Error())
		return
	}
	u := a.appLaunchURL(r, lc.ClientID, a.s.NewLaunch(lc))
	if u == "" {
		errorPage(w, http.StatusBadRequest, "pick an app that has a launch URL")
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}
