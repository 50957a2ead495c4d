package backend

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// checkPublicOnly asserts that jwks holds n keys with public members only (JWKS-01).
func checkPublicOnly(t *testing.T, jwks []byte, n int) []map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != n {
		t.Fatalf("%d keys, want %d: %s", len(set.Keys), n, jwks)
	}
	allowed := []string{"kty", "kid", "alg", "use", "key_ops", "n", "e", "crv", "x", "y"}
	for _, k := range set.Keys {
		for m := range k {
			if !slices.Contains(allowed, m) {
				t.Fatalf("published JWK has member %q: %v", m, k)
			}
		}
		if k["use"] != "sig" || k["kid"] == "" || k["alg"] == nil {
			t.Fatalf("JWK lacks use/kid/alg: %v", k)
		}
		if ops, _ := k["key_ops"].([]any); len(ops) != 1 || ops[0] != "verify" {
			t.Fatalf("key_ops = %v, want [verify]", k["key_ops"])
		}
	}
	return set.Keys
}

func TestPublicJWKS(t *testing.T) { // JWKS-01
	t.Parallel()
	out, err := PublicJWKS(Key{Signer: testRSAKey()}, Key{Signer: testECKey()}, Key{Signer: testECKey()})
	if err != nil {
		t.Fatal(err)
	}
	keys := checkPublicOnly(t, out, 2)
	if keys[0]["alg"] != RS384 || keys[1]["alg"] != ES384 || keys[1]["crv"] != "P-384" || keys[0]["kid"] != mustThumbprint(t, testRSAKey()) {
		t.Fatalf("keys %v", keys)
	}
	if _, err := PublicJWKS(Key{Signer: testRSAKey(), ID: "k"}, Key{Signer: testECKey(), ID: "k"}); !errors.Is(err, ErrDuplicateKeyID) {
		t.Fatalf("two keys under one kid: err = %v", err)
	}
	if _, err := PublicJWKS(Key{}); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("nil signer: err = %v", err)
	}
}

func TestKeySetRotation(t *testing.T) { // JWKS-04: publish first, switch after a cache lifetime, retire later
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const cache = 10 * time.Minute
	ks, err := NewKeySet(Key{Signer: testRSAKey(), ID: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(Key{Signer: testECKey(), ID: "new"}, t0, cache); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at        time.Duration
		signing   string
		published []string
	}{
		{0, "old", []string{"old", "new"}}, // the successor is published before it signs
		{cache - time.Second, "old", []string{"old", "new"}},
		{cache, "new", []string{"old", "new"}},                 // verifiers' caches now hold "new"
		{2*cache - time.Second, "new", []string{"old", "new"}}, // old assertions may still be verified
		{2 * cache, "new", []string{"new"}},                    // retired: max(cache, 5 min) after the switch
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		k, err := ks.Signing(now)
		if err != nil || k.ID != s.signing {
			t.Fatalf("+%v: signing %q (%v), want %q", s.at, k.ID, err, s.signing)
		}
		var ids []string
		for _, p := range ks.Published(now) {
			ids = append(ids, p.ID)
		}
		if !slices.Equal(ids, s.published) {
			t.Fatalf("+%v: published %v, want %v", s.at, ids, s.published)
		}
		jwks, err := ks.JWKS(now)
		if err != nil {
			t.Fatal(err)
		}
		checkPublicOnly(t, jwks, len(s.published))
		if err := CheckPublished(jwks, k); err != nil { // AUTH-12 holds at every step
			t.Fatalf("+%v: %v", s.at, err)
		}
	}
	// A kid is never reused, even after its key was retired.
	if err := ks.Rotate(Key{Signer: otherECKey(), ID: "old"}, t0.Add(time.Hour), cache); !errors.Is(err, ErrDuplicateKeyID) {
		t.Fatalf("kid reuse: err = %v", err)
	}
	if err := ks.Add(Key{Signer: otherECKey(), ID: "new"}); !errors.Is(err, ErrDuplicateKeyID) {
		t.Fatalf("kid reuse by Add: err = %v", err)
	}
	// A short cache lifetime still keeps the old key for a whole assertion lifetime.
	ks2, _ := NewKeySet(Key{Signer: testRSAKey(), ID: "a"})
	_ = ks2.Rotate(Key{Signer: testECKey(), ID: "b"}, t0, time.Minute)
	if got := len(ks2.Published(t0.Add(time.Minute + MaxAssertionLifetime - time.Second))); got != 2 {
		t.Fatalf("old key retired before its last assertion expired: %d keys published", got)
	}
	// Nothing to sign with is a typed error.
	empty, _ := NewKeySet()
	if _, err := empty.Signing(t0); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("empty set: err = %v", err)
	}
}

