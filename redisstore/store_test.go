package redisstore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
	"github.com/smartfhir/smartfhir/smart"
)

// Secrets planted in the fixtures; none may appear in Redis or in an error text.
const (
	secretAT       = "AT-secret-access-token-1a2b3c"
	secretRT       = "RT-secret-refresh-token-4d5e6f"
	secretIDT      = "IDT-secret-id-token-7a8b9c"
	secretVerifier = "VERIFIER-secret-pkce-verifier-0123456789abcdefghijklmnop"
	secretNonce    = "NONCE-secret-0d0e0f"
	secretAppData  = "APPDATA-secret-1f2f3f"
	secretBrowser  = "BROWSER-session-id-secret-aabbcc"
	secretState    = "STATE-secret-value-0123456789abcdef"
	secretHandle   = "HANDLE-secret-ddeeff"
)

func newToken(at, rt string, exp time.Time) *smart.Token {
	ot := &oauth2.Token{AccessToken: at, TokenType: "Bearer", RefreshToken: rt, Expiry: exp, ExpiresIn: 3600}
	return &smart.Token{Token: ot, Scope: "openid fhirUser launch patient/*.rs offline_access", IDToken: secretIDT,
		LaunchContext: smart.LaunchContext{Patient: "pat-1", Encounter: "enc-1", NeedPatientBanner: true}}
}

func newTokenSet(now time.Time) *launch.TokenSet {
	return &launch.TokenSet{
		Browser: secretBrowser, Issuer: "https://ehr.example.org/fhir", AuthIssuer: "https://ehr.example.org",
		TokenURL: "https://ehr.example.org/token", EHRLaunch: true,
		Token:   newToken(secretAT, secretRT, now.Add(time.Hour).Truncate(time.Second)),
		Subject: "user-1", FHIRUser: "https://ehr.example.org/fhir/Practitioner/1", AppData: secretAppData,
		Created: now, Updated: now, Expires: now.Add(12 * time.Hour),
	}
}

func newRecord(now time.Time) *launch.Record {
	return &launch.Record{
		Browser: secretBrowser, Issuer: "https://ehr.example.org/fhir", Launch: "launch-1", Verifier: secretVerifier,
		Nonce: secretNonce, Scope: "openid launch", RedirectURL: "https://app.example.org/callback",
		TokenURL: "https://ehr.example.org/token", AppData: secretAppData,
		Created: now, Expires: now.Add(10 * time.Minute),
	}
}

// tokenCmp compares two token sets through their lossless JSON form.
var tokenCmp = cmp.Comparer(func(a, b *smart.Token) bool {
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	return bytes.Equal(ja, jb)
})

