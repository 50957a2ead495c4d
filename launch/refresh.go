package launch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/smart"
)

// refreshTimeout bounds a refresh shared by several requests: it outlives any one of them.
const refreshTimeout = 60 * time.Second

// refreshLockTTL is how long the cross-process refresh lock lives: the whole refresh, plus a margin
// for the lock service's own clock and round trips, so that it never expires while its holder still
// refreshes (another process would then redeem the same refresh token, REF-04).
const refreshLockTTL = refreshTimeout + 15*time.Second

// sessionSource is the token source of one Session: a smart.CachingTokenSource over the session
// store, with the refresh single-flighted per launch across every request of the process (REF-04).
type sessionSource struct {
	rt    *runtime
	key   string
	cache *smart.CachingTokenSource
	first atomic.Pointer[TokenSet] // the set loaded with the Session, used by the first fetch
}

var (
	_ oauth2.TokenSource       = (*sessionSource)(nil)
	_ smart.ContextTokenSource = (*sessionSource)(nil)
	_ smart.Invalidator        = (*sessionSource)(nil)
)

func (rt *runtime) newSessionSource(key string, ts *TokenSet) *sessionSource {
	s := &sessionSource{rt: rt, key: key}
	s.first.Store(ts)
	s.cache = smart.NewCachingTokenSource(s.fetch, smart.CacheOptions{Margin: rt.margin, Now: rt.now})
	return s
}

// fetch returns the stored token when fresh, else refreshes it.
func (s *sessionSource) fetch(ctx context.Context) (*smart.Token, error) {
	if ts := s.first.Swap(nil); ts != nil && s.rt.fresh(ts.Token) && !s.rt.invalidated(s.key, ts.Token) {
		return ts.Token, nil
	}
	ts, err := s.rt.refreshSession(ctx, s.key, false, "", "")
	if err != nil {
		return nil, err
	}
	return ts.Token, nil
}

func (s *sessionSource) current(ctx context.Context) (*smart.Token, error) {
	return s.cache.Current(ctx)
}

// Token implements oauth2.TokenSource.
func (s *sessionSource) Token() (*oauth2.Token, error) { return s.cache.Token() }

// TokenContext implements smart.ContextTokenSource.
func (s *sessionSource) TokenContext(ctx context.Context) (*oauth2.Token, error) {
	return s.cache.TokenContext(ctx)
}

// Invalidate implements smart.Invalidator: after a 401 the token is refreshed even though it has not
// expired, by this request and by the launch's next requests.
func (s *sessionSource) Invalidate(tok *oauth2.Token) {
	if tok == nil {
		return
	}
	s.rt.invalid.Store(s.key, tok.AccessToken)
	s.cache.Invalidate(tok)
}

// fresh reports whether tok is usable without a refresh: it expires after the margin, which is the
// smaller of RefreshMargin and a tenth of the token's lifetime (TOK-15; the rule of smart's cache).
func (rt *runtime) fresh(tok *smart.Token) bool {
	if tok == nil || tok.Token == nil || tok.AccessToken == "" {
		return false
	}
	if tok.Expiry.IsZero() {
		return true
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = tok.Expiry.Sub(rt.now())
	}
	margin := min(rt.margin, life/10)
	return rt.now().Before(tok.Expiry.Add(-margin))
}

func (rt *runtime) invalidated(key string, tok *smart.Token) bool {
	v, ok := rt.invalid.Load(key)
	return ok && v.(string) == tok.AccessToken
}

// forceRefresh refreshes the launch's token now (Session.Refresh), unless another request did so
// while this one waited.
func (rt *runtime) forceRefresh(ctx context.Context, key, scope string) (*TokenSet, error) {
	ts, err := rt.loadForRefresh(ctx, key)
	if err != nil {
		return nil, err
	}
	return rt.refreshSession(ctx, key, true, ts.Token.AccessToken, scope)
}

// refreshSession runs one refresh per launch at a time: one flight per process, under
// Config.Locker across processes. The flight outlives the request that started it (refreshTimeout);
// each caller waits for it only as long as its own ctx allows. Inside the flight it reloads the set: when another request (or
// process) refreshed meanwhile, or, unforced, the token is still fresh, that token is used and no
// request is sent, so a rotated refresh token is never used twice (REF-04, SEC-06).
func (rt *runtime) refreshSession(ctx context.Context, key string, force bool, seenAT, scope string) (*TokenSet, error) {
	return shared(ctx, &rt.refresh, key, refreshTimeout, func(fctx context.Context) (*TokenSet, error) {
		if l := rt.c.Locker; l != nil {
			unlock, err := l.Lock(fctx, refreshLockName(key), refreshLockTTL)
			if err != nil {
				return nil, storeError("refresh lock", err)
			}
			defer unlock()
		}
		ts, err := rt.loadForRefresh(fctx, key)
		if err != nil {
			return nil, err
		}
		switch {
		case force && ts.Token.AccessToken != seenAT:
			return ts, nil
		case !force && rt.fresh(ts.Token) && !rt.invalidated(key, ts.Token):
			return ts, nil
		}
		return rt.refreshTokens(fctx, key, ts, scope)
	})
}

// loadForRefresh loads a launch's tokens for a refresh. Only a launch that is gone (ErrNoSession)
// means re-authorization; any other store failure (a timeout, an outage) wraps ErrStoreUnavailable
// and leaves the launch alone, for the next request to try again.
func (rt *runtime) loadForRefresh(ctx context.Context, key string) (*TokenSet, error) {
	ts, err := rt.sessions.Load(ctx, key)
	switch {
	case errors.Is(err, ErrNoSession):
		return nil, rt.reauth(ctx, key, err)
	case err != nil:
		return nil, storeError("session store", err)
	}
	return ts, nil
}

