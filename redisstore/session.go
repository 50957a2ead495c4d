package redisstore

import (
	"context"
	"fmt"

	"github.com/smartfhir/smartfhir/launch"
)

// SessionStore is the launch.SessionStore of a Store: one sealed TokenSet per completed launch,
// expiring at its Expires (SessionTTL when zero). Every replica that shares the Redis database and
// the keys sees the same launches, so a launch that starts on one instance finishes on another.
type SessionStore struct{ s *Store }

var _ launch.SessionStore = (*SessionStore)(nil)

// Load returns the set stored under key. It returns launch.ErrNoSession when there is none, when it
// expired, or when it was sealed with a key no longer configured (the user launches again; never a
// server error), and an error wrapping ErrUnavailable when Redis fails.
func (st *SessionStore) Load(ctx context.Context, key string) (*launch.TokenSet, error) {
	ts := new(launch.TokenSet)
	found, err := st.s.get(ctx, "load session", st.s.key("session", key), ts, false)
	if err != nil {
		return nil, err
	}
	if !found || ts.Token == nil {
		return nil, launch.ErrNoSession
	}
	return ts, nil
}

// Save seals ts and replaces the set stored under key in one write, with a TTL up to ts.Expires. A
// set whose Expires has passed is deleted instead. A set that was already updated after its launch
// (Updated after Created: a refresh) is written only while key still exists, so that a refresh
// finishing on one replica cannot bring back a launch that another replica logged out.
func (st *SessionStore) Save(ctx context.Context, key string, ts *launch.TokenSet) error {
	if ts == nil {
		return fmt.Errorf("redisstore: save session: %w: nil TokenSet", ErrConfig)
	}
	rk := st.s.key("session", key)
	ttl, ok := st.s.ttl(ts.Expires, st.s.sessionTTL)
	if !ok {
		return st.s.del(ctx, "save session", rk)
	}
	update := !ts.Created.IsZero() && ts.Updated.After(ts.Created)
	written, err := st.s.put(ctx, "save session", rk, ts, ttl, update)
	if err != nil {
		return err
	}
	if !written {
		return launch.ErrNoSession
	}
	return nil
}

// Delete removes the set stored under key (logout); deleting an absent key is not an error.
func (st *SessionStore) Delete(ctx context.Context, key string) error {
	return st.s.del(ctx, "delete session", st.s.key("session", key))
}
