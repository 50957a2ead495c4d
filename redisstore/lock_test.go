package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/redisstore"
)

// TestRedisLockMutualExclusion: goroutines on three "processes" (three clients) take one lock 60
// times in all; never two inside at once (the cross-process single flight of BS-05 and REF-04).
func TestRedisLockMutualExclusion(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	keys := [][]byte{newKey()}
	procs := make([]*redisstore.Store, 3)
	for i := range procs {
		procs[i] = openStore(t, r, redisstore.Options{Keys: keys, LockPoll: 10 * time.Millisecond})
	}
	var inside, maxInside, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			unlock, err := procs[i%3].Lock(t.Context(), "job", 10*time.Second)
			if err != nil {
				t.Errorf("Lock: %v", err)
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			inside.Add(-1)
			done.Add(1)
			unlock()
			unlock() // a second call is harmless
		})
	}
	wg.Wait()
	if maxInside.Load() != 1 || done.Load() != 60 {
		t.Fatalf("%d holders at once, %d of 60 done", maxInside.Load(), done.Load())
	}
	if n := r.raw(t).DBSize(t.Context()).Val(); n != 0 {
		t.Errorf("%d keys left after every unlock", n)
	}
}

// TestRedisLockCrashedHolder: a holder that never releases (a process that crashed between SET NX
// PX and its compare-and-delete) blocks the others for its TTL only.
func TestRedisLockCrashedHolder(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{LockPoll: time.Millisecond}) // hundreds of polls
	crashed := openStore(t, r, redisstore.Options{})
	const ttl = 300 * time.Millisecond
	start := time.Now()
	if _, err := crashed.Lock(t.Context(), "job", ttl); err != nil { // and never unlocks
		t.Fatal(err)
	}
	_ = crashed.Close()
	unlock, err := st.Lock(t.Context(), "job", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if waited := time.Since(start); waited < ttl || waited > ttl+time.Second {
		t.Errorf("took the lock of a crashed holder after %v, want about its TTL %v", waited, ttl)
	}
}

// TestRedisLockFencing: a holder whose lock expired and passed to another cannot release the new
// holder's lock (the release compares the holder token).
func TestRedisLockFencing(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{LockPoll: 10 * time.Millisecond})
	raw := r.raw(t)
	ctx := t.Context()
	unlockA, err := st.Lock(ctx, "job", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	unlockB, err := st.Lock(ctx, "job", 10*time.Second) // waits for A's lock to expire
	if err != nil {
		t.Fatal(err)
	}
	lockKey := redisKey("lock", "job")
	holderB := raw.Get(ctx, lockKey).Val()
	unlockA() // late: A's lock has expired and B holds it now
	if got := raw.Get(ctx, lockKey).Val(); got != holderB || got == "" {
		t.Fatalf("the expired holder's unlock released the next holder's lock (key now %q)", got)
	}
	tctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if _, err := st.Lock(tctx, "job", time.Second); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("a third caller got B's lock: %v", err)
	}
	unlockB()
	if n := raw.Exists(ctx, lockKey).Val(); n != 0 {
		t.Fatal("B's unlock did not release")
	}
}

// TestRedisLockWaitCancelled: a waiter whose context ends returns its context's error at once, not
// ErrUnavailable; a lock with ttl 0 gets the default TTL.
func TestRedisLockWaitCancelled(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{})
	unlock, err := st.Lock(t.Context(), "job", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if ttl := r.raw(t).PTTL(t.Context(), redisKey("lock", "job")).Val(); ttl < 29*time.Second || ttl > 30*time.Second {
		t.Errorf("TTL of a lock taken with ttl 0 = %v, want smart.DefaultLockTTL", ttl)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = st.Lock(ctx, "job", time.Second)
	if !errors.Is(err, context.Canceled) || errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Lock with a cancelled context = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancelled waiter returned after %v", d)
	}
}
