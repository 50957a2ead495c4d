package redisstore

import (
	"context"
	"fmt"

	"github.com/smartfhir/smartfhir/smart"
)

// TokenStore is the smart.TokenStore of a Store: the shared token cache of backend.Config (Store)
// and smart.CachingTokenSource, one sealed token per cache key, expiring with the token. With the
// Store as the Locker, the processes sharing it fetch one token per expiry between them:
//
//	bc := &backend.Config{…, Store: st.Tokens(), Locker: st}
type TokenStore struct{ s *Store }

var _ smart.TokenStore = (*TokenStore)(nil)

// Load returns the token stored under key, or (nil, nil) when there is none or it does not open
// (sealed with a key no longer configured): the cache then fetches a new one. A Redis failure is an
// error wrapping ErrUnavailable.
func (st *TokenStore) Load(ctx context.Context, key string) (*smart.Token, error) {
	tok := new(smart.Token)
	found, err := st.s.get(ctx, "load token", st.s.key("token", key), tok, false)
	if err != nil || !found || tok.Token == nil || tok.AccessToken == "" {
		return nil, err
	}
	return tok, nil
}

// Store seals tok and stores it under key until tok.Expiry. A token without an expiry, or already
// expired, is not stored (CONV-4: never cache a token without an expiry).
func (st *TokenStore) Store(ctx context.Context, key string, tok *smart.Token) error {
	if tok == nil || tok.Token == nil || tok.AccessToken == "" {
		return fmt.Errorf("redisstore: store token: %w: no access token", ErrConfig)
	}
	if tok.Expiry.IsZero() {
		return nil
	}
	ttl, ok := st.s.ttl(tok.Expiry, 0)
	if !ok {
		return nil
	}
	_, err := st.s.put(ctx, "store token", st.s.key("token", key), tok, ttl, false)
	return err
}
