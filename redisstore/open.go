package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Open connects to the Redis server of rawURL and checks that it answers (PING), within ctx and
// Options.Timeout. The URL is that of redis.ParseURL:
//
//	redis://[user:password@]host[:port][/db]     plain text: loopback hosts only, unless InsecureAllowPlaintext
//	rediss://[user:password@]host[:port][/db]    TLS, certificate verified
//	unix:///path/to/redis.sock[?db=N]            a local socket
//
// with an ACL user and password in the user info, and go-redis's query options (dial_timeout,
// pool_size, …) except skip_verify, which is refused. Open fails with ErrConfig for a bad URL or
// Options, and with an error wrapping ErrUnavailable when the server does not answer; errors never
// contain the password. Close the Store when done.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	ro, err := parseURL(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if _, err := newKeyring(opts.Keys); err != nil { // fail on Options before dialling
		return nil, err
	}
	s, err := New(redis.NewClient(ro), opts)
	if err != nil {
		return nil, err
	}
	s.owned = true
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		var re *Error
		if errors.As(err, &re) {
			re.Op = "open " + redactURL(rawURL)
		}
		return nil, err
	}
	return s, nil
}

// parseURL applies the transport policy (CONV-1) to rawURL and returns client options with every
// timeout bounded by Options.Timeout.
func parseURL(rawURL string, opts Options) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("redisstore: %w: the store URL does not parse: %w", ErrConfig, err)
	}
	switch u.Scheme {
	case "rediss", "unix":
	case "redis":
		if !opts.InsecureAllowPlaintext && !httpx.IsLoopbackHost(u.Hostname()) && u.Hostname() != "" {
			return nil, fmt.Errorf("redisstore: %w: redis:// to %s would send the Redis password and the stored values in clear text: use rediss://, or set InsecureAllowPlaintext", ErrConfig, u.Hostname())
		}
	default:
		return nil, fmt.Errorf("redisstore: %w: store URL scheme %q: want redis, rediss or unix", ErrConfig, u.Scheme)
	}
	if u.Query().Has("skip_verify") {
		return nil, fmt.Errorf("redisstore: %w: skip_verify is refused: certificates are always verified (set a TLSConfig with RootCAs for a private CA)", ErrConfig)
	}
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w: %w", ErrConfig, err)
	}
	if ro.TLSConfig != nil && opts.TLSConfig != nil {
		tc := opts.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = ro.TLSConfig.ServerName
		}
		tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
		if tc.InsecureSkipVerify {
			return nil, fmt.Errorf("redisstore: %w: TLSConfig.InsecureSkipVerify is refused", ErrConfig)
		}
		ro.TLSConfig = tc
	}
	timeout := positive(opts.Timeout, DefaultTimeout)
	for _, d := range []*time.Duration{&ro.DialTimeout, &ro.ReadTimeout, &ro.WriteTimeout, &ro.PoolTimeout} {
		if *d == 0 || *d > timeout || *d < 0 {
			*d = timeout
		}
	}
	// One dial per attempt: a refused connection then fails the call in milliseconds (go-redis
	// still retries the command itself), instead of five dials 100 ms apart per attempt.
	ro.DialerRetries = 1
	ro.ContextTimeoutEnabled = true
	return ro, nil
}

// redactURL drops the user info of a store URL for an error message.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "the store URL"
	}
	u.User = nil
	u.RawQuery = ""
	return strings.TrimSuffix(u.String(), "?")
}
