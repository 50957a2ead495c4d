package launch

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"
)

// Key returns the key that resumes this launch without a browser (see SessionByKey): for work done
// on the user's behalf after the request (a background job, a queue worker) or a command-line app
// that keeps its login between runs.
//
// The key is a bearer secret. Whoever holds it holds the launch: its access token, the power of
// its refresh token and the patient's data within the granted scopes, until the session ends
// (SessionAge) or Logout. It carries 256 random bits, and this package never sends it anywhere,
// logs it or prints it (fmt shows a Session without it). Keep it on the server, encrypted at rest
// like a refresh token, and never put it in a URL, a page, a cookie or a log line. The handle, by
// contrast, is not a secret: it works only with the browser's own session cookie.
//
// The key names the browser session id, which changes whenever another launch completes in the
// same browser (session fixation defence): the key of an earlier launch then stops working, and
// FromRequest(r).Key() returns the current one.
func (s *Session) Key() string { return s.src.key }

// SessionByKey returns the launch stored under key (from Session.Key), without a browser request.
// The Session is the one (*Config).Session returns for the browser: the same launch context,
// scopes and user, and a token refreshed as needed (single-flight per launch, REF-04; across
// processes with Config.Locker) that goes to the FHIR base's origin only.
//
// It fails with ErrNoSession when key is malformed, unknown, expired or logged out, and with
// ErrIssuerNotAllowed when the launch's issuer has left AllowedIssuers. It makes no network
// request; ctx bounds the SessionStore's load. The key is a bearer secret: see Session.Key.
func (c *Config) SessionByKey(ctx context.Context, key string) (*Session, error) {
	rt, err := c.runtime()
	if err != nil {
		return nil, err
	}
	sid, handle, ok := strings.Cut(key, ".")
	if !ok || !validSessionID(sid) || !validHandle(handle) {
		return nil, ErrNoSession // checked before the store sees it
	}
	return rt.load(ctx, sid, handle)
}

// load returns the launch of browser session sid and handle from the store, checking that it
// belongs to that browser session and that its issuer is still allowed.
func (rt *runtime) load(ctx context.Context, sid, handle string) (*Session, error) {
	key := sessionKey(sid, handle)
	ts, err := rt.sessions.Load(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNoSession) {
			return nil, ErrNoSession
		}
		return nil, storeError("session store", err)
	}
	if ts.Token == nil || subtle.ConstantTimeCompare([]byte(ts.Browser), []byte(sid)) != 1 {
		return nil, ErrNoSession
	}
	if _, err := rt.policy.check(ts.Issuer); err != nil {
		return nil, err
	}
	return rt.newSession(key, handle, ts), nil
}

// validSessionID accepts browser session ids as issued: 32 random bytes, base64url (43 characters).
func validSessionID(s string) bool { return len(s) == 43 && base64URLText(s) }

// validHandle accepts handles as issued: 16 random bytes, base64url (22 characters).
func validHandle(h string) bool { return len(h) == 22 && base64URLText(h) }

func base64URLText(s string) bool {
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}
