package launch

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
)

// Session id rotation (session fixation, OWASP ASVS V3.2.1): whoever planted or read the browser's
// session id before a launch completed (a tossed cookie, a shared machine) must not reach its tokens.
// So every completed launch gets a new browser session id: the new tokens are stored under it only,
// the browser's other launches (listed in its cookie) are moved to it, and the cookie is re-issued.
// The old id reaches none of them afterwards. Authorizations pending at the rotation (another tab)
// still complete for MaxStateAge, through the cookie's record of the previous id.

// ownsState reports whether the browser whose cookie says cs started the authorization of rec: its
// current session id, or the id it had before its last rotation, if that is recent enough for rec.
func (rt *runtime) ownsState(cs cookieState, rec *Record) bool {
	if cs.sid == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(cs.sid), []byte(rec.Browser)) == 1 {
		return true
	}
	return cs.prev != "" && rt.now().Sub(cs.rotated) <= rt.maxStateAge &&
		subtle.ConstantTimeCompare([]byte(cs.prev), []byte(rec.Browser)) == 1
}

// storeRotated stores the new launch ts under a new browser session id, moves the browser's other
// launches to it, and issues the cookie that says so on w.
func (rt *runtime) storeRotated(ctx context.Context, w http.ResponseWriter, r *http.Request, ts *TokenSet) (*Session, error) {
	old := rt.cookies.read(r)
	sid := randomString(32)
	ts.Browser = sid
	s, err := rt.store(ctx, ts)
	if err != nil {
		return nil, err
	}
	handles := make([]string, 0, len(old.handles)+1)
	if old.sid != "" {
		for i, h := range old.handles {
			if !validHandle(h) || slices.Contains(handles, h) {
				continue
			}
			if len(old.handles)-i >= maxBrowserLaunches { // too many: the oldest goes
				rt.dropLaunch(ctx, sessionKey(old.sid, h))
				continue
			}
			if rt.moveLaunch(ctx, old.sid, sid, h) {
				handles = append(handles, h)
			}
		}
	}
	handles = append(handles, s.Handle)
	next := cookieState{sid: sid, prev: old.sid, rotated: rt.now(), handles: handles}
	if err := rt.cookies.write(w, r, next); err != nil {
		return nil, fmt.Errorf("launch: session cookie: %w", err)
	}
	return s, nil
}

// moveLaunch moves the launch h of browser session from to browser session to, and reports whether
// it now lives there. The move runs as the launch's refresh flight (and under Config.Locker), so
// that no refresh of the launch runs meanwhile and writes its rotated tokens under the old key. A
// launch that is gone (logged out, expired) or belongs to another browser is left alone; after a
// store failure (logged) the launch is lost to the browser, never left reachable under the old id
// when the store allows the delete.
func (rt *runtime) moveLaunch(ctx context.Context, from, to, h string) bool {
	oldKey := sessionKey(from, h)
	for range 3 { // a refresh in flight is waited for; then the move takes the flight
		var ran atomic.Bool
		ts, err := shared(ctx, &rt.refresh, oldKey, refreshTimeout, func(fctx context.Context) (*TokenSet, error) {
			ran.Store(true)
			if l := rt.c.Locker; l != nil {
				unlock, err := l.Lock(fctx, refreshLockName(oldKey), refreshLockTTL)
				if err != nil {
					return nil, storeError("refresh lock", err)
				}
				defer unlock()
			}
			return rt.move(fctx, from, to, h)
		})
		if ran.Load() || ctx.Err() != nil {
			if err != nil && !errors.Is(err, ErrNoSession) {
				rt.log.Warn("session rotation: a launch could not be moved", "err", err.Error())
			}
			return err == nil && ts != nil
		}
	}
	ts, err := rt.move(ctx, from, to, h)
	return err == nil && ts != nil
}

// move does the work of moveLaunch. A refresh of the old key that joins its flight gets the moved
// set (its tokens are the launch's), or an error wrapping ErrNoSession: never a nil set.
func (rt *runtime) move(ctx context.Context, from, to, h string) (*TokenSet, error) {
	oldKey, newKey := sessionKey(from, h), sessionKey(to, h)
	ts, err := rt.sessions.Load(ctx, oldKey)
	if err != nil {
		return nil, err
	}
	if ts.Token == nil || subtle.ConstantTimeCompare([]byte(ts.Browser), []byte(from)) != 1 {
		return nil, fmt.Errorf("%w: the launch belongs to another browser", ErrNoSession)
	}
	ts.Browser = to
	// A write under a new key creates a launch: Updated after Created would mark it as an update,
	// which a store refuses for an absent key (SessionStore).
	ts.Updated = ts.Created
	saved := rt.sessions.Save(ctx, newKey, ts)
	rt.dropLaunch(ctx, oldKey)
	if saved != nil {
		return nil, saved
	}
	if v, ok := rt.invalid.LoadAndDelete(oldKey); ok {
		rt.invalid.Store(newKey, v)
	}
	return ts, nil
}

// dropLaunch deletes the launch stored under key.
func (rt *runtime) dropLaunch(ctx context.Context, key string) {
	rt.invalid.Delete(key)
	if err := rt.sessions.Delete(ctx, key); err != nil && !errors.Is(err, ErrNoSession) {
		rt.log.Warn("session rotation: a launch could not be deleted", "err", err.Error())
	}
}
