package sandbox

import (
	"sync"
	"time"
)

// ttlStore is a small map of values that expire, swept lazily. Keys are random tokens (launch ids,
// pending authorizations) or replay-cache keys (client + jti).
type ttlStore[V any] struct {
	mu        sync.Mutex
	m         map[string]ttlEntry[V]
	nextSweep time.Time
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

// put stores v under k until exp.
func (t *ttlStore[V]) put(k string, v V, exp, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	t.m[k] = ttlEntry[V]{v, exp}
}

// putNew stores v under k until exp unless k holds a live value; it reports whether it stored.
func (t *ttlStore[V]) putNew(k string, v V, exp, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	if e, ok := t.m[k]; ok && now.Before(e.exp) {
		return false
	}
	t.m[k] = ttlEntry[V]{v, exp}
	return true
}

// get returns the live value under k.
func (t *ttlStore[V]) get(k string, now time.Time) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[k]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// take returns the live value under k and deletes it in the same step (single use).
func (t *ttlStore[V]) take(k string, now time.Time) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[k]
	delete(t.m, k)
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// sweepLocked drops expired entries at most once a minute.
func (t *ttlStore[V]) sweepLocked(now time.Time) {
	if t.m == nil {
		t.m = map[string]ttlEntry[V]{}
	}
	if now.Before(t.nextSweep) {
		return
	}
	for k, e := range t.m {
		if !now.Before(e.exp) {
			delete(t.m, k)
		}
	}
	t.nextSweep = now.Add(time.Minute)
}
