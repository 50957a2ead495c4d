package smart

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Cache defaults (CONV-4).
const (
	// DefaultRefreshMargin is the largest early-refresh margin: a token is renewed this long before it
	// expires, or at 90 % of its lifetime when that comes first.
	DefaultRefreshMargin = 60 * time.Second
	// DefaultLockTTL bounds how long a cross-process Locker holds its lock for one fetch.
	DefaultLockTTL = 30 * time.Second
)

// ErrNoToken is wrapped when a token fetch returns neither a token nor an error, or a token without
// an access token.
var ErrNoToken = errors.New("no access token")

// TokenStore is a token cache shared between processes (for example Redis), so that replicas reuse
// one token instead of each fetching its own. Load returns (nil, nil) when key holds nothing.
// Implementations hold credentials: encrypt them at rest and expire entries at Token.Expiry.
type TokenStore interface {
	Load(ctx context.Context, key string) (*Token, error)
	Store(ctx context.Context, key string, tok *Token) error
}

// Locker is an optional cross-process lock that makes a TokenStore single-flight across replicas:
// the holder fetches, the others wait and then load its token. Lock blocks until the lock is held,
// ctx ends, or it fails; ttl bounds how long a crashed holder can keep it. unlock releases it.
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error)
}

// CacheOptions configures a CachingTokenSource. The zero value is a process-local cache with the
// default margins.
type CacheOptions struct {
	// Key names the token in Store and Locker; callers sharing a Store must use distinct keys for
	// distinct clients, servers and scope sets.
	Key string
	// Store, when set, is consulted before fetching and receives every fetched token.
	Store TokenStore
	// Locker, when set with Store, serialises fetches across processes.
	Locker Locker
	// LockTTL is passed to Locker.Lock (default DefaultLockTTL).
	LockTTL time.Duration
	// Margin caps the early-refresh margin (default DefaultRefreshMargin).
	Margin time.Duration
	// MarginFraction is the share of a token's lifetime refreshed early when that is smaller than
	// Margin (default 0.1).
	MarginFraction float64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnStoreError receives Store and Locker failures. They never fail a token request: the
	// cache degrades to fetching for itself. Nil ignores them.
	OnStoreError func(error)
}

// CachingTokenSource is an oauth2.TokenSource that caches the token of a fetch function
// (CONV-4, BS-05):
//   - the cached path is one atomic load and a clock read: no lock, no allocation;
//   - a token is renewed a margin before it expires (the smaller of Margin and MarginFraction of
//     its lifetime), so a request never leaves with a token about to expire;
//   - one fetch at a time: concurrent callers share the fetch in flight and its result, success or
//     error; each waits only as long as its own context allows, and the fetch is cancelled once
//     every caller waiting for it has given up;
//   - a failed fetch is not cached: the next caller after it tries again;
//   - a token without an expiry is returned but never cached;
//   - Invalidate drops a token the resource server refused (401), and a shared Store handing it
//     back is ignored.
//
// The tokens it returns are shared: do not modify them.
type CachingTokenSource struct {
	fetch    func(context.Context) (*Token, error)
	opts     CacheOptions
	now      func() time.Time
	clock    func() time.Time // opts.Now; nil means the monotonic fast path from epoch
	epoch    time.Time
	cur      atomic.Pointer[cacheEntry]
	mu       sync.Mutex // guards flight and invalid
	flight   *flight
	invalid  [sha256.Size]byte // hash of the last invalidated access token
	hasInval bool
}

var (
	_ oauth2.TokenSource = (*CachingTokenSource)(nil)
	_ ContextTokenSource = (*CachingTokenSource)(nil)
	_ Invalidator        = (*CachingTokenSource)(nil)
)

type cacheEntry struct {
	tok       *Token
	refreshAt time.Time
	// since is refreshAt as time since the source's epoch: with the real clock the cached path
	// reads only the monotonic clock (one clock read instead of two in time.Now).
	since time.Duration
}

