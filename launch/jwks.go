package launch

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"golang.org/x/sync/singleflight"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

const (
	// jwksTTL is how long a server's JWK Set is trusted before it is fetched again.
	jwksTTL = time.Hour
	// jwksRefetchInterval rate-limits the re-fetch on an unknown kid (JWKS-05): a forged token with
	// a random kid costs the server at most one request per interval.
	jwksRefetchInterval = 30 * time.Second
)

// jwksCache holds the JWK Sets of the allowed issuers' servers, by jwks_uri, and the jwks_uri of
// the issuers whose discovery named none, by issuer (from their openid-configuration).
type jwksCache struct {
	mu   sync.Mutex
	m    map[string]*jwksEntry
	uris map[string]jwksURIEntry
	sf   singleflight.Group
}

type jwksURIEntry struct {
	uri     string
	fetched time.Time
}

type jwksEntry struct {
	set         jwk.Set
	fetched     time.Time
	lastRefetch time.Time // last re-fetch caused by an unknown kid; entries are replaced, never changed
}

// keySet returns the cached set of uri, fetching it when absent or stale.
func (rt *runtime) keySet(ctx context.Context, hc *http.Client, uri string) (jwk.Set, error) {
	now := rt.now()
	rt.jwks.mu.Lock()
	e := rt.jwks.m[uri]
	rt.jwks.mu.Unlock()
	if e != nil && now.Sub(e.fetched) < jwksTTL && now.After(e.fetched.Add(-time.Minute)) {
		return e.set, nil
	}
	return rt.fetchKeySet(ctx, hc, uri)
}

// refetchKeySet fetches uri again after a kid that used, the set this request verified with, does
// not know (JWKS-05). When the set was fetched again since this request read it, that set is used;
// a re-fetch in flight is joined, not repeated; otherwise at most one re-fetch runs per
// jwksRefetchInterval (failed ones count), and ok is false when rate-limited.
func (rt *runtime) refetchKeySet(ctx context.Context, hc *http.Client, uri string, used jwk.Set) (jwk.Set, bool, error) {
	now := rt.now()
	rt.jwks.mu.Lock()
	e := rt.jwks.m[uri]
	var cur jwk.Set
	limited := false
	if e != nil {
		cur = e.set
		limited = now.Sub(e.lastRefetch) < jwksRefetchInterval && now.After(e.lastRefetch)
	}
	rt.jwks.mu.Unlock()
	switch {
	case cur != nil && cur != used:
		return cur, true, nil
	case limited:
		return nil, false, nil
	}
	set, err := shared(ctx, &rt.jwks.sf, "refetch "+uri, flightTimeout, func(ctx context.Context) (jwk.Set, error) {
		set, err := getKeySet(ctx, hc, uri)
		now := rt.now()
		rt.jwks.mu.Lock()
		defer rt.jwks.mu.Unlock()
		if rt.jwks.m == nil {
			rt.jwks.m = map[string]*jwksEntry{}
		}
		switch old := rt.jwks.m[uri]; {
		case err == nil:
			rt.jwks.m[uri] = &jwksEntry{set: set, fetched: now, lastRefetch: now}
		case old != nil:
			rt.jwks.m[uri] = &jwksEntry{set: old.set, fetched: old.fetched, lastRefetch: now}
		}
		return set, err
	})
	return set, err == nil, err
}

func (rt *runtime) fetchKeySet(ctx context.Context, hc *http.Client, uri string) (jwk.Set, error) {
	return shared(ctx, &rt.jwks.sf, uri, flightTimeout, func(ctx context.Context) (jwk.Set, error) {
		set, err := getKeySet(ctx, hc, uri)
		if err != nil {
			return nil, err
		}
		now := rt.now()
		rt.jwks.mu.Lock()
		defer rt.jwks.mu.Unlock()
		if rt.jwks.m == nil {
			rt.jwks.m = map[string]*jwksEntry{}
		}
		e := &jwksEntry{set: set, fetched: now}
		if old := rt.jwks.m[uri]; old != nil {
			e.lastRefetch = old.lastRefetch
		}
		rt.jwks.m[uri] = e
		return set, nil
	})
}

// getKeySet GETs and parses a JWK Set (1 MiB at most).
func getKeySet(ctx context.Context, hc *http.Client, uri string) (jwk.Set, error) {
	body, err := getJSON(ctx, hc, uri)
	if err != nil {
		return nil, err
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("launch: JWK Set at %s: %w", httpx.Redact(uri), err)
	}
	return set, nil
}

// getJSON GETs a small JSON document (discovery, JWKS) with the CONV-2 body limit.
func getJSON(ctx context.Context, hc *http.Client, uri string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("launch: GET %s: %w", httpx.Redact(uri), err)
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, fmt.Errorf("launch: GET %s: %w", httpx.Redact(uri), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("launch: GET %s: status %d: %s", httpx.Redact(uri), resp.StatusCode, httpx.Snippet(body))
	}
	return body, nil
}
