package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartfhir/smartfhir/smart"
)

var _ smart.Locker = (*Store)(nil)

// lockScript takes the lock KEYS[1] for the holder token ARGV[1] with a TTL of ARGV[2] ms. It is
// SET NX PX, made idempotent: a retry by the same holder (its first answer lost) also succeeds. It
// returns -3 when the lock is held by ARGV[1], else the holder's remaining TTL in ms.
var lockScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -3 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return -3
end
return redis.call('PTTL', KEYS[1])
`)

// unlockScript deletes KEYS[1] only while it still holds ARGV[1] (compare-and-delete).
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

const (
	lockHeld      = -3
	lockFirstWait = 5 * time.Millisecond
)

// Lock implements smart.Locker across processes: it blocks until this caller holds the lock named
// key, ctx ends, or Redis fails (an error wrapping ErrUnavailable). The lock is a Redis key set with
// SET NX PX to a random holder token and expires after ttl (default smart.DefaultLockTTL), so that a
// holder that crashed blocks the others for at most ttl. unlock releases it with a compare-and-delete
// on the token: a holder whose lock expired and passed to another cannot release the new holder's
// lock (fencing of the release). unlock may be called more than once.
//
// Waiters poll with a doubling pause (5 ms up to Options.LockPoll, with jitter, never beyond the
// holder's remaining TTL); once they hold the lock they read what the previous holder stored.
//
// The lock cannot stop a holder that outlives ttl: choose ttl above the longest time the guarded
// work may take (a refresh: the token request's timeout).
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error) {
	if ttl <= 0 {
		ttl = smart.DefaultLockTTL
	}
	ttl = max(ttl, time.Millisecond)
	rk := s.key("lock", key)
	token := newHolderToken()
	wait := lockFirstWait
	for {
		var res int64
		err := s.do(ctx, "lock", func(ctx context.Context) error {
			var err error
			res, err = lockScript.Run(ctx, s.client, []string{rk}, token, ttl.Milliseconds()).Int64()
			return err
		})
		if err != nil {
			return nil, err
		}
		if res == lockHeld {
			return s.unlocker(ctx, rk, token), nil
		}
		d := min(wait, s.lockPoll)
		if res >= 0 {
			d = min(d, time.Duration(res+1)*time.Millisecond)
		}
		d = d*4/5 + mrand.N(d*2/5+1) // ±20 %
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("redisstore: lock: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, s.lockPoll)
	}
}

// unlocker returns the release function of a held lock. The release has its own timeout: it runs
// even when the holder's ctx has ended. A failed release is logged; the lock then expires.
func (s *Store) unlocker(ctx context.Context, rk, token string) func() {
	var once sync.Once
	rctx := context.WithoutCancel(ctx)
	return func() {
		once.Do(func() {
			err := s.do(rctx, "unlock", func(ctx context.Context) error {
				return unlockScript.Run(ctx, s.client, []string{rk}, token).Err()
			})
			if err != nil {
				s.log.Warn("lock not released; it expires by itself", "err", err.Error())
			}
		})
	}
}

// newHolderToken returns 128 random bits: the identity of one lock holder.
func newHolderToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