// TestRedisSessionStore: Save/Load/Delete round trip, TTL = Expires, default TTL, expired sets
// deleted, and a refresh never resurrects a logged-out launch (SEC-07, REF-03).
func TestRedisSessionStore(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{SessionTTL: 3 * time.Hour})
	raw := r.raw(t)
	ctx := t.Context()
	sessions := st.Sessions()
	now := time.Now().Truncate(time.Millisecond)

	t.Run("round trip and TTL", func(t *testing.T) {
		ts := newTokenSet(now)
		if err := sessions.Save(ctx, "k1", ts); err != nil {
			t.Fatal(err)
		}
		got, err := sessions.Load(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(ts, got, tokenCmp); d != "" {
			t.Errorf("loaded set differs (-saved +loaded):\n%s", d)
		}
		assertTTL(t, raw, redisKey("session", "k1"), 12*time.Hour)
	})
	t.Run("zero Expires uses SessionTTL", func(t *testing.T) {
		ts := newTokenSet(now)
		ts.Expires = time.Time{}
		if err := sessions.Save(ctx, "k2", ts); err != nil {
			t.Fatal(err)
		}
		if _, err := sessions.Load(ctx, "k2"); err != nil {
			t.Fatal(err)
		}
		assertTTL(t, raw, redisKey("session", "k2"), 3*time.Hour)
	})
	t.Run("expired set is deleted", func(t *testing.T) {
		ts := newTokenSet(now)
		if err := sessions.Save(ctx, "k3", ts); err != nil {
			t.Fatal(err)
		}
		ts.Expires = now.Add(-time.Second)
		if err := sessions.Save(ctx, "k3", ts); err != nil {
			t.Fatal(err)
		}
		if _, err := sessions.Load(ctx, "k3"); !errors.Is(err, launch.ErrNoSession) {
			t.Fatalf("Load after an expired Save: %v, want ErrNoSession", err)
		}
	})
	t.Run("missing key and delete", func(t *testing.T) {
		if _, err := sessions.Load(ctx, "absent"); !errors.Is(err, launch.ErrNoSession) {
			t.Fatalf("Load(absent) = %v, want ErrNoSession", err)
		}
		if err := sessions.Delete(ctx, "absent"); err != nil {
			t.Fatalf("Delete(absent) = %v", err)
		}
		if err := sessions.Save(ctx, "k4", newTokenSet(now)); err != nil {
			t.Fatal(err)
		}
		if err := sessions.Delete(ctx, "k4"); err != nil {
			t.Fatal(err)
		}
		if _, err := sessions.Load(ctx, "k4"); !errors.Is(err, launch.ErrNoSession) {
			t.Fatalf("Load after Delete = %v, want ErrNoSession", err)
		}
	})
	t.Run("refresh after logout does not resurrect", func(t *testing.T) {
		ts := newTokenSet(now)
		if err := sessions.Save(ctx, "k5", ts); err != nil {
			t.Fatal(err)
		}
		if err := sessions.Delete(ctx, "k5"); err != nil { // logout on another replica
			t.Fatal(err)
		}
		refreshed := *ts
		refreshed.Updated = now.Add(time.Minute)
		refreshed.Token = newToken("AT-new", "RT-new", now.Add(2*time.Hour))
		if err := sessions.Save(ctx, "k5", &refreshed); !errors.Is(err, launch.ErrNoSession) {
			t.Fatalf("Save of a refresh after logout = %v, want ErrNoSession", err)
		}
		if _, err := sessions.Load(ctx, "k5"); !errors.Is(err, launch.ErrNoSession) {
			t.Fatalf("logged-out launch came back: %v", err)
		}
		// A refresh of a live launch is written.
		if err := sessions.Save(ctx, "k6", ts); err != nil {
			t.Fatal(err)
		}
		if err := sessions.Save(ctx, "k6", &refreshed); err != nil {
			t.Fatal(err)
		}
		got, err := sessions.Load(ctx, "k6")
		if err != nil || got.Token.AccessToken != "AT-new" || got.Token.RefreshToken != "RT-new" {
			t.Fatalf("refreshed set not stored: %v %+v", err, got)
		}
	})
	t.Run("nil set", func(t *testing.T) {
		if err := sessions.Save(ctx, "k7", nil); !errors.Is(err, redisstore.ErrConfig) {
			t.Fatalf("Save(nil) = %v, want ErrConfig", err)
		}
	})
}

// TestRedisStateStore: Save/Take round trip, TTL = Expires, single use, expired records not stored
// (CONV-5, LAUNCH-10).
func TestRedisStateStore(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{StateTTL: 7 * time.Minute})
	raw := r.raw(t)
	ctx := t.Context()
	states := st.States()
	now := time.Now().Truncate(time.Millisecond)

	rec := newRecord(now)
	if err := states.Save(ctx, secretState, rec); err != nil {
		t.Fatal(err)
	}
	assertTTL(t, raw, redisKey("state", secretState), 10*time.Minute)
	got, err := states.Take(ctx, secretState)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rec, got); d != "" {
		t.Errorf("taken record differs:\n%s", d)
	}
	if _, err := states.Take(ctx, secretState); !errors.Is(err, launch.ErrStateUnknown) {
		t.Fatalf("second Take = %v, want ErrStateUnknown", err)
	}
	if n := raw.DBSize(ctx).Val(); n != 0 {
		t.Errorf("%d keys left after Take", n)
	}

	rec.Expires = time.Time{}
	if err := states.Save(ctx, "s2", rec); err != nil {
		t.Fatal(err)
	}
	assertTTL(t, raw, redisKey("state", "s2"), 7*time.Minute)

	rec.Expires = now.Add(-time.Second)
	if err := states.Save(ctx, "s3", rec); err != nil {
		t.Fatal(err)
	}
	if _, err := states.Take(ctx, "s3"); !errors.Is(err, launch.ErrStateUnknown) {
		t.Fatalf("Take of an expired record = %v, want ErrStateUnknown", err)
	}
	if err := states.Save(ctx, "s4", nil); !errors.Is(err, redisstore.ErrConfig) {
		t.Fatalf("Save(nil) = %v, want ErrConfig", err)
	}
}

