package launch

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Session is one completed launch as the app sees it during a request: the launch context, the
// user, the granted scopes, and clients for the FHIR API whose token is refreshed as needed. Get it
// with (*Config).Session(r), or FromRequest(r) behind (*Config).Require; outside a browser request,
// with (*Config).SessionByKey. Its fields are a snapshot taken when it was loaded.
type Session struct {
	// Handle names this launch among the browser's launches; pass it on in links (Link).
	Handle string
	// Issuer is the FHIR base the app was launched from (exactly as received).
	Issuer string
	// EHRLaunch is true for an EHR launch, false for a standalone one.
	EHRLaunch bool
	// Context is the launch context of the token response (patient, encounter, fhirContext, …).
	smart.LaunchContext
	// FHIRUser is the signed-in user's resource as an absolute URL (IDT-03), "" without openid.
	// It may lie outside the FHIR base (Epic); see FHIRUserReference before fetching it.
	FHIRUser string
	// FHIRUserLegacy is true when FHIRUser came from the SMART v1 profile claim (IDT-06).
	FHIRUserLegacy bool
	// Subject is the id_token's sub.
	Subject string
	// Scopes are the granted scopes.
	Scopes smart.Scopes
	// Expiry is when the current access token expires; Refreshable says whether a refresh token
	// is held (REF-02: decided by its presence, not by offline_access in the scope).
	Expiry      time.Time
	Refreshable bool
	// ContextChanged is true when a refresh brought a different launch context (REF-05).
	ContextChanged bool
	// AppData is what the app attached to the authorization request (Request.AppData).
	AppData string
	// Warnings lists tolerated deviations of the server (scope omitted, expires_in as a string…).
	Warnings []string

	// src holds the session key, a bearer secret (see Key); Format leaves rt and src out of fmt
	// output.
	rt  *runtime
	src *sessionSource
}

func (rt *runtime) newSession(key, handle string, ts *TokenSet) *Session {
	t := ts.Token
	s := &Session{
		Handle: handle, Issuer: ts.Issuer, EHRLaunch: ts.EHRLaunch, LaunchContext: t.LaunchContext,
		FHIRUser: ts.FHIRUser, FHIRUserLegacy: ts.FHIRUserLegacy, Subject: ts.Subject,
		Scopes: t.GrantedScopes(), Expiry: t.Expiry, Refreshable: t.RefreshToken != "",
		ContextChanged: ts.ContextChanged, AppData: ts.AppData, Warnings: t.Warnings,
		rt: rt,
	}
	s.src = rt.newSessionSource(key, ts)
	return s
}

// Session returns the launch that r belongs to: the browser session cookie and the handle parameter
// must both match a stored launch. It fails with ErrNoSession otherwise. The handle is read from the
// query, or from the body of a POSTed application/x-www-form-urlencoded form (at most 10 MB, as
// net/http's ParseForm reads it); a multipart body is never read (the app applies its own limits to
// uploads), so a multipart form names its launch in its action URL (Session.Link).
func (c *Config) Session(r *http.Request) (*Session, error) {
	rt, err := c.runtime()
	if err != nil {
		return nil, err
	}
	sid := rt.cookies.get(r)
	if sid == "" {
		return nil, ErrNoSession // before reading any body
	}
	handle := r.URL.Query().Get(HandleParam)
	if handle == "" && r.Method == http.MethodPost && urlencodedForm(r) {
		if err := r.ParseForm(); err == nil {
			handle = r.PostForm.Get(HandleParam)
		}
	}
	if !validHandle(handle) {
		return nil, ErrNoSession
	}
	return rt.load(r.Context(), sid, handle)
}

// urlencodedForm reports whether r's body is an application/x-www-form-urlencoded form.
func urlencodedForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

type ctxKey struct{}

// Require wraps next so that it runs only for requests that belong to a launch; the Session is then
// available to it through FromRequest. Other requests go to Config.OnError with ErrNoSession.
func (c *Config) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.Session(r)
		if err != nil {
			c.failConfig(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	})
}

// FromRequest returns the Session that Require attached to r, or nil.
func FromRequest(r *http.Request) *Session { return FromContext(r.Context()) }

// FromContext returns the Session that Require attached to ctx, or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// Link returns path with this launch's handle added as a query parameter, for the app's own links
// and forms ("/patient" → "/patient?handle=…").
func (s *Session) Link(path string) string {
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	q := u.Query()
	q.Set(HandleParam, s.Handle)
	u.RawQuery = q.Encode()
	return u.String()
}

