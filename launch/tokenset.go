package launch

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/smartfhir/smartfhir/smart"
)

// TokenSet is what a completed launch leaves behind: the tokens and the context they were issued
// for. A SessionStore keeps one per launch. It holds credentials: persistent stores encrypt it
// (SEC-07).
type TokenSet struct {
	// Browser is the browser session id the launch belongs to.
	Browser string `json:"browser"`
	// Issuer is the FHIR base exactly as launched (aud), AuthIssuer the authorization server's issuer.
	Issuer     string `json:"issuer"`
	AuthIssuer string `json:"auth_issuer,omitempty"`
	// TokenURL is the token endpoint used for refreshes.
	TokenURL string `json:"token_url"`
	// EHRLaunch is true for an EHR launch, false for a standalone one.
	EHRLaunch bool `json:"ehr_launch,omitempty"`
	// Token is the current token with its launch context (rotated refresh tokens replace the old).
	Token *smart.Token `json:"token"`
	// Subject and FHIRUser come from the verified id_token. FHIRUser is absolute (resolved against
	// the FHIR base, IDT-03); FHIRUserLegacy is true when it came from the v1 profile claim (IDT-06).
	Subject        string `json:"sub,omitempty"`
	FHIRUser       string `json:"fhir_user,omitempty"`
	FHIRUserLegacy bool   `json:"fhir_user_legacy,omitempty"`
	// AppData is the opaque data the app attached to the authorization request.
	AppData string `json:"app_data,omitempty"`
	// ContextChanged is set when a refresh response carried a different launch context (REF-05).
	ContextChanged bool `json:"context_changed,omitempty"`
	// Created is the time of the launch, Updated of the last refresh; Expires ends the session
	// (stores may use it as TTL).
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Expires time.Time `json:"expires"`
}

// SessionStore keeps the TokenSet of each completed launch, keyed by an opaque string that joins
// the browser session id and the launch handle. Load returns an error wrapping ErrNoSession when the
// key is absent or expired. Save replaces the whole set (a rotated refresh token replaces the old one
// in the same write, REF-03). A write that updates an existing launch (a refresh) has Updated after
// Created; a store may refuse it once the launch is gone (a refresh finishing after a logout, as
// redisstore does) with an error wrapping ErrNoSession, and the refresh then ends with
// ErrReauthRequired. Implementations must be safe for concurrent use and must not log
// the tokens.
type SessionStore interface {
	Load(ctx context.Context, key string) (*TokenSet, error)
	Save(ctx context.Context, key string, ts *TokenSet) error
	Delete(ctx context.Context, key string) error
}

// MemorySessionStore is a SessionStore for one process. The zero value is ready to use. It keeps
// encoded copies, so that callers never share a *TokenSet.
type MemorySessionStore struct {
	mu    sync.Mutex
	m     map[string]memEntry
	saves int
}

type memEntry struct {
	b       []byte
	expires time.Time
}

var _ SessionStore = (*MemorySessionStore)(nil)

// Load returns a copy of the set stored under key.
func (s *MemorySessionStore) Load(_ context.Context, key string) (*TokenSet, error) {
	s.mu.Lock()
	e, ok := s.m[key]
	s.mu.Unlock()
	if !ok || expired(e.expires, time.Now()) {
		return nil, ErrNoSession
	}
	ts := new(TokenSet)
	if err := json.Unmarshal(e.b, ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// Save stores a copy of ts under key.
func (s *MemorySessionStore) Save(_ context.Context, key string, ts *TokenSet) error {
	b, err := json.Marshal(ts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]memEntry{}
	}
	s.saves++
	if s.saves%256 == 0 {
		now := time.Now()
		for k, e := range s.m {
			if expired(e.expires, now) {
				delete(s.m, k)
			}
		}
	}
	s.m[key] = memEntry{b: b, expires: ts.Expires}
	return nil
}

// Delete removes the set stored under key.
func (s *MemorySessionStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// Len returns the number of stored sets (for tests and metrics).
func (s *MemorySessionStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// expired reports whether a TTL has passed; a zero time never expires.
func expired(exp, now time.Time) bool { return !exp.IsZero() && now.After(exp) }
