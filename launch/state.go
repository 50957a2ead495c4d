package launch

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"sync"
	"time"
)

// Record is one pending authorization request, stored under its state value from the redirect to
// the server until the callback takes it (STYLE 8). It holds everything the callback needs, so the
// code is redeemed only at the token endpoint of the server the request went to (mix-up defence,
// SEC-04). It contains the PKCE verifier: stores must not log it, and persistent stores should
// encrypt it.
type Record struct {
	// Browser is the browser session id the request was made for (LAUNCH-06, SEC-01).
	Browser string `json:"browser"`
	// Issuer is the FHIR base exactly as received (the EHR's iss, or the standalone base).
	Issuer string `json:"issuer"`
	// Launch is the EHR launch id ("" for a standalone launch).
	Launch string `json:"launch,omitempty"`
	// Verifier is the PKCE code_verifier (LAUNCH-07).
	Verifier string `json:"verifier"`
	// Nonce is the OpenID Connect nonce, when one was sent (LAUNCH-12).
	Nonce string `json:"nonce,omitempty"`
	// Scope is the scope requested.
	Scope string `json:"scope"`
	// RedirectURL is the redirect_uri sent, repeated byte-for-byte at the token endpoint (LAUNCH-11).
	RedirectURL string `json:"redirect_url"`
	// AuthIssuer is the authorization server's issuer from discovery (RFC 9207, id_token iss).
	AuthIssuer string `json:"auth_issuer,omitempty"`
	// TokenURL is the token endpoint of that server; the code goes nowhere else.
	TokenURL string `json:"token_url"`
	// JWKSURI is the server's jwks_uri, if discovery named one.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// ISSRequired is true when the server advertises authorization_response_iss_parameter_supported.
	ISSRequired bool `json:"iss_required,omitempty"`
	// AppData is opaque data the app attached to the request (Request.AppData); never sent anywhere.
	AppData string `json:"app_data,omitempty"`
	// Created is when the request was made; Expires is Created + MaxStateAge (stores may use it as TTL).
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// StateStore keeps pending authorization requests (CONV-5). Take must load and delete in one atomic
// step, so that a state is usable once even when several replicas share the store (Redis GETDEL);
// it returns an error wrapping ErrStateUnknown when the state is absent. Implementations may drop
// records after their Expires time.
type StateStore interface {
	Save(ctx context.Context, state string, rec *Record) error
	Take(ctx context.Context, state string) (*Record, error)
}

// MemoryStateStore is a StateStore for one process. The zero value is ready to use.
type MemoryStateStore struct {
	mu    sync.Mutex
	m     map[string]Record
	saves int
}

var _ StateStore = (*MemoryStateStore)(nil)

// Save stores a copy of rec under state.
func (s *MemoryStateStore) Save(_ context.Context, state string, rec *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Record{}
	}
	s.saves++
	if s.saves%256 == 0 { // amortised sweep of abandoned requests
		now := time.Now()
		for k, r := range s.m {
			if expired(r.Expires, now) {
				delete(s.m, k)
			}
		}
	}
	s.m[state] = *rec
	return nil
}

// Take removes the record stored under state and returns it.
func (s *MemoryStateStore) Take(_ context.Context, state string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[state]
	if !ok {
		return nil, ErrStateUnknown
	}
	delete(s.m, state)
	return &r, nil
}

// Len returns the number of pending requests (for tests and metrics).
func (s *MemoryStateStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// randomString returns n random bytes from crypto/rand as unpadded base64url (n=32: 256 bits, 43
// characters: a state, a session id, a nonce; LAUNCH-06).
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// appState accepts app-supplied state values with at least 128 bits of base64url text.
var appState = regexp.MustCompile(`^[A-Za-z0-9\-._~]{22,512}$`)
