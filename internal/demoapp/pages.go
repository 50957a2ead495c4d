package demoapp

import "html/template"

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.}} · smartfhir demo</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2530;background:#f6f7f9}
header.top{background:#234;color:#fff;padding:.5em 1em;font-weight:600}
main{max-width:60em;margin:1em auto;padding:0 1em}
.banner{background:#fff;border-left:6px solid #2a7;padding:.8em 1em;margin-bottom:1em;box-shadow:0 1px 2px #0002}
.banner h1{margin:0;font-size:1.5em}.banner span{margin-right:1.5em;color:#455}
section{background:#fff;padding:.5em 1em 1em;margin-bottom:1em;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25em .5em;border-bottom:1px solid #e4e7eb}
th{font-weight:600;color:#455}.num{text-align:right;font-variant-numeric:tabular-nums}
.chart{width:100%;max-width:640px;height:auto}.chart .line{fill:none;stroke:#2a7;stroke-width:2}
.chart circle{fill:#2a7}.chart .axis{stroke:#99a}.chart .t{font-weight:600;font-size:13px}.chart .l{font-size:11px;fill:#667}
form{display:inline}button{font:inherit;padding:.3em .9em;cursor:pointer}.muted{color:#667;font-size:.9em}
.ok{color:#2a7}.warn{color:#a52}
</style></head><body><header class="top">smartfhir demo app</header><main>{{end}}
{{define "foot"}}</main></body></html>{{end}}

{{define "index"}}{{template "head" "Start"}}
<section><h2>SMART on FHIR demo app</h2>
<p>This app shows a patient summary. It is launched by an EHR: open the EHR's app launcher, pick a
patient, and launch <em>smartfhir demo app</em>.</p>
{{if .LauncherURL}}<p><a id="launcher" href="{{.LauncherURL}}">Open the sandbox EHR launcher</a></p>{{end}}
{{if .Standalone}}<p><a id="login" href="/login">Sign in directly (standalone launch)</a> at {{.Standalone}}</p>{{end}}
</section>{{template "foot"}}{{end}}

{{define "nopatient"}}{{template "head" "No patient"}}
<section><h2>No patient in context</h2><p>The launch granted no patient. Launch the app with a patient selected.</p></section>
{{template "foot"}}{{end}}

{{define "patient"}}{{template "head" .Patient.Name}}
{{if .Banner}}<div class="banner" id="banner"><h1 id="patient-name">{{.Patient.Name}}</h1>
<span>{{.Patient.Gender}}</span><span>born {{.Patient.BirthDate}}</span><span class="muted">Patient/{{.Patient.ID}}</span></div>{{end}}
{{range .Problems}}<p class="warn">{{.}}</p>{{end}}
<section id="demographics"><h2>Demographics</h2><table>
<tr><th>Identifiers</th><td>{{range $i, $v := .Patient.Identifiers}}{{if $i}}, {{end}}{{$v}}{{end}}</td></tr>
<tr><th>Address</th><td>{{range .Patient.Addresses}}{{.}}<br>{{end}}</td></tr>
<tr><th>Contact</th><td>{{range $i, $v := .Patient.Telecom}}{{if $i}}, {{end}}{{$v}}{{end}}</td></tr>
</table></section>
<section id="vitals"><h2>Recent vital signs</h2>
{{if .Chart}}{{.Chart}}{{end}}
{{if .Vitals}}<table><tr><th>Measurement</th><th class="num">Value</th><th>Unit</th><th>Date</th></tr>
{{range .Vitals}}<tr><td>{{.Display}}</td><td class="num">{{.Value}}</td><td>{{.Unit}}</td><td>{{.Date}}</td></tr>{{end}}
</table>{{else}}<p class="muted">No vital signs.</p>{{end}}</section>
<section id="labs"><h2>Recent laboratory results</h2>
{{if .Labs}}<table><tr><th>Test</th><th class="num">Value</th><th>Unit</th><th>Date</th></tr>
{{range .Labs}}<tr><td>{{.Display}}</td><td class="num">{{.Value}}</td><td>{{.Unit}}</td><td>{{.Date}}</td></tr>{{end}}
</table>{{else}}<p class="muted">No laboratory results.</p>{{end}}</section>
<section id="session"><h2>Session</h2><table>
<tr><th>FHIR server</th><td>{{.Issuer}} ({{if .EHRLaunch}}EHR launch{{else}}standalone launch{{end}})</td></tr>
<tr><th>User</th><td>{{if .User}}{{.User}}{{else}}<span class="muted">not requested</span>{{end}}</td></tr>
<tr><th>Granted scopes</th><td><code>{{.Scopes}}</code></td></tr>
<tr><th>Access token</th><td id="expiry" data-expiry="{{.Expiry.Unix}}">expires {{.Expiry.Format "15:04:05"}} (in {{.ExpiresIn}}){{if .Refreshed}} <span class="ok" id="refreshed">refreshed</span>{{end}}</td></tr>
</table>
<p>{{if .Refreshable}}<form method="post" action="/refresh"><input type="hidden" name="handle" value="{{.Handle}}"><button id="refresh" type="submit">Refresh the token now</button></form>{{else}}<span class="muted">No refresh token was issued.</span>{{end}}
<form method="post" action="/logout"><input type="hidden" name="handle" value="{{.Handle}}"><button type="submit">Forget this launch</button></form></p>
</section>
{{template "foot"}}{{end}}
`))