// TestRedisStateTakeConcurrent: 50 goroutines on two "replicas" (two clients) take one state at
// once: exactly one gets the record (GETDEL; SEC-01, CONV-5).
func TestRedisStateTakeConcurrent(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	keys := [][]byte{newKey()}
	replicas := []*redisstore.Store{openStore(t, r, redisstore.Options{Keys: keys}), openStore(t, r, redisstore.Options{Keys: keys})}
	ctx := t.Context()
	for round := range 5 {
		state := secretState + string(rune('a'+round))
		if err := replicas[0].States().Save(ctx, state, newRecord(time.Now())); err != nil {
			t.Fatal(err)
		}
		var wins, unknown atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 50 {
			wg.Go(func() {
				<-start
				rec, err := replicas[i%2].States().Take(ctx, state)
				switch {
				case err == nil && rec.Verifier == secretVerifier:
					wins.Add(1)
				case errors.Is(err, launch.ErrStateUnknown):
					unknown.Add(1)
				default:
					t.Errorf("Take: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || unknown.Load() != 49 {
			t.Fatalf("round %d: %d winners, %d ErrStateUnknown; want 1 and 49", round, wins.Load(), unknown.Load())
		}
	}
}

// TestRedisTokenStore: Store/Load round trip, TTL = Expiry, tokens without expiry or expired are not
// stored (CONV-4), absent keys load as (nil, nil).
func TestRedisTokenStore(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{})
	raw := r.raw(t)
	ctx := t.Context()
	tokens := st.Tokens()
	now := time.Now()

	if tok, err := tokens.Load(ctx, "absent"); tok != nil || err != nil {
		t.Fatalf("Load(absent) = %v, %v; want nil, nil", tok, err)
	}
	tok := newToken(secretAT, "", now.Add(5*time.Minute).Truncate(time.Second))
	if err := tokens.Store(ctx, "svc", tok); err != nil {
		t.Fatal(err)
	}
	assertTTL(t, raw, redisKey("token", "svc"), 5*time.Minute)
	got, err := tokens.Load(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(tok, got, tokenCmp); d != "" {
		t.Errorf("loaded token differs:\n%s", d)
	}
	for name, bad := range map[string]*smart.Token{
		"no expiry": newToken("AT-x", "", time.Time{}),
		"expired":   newToken("AT-y", "", now.Add(-time.Second)),
	} {
		if err := tokens.Store(ctx, name, bad); err != nil {
			t.Errorf("%s: Store = %v", name, err)
		}
		if got, err := tokens.Load(ctx, name); got != nil || err != nil {
			t.Errorf("%s: stored anyway: %v, %v", name, got, err)
		}
	}
	for _, bad := range []*smart.Token{nil, {}, {Token: &oauth2.Token{}}} {
		if err := tokens.Store(ctx, "bad", bad); !errors.Is(err, redisstore.ErrConfig) {
			t.Errorf("Store(%v) = %v, want ErrConfig", bad, err)
		}
	}
}

// TestRedisEncryptionAtRest reads every key and value with a plain client: no token, refresh token,
// id_token, verifier, nonce, app data, session id, handle or state appears in Redis, in a value or a
// key name (SEC-07); a value copied under another key does not open.
func TestRedisEncryptionAtRest(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{})
	raw := r.raw(t)
	ctx := t.Context()
	now := time.Now()
	sessionKey := secretBrowser + "." + secretHandle
	if err := st.Sessions().Save(ctx, sessionKey, newTokenSet(now)); err != nil {
		t.Fatal(err)
	}
	if err := st.States().Save(ctx, secretState, newRecord(now)); err != nil {
		t.Fatal(err)
	}
	if err := st.Tokens().Store(ctx, "backend:"+secretBrowser, newToken(secretAT, secretRT, now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	unlock, err := st.Lock(ctx, "refresh:"+sessionKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	all := dumpRedis(t, raw)
	if len(all) != 4 {
		t.Fatalf("want 4 keys (session, state, token, lock), got %d: %v", len(all), keysOf(all))
	}
	secrets := []string{secretAT, secretRT, secretIDT, secretVerifier, secretNonce, secretAppData, secretBrowser, secretHandle, secretState,
		"Practitioner/1", "pat-1", "ehr.example.org"}
	for k, v := range all {
		if !strings.HasPrefix(k, redisstore.DefaultPrefix) {
			t.Errorf("key %q lacks the prefix", k)
		}
		for _, s := range secrets {
			if strings.Contains(k, s) || bytes.Contains(v, []byte(s)) || bytes.Contains(bytes.ToLower(v), bytes.ToLower([]byte(s))) {
				t.Errorf("%q found in Redis under key %q", s, k)
			}
		}
		if !strings.Contains(k, ":lock:") && (len(v) < 40 || v[0] != 1) {
			t.Errorf("value of %q is not a sealed value (%d bytes)", k, len(v))
		}
	}

	// Copy the session's sealed value under another launch's key: it must not open there.
	var sealed []byte
	for k, v := range all {
		if strings.Contains(k, ":session:") {
			sealed = v
		}
	}
	if err := st.Sessions().Save(ctx, "other", newTokenSet(now)); err != nil {
		t.Fatal(err)
	}
	for k := range dumpRedis(t, raw) {
		if _, seen := all[k]; !seen {
			if err := raw.Set(ctx, k, sealed, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.Sessions().Load(ctx, "other"); !errors.Is(err, launch.ErrNoSession) {
		t.Fatalf("a sealed value moved to another key opened: %v", err)
	}
}

// TestRedisKeyRotation: values sealed with an old key open once a new key is put first; new values
// are sealed with the new key; a value whose key was removed reads as absent (logged out, state
// unknown, token to fetch again), never as a server error, and stays in Redis for replicas that
// still hold the key (SEC-07).
func TestRedisKeyRotation(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	raw := r.raw(t)
	ctx := t.Context()
	now := time.Now()
	k1, k2 := newKey(), newKey()
	old := openStore(t, r, redisstore.Options{Keys: [][]byte{k1}})
	both := openStore(t, r, redisstore.Options{Keys: [][]byte{k2, k1}})
	onlyNew := openStore(t, r, redisstore.Options{Keys: [][]byte{k2}})

	if err := old.Sessions().Save(ctx, "s-old", newTokenSet(now)); err != nil {
		t.Fatal(err)
	}
	if err := old.States().Save(ctx, "state-old", newRecord(now)); err != nil {
		t.Fatal(err)
	}
	if err := old.Tokens().Store(ctx, "t-old", newToken(secretAT, "", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := both.Sessions().Load(ctx, "s-old"); err != nil {
		t.Fatalf("old value with the rotated key list: %v", err)
	}
	if tok, err := both.Tokens().Load(ctx, "t-old"); err != nil || tok == nil {
		t.Fatalf("old token with the rotated key list: %v, %v", tok, err)
	}
	if err := both.Sessions().Save(ctx, "s-new", newTokenSet(now)); err != nil {
		t.Fatal(err)
	}
	if _, err := onlyNew.Sessions().Load(ctx, "s-new"); err != nil {
		t.Fatalf("a value written after rotation is not sealed with the new key: %v", err)
	}
	if _, err := old.Sessions().Load(ctx, "s-new"); !errors.Is(err, launch.ErrNoSession) {
		t.Fatalf("the old key opened a value sealed with the new one: %v", err)
	}

	// The old key is removed: its values read as absent, not as errors.
	if _, err := onlyNew.Sessions().Load(ctx, "s-old"); !errors.Is(err, launch.ErrNoSession) || errors.Is(err, redisstore.ErrUnavailable) {
		t.Errorf("session sealed with a removed key: %v, want ErrNoSession", err)
	}
	if tok, err := onlyNew.Tokens().Load(ctx, "t-old"); tok != nil || err != nil {
		t.Errorf("token sealed with a removed key: %v, %v; want nil, nil", tok, err)
	}
	if n := raw.DBSize(ctx).Val(); n != 4 {
		t.Errorf("%d keys in Redis, want 4: values that do not open must stay for replicas holding their key", n)
	}
	if _, err := onlyNew.States().Take(ctx, "state-old"); !errors.Is(err, launch.ErrStateUnknown) {
		t.Errorf("state sealed with a removed key: %v, want ErrStateUnknown", err)
	}
}

// TestRedisCorruptValues: garbage, truncated, altered and oversized values under the store's keys
// read as absent, with no panic and no error a user would see as a server failure.
func TestRedisCorruptValues(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	st := openStore(t, r, redisstore.Options{})
	raw := r.raw(t)
	ctx := t.Context()
	if err := st.Sessions().Save(ctx, "s", newTokenSet(time.Now())); err != nil {
		t.Fatal(err)
	}
	var rk string
	var good []byte
	for k, v := range dumpRedis(t, raw) {
		rk, good = k, v
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	for name, v := range map[string][]byte{
		"empty":     {},
		"garbage":   []byte("not sealed at all"),
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:30],
		"flipped":   flipped,
		"oversized": bytes.Repeat([]byte{1}, redisstore.MaxValueSize+100),
	} {
		if err := raw.Set(ctx, rk, v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Sessions().Load(ctx, "s"); !errors.Is(err, launch.ErrNoSession) {
			t.Errorf("%s: Load = %v, want ErrNoSession", name, err)
		}
	}
}

// redisKey is the Redis key the store uses for a logical key (prefix, kind, SHA-256).
func redisKey(kind, key string) string {
	sum := sha256.Sum256([]byte(key))
	return redisstore.DefaultPrefix + kind + ":" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// assertTTL checks that rk expires in want, give or take the test's run time.
func assertTTL(t *testing.T, raw *redis.Client, rk string, want time.Duration) {
	t.Helper()
	got, err := raw.PTTL(t.Context(), rk).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got > want || got < want-10*time.Second {
		t.Errorf("TTL of %s = %v, want about %v", rk, got, want)
	}
}

func keysOf(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