// flight is one fetch shared by every caller that arrives while it runs.
type flight struct {
	done    chan struct{}
	tok     *Token
	err     error
	waiters int // guarded by CachingTokenSource.mu
	// abandoned is set, under CachingTokenSource.mu, when the last waiter left and cancelled it.
	abandoned bool
	cancel    context.CancelFunc
}

// NewCachingTokenSource returns a cache over fetch, which must honour its context and return a token
// with an Expiry (tokens without one are passed through uncached).
func NewCachingTokenSource(fetch func(ctx context.Context) (*Token, error), opts CacheOptions) *CachingTokenSource {
	if opts.Margin <= 0 {
		opts.Margin = DefaultRefreshMargin
	}
	if opts.MarginFraction <= 0 || opts.MarginFraction >= 1 {
		opts.MarginFraction = 0.1
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = DefaultLockTTL
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &CachingTokenSource{fetch: fetch, opts: opts, now: now, clock: opts.Now, epoch: time.Now()}
}

// fresh reports whether e may still be served.
func (c *CachingTokenSource) fresh(e *cacheEntry) bool {
	if e == nil {
		return false
	}
	if c.clock != nil {
		return c.clock().Before(e.refreshAt)
	}
	return time.Since(c.epoch) < e.since
}

// Token returns the cached token, fetching one with context.Background when none is fresh. Prefer
// TokenContext, which bounds the fetch by the caller's context.
func (c *CachingTokenSource) Token() (*oauth2.Token, error) {
	return c.TokenContext(context.Background())
}

// TokenContext returns the cached token, fetching one when none is fresh; ctx bounds the wait.
func (c *CachingTokenSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	if e := c.cur.Load(); c.fresh(e) {
		return e.tok.Token, nil
	}
	t, err := c.slow(ctx)
	if err != nil {
		return nil, err
	}
	return t.Token, nil
}

// Current is TokenContext returning the whole SMART token (granted scope, warnings).
func (c *CachingTokenSource) Current(ctx context.Context) (*Token, error) {
	if e := c.cur.Load(); c.fresh(e) {
		return e.tok, nil
	}
	return c.slow(ctx)
}

// Invalidate drops tok from the cache when it is the cached token, typically after a resource server
// answered 401 to it. The next call fetches a new token; a Store still holding tok is ignored.
func (c *CachingTokenSource) Invalidate(tok *oauth2.Token) {
	if tok == nil || tok.AccessToken == "" {
		return
	}
	h := sha256.Sum256([]byte(tok.AccessToken))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalid, c.hasInval = h, true
	if e := c.cur.Load(); e != nil && e.tok.AccessToken == tok.AccessToken {
		c.cur.CompareAndSwap(e, nil)
	}
}

// slow joins (or starts) the fetch in flight. A fetch every waiter abandoned is cancelled, but it
// may take a moment to return (an HTTP request being torn down, a lock being released): a caller
// arriving meanwhile waits for it to end before starting the next one, so that two fetches never
// run at once (BS-05).
func (c *CachingTokenSource) slow(ctx context.Context) (*Token, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if e := c.cur.Load(); c.fresh(e) {
			c.mu.Unlock()
			return e.tok, nil
		}
		f := c.flight
		if f != nil && f.abandoned {
			c.mu.Unlock()
			select {
			case <-f.done:
				continue // it has ended (and may have cached a token): look again
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if f == nil {
			// The fetch keeps the context's values but not its cancellation: it belongs to every
			// waiter, and is cancelled when the last of them leaves.
			fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			f = &flight{done: make(chan struct{}), cancel: cancel}
			c.flight = f
			go c.run(fctx, f)
		}
		f.waiters++
		c.mu.Unlock()

		select {
		case <-f.done:
			return f.tok, f.err
		case <-ctx.Done():
			c.mu.Lock()
			f.waiters--
			if f.waiters == 0 {
				// Stays c.flight until run ends, so that the next caller waits for it.
				f.abandoned = true
				f.cancel()
			}
			c.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

func (c *CachingTokenSource) run(ctx context.Context, f *flight) {
	defer f.cancel()
	tok, err := c.obtain(ctx)
	c.mu.Lock()
	if err == nil {
		if at, ok := c.refreshAt(tok); ok && !c.isInvalid(tok) {
			c.cur.Store(&cacheEntry{tok: tok, refreshAt: at, since: at.Sub(c.epoch)})
		}
	}
	if c.flight == f {
		c.flight = nil
	}
	f.tok, f.err = tok, err
	close(f.done)
	c.mu.Unlock()
}

// obtain loads a fresh token from the Store or fetches one (under the Locker when there is one).
func (c *CachingTokenSource) obtain(ctx context.Context) (*Token, error) {
	if c.opts.Store == nil {
		return c.fetchChecked(ctx)
	}
	if tok := c.load(ctx); tok != nil {
		return tok, nil
	}
	if c.opts.Locker != nil {
		unlock, err := c.opts.Locker.Lock(ctx, c.opts.Key, c.opts.LockTTL)
		switch {
		case err == nil:
			defer unlock()
			if tok := c.load(ctx); tok != nil {
				return tok, nil
			}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			c.storeError(fmt.Errorf("smart: token cache lock: %w", err))
		}
	}
	tok, err := c.fetchChecked(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := c.refreshAt(tok); ok {
		if err := c.opts.Store.Store(ctx, c.opts.Key, tok); err != nil {
			c.storeError(fmt.Errorf("smart: token cache store: %w", err))
		}
	}
	return tok, nil
}

// load returns the Store's token when it is fresh and not invalidated.
func (c *CachingTokenSource) load(ctx context.Context) *Token {
	tok, err := c.opts.Store.Load(ctx, c.opts.Key)
	if err != nil {
		c.storeError(fmt.Errorf("smart: token cache load: %w", err))
		return nil
	}
	if tok == nil || tok.Token == nil || tok.AccessToken == "" || !ValidAccessToken(tok.AccessToken) {
		return nil
	}
	at, ok := c.refreshAt(tok)
	if !ok || !c.now().Before(at) {
		return nil
	}
	c.mu.Lock()
	bad := c.isInvalid(tok)
	c.mu.Unlock()
	if bad {
		return nil
	}
	return tok
}

func (c *CachingTokenSource) fetchChecked(ctx context.Context) (*Token, error) {
	tok, err := c.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.Token == nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("smart: token fetch: %w", ErrNoToken)
	}
	return tok, nil
}

// refreshAt is when tok stops being served from the cache; ok is false for a token without expiry.
func (c *CachingTokenSource) refreshAt(tok *Token) (time.Time, bool) {
	if tok.Expiry.IsZero() {
		return time.Time{}, false
	}
	life := tok.Expiry.Sub(c.now())
	if tok.ExpiresIn > 0 {
		life = time.Duration(tok.ExpiresIn) * time.Second
	}
	margin := time.Duration(float64(life) * c.opts.MarginFraction)
	if margin > c.opts.Margin {
		margin = c.opts.Margin
	}
	if margin < 0 {
		margin = 0
	}
	return tok.Expiry.Add(-margin), true
}

// isInvalid reports whether tok was invalidated; c.mu must be held.
func (c *CachingTokenSource) isInvalid(tok *Token) bool {
	return c.hasInval && sha256.Sum256([]byte(tok.AccessToken)) == c.invalid
}

func (c *CachingTokenSource) storeError(err error) {
	if c.opts.OnStoreError != nil {
		c.opts.OnStoreError(err)
	}
}

// MemoryStore is an in-process TokenStore, for sharing one token between several caching sources of
// the same process (and for tests). The zero value is ready to use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]*Token
}

var _ TokenStore = (*MemoryStore)(nil)

// Load returns the token stored under key, or nil.
func (s *MemoryStore) Load(_ context.Context, key string) (*Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key], nil
}

// Store keeps tok under key, replacing any previous token.
func (s *MemoryStore) Store(_ context.Context, key string, tok *Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*Token{}
	}
	s.m[key] = tok
	return nil
}