// refreshLockName names the cross-process lock of a launch's refresh: a hash of its key, which is a
// bearer secret that a lock service has no need to see.
func refreshLockName(key string) string {
	h := sha256.Sum256([]byte(key))
	return "launch-refresh:" + hex.EncodeToString(h[:])
}

// refreshTokens sends the refresh_token grant, authenticated like the code exchange (REF-01), and
// stores the merged result in one write (REF-03).
func (rt *runtime) refreshTokens(ctx context.Context, key string, ts *TokenSet, scope string) (*TokenSet, error) {
	if !smart.CanRefresh(ts.Token) {
		// Gate refresh on the refresh token itself, not on offline_access (REF-02). Without one a
		// token that has not quite expired is still served.
		if ts.Token.Expiry.After(rt.now()) && !rt.invalidated(key, ts.Token) {
			return ts, nil
		}
		return nil, rt.reauth(ctx, key, errors.New("the access token expired and there is no refresh token"))
	}
	norm, err := rt.policy.check(ts.Issuer)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.Token.RefreshToken}}
	if scope != "" {
		form.Set("scope", scope)
	}
	tok, err := rt.tokenRequest(ctx, norm, ts.TokenURL, form, grantRefresh)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, rt.reauth(ctx, key, err) // REF-06: no retry loop
		}
		return nil, err // transient: the tokens stay for the next attempt
	}
	merged := mergeRefresh(ts, tok)
	merged.Updated = rt.now()
	if !merged.Updated.After(merged.Created) {
		// Updated after Created marks the write as an update of an existing launch (SessionStore),
		// which a store may refuse once the launch is gone, even with a clock behind the launch's.
		merged.Updated = merged.Created.Add(time.Nanosecond)
	}
	if err := rt.sessions.Save(ctx, key, merged); err != nil {
		if errors.Is(err, ErrNoSession) {
			// Logged out (by another replica) while the refresh was in flight: the store refused
			// to bring the launch back (redisstore's SET XX). It is gone, not unavailable.
			return nil, rt.reauth(ctx, key, err)
		}
		return nil, storeError("session store", err)
	}
	rt.invalid.Delete(key)
	rt.log.Info("token refreshed", "issuer", ts.Issuer, "rotated", tok.RefreshToken != "", "context_changed", merged.ContextChanged)
	return merged, nil
}

// reauth deletes the launch's tokens and returns an error wrapping ErrReauthRequired and cause.
func (rt *runtime) reauth(ctx context.Context, key string, cause error) error {
	_ = rt.sessions.Delete(ctx, key)
	rt.invalid.Delete(key)
	if errors.Is(cause, ErrNoSession) {
		return fmt.Errorf("%w: the launch's tokens are gone", ErrReauthRequired)
	}
	return fmt.Errorf("%w: %w", ErrReauthRequired, cause)
}

// mergeRefresh combines the stored set with a refresh response: a new refresh token replaces the
// old one, an absent one keeps it (REF-03); launch context the response omits is kept, and a
// different patient or encounter is taken and flagged (REF-05); an omitted scope keeps the granted
// one; the identity stays that of the verified launch id_token (an unverified one is never used).
// A different fhirContext is taken and flagged too.
func mergeRefresh(old *TokenSet, tok *smart.Token) *TokenSet {
	ts := *old
	nt := *tok
	ot := old.Token
	if nt.RefreshToken == "" {
		nt.Token = cloneWithRefresh(nt.Token, ot.RefreshToken)
	}
	if nt.ScopeOmitted || nt.Scope == "" {
		nt.Scope, nt.ScopeOmitted = ot.Scope, ot.ScopeOmitted
	}
	nt.IDToken = ot.IDToken
	lc := ot.LaunchContext
	if (nt.Patient != "" && nt.Patient != lc.Patient) || (nt.Encounter != "" && nt.Encounter != lc.Encounter) ||
		(len(nt.FHIRContext) > 0 && !slices.EqualFunc(nt.FHIRContext, lc.FHIRContext, sameContextItem)) {
		ts.ContextChanged = true
	}
	if nt.Patient != "" {
		lc.Patient = nt.Patient
	}
	if nt.Encounter != "" {
		lc.Encounter = nt.Encounter
	}
	if len(nt.FHIRContext) > 0 {
		lc.FHIRContext = nt.FHIRContext
	}
	if nt.SmartStyleURL != "" {
		lc.SmartStyleURL = nt.SmartStyleURL
	}
	if nt.Intent != "" {
		lc.Intent = nt.Intent
	}
	if nt.Tenant != "" {
		lc.Tenant = nt.Tenant
	}
	lc.NeedPatientBanner = lc.NeedPatientBanner || nt.NeedPatientBanner
	if len(nt.Extensions) > 0 {
		ext := maps.Clone(lc.Extensions)
		if ext == nil {
			ext = map[string]json.RawMessage{}
		}
		maps.Copy(ext, nt.Extensions)
		lc.Extensions = ext
	}
	nt.LaunchContext = lc
	ts.Token = &nt
	return &ts
}

// sameContextItem compares two fhirContext items, the identifier by its JSON bytes.
func sameContextItem(a, b smart.FHIRContextItem) bool {
	return a.Reference == b.Reference && a.Canonical == b.Canonical && a.Type == b.Type && a.Role == b.Role &&
		bytes.Equal(a.Identifier, b.Identifier)
}

func cloneWithRefresh(t *oauth2.Token, rt string) *oauth2.Token {
	c := *t
	c.RefreshToken = rt
	return &c
}
