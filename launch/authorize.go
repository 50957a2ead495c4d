package launch

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// maxLaunchParam bounds the EHR's launch id; real ones are short opaque strings or encrypted blobs.
const maxLaunchParam = 8 << 10

// Request describes one authorization request, for apps that start launches themselves (see
// AuthorizeURL) rather than through EHRLaunchHandler or StandaloneHandler.
type Request struct {
	// Issuer is the FHIR base to authorize against; it must be allowed.
	Issuer string
	// Launch is the EHR launch id for an EHR launch; "" for a standalone launch.
	Launch string
	// State is an app-chosen state value (quirks §3 #3), at least 22 characters of
	// [A-Za-z0-9-._~] (≥ 128 bits when random); "" lets the package pick 256 random bits. Either
	// way the state is single-use, expires, and is bound to this browser's session.
	State string
	// AppData is opaque data returned on the Session after the launch (a return path, an app
	// record id…). It is stored server-side and never sent to the authorization server.
	AppData string
}

// EHRLaunchHandler returns the handler for the app's launch URL (SMART "EHR launch"). It requires
// the iss and launch query parameters (LAUNCH-01), refuses an iss outside AllowedIssuers before any
// network request (LAUNCH-02, SEC-03), discovers the server's endpoints, and redirects the browser to
// the authorize endpoint with response_type=code, client_id, the exact redirect_uri, scope (with
// "launch"), a fresh state, aud = iss, PKCE S256 and the launch id echoed unchanged (LAUNCH-03…08).
// A long request goes by POST when the server advertises authorize-post (LAUNCH-09).
func (c *Config) EHRLaunchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := c.runtime()
		if err != nil {
			c.failConfig(w, r, err)
			return
		}
		q := r.URL.Query()
		iss, lid := q.Get("iss"), q.Get("launch")
		switch {
		case iss == "":
			rt.fail(w, r, fmt.Errorf("%w: iss (the launch URL needs iss and launch)", ErrMissingParameter))
			return
		case lid == "":
			rt.fail(w, r, fmt.Errorf("%w: launch (the launch URL needs iss and launch)", ErrMissingParameter))
			return
		case len(lid) > maxLaunchParam:
			rt.fail(w, r, fmt.Errorf("%w: launch parameter too long", ErrMissingParameter))
			return
		}
		rt.begin(w, r, Request{Issuer: iss, Launch: lid})
	})
}

// StandaloneHandler returns a handler that starts a standalone launch against iss, a FHIR base
// that must be allowed (STAND-01…05): no launch parameter, scopes without "launch", with
// "launch/patient" added when a patient/ scope is requested, aud = iss. Mount one per EHR the app
// offers. The handler takes no input from the request except the session cookie.
func (c *Config) StandaloneHandler(iss string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := c.runtime()
		if err != nil {
			c.failConfig(w, r, err)
			return
		}
		rt.begin(w, r, Request{Issuer: iss})
	})
}

// AuthorizeURL records an authorization request for the browser of r (issuing its session cookie
// on w when needed) and returns the URL to send the browser to. It is the building block of the
// handlers, for apps that own their routing; finish with Complete or CallbackHandler.
func (c *Config) AuthorizeURL(ctx context.Context, w http.ResponseWriter, r *http.Request, req Request) (string, error) {
	rt, err := c.runtime()
	if err != nil {
		return "", err
	}
	a, err := rt.prepare(ctx, w, r, req)
	if err != nil {
		return "", err
	}
	return a.url(), nil
}

