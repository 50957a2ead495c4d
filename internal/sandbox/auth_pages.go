package sandbox

import (
	"html/template"
	"net/http"
)

// The sandbox's HTML pages: the EHR launch simulator, the login/consent page with the patient picker,
// and the error page. html/template escapes every value; the pages load nothing from elsewhere.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{.}} · smartfhir sandbox</title>
<style>body{font:15px/1.4 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}
fieldset{margin:1rem 0}label{display:block;margin:.3rem 0}code{background:#f4f4f4;padding:0 .2rem}</style>
</head><body><h1>{{.}}</h1>{{end}}

{{define "error"}}{{template "head" "Error"}}<p>{{.}}</p></body></html>{{end}}

{{define "consent"}}{{template "head" "Sign in and authorize"}}
<p><b>{{.App}}</b> (<code>{{.ClientID}}</code>) asks for:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{else}}<li>no scope the client may have</li>{{end}}</ul>
<form method="post" action="/auth/decide">
<input type="hidden" name="tx" value="{{.TX}}">
<fieldset><legend>Signed-in user</legend>
{{range .Practitioners}}<label><input type="radio" name="user" value="Practitioner/{{.ID}}" {{if eq (print "Practitioner/" .ID) $.User}}checked{{end}}> {{.Name}} (Practitioner/{{.ID}})</label>{{end}}
{{if .PatientUser}}<label><input type="radio" name="user" value="" {{if eq "" $.User}}checked{{end}}> the selected patient</label>{{end}}
</fieldset>
{{if .NeedPatient}}<fieldset><legend>Patient</legend>
{{range $i, $p := .Patients}}<label><input type="radio" name="patient" value="{{.ID}}" {{if eq $i 0}}checked{{end}}> {{.Name}} · {{.Gender}} · born {{.BirthDate}} ({{.ID}})</label>
{{else}}<label>Patient id <input name="patient" required pattern="[A-Za-z0-9\-.]{1,64}"></label>{{end}}
<label>Encounter id (optional) <input name="encounter" pattern="[A-Za-z0-9\-.]{1,64}"></label>
</fieldset>{{end}}
<button name="decision" value="approve">Approve</button> <button name="decision" value="deny">Deny</button>
</form></body></html>{{end}}

{{define "launcher"}}{{template "head" "EHR launch simulator"}}
<p>FHIR base <code>{{.FHIRBase}}</code> · <a href="{{.Discovery}}">smart-configuration</a> ·
registration <code>POST {{.Register}}</code></p>
<h2>Launch an app</h2>
{{if .Apps}}<form method="post" action="/sandbox/launch">
<label>App <select name="client_id">{{range .Apps}}<option value="{{.ID}}">{{.Name}} ({{.ID}}) → {{.LaunchURL}}</option>{{end}}</select></label>
<label>Patient <select name="patient"><option value="">(none: the app picks)</option>{{range .Patients}}<option value="{{.ID}}">{{.Name}} ({{.ID}})</option>{{end}}</select></label>
<label>User <select name="user"><option value="">(none)</option>{{range .Practitioners}}<option value="Practitioner/{{.ID}}">{{.Name}} (Practitioner/{{.ID}})</option>{{end}}</select></label>
<label>Encounter id <input name="encounter"></label>
<label>Intent <input name="intent"></label>
<label>Tenant <input name="tenant"></label>
<label><input type="checkbox" name="need_patient_banner" value="1" checked> need_patient_banner</label>
<label><input type="checkbox" name="skip_login" value="1"> skip the login page</label>
<button>Launch</button></form>
{{else}}<p>No registered app has a <code>launch_url</code>. Register one at <code>{{.Register}}</code>.</p>{{end}}
<h2>Registered clients</h2>
<table><tr><th>Name</th><th>client_id</th><th>auth</th><th>grant types</th></tr>
{{range .Clients}}<tr><td>{{.Name}}</td><td><code>{{.ID}}</code></td><td>{{.AuthMethod}}</td><td>{{range .GrantTypes}}{{.}} {{end}}</td></tr>{{end}}</table>
<h2>Patients</h2>
<table><tr><th>id</th><th>Name</th><th>Gender</th><th>Born</th></tr>
{{range .Patients}}<tr><td><code>{{.ID}}</code></td><td>{{.Name}}</td><td>{{.Gender}}</td><td>{{.BirthDate}}</td></tr>{{end}}</table>
<h2>Practitioners</h2>
<table><tr><th>id</th><th>Name</th></tr>
{{range .Practitioners}}<tr><td><code>{{.ID}}</code></td><td>{{.Name}}</td></tr>{{end}}</table>
</body></html>{{end}}
`))

// renderPage writes a page with headers that keep it self-contained.
func renderPage(w http.ResponseWriter, status int, name string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Referrer-Policy", "no-referrer")
	noStore(w)
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, data)
}

// errorPage shows an error to the user, never redirecting (invalid client_id or redirect_uri).
func errorPage(w http.ResponseWriter, status int, msg string) { renderPage(w, status, "error", msg) }

// consentPage is the login/consent page with the patient picker.
func (a *authState) consentPage(w http.ResponseWriter, c *clientRecord, req *authRequest, tx string) {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	patientApp := !req.ehrLaunch && !hasContext(req.granted, "user") && req.needPatient
	user := req.launch.User
	if user == "" && !patientApp {
		user = a.defaultUser(req, "")
	}
	renderPage(w, http.StatusOK, "consent", map[string]any{
		"App": name, "ClientID": c.ID, "Scopes": req.granted, "TX": tx,
		"NeedPatient": req.needPatient, "Patients": a.s.Patients(), "Practitioners": a.s.Practitioners(),
		"User": user, "PatientUser": patientApp,
	})
}

// launcherPage is GET /: the EHR launch simulator (SBX-02).
func (a *authState) launcherPage(w http.ResponseWriter, r *http.Request) {
	clients := a.clients.list()
	var apps []*clientRecord
	for _, c := range clients {
		if c.LaunchURL != "" {
			apps = append(apps, c)
		}
	}
	renderPage(w, http.StatusOK, "launcher", map[string]any{
		"FHIRBase": a.s.FHIRBase(r), "Discovery": a.s.FHIRBase(r) + "/.well-known/smart-configuration",
		"Register": a.endpoint(r, "/auth/register"), "Apps": apps, "Clients": clients,
		"Patients": a.s.Patients(), "Practitioners": a.s.Practitioners(),
	})
}
