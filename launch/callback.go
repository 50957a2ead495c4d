package launch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

// CallbackHandler returns the handler for the app's redirect URL. In this order (LAUNCH-10, SEC-01):
//  1. it takes the state record out of the store (single use, even on failure), and checks that it
//     belongs to this browser's session and is younger than MaxStateAge;
//  2. an error parameter becomes an *AuthorizationError (also when a code came with it);
//  3. an RFC 9207 iss parameter must equal the discovered issuer, and is required when the server
//     advertises it (mix-up defence, SEC-04); it is never taken as a FHIR base;
//  4. the code is redeemed once, at the token endpoint of the server the request went to, with the
//     stored PKCE verifier and the identical redirect_uri (LAUNCH-11), authenticating the client;
//  5. the id_token is verified (IDT-01…08) and the launch context parsed (TOK-*);
//  6. the tokens are stored server-side under a new launch handle, and the browser session id is
//     rotated: the cookie is re-issued with a new id, the browser's other launches move to it, and
//     the old id reaches none of them (session fixation).
//
// Then done is called, or, when done is nil, the browser is sent (303) to Config.LandingURL with
// ?handle=…, a URL without code or state (SEC-13). Every response carries
// Referrer-Policy: no-referrer. Failures go to Config.OnError.
func (c *Config) CallbackHandler(done func(w http.ResponseWriter, r *http.Request, s *Session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		rt, err := c.runtime()
		if err != nil {
			c.failConfig(w, r, err)
			return
		}
		q := r.URL.Query()
		s, err := rt.complete(r.Context(), w, r, callbackParams{
			state: q.Get("state"), code: q.Get("code"), iss: q.Get("iss"), hasISS: q.Has("iss"),
			errCode: q.Get("error"), hasError: q.Has("error"),
			errDesc: q.Get("error_description"), errURI: q.Get("error_uri"), handler: true,
		})
		if err != nil {
			rt.fail(w, r, err)
			return
		}
		if done != nil {
			done(w, r, s)
			return
		}
		http.Redirect(w, r, s.Link(rt.landing), http.StatusSeeOther)
	})
}

// Complete finishes a launch whose callback the app received itself (hosts that strip or own the
// query string, quirks §3 #3): code and state as the server sent them. It applies the checks of
// CallbackHandler except those on the error and iss parameters, which the app must handle, and
// returns the new Session. Like CallbackHandler it rotates the browser session id: the new session
// cookie is set on w, which must therefore reach the browser (it must not be nil).
func (c *Config) Complete(ctx context.Context, w http.ResponseWriter, r *http.Request, code, state string) (*Session, error) {
	rt, err := c.runtime()
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, configErr("Complete needs the ResponseWriter, for the rotated session cookie")
	}
	return rt.complete(ctx, w, r, callbackParams{state: state, code: code})
}

type callbackParams struct {
	state, code              string
	iss                      string
	hasISS                   bool
	errCode, errDesc, errURI string
	hasError                 bool
	handler                  bool // from CallbackHandler, which sees the whole query
}

func (rt *runtime) complete(ctx context.Context, w http.ResponseWriter, r *http.Request, p callbackParams) (*Session, error) {
	// 1. State first: taken (deleted) before anything else, so it is used at most once.
	if p.state == "" {
		return nil, fmt.Errorf("%w: the callback has no state parameter", ErrStateUnknown)
	}
	if len(p.state) > 1024 {
		return nil, fmt.Errorf("%w: state parameter too long", ErrStateUnknown)
	}
	rec, err := rt.states.Take(ctx, p.state)
	if err != nil {
		if errors.Is(err, ErrStateUnknown) {
			return nil, ErrStateUnknown
		}
		return nil, storeError("state store", err)
	}
	if !rt.ownsState(rt.cookies.read(r), rec) {
		return nil, ErrStateMismatch
	}
	if age := rt.now().Sub(rec.Created); age > rt.maxStateAge || age < -rt.skew {
		return nil, ErrStateExpired
	}
	// 2. An error from the server, even next to a code: nothing is exchanged.
	if p.hasError {
		return nil, &AuthorizationError{Code: p.errCode, Description: p.errDesc, URI: p.errURI}
	}
	// 3. RFC 9207.
	if p.hasISS && p.iss != rec.AuthIssuer {
		return nil, fmt.Errorf("%w: the callback iss %s is not the issuer the request went to (mix-up)", ErrStateMismatch, quote(p.iss))
	}
	if !p.hasISS && rec.ISSRequired && p.handler {
		return nil, fmt.Errorf("%w: the server advertises RFC 9207 but sent no iss", ErrStateMismatch)
	}
	if p.code == "" {
		return nil, ErrNoCode
	}
	if len(p.code) > 4096 {
		return nil, fmt.Errorf("%w: code too long", ErrNoCode)
	}
	// 4. Redeem the code, once, where the request went.
	norm, err := rt.policy.check(rec.Issuer) // the allow-list may have shrunk since
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {p.code},
		"redirect_uri":  {rec.RedirectURL},
		"code_verifier": {rec.Verifier},
	}
	tok, err := rt.tokenRequest(ctx, norm, rec.TokenURL, form, grantCode)
	if err != nil {
		return nil, err
	}
	// 5. Identity and context.
	ts := &TokenSet{
		Issuer: rec.Issuer, AuthIssuer: rec.AuthIssuer, TokenURL: rec.TokenURL,
		EHRLaunch: rec.Launch != "", Token: tok, AppData: rec.AppData,
	}
	if err := rt.checkGrant(ctx, norm, rec, ts); err != nil {
		return nil, err
	}
	// 6. Store under a fresh handle and a fresh browser session id (session fixation).
	s, err := rt.storeRotated(ctx, w, r, ts)
	if err != nil {
		return nil, err
	}
	rt.log.Info("launch complete", "issuer", rec.Issuer, "ehr_launch", ts.EHRLaunch, "scope", tok.Scope,
		"refreshable", tok.RefreshToken != "", "has_id_token", tok.IDToken != "")
	return s, nil
}