// begin runs prepare and sends the browser on (GET redirect or POST form).
func (rt *runtime) begin(w http.ResponseWriter, r *http.Request, req Request) {
	a, err := rt.prepare(r.Context(), w, r, req)
	if err != nil {
		rt.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	u := a.url()
	if a.post && rt.postThreshold > 0 && len(u) > rt.postThreshold {
		rt.log.Debug("authorize by POST", "issuer", a.issuer, "url_len", len(u))
		writePostForm(w, a.endpoint, a.params, rt.c.RedirectURL)
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

// authRequest is a prepared authorization request.
type authRequest struct {
	endpoint string
	params   url.Values
	post     bool
	issuer   string
}

func (a *authRequest) url() string {
	sep := "?"
	if strings.Contains(a.endpoint, "?") {
		sep = "&"
	}
	return a.endpoint + sep + a.params.Encode()
}

// prepare checks the issuer (first, before any network request), discovers the server, creates the
// state record and returns the request to send.
func (rt *runtime) prepare(ctx context.Context, w http.ResponseWriter, r *http.Request, req Request) (*authRequest, error) {
	norm, err := rt.policy.check(req.Issuer)
	if err != nil {
		return nil, err
	}
	if req.State != "" && !appState.MatchString(req.State) {
		return nil, configErr("Request.State must be 22 to 512 characters of [A-Za-z0-9-._~]")
	}
	info, err := rt.discover(ctx, norm, req.Issuer)
	if err != nil {
		return nil, fmt.Errorf("launch: discovery of %s: %w", quote(req.Issuer), err)
	}
	sid, err := rt.cookies.ensure(w, r)
	if err != nil {
		return nil, fmt.Errorf("launch: session cookie: %w", err)
	}
	state := req.State
	if state == "" {
		state = randomString(32)
	}
	now := rt.now()
	rec := &Record{
		Browser:     sid,
		Issuer:      req.Issuer,
		Launch:      req.Launch,
		Verifier:    oauth2.GenerateVerifier(), // 32 random bytes, 43 characters (LAUNCH-07)
		Scope:       strings.Join(rt.requestScopes(norm, info, req.Launch != ""), " "),
		RedirectURL: rt.c.RedirectURL,
		AuthIssuer:  info.issuer,
		TokenURL:    info.tokenURL,
		JWKSURI:     info.jwksURI,
		ISSRequired: info.issRequired,
		AppData:     req.AppData,
		Created:     now,
		Expires:     now.Add(rt.maxStateAge),
	}
	p := url.Values{
		"response_type":         {"code"},
		"client_id":             {rt.c.ClientID},
		"redirect_uri":          {rt.c.RedirectURL},
		"scope":                 {rec.Scope},
		"state":                 {state},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(rec.Verifier)},
		"code_challenge_method": {"S256"}, // explicit: RFC 7636 defaults to plain (LAUNCH-04)
	}
	if aud := audience(req.Issuer, rt.policy.settings[norm].Audience); aud != "" {
		p.Set("aud", aud) // the iss as received, byte for byte (LAUNCH-05)
	}
	if req.Launch != "" {
		p.Set("launch", req.Launch) // echoed unchanged; Encode escapes + / = (LAUNCH-03, LAUNCH-08)
	}
	if rt.c.UseNonce {
		rec.Nonce = randomString(32)
		p.Set("nonce", rec.Nonce)
	}
	if err := rt.states.Save(ctx, state, rec); err != nil {
		return nil, storeError("state store", err)
	}
	rt.log.Debug("authorize", "issuer", req.Issuer, "ehr_launch", req.Launch != "", "client_auth", rt.auth.method())
	return &authRequest{endpoint: info.authURL, params: p, post: info.authorizePost, issuer: req.Issuer}, nil
}

// requestScopes returns the scopes to request from the issuer: scopes, written in the grammar of the
// issuer's vendor profile and with its extra scopes (smart.Profile.RequestScopes, SCOPE-12).
func (rt *runtime) requestScopes(norm string, info *serverInfo, ehr bool) []string {
	s := rt.scopes(ehr)
	if p := rt.policy.settings[norm].Profile; p != nil {
		return p.RequestScopes(s, info.conf)
	}
	return s
}

// scopes returns the scopes to request: Config.Scopes plus "launch" for an EHR launch; for a
// standalone launch without "launch" and "online_access", plus "launch/patient" when a patient/
// scope is requested (LAUNCH-03, STAND-01, STAND-02, STAND-04).
func (rt *runtime) scopes(ehr bool) []string {
	out := make([]string, 0, len(rt.c.Scopes)+1)
	patient := false
	for _, s := range rt.c.Scopes {
		if !ehr && (s == "launch" || s == "online_access") {
			continue
		}
		if strings.HasPrefix(s, "patient/") {
			patient = true
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if ehr && !slices.Contains(out, "launch") {
		out = append(out, "launch")
	}
	if !ehr && patient && !slices.Contains(out, "launch/patient") {
		out = append(out, "launch/patient")
	}
	return out
}

// postFormScript submits the authorize form; its hash goes in the Content-Security-Policy.
const postFormScript = `document.forms[0].submit()`

var postFormTmpl = template.Must(template.New("post").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Signing in…</title></head>
<body><form method="post" action="{{.Action}}">
{{range $k, $vs := .Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<noscript><button type="submit">Continue to sign in</button></noscript>
</form><script>` + postFormScript + `</script></body></html>
`))

// writePostForm renders an auto-submitting form that POSTs params to the authorize endpoint
// (LAUNCH-09). The page allows exactly its own script, and form submission (with the redirects
// that follow it) only to the endpoint's origin and the app's redirect URL.
func writePostForm(w http.ResponseWriter, action string, params url.Values, redirectURL string) {
	sum := sha256.Sum256([]byte(postFormScript))
	var origins []string
	for _, s := range []string{action, redirectURL} {
		if u, err := url.Parse(s); err == nil {
			origins = append(origins, strings.ToLower(u.Scheme)+"://"+u.Host)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'sha256-"+
		base64.StdEncoding.EncodeToString(sum[:])+"'; form-action "+strings.Join(origins, " "))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_ = postFormTmpl.Execute(w, struct {
		Action string
		Params url.Values
	}{action, params})
}
