package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// put encodes v as JSON, seals it for rk and writes it with ttl in one command (SET … PX), so that a
// value is never in Redis without its expiry or half-written. With onlyIfExists the write happens
// only when rk still exists (SET … XX); written reports whether it happened.
func (s *Store) put(ctx context.Context, op, rk string, v any, ttl time.Duration, onlyIfExists bool) (written bool, err error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if len(plain) > MaxValueSize {
		return false, fmt.Errorf("redisstore: %s: %w: value of %d bytes exceeds %d", op, ErrConfig, len(plain), MaxValueSize)
	}
	sealed := s.ring.seal(plain, rk)
	args := redis.SetArgs{TTL: ttl}
	if onlyIfExists {
		args.Mode = "XX"
	}
	err = s.do(ctx, op, func(ctx context.Context) error { return s.client.SetArgs(ctx, rk, sealed, args).Err() })
	switch {
	case errors.Is(err, redis.Nil): // XX and the key is gone
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// get reads rk (atomically deleting it when take is set: GETDEL) and decodes it into v. found is
// false when rk is absent, and also when its value does not open (sealed with a key no longer
// configured, altered, or copied from another key): such a value counts as absent, never as a
// server error. A plain read leaves it in place for replicas that still hold its key; a take has
// deleted it (GETDEL), which is why a new key must reach every replica before it seals (Options.Keys).
func (s *Store) get(ctx context.Context, op, rk string, v any, take bool) (found bool, err error) {
	var b []byte
	err = s.do(ctx, op, func(ctx context.Context) error {
		var err error
		if take {
			b, err = s.client.GetDel(ctx, rk).Bytes()
		} else {
			b, err = s.client.Get(ctx, rk).Bytes()
		}
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, err
	}
	if len(b) > MaxValueSize+sealHeader+16 {
		s.log.Warn("stored value too large; treated as absent", "op", op, "bytes", len(b))
		return false, nil
	}
	plain, err := s.ring.open(b, rk)
	if err != nil {
		s.log.Warn("stored value does not open; treated as absent", "op", op, "reason", err.Error(), "key_id", keyIDOf(b))
		return false, nil
	}
	if err := json.Unmarshal(plain, v); err != nil {
		s.log.Warn("stored value does not decode; treated as absent", "op", op)
		return false, nil
	}
	return true, nil
}

// del deletes rk.
func (s *Store) del(ctx context.Context, op, rk string) error {
	return s.do(ctx, op, func(ctx context.Context) error { return s.client.Del(ctx, rk).Err() })
}

// keyIDOf returns the hex key id of a sealed value, for a log line ("" when it has none).
func keyIDOf(b []byte) string {
	if len(b) < 1+keyIDSize || b[0] != sealVersion {
		return ""
	}
	return fmt.Sprintf("%x", b[1:1+keyIDSize])
}