// store saves a new launch's tokens under a fresh handle, keyed by browser session and launch, so
// that several launches in one browser never collide.
func (rt *runtime) store(ctx context.Context, ts *TokenSet) (*Session, error) {
	now := rt.now()
	ts.Created, ts.Updated, ts.Expires = now, now, now.Add(rt.sessionAge)
	handle := randomString(16)
	key := sessionKey(ts.Browser, handle)
	if err := rt.sessions.Save(ctx, key, ts); err != nil {
		return nil, storeError("session store", err)
	}
	return rt.newSession(key, handle, ts), nil
}

// checkGrant applies the token-response rules that need the request: granted openid requires a
// valid id_token, an id_token is verified whenever present (TOK-05, IDT-*), granted patient/ scopes
// require a patient (TOK-07), and a missing scope means the requested one, flagged (TOK-04).
func (rt *runtime) checkGrant(ctx context.Context, norm string, rec *Record, ts *TokenSet) error {
	tok := ts.Token
	if tok.ScopeOmitted {
		tok.Scope = rec.Scope
		tok.Warnings = append(tok.Warnings, "scope omitted by the server; assuming the requested scope")
	}
	granted := tok.GrantedScopes()
	if granted.HasKind(smart.KindOpenID) && tok.IDToken == "" {
		return idtErr("openid was granted but the token response has no id_token")
	}
	if tok.IDToken != "" {
		id, err := rt.verifyIDToken(ctx, norm, tok.IDToken, idTokenCheck{
			issuer: rec.AuthIssuer, jwksURI: rec.JWKSURI, nonce: rec.Nonce, fhirBase: rec.Issuer,
		})
		if err != nil {
			return err
		}
		ts.Subject, ts.FHIRUser, ts.FHIRUserLegacy = id.sub, id.fhirUser, id.legacy
	}
	if granted.HasContext("patient") && tok.Patient == "" {
		return &smart.TokenResponseError{Field: "patient", Reason: "patient/ scopes were granted without a patient in context (TOK-07)"}
	}
	return nil
}

// tokenRequest authenticates form for tokenURL and sends it once with smart.ExchangeToken.
func (rt *runtime) tokenRequest(ctx context.Context, norm, tokenURL string, form url.Values, grant grantKind) (*smart.Token, error) {
	o := authOptions{grant: grant, profile: rt.policy.settings[norm].Profile}
	if rt.auth.both() {
		// AUTH-04: the key unless the server does without private_key_jwt (discovery is cached).
		if info, err := rt.discover(ctx, norm, norm); err == nil {
			o.secretOnly = info.secretOnly
		}
	}
	hdr := http.Header{}
	if err := rt.auth.apply(ctx, tokenURL, form, hdr, o); err != nil {
		return nil, err
	}
	tok, err := smart.ExchangeToken(ctx, rt.client(norm), tokenURL, form, hdr)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// Typed, already scrubbed of credentials; a non-OAuth body (athenaPractice) becomes a
			// *smart.NonOAuthError that still unwraps to the *oauth2.RetrieveError.
			return nil, smart.ClassifyTokenError(err)
		}
		return nil, fmt.Errorf("launch: token request: %w", err)
	}
	// Expiry counts from receipt, on this Config's clock (TOK-15).
	tok.Expiry = rt.now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	return tok, nil
}

// sessionKey joins a browser session id and a launch handle into a SessionStore key.
func sessionKey(sid, handle string) string { return sid + "." + handle }
