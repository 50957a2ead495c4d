package sandbox

import (
	"sync"
	"time"
)

// Grant is what an access token stands for. The token endpoint issues grants; the FHIR API and
// introspection read them.
type Grant struct {
	ClientID  string
	Scopes    []string // granted scope tokens, as returned in the token response
	Patient   string   // launch context patient id, if any
	Encounter string
	FHIRUser  string // e.g. "Practitioner/abc" (relative to the FHIR base)
	Subject   string // OIDC sub
	IssuedAt  time.Time
	Expiry    time.Time
	Backend   bool // issued by client_credentials
}

// expiredTokenGrace is how long an expired access token is remembered, so that using it is answered
// "expired" rather than "not valid"; after that it is swept, so that a long-running sandbox does not
// keep every token it ever issued.
const expiredTokenGrace = time.Hour

type tokenStore struct {
	mu        sync.Mutex
	m         map[string]*Grant
	nextSweep time.Time
}

// IssueAccessToken stores g under a new random opaque token and returns the token. Tokens expired
// for more than an hour are dropped, at most once a minute.
func (s *Server) IssueAccessToken(g Grant) string {
	tok := randomToken()
	now := s.Now()
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	if !now.Before(s.tokens.nextSweep) {
		for k, old := range s.tokens.m {
			if now.Sub(old.Expiry) > expiredTokenGrace {
				delete(s.tokens.m, k)
			}
		}
		s.tokens.nextSweep = now.Add(time.Minute)
	}
	s.tokens.m[tok] = &g
	return tok
}

// LookupAccessToken returns a copy of the grant of a live token. Expired tokens are reported with
// ok=false and expired=true.
func (s *Server) LookupAccessToken(tok string) (g *Grant, expired, ok bool) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	g, ok = s.tokens.m[tok]
	if !ok {
		return nil, false, false
	}
	cp := *g
	if !s.Now().Before(cp.Expiry) {
		return &cp, true, false
	}
	return &cp, false, true
}

// RevokeAccessToken forgets tok.
func (s *Server) RevokeAccessToken(tok string) {
	s.tokens.mu.Lock()
	delete(s.tokens.m, tok)
	s.tokens.mu.Unlock()
}

// ExpireAccessTokens makes every access token expired now (to test refresh and 401 handling).
func (s *Server) ExpireAccessTokens() {
	now := s.Now()
	s.tokens.mu.Lock()
	for _, g := range s.tokens.m {
		g.Expiry = now.Add(-time.Second)
	}
	s.tokens.mu.Unlock()
}
