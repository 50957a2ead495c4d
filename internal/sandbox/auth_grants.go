package sandbox

import (
	"sync"
	"time"
)

// authz is one authorization: what a user (or a backend client's registration) granted a client. The
// code, the access tokens and the refresh-token family it produced all point to it, so that revoking it
// (code replay, refresh-token reuse, revocation) revokes them all (RFC 6749 §4.1.2, RFC 9700 §4.14).
type authz struct {
	clientID   string
	scopes     []string
	launch     LaunchContext // Patient, Encounter, … and User (the fhirUser)
	ehrLaunch  bool
	nonce      string
	backend    bool
	sessionEnd time.Time // online_access: refresh tokens die with the user's session; zero otherwise

	revoked      bool     // guarded by grantStore.mu
	accessTokens []string // guarded by grantStore.mu
}

type codeRecord struct {
	z           *authz
	redirectURI string
	challenge   string // S256 code_challenge; "" when the request had none (v1 mode)
	expiry      time.Time
	used        bool
}

type refreshRecord struct {
	z      *authz
	expiry time.Time
	used   bool // rotated away: presenting it again is reuse
}

type accessRecord struct {
	z      *authz
	expiry time.Time
}

// grantStore holds codes, refresh tokens and the authorization behind each access token.
type grantStore struct {
	mu        sync.Mutex
	codes     map[string]*codeRecord
	refresh   map[string]*refreshRecord
	access    map[string]accessRecord
	nextSweep time.Time
}

// newCode stores a code for z, valid for codeLifetime.
func (g *grantStore) newCode(z *authz, redirectURI, challenge string, now time.Time) string {
	code := randomToken()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(now)
	g.codes[code] = &codeRecord{z: z, redirectURI: redirectURI, challenge: challenge, expiry: now.Add(codeLifetime)}
	return code
}

// redeemCode marks a code used and returns it. A code seen before revokes everything issued from it
// and reports reused; the caller revokes the returned access tokens.
func (g *grantStore) redeemCode(code string, now time.Time) (rec *codeRecord, reused bool, revoke []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.codes[code]
	switch {
	case !ok:
		return nil, false, nil
	case rec.used:
		return rec, true, g.revokeLocked(rec.z)
	case !now.Before(rec.expiry):
		return nil, false, nil
	}
	rec.used = true
	return rec, false, nil
}

// newRefresh stores a refresh token for z, valid for ttl.
func (g *grantStore) newRefresh(z *authz, ttl time.Duration, now time.Time) string {
	rt := randomToken()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(now)
	g.refresh[rt] = &refreshRecord{z: z, expiry: now.Add(ttl)}
	return rt
}

// useRefresh consumes a refresh token of client clientID, marking it rotated when rotate is set.
// Presenting a rotated token again is reuse: the whole family is revoked (SBX-06) and its access tokens
// returned for the caller to revoke.
func (g *grantStore) useRefresh(rt, clientID string, rotate bool, now time.Time) (z *authz, problem string, revoke []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.refresh[rt]
	switch {
	case !ok:
		return nil, "unknown refresh token", nil
	case rec.z.clientID != clientID:
		return nil, "the refresh token was issued to another client", nil
	case rec.used:
		return nil, "refresh token reused after rotation: the authorization is revoked", g.revokeLocked(rec.z)
	case rec.z.revoked:
		return nil, "the authorization behind this refresh token was revoked", nil
	case !now.Before(rec.expiry):
		return nil, "refresh token expired", nil
	case !rec.z.sessionEnd.IsZero() && !now.Before(rec.z.sessionEnd):
		return nil, "the user's session has ended (online_access)", nil
	}
	rec.used = rotate
	return rec.z, "", nil
}

// track records the authorization behind an access token.
func (g *grantStore) track(at string, z *authz, expiry, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweepLocked(now)
	g.access[at] = accessRecord{z, expiry}
	z.accessTokens = append(z.accessTokens, at)
}

// accessAuthz returns the authorization behind an access token.
func (g *grantStore) accessAuthz(at string) (*authz, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.access[at]
	return rec.z, ok
}

// refreshAuthz returns the authorization and expiry of a live refresh token.
func (g *grantStore) refreshAuthz(rt string, now time.Time) (*authz, time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, ok := g.refresh[rt]
	if !ok || rec.used || rec.z.revoked || !now.Before(rec.expiry) {
		return nil, time.Time{}, false
	}
	return rec.z, rec.expiry, true
}

// revoke revokes an authorization and returns its access tokens for the caller to revoke.
func (g *grantStore) revoke(z *authz) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.revokeLocked(z)
}

func (g *grantStore) revokeLocked(z *authz) []string {
	z.revoked = true
	out := z.accessTokens
	z.accessTokens = nil
	return out
}

// endSessions ends every online_access session now (REF-08).
func (g *grantStore) endSessions(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rec := range g.refresh {
		if !rec.z.sessionEnd.IsZero() {
			rec.z.sessionEnd = now
		}
	}
}

// sweepLocked drops expired records at most once a minute. Used codes stay until they expire so that a
// replay within the code's life is recognised.
func (g *grantStore) sweepLocked(now time.Time) {
	if g.codes == nil {
		g.codes, g.refresh, g.access = map[string]*codeRecord{}, map[string]*refreshRecord{}, map[string]accessRecord{}
	}
	if now.Before(g.nextSweep) {
		return
	}
	for k, v := range g.codes {
		if !now.Before(v.expiry.Add(codeLifetime)) {
			delete(g.codes, k)
		}
	}
	for k, v := range g.refresh {
		if !now.Before(v.expiry) {
			delete(g.refresh, k)
		}
	}
	for k, v := range g.access {
		if !now.Before(v.expiry) {
			delete(g.access, k)
		}
	}
	g.nextSweep = now.Add(time.Minute)
}

// revokeAccessTokens forgets access tokens in the shared token store.
func (s *Server) revokeAccessTokens(tokens []string) {
	for _, t := range tokens {
		s.RevokeAccessToken(t)
	}
}

// EndUserSessions ends every user session now: refresh tokens granted with online_access stop working
// (REF-08), offline_access ones keep working.
func (s *Server) EndUserSessions() { s.auth.grants.endSessions(s.Now()) }
