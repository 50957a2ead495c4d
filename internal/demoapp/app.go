// Package demoapp is the example SMART app behind `smartfhir demo`: a patient summary (banner,
// demographics, recent vitals with a chart, labs) that uses only the public API of smart, launch
// and fhirclient, the way a third-party app would.
package demoapp

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/smartfhir/smartfhir/launch"
)

// Options configures the app.
type Options struct {
	// Launch is the SMART client configuration. Its LandingURL should be "/patient".
	Launch *launch.Config
	// StandaloneIssuer, when set, adds a "sign in" link that starts a standalone launch there.
	StandaloneIssuer string
	// LauncherURL, when set, is linked from the start page as the place to launch the app from.
	LauncherURL string
	// Logger receives page errors (never tokens). Nil discards.
	Logger *slog.Logger
}

// App is the demo app.
type App struct {
	opts Options
	log  *slog.Logger
}

// New returns the app.
func New(opts Options) (*App, error) {
	if opts.Launch == nil {
		return nil, errors.New("demoapp: Options.Launch is required")
	}
	if err := opts.Launch.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &App{opts: opts, log: log}, nil
}

// Handler returns the app's routes:
//
//	GET  /            start page
//	GET  /launch      SMART EHR launch URL
//	GET  /login       standalone launch (when StandaloneIssuer is set)
//	GET  /callback    redirect URL
//	GET  /patient     patient summary (needs ?handle=…)
//	POST /refresh     refresh the access token now
//	POST /logout      forget this launch's tokens
func (a *App) Handler() http.Handler {
	cfg := a.opts.Launch
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.index)
	mux.Handle("GET /launch", cfg.EHRLaunchHandler())
	if a.opts.StandaloneIssuer != "" {
		mux.Handle("GET /login", cfg.StandaloneHandler(a.opts.StandaloneIssuer))
	}
	mux.Handle("GET /callback", cfg.CallbackHandler(nil))
	mux.Handle("GET /patient", cfg.Require(http.HandlerFunc(a.patient)))
	mux.Handle("POST /refresh", cfg.Require(http.HandlerFunc(a.refresh)))
	mux.Handle("POST /logout", cfg.Require(http.HandlerFunc(a.logout)))
	return secureHeaders(mux)
}

// secureHeaders sets a strict policy on every page: no scripts at all, inline styles only.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors *")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func (a *App) index(w http.ResponseWriter, r *http.Request) {
	a.render(w, http.StatusOK, "index", struct{ LauncherURL, Standalone string }{a.opts.LauncherURL, a.opts.StandaloneIssuer})
}

// patientPage is the data of the patient summary.
type patientPage struct {
	Handle      string
	Patient     *patientView
	Banner      bool
	User        string
	Vitals      []observation
	Labs        []observation
	Chart       template.HTML
	Scopes      string
	Expiry      time.Time
	ExpiresIn   string
	Refreshable bool
	Refreshed   bool
	Problems    []string
	Issuer      string
	EHRLaunch   bool
}

func (a *App) patient(w http.ResponseWriter, r *http.Request) {
	s := launch.FromRequest(r)
	if s.Patient == "" {
		a.render(w, http.StatusOK, "nopatient", s)
		return
	}
	fc, err := s.FHIRClient()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx := r.Context()
	pv, err := loadPatient(ctx, fc, s.Patient)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	page := patientPage{
		Handle: s.Handle, Patient: pv, Banner: true, User: s.FHIRUser, Scopes: s.Scopes.String(),
		Refreshable: s.Refreshable, Refreshed: r.URL.Query().Has("refreshed"), Issuer: s.Issuer, EHRLaunch: s.EHRLaunch,
	}
	vitals, err := loadObservations(ctx, fc, s.Patient, "vital-signs")
	if err != nil {
		page.Problems = append(page.Problems, err.Error())
	}
	labs, err := loadObservations(ctx, fc, s.Patient, "laboratory")
	if err != nil {
		page.Problems = append(page.Problems, err.Error())
	}
	page.Chart = svgChart(chartSeries(vitals))
	page.Vitals, page.Labs = latest(vitals), latest(labs)
	if len(page.Labs) > 20 {
		page.Labs = page.Labs[:20]
	}
	tok, err := s.Token(ctx) // after the reads: a refresh during them shows here
	if err == nil {
		page.Expiry = tok.Expiry
		page.ExpiresIn = time.Until(tok.Expiry).Round(time.Second).String()
	}
	a.render(w, http.StatusOK, "patient", page)
}

func (a *App) refresh(w http.ResponseWriter, r *http.Request) {
	s := launch.FromRequest(r)
	if err := s.Refresh(r.Context()); err != nil {
		a.fail(w, r, err)
		return
	}
	http.Redirect(w, r, s.Link("/patient")+"&refreshed=1", http.StatusSeeOther)
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	s := launch.FromRequest(r)
	_ = s.Logout(r.Context())
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// fail shows the launch package's error page (it never shows a token).
func (a *App) fail(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Warn("demo page failed", "path", r.URL.Path, "err", err.Error())
	launch.ErrorPage(w, r, err)
}

func (a *App) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		a.log.Warn("template", "name", name, "err", err.Error())
	}
}
