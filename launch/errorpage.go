package launch

import (
	"errors"
	"html/template"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

var errorTmpl = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}code{background:#f3f3f3;padding:0 .2em}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Advice}}</p><p><code>{{.Detail}}</code></p></body></html>
`))

// ErrorPage is the default Config.OnError: a plain HTML page with a status code that fits the
// error, a title naming the problem, advice, and the error text. Error texts of this package never
// contain a token, code, state or verifier, and server-supplied text is escaped.
func ErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	status, title, advice := describe(err)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = errorTmpl.Execute(w, struct{ Title, Advice, Detail string }{title, advice, err.Error()})
}

// describe maps an error to a status, a title and advice for the error page.
func describe(err error) (int, string, string) {
	var ae *AuthorizationError
	var ie *IDTokenError
	var re *oauth2.RetrieveError
	var te *smart.TokenResponseError
	switch {
	case errors.Is(err, ErrStoreUnavailable):
		return http.StatusServiceUnavailable, "Temporarily unavailable", "The app could not reach its session storage. Try again in a moment."
	case errors.Is(err, ErrIssuerNotAllowed):
		return http.StatusForbidden, "Unknown EHR", "This app is not registered with the server that tried to launch it."
	case errors.Is(err, ErrMissingParameter):
		return http.StatusBadRequest, "Incomplete launch", "Launch the app from your EHR: the launch link lacks iss or launch."
	case errors.Is(err, ErrStateExpired):
		return http.StatusBadRequest, "Sign-in took too long", "Start the launch again."
	case errors.Is(err, ErrStateMismatch), errors.Is(err, ErrStateUnknown), errors.Is(err, ErrNoCode):
		return http.StatusBadRequest, "Sign-in could not be completed", "This sign-in response does not match a sign-in started in this browser. Start the launch again."
	case errors.As(err, &ae):
		if ae.Code == "access_denied" {
			return http.StatusForbidden, "Access denied", "Authorization was declined."
		}
		return http.StatusBadRequest, "The EHR refused the sign-in", "The authorization server returned an error."
	case errors.Is(err, ErrNoSession), errors.Is(err, ErrReauthRequired):
		return http.StatusUnauthorized, "Please launch the app again", "Your session has ended or this page belongs to another launch."
	case errors.As(err, &ie):
		return http.StatusBadGateway, "Identity could not be verified", "The server's id_token failed verification."
	case errors.As(err, &re):
		// What the failure means and what to do: Oracle Health's persona mismatch, Epic's bare 400s,
		// athenaPractice's non-OAuth errors, the OAuth codes, with the server's error_uri.
		return http.StatusBadGateway, "Token request failed", smart.ExplainTokenError(err)
	case errors.As(err, &te):
		return http.StatusBadGateway, "Token request failed", "The EHR's token endpoint did not issue usable tokens."
	case errors.Is(err, ErrConfig):
		return http.StatusInternalServerError, "App misconfigured", "The app's SMART configuration is invalid."
	case errors.Is(err, ErrDiscovery):
		return http.StatusBadGateway, "EHR configuration unusable", "The EHR's SMART configuration cannot be used."
	default:
		return http.StatusBadGateway, "Launch failed", "Something went wrong talking to the EHR."
	}
}

// failConfig reports an error before a runtime exists (invalid Config) or from Require.
func (c *Config) failConfig(w http.ResponseWriter, r *http.Request, err error) {
	if c.OnError != nil {
		c.OnError(w, r, err)
		return
	}
	ErrorPage(w, r, err)
}
