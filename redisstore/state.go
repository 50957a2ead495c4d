package redisstore

import (
	"context"
	"fmt"

	"github.com/smartfhir/smartfhir/launch"
)

// StateStore is the launch.StateStore of a Store: one sealed Record per pending authorization
// request, expiring at its Expires (StateTTL when zero). Take is Redis GETDEL: one command that reads
// and deletes, so a state is accepted once however many replicas receive its callback (CONV-5,
// SEC-01).
type StateStore struct{ s *Store }

var _ launch.StateStore = (*StateStore)(nil)

// Save seals rec and stores it under state until rec.Expires. A record whose Expires has passed is
// not stored.
func (st *StateStore) Save(ctx context.Context, state string, rec *launch.Record) error {
	if rec == nil {
		return fmt.Errorf("redisstore: save state: %w: nil Record", ErrConfig)
	}
	ttl, ok := st.s.ttl(rec.Expires, st.s.stateTTL)
	if !ok {
		return nil
	}
	_, err := st.s.put(ctx, "save state", st.s.key("state", state), rec, ttl, false)
	return err
}

// Take removes the record stored under state and returns it. It returns launch.ErrStateUnknown when
// there is none (never issued, already taken, expired, or sealed with a key no longer configured),
// and an error wrapping ErrUnavailable when Redis fails; a state whose GETDEL reached Redis is gone
// either way, so it is never accepted twice.
func (st *StateStore) Take(ctx context.Context, state string) (*launch.Record, error) {
	rec := new(launch.Record)
	found, err := st.s.get(ctx, "take state", st.s.key("state", state), rec, true)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, launch.ErrStateUnknown
	}
	return rec, nil
}
