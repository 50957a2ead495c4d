package redisstore

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
)

// Defaults for the zero values of Options.
const (
	// DefaultTimeout bounds every Redis call, retries included.
	DefaultTimeout = 2 * time.Second
	// DefaultPrefix starts every key this package writes.
	DefaultPrefix = "smartfhir:"
	// DefaultLockPoll is the longest pause between two attempts to take a held lock.
	DefaultLockPoll = 100 * time.Millisecond
	// MaxValueSize bounds one stored value (a token set, a state record, a token): larger values are
	// refused when written and ignored when read.
	MaxValueSize = 1 << 20
)

// Options configures a Store. Keys is required; every other field has a safe default.
type Options struct {
	// Keys encrypt every value at rest with AES-256-GCM: 32 random bytes each, newest first. Values
	// are sealed with Keys[0] and opened with whichever key sealed them (its id travels with the
	// ciphertext), so keys rotate without logging anyone out: add the new key second on every
	// replica, then move it first, then drop the old one once what it sealed has expired
	// (SessionAge). A value sealed with a key no longer listed reads as absent: logged out, never
	// a server error. ParseKeys reads them from text (an environment variable).
	Keys [][]byte
	// Prefix starts every Redis key (default "smartfhir:"). Apps sharing one Redis database must
	// use distinct prefixes.
	Prefix string
	// Timeout bounds every call to Redis, retries included (default 2 s). A call that runs out of
	// time fails with an error wrapping ErrUnavailable.
	Timeout time.Duration
	// SessionTTL is the lifetime of a token set whose Expires is zero (default
	// launch.DefaultSessionAge). StateTTL is that of a state record whose Expires is zero (default
	// launch.DefaultMaxStateAge).
	SessionTTL, StateTTL time.Duration
	// LockPoll is the longest pause between two attempts to take a lock held by another process
	// (default 100 ms). Waiting starts at 5 ms and doubles, and never outlasts the holder's TTL.
	LockPoll time.Duration
	// TLSConfig replaces Open's TLS settings for a rediss:// URL: a private CA (RootCAs), a client
	// certificate. ServerName defaults to the URL's host, MinVersion to TLS 1.2; certificates are
	// always verified. New ignores it.
	TLSConfig *tls.Config
	// InsecureAllowPlaintext lets Open use redis:// with a host that is not loopback. The Redis
	// password and the (sealed) values then cross the network in clear text (CONV-1): prefer
	// rediss://.
	InsecureAllowPlaintext bool
	// Now is the clock TTLs are computed with (default time.Now).
	Now func() time.Time
	// Logger receives warnings (a value sealed with an unknown key, a lock that could not be
	// released). Nothing secret is ever logged. Nil discards.
	Logger *slog.Logger
}

// Store keeps the state of SMART apps and jobs in Redis, so that several processes share it:
// Sessions and States for launch.Config, Tokens for backend.Config and smart.CachingTokenSource, and
// the Store itself as the smart.Locker that makes token fetches and refreshes single-flight across
// processes. It is safe for concurrent use. Build it with Open or New.
type Store struct {
	client  redis.UniversalClient
	owned   bool // Close closes client
	prefix  string
	timeout time.Duration
	ring    *keyring
	now     func() time.Time
	log     *slog.Logger

	sessionTTL, stateTTL, lockPoll time.Duration

	sessions *SessionStore
	states   *StateStore
	tokens   *TokenStore
}

// New returns a Store over an existing client (a cluster, sentinel or ring client, or one with
// settings Open does not cover). Give the client ContextTimeoutEnabled, so that Options.Timeout
// also interrupts a read in progress. Close does not close client.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("redisstore: %w: no Redis client", ErrConfig)
	}
	ring, err := newKeyring(opts.Keys)
	if err != nil {
		return nil, err
	}
	s := &Store{
		client:     client,
		prefix:     opts.Prefix,
		timeout:    positive(opts.Timeout, DefaultTimeout),
		ring:       ring,
		now:        opts.Now,
		sessionTTL: positive(opts.SessionTTL, launch.DefaultSessionAge),
		stateTTL:   positive(opts.StateTTL, launch.DefaultMaxStateAge),
		lockPoll:   positive(opts.LockPoll, DefaultLockPoll),
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.now == nil {
		s.now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s.log = slog.New(httpx.NewRedactingHandler(logger.Handler())).With("pkg", "redisstore")
	s.sessions, s.states, s.tokens = &SessionStore{s}, &StateStore{s}, &TokenStore{s}
	return s, nil
}

// Sessions returns the launch.SessionStore of s (launch.Config.SessionStore).
func (s *Store) Sessions() *SessionStore { return s.sessions }

// States returns the launch.StateStore of s (launch.Config.StateStore).
func (s *Store) States() *StateStore { return s.states }

// Tokens returns the smart.TokenStore of s (backend.Config.Store, smart.CacheOptions.Store).
func (s *Store) Tokens() *TokenStore { return s.tokens }

// Ping checks that Redis answers within Options.Timeout, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, "ping", func(ctx context.Context) error { return s.client.Ping(ctx).Err() })
}

// Close closes the client when Open created it.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

// do runs f under the per-call timeout and classifies its error (see fail). redis.Nil passes
// through unwrapped: callers test for it with errors.Is.
func (s *Store) do(ctx context.Context, op string, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := f(cctx)
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	return s.fail(ctx, cctx, op, err)
}

// fail turns a Redis failure into an error for the caller: the caller's own cancellation stays
// what it is, anything else (refused connection, timeout, a Redis error reply) is an *Error
// wrapping ErrUnavailable.
func (s *Store) fail(parent, call context.Context, op string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("redisstore: %s: %w", op, perr)
	}
	if call.Err() != nil {
		err = fmt.Errorf("no answer within %v: %w", s.timeout, err)
	}
	return &Error{Op: op, Err: err}
}

// key names the Redis key of a logical key: prefix, kind, and the SHA-256 of the logical key, so
// that no session id, state or client id appears in Redis key names and any string is a safe key.
func (s *Store) key(kind, k string) string {
	sum := sha256.Sum256([]byte(k))
	return s.prefix + kind + ":" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// ttl is the time left until exp (or def when exp is zero); ok is false once exp has passed.
// Redis keeps millisecond TTLs: anything shorter rounds up to 1 ms.
func (s *Store) ttl(exp time.Time, def time.Duration) (time.Duration, bool) {
	if exp.IsZero() {
		return def, true
	}
	d := exp.Sub(s.now())
	if d <= 0 {
		return 0, false
	}
	return max(d, time.Millisecond), true
}

func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