func TestJWKSHandler(t *testing.T) { // JWKS-02
	t.Parallel()
	ks, _ := NewKeySet(Key{Signer: testECKey()})
	srv := httptest.NewServer(ks.Handler(0))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL) // no credentials needed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "public, max-age=300" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	checkPublicOnly(t, body, 1)
	post, err := http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", post.StatusCode)
	}
}

func TestCheckPublished(t *testing.T) { // AUTH-12
	t.Parallel()
	jwks, _ := PublicJWKS(Key{Signer: testRSAKey(), ID: "rsa"}, Key{Signer: testECKey(), ID: "ec"})
	if err := CheckPublished(jwks, Key{Signer: testECKey(), ID: "ec"}); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]Key{
		"kid absent":             {Signer: testECKey(), ID: "rotated-away"},
		"kid with another key":   {Signer: otherECKey(), ID: "ec"},
		"default kid not listed": {Signer: testECKey()},
	} {
		if err := CheckPublished(jwks, k); !errors.Is(err, ErrKeyNotPublished) {
			t.Errorf("%s: err = %v, want ErrKeyNotPublished", name, err)
		}
	}
	if err := CheckPublished([]byte("<html>"), Key{Signer: testECKey()}); err == nil || errors.Is(err, ErrKeyNotPublished) {
		t.Errorf("garbage JWKS: err = %v", err)
	}
}

func TestConfigCheckPublished(t *testing.T) { // AUTH-12: start-up self-check
	t.Parallel()
	ks, _ := NewKeySet(Key{Signer: testECKey(), ID: "published"})
	srv := httptest.NewServer(ks.Handler(0))
	t.Cleanup(srv.Close)
	c := &Config{ClientID: "svc", TokenURL: "https://ehr.example.org/token", PrivateKey: testECKey(), KeyID: "published", JWKSetURL: srv.URL}
	if err := c.CheckPublished(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.KeyID = "rotated-but-not-published"
	if err := c.CheckPublished(t.Context()); !errors.Is(err, ErrKeyNotPublished) {
		t.Fatalf("err = %v, want ErrKeyNotPublished", err)
	}
	c.KeyID, c.PrivateKey = "published", otherECKey()
	if err := c.CheckPublished(t.Context()); !errors.Is(err, ErrKeyNotPublished) {
		t.Fatalf("same kid, other key: err = %v", err)
	}
	c.JWKSetURL = ""
	if err := c.CheckPublished(t.Context()); !errors.Is(err, ErrConfig) {
		t.Fatalf("no JWKSetURL: err = %v", err)
	}
	ks2, _ := NewKeySet(Key{Signer: testECKey(), ID: "published"})
	srv404 := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv404.Close)
	c2 := &Config{ClientID: "svc", TokenURL: "https://ehr.example.org/token", Keys: ks2, JWKSetURL: srv404.URL}
	if err := c2.CheckPublished(t.Context()); err == nil || errors.Is(err, ErrKeyNotPublished) {
		t.Fatalf("404: err = %v", err)
	}
}