// Token returns a valid access token, refreshing it first when it expires within the refresh margin
// (one refresh at a time per launch, REF-04). Without a refresh token, or when the server refuses
// the refresh (invalid_grant), the tokens are deleted and the error wraps ErrReauthRequired.
// Never send the id_token as a credential (IDT-08): this returns the access token.
func (s *Session) Token(ctx context.Context) (*smart.Token, error) { return s.src.current(ctx) }

// Refresh refreshes the access token now. With scopes, it asks for those only, which must lie
// within the granted scopes (SCOPE-13; checked before anything is sent); by default it sends no
// scope (REF-01).
func (s *Session) Refresh(ctx context.Context, scopes ...string) error {
	if len(scopes) > 0 {
		req, err := smart.ParseScopes(strings.Join(scopes, " "))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrScopeNotGranted, err)
		}
		if err := smart.CheckSubset(req, s.Scopes); err != nil {
			return fmt.Errorf("%w: %w", ErrScopeNotGranted, err)
		}
	}
	ts, err := s.rt.forceRefresh(ctx, s.src.key, strings.Join(scopes, " "))
	if err != nil {
		return err
	}
	*s = *s.rt.newSession(s.src.key, s.Handle, ts)
	return nil
}

// HTTPClient returns a client that sends the access token to the FHIR base's origin only (CONV-1,
// IDT-05), refreshing it as needed and retrying once after a 401 (REF-07).
func (s *Session) HTTPClient() *http.Client {
	base := s.rt.client(s.normIssuer()).Transport
	t, err := smart.NewTransportWithOptions(s.src, smart.TransportOptions{
		Base: base, TrustedOrigins: []string{s.Issuer}, InsecureAllowHTTP: s.rt.c.InsecureAllowHTTP,
	})
	if err != nil {
		// Issuer was checked when the session was loaded; keep the contract "never a nil client".
		return &http.Client{Transport: failingTransport{err}}
	}
	return &http.Client{Transport: t, CheckRedirect: httpx.SameOriginRedirects}
}

// TokenSource returns the launch's token source, for clients other than HTTPClient (another
// OAuth 2.0 library, gRPC): it refreshes like Token, and also implements smart.ContextTokenSource
// and smart.Invalidator (call Invalidate after a 401). Send its tokens to the FHIR base's origin
// only (Issuer); smart.NewTransport enforces that.
func (s *Session) TokenSource() oauth2.TokenSource { return s.src }

// FHIRClient returns a FHIR client for the launch's FHIR base that authenticates with HTTPClient.
func (s *Session) FHIRClient() (*fhirclient.Client, error) {
	c, err := fhirclient.NewClient(s.Issuer, s.HTTPClient())
	if err != nil {
		return nil, err
	}
	c.InsecureAllowHTTP = s.rt.c.InsecureAllowHTTP // else a plain-http issuer allowed by Config fails every request
	return c, nil
}

// FHIRUserReference returns FHIRUser as a reference relative to the FHIR base ("Practitioner/123")
// when it lies under that base, so that it may be read with the token; ok is false for a user
// outside the base, which must not be fetched with the token (IDT-05).
func (s *Session) FHIRUserReference() (ref string, ok bool) {
	if s.FHIRUser == "" {
		return "", false
	}
	base, err := fhirBaseURL(s.Issuer)
	if err != nil {
		return "", false
	}
	u, err := url.Parse(s.FHIRUser)
	if err != nil || !httpx.SameOrigin(u, base) || !strings.HasPrefix(u.EscapedPath(), base.EscapedPath()) {
		return "", false
	}
	rel := strings.TrimPrefix(u.EscapedPath(), base.EscapedPath())
	if strings.Count(rel, "/") != 1 {
		return "", false
	}
	return rel, true
}

// Logout deletes the launch's tokens from the store. The browser session cookie stays, so that the
// browser's other launches go on.
func (s *Session) Logout(ctx context.Context) error {
	s.rt.invalid.Delete(s.src.key)
	return s.rt.sessions.Delete(ctx, s.src.key)
}

func (s *Session) normIssuer() string {
	n, _ := normalizeIssuer(s.Issuer, s.rt.c.InsecureAllowHTTP)
	return n
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, f.err
}
