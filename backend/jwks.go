package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// MaxAssertionLifetime is the longest an assertion may live (SMART: exp at most five minutes ahead).
const MaxAssertionLifetime = 5 * time.Minute

// DefaultJWKSMaxAge is the Cache-Control max-age of the JWKS handler (JWKS-02).
const DefaultJWKSMaxAge = 5 * time.Minute

// ErrKeyNotPublished is wrapped when the signing key is missing from the published JWK Set (AUTH-12).
var ErrKeyNotPublished = errors.New("signing key is not in the published JWK Set")

// ErrNoSigningKey is wrapped when a KeySet has no key usable for signing at the time asked.
var ErrNoSigningKey = errors.New("no signing key")

// PublicJWKS returns the JWK Set {"keys":[…]} to register with a server or serve at a jwks_uri
// (JWKS-01): public members only (kty, n, e or crv, x, y; never d, p, q, dp, dq, qi, k or oth), plus
// kid, alg, "use":"sig" and "key_ops":["verify"]. Repeated keys appear once; two different keys under
// one kid are an error.
func PublicJWKS(keys ...Key) ([]byte, error) {
	norm := make([]Key, 0, len(keys))
	for _, k := range keys {
		n, err := k.normalize()
		if err != nil {
			return nil, err
		}
		norm = append(norm, n)
	}
	norm, err := dedupe(norm)
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	for _, k := range norm {
		pk, err := publicJWK(k)
		if err != nil {
			return nil, err
		}
		if err := set.AddKey(pk); err != nil {
			return nil, fmt.Errorf("backend: JWKS: %w", err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("backend: JWKS: %w", err)
	}
	return b, nil
}

// publicJWK builds the public JWK of k from its public key alone, so no private member can leak.
func publicJWK(k Key) (jwk.Key, error) {
	pk, err := jwk.FromRaw(k.Signer.Public())
	if err != nil {
		return nil, fmt.Errorf("backend: JWK of %q: %w", k.ID, err)
	}
	for _, kv := range []struct {
		name string
		v    any
	}{
		{jwk.KeyIDKey, k.ID},
		{jwk.AlgorithmKey, jwa.SignatureAlgorithm(k.Algorithm)},
		{jwk.KeyUsageKey, jwk.ForSignature},
		{jwk.KeyOpsKey, jwk.KeyOperationList{jwk.KeyOpVerify}},
	} {
		if err := pk.Set(kv.name, kv.v); err != nil {
			return nil, fmt.Errorf("backend: JWK of %q: %w", k.ID, err)
		}
	}
	return pk, nil
}

// CheckPublished verifies that jwks, a JWK Set as the client publishes it, holds k's public key
// under k's kid (AUTH-12). Call it at start-up against the JWKS your jwks_uri serves: a signing kid
// missing after a rotation mistake would otherwise surface only as invalid_client at the server.
func CheckPublished(jwks []byte, k Key) error {
	k, err := k.normalize()
	if err != nil {
		return err
	}
	set, err := jwk.Parse(jwks)
	if err != nil {
		return fmt.Errorf("backend: published JWKS: %w", err)
	}
	want := k.Signer.Public()
	for i := range set.Len() {
		jk, _ := set.Key(i)
		if jk.KeyID() != k.ID {
			continue
		}
		var raw any
		if err := jk.Raw(&raw); err != nil {
			return fmt.Errorf("backend: published JWKS: key %q: %w", k.ID, err)
		}
		if samePublic(want, raw) {
			return nil
		}
		return fmt.Errorf("backend: %w: kid %q is published with another key", ErrKeyNotPublished, k.ID)
	}
	return fmt.Errorf("backend: %w: kid %q", ErrKeyNotPublished, k.ID)
}

// KeySet holds a client's signing keys across rotations (JWKS-04). Every key is published from the
// moment it is added until its NotAfter; the key signing assertions is the newest one whose NotBefore
// has passed. Rotate schedules a successor so that verifiers caching the JWKS see the new key before
// it signs, and keep seeing the old one until its last assertion has expired. A kid is never reused.
// A KeySet is safe for concurrent use.
type KeySet struct {
	mu   sync.RWMutex
	keys []Key
	used map[string]bool
}

// NewKeySet returns a KeySet holding keys, each normalised (kid and algorithm filled, key checked).
func NewKeySet(keys ...Key) (*KeySet, error) {
	s := &KeySet{used: map[string]bool{}}
	for _, k := range keys {
		if err := s.Add(k); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Add adds k, published from now on and signing from k.NotBefore (immediately when zero).
func (s *KeySet) Add(k Key) error {
	k, err := k.normalize()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(k)
}

func (s *KeySet) addLocked(k Key) error {
	if s.used == nil {
		s.used = map[string]bool{}
	}
	if s.used[k.ID] {
		return fmt.Errorf("backend: %w: kid %q was already used (never reuse a kid)", ErrDuplicateKeyID, k.ID)
	}
	s.used[k.ID] = true
	s.keys = append(s.keys, k)
	return nil
}

// Rotate adds next as the successor of the keys now published (JWKS-04): next signs from
// now + cacheLifetime (the max-age verifiers may cache the JWKS for; DefaultJWKSMaxAge when zero), and
// every current key stays published until max(cacheLifetime, MaxAssertionLifetime) after that switch.
// Keys whose NotAfter has passed are dropped.
func (s *KeySet) Rotate(next Key, now time.Time, cacheLifetime time.Duration) error {
	if cacheLifetime <= 0 {
		cacheLifetime = DefaultJWKSMaxAge
	}
	next, err := next.normalize()
	if err != nil {
		return err
	}
	switchAt := now.Add(cacheLifetime)
	if next.NotBefore.Before(switchAt) {
		next.NotBefore = switchAt
	}
	retireAt := next.NotBefore.Add(max(cacheLifetime, MaxAssertionLifetime))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used[next.ID] {
		return fmt.Errorf("backend: %w: kid %q was already used (never reuse a kid)", ErrDuplicateKeyID, next.ID)
	}
	s.keys = slices.DeleteFunc(s.keys, func(k Key) bool { return !k.NotAfter.IsZero() && !now.Before(k.NotAfter) })
	for i := range s.keys {
		if s.keys[i].NotAfter.IsZero() || s.keys[i].NotAfter.After(retireAt) {
			s.keys[i].NotAfter = retireAt
		}
	}
	return s.addLocked(next)
}

// Signing returns the key to sign with at now: the published key with the latest NotBefore not after
// now (the last added among equals).
func (s *KeySet) Signing(now time.Time) (Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	best := -1
	for i, k := range s.keys {
		if !published(k, now) || k.NotBefore.After(now) {
			continue
		}
		if best < 0 || !k.NotBefore.Before(s.keys[best].NotBefore) {
			best = i
		}
	}
	if best < 0 {
		return Key{}, fmt.Errorf("backend: %w at %s", ErrNoSigningKey, now.UTC().Format(time.RFC3339))
	}
	return s.keys[best], nil
}

// Published returns the keys published at now, in the order they were added.
func (s *KeySet) Published(now time.Time) []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Key
	for _, k := range s.keys {
		if published(k, now) {
			out = append(out, k)
		}
	}
	return out
}

// JWKS returns the public JWK Set published at now (see PublicJWKS).
func (s *KeySet) JWKS(now time.Time) ([]byte, error) { return PublicJWKS(s.Published(now)...) }

// Handler serves the set's public JWKS at a jwks_uri (JWKS-02): GET and HEAD only, no
// authentication, Content-Type application/json, Cache-Control public with max-age (DefaultJWKSMaxAge
// when zero). Verifiers honour max-age, which is why Rotate publishes a successor one max-age early.
func (s *KeySet) Handler(maxAge time.Duration) http.Handler {
	if maxAge <= 0 {
		maxAge = DefaultJWKSMaxAge
	}
	cacheControl := "public, max-age=" + strconv.Itoa(int(maxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := s.JWKS(time.Now())
		if err != nil {
			http.Error(w, "JWKS unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

func published(k Key, now time.Time) bool { return k.NotAfter.IsZero() || now.Before(k.NotAfter) }
