package redisstore_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/redisstore"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// workers returns n copies of cfg, each with its own Store (its own Redis connection pool) as n
// worker processes would have, and a token source of each.
func workers(t *testing.T, r *redisServer, n int, cfg backend.Config) ([]*backend.Config, []*backend.TokenSource) {
	t.Helper()
	keys := [][]byte{newKey()}
	cfgs := make([]*backend.Config, n)
	srcs := make([]*backend.TokenSource, n)
	for i := range cfgs {
		st := openStore(t, r, redisstore.Options{Keys: keys, LockPoll: 20 * time.Millisecond})
		c := cfg
		c.Store, c.Locker = st.Tokens(), st
		cfgs[i], srcs[i] = &c, c.TokenSource(t.Context())
	}
	return cfgs, srcs
}

// allAtOnce runs f for every worker at the same moment and waits for them.
func allAtOnce[T any](items []T, f func(i int, item T)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, it := range items {
		wg.Go(func() {
			<-start
			f(i, it)
		})
	}
	close(start)
	wg.Wait()
}

// TestRedisBackendSharedToken: twenty workers, each with its own Store and backend.Config token
// source, against the sandbox. At a cold start they ask for a token at once; then, twice, the
// sandbox revokes every token and all twenty get a 401 on their next FHIR call at once. The token
// endpoint sees exactly one request each time, and every worker carries on with that token (BS-05
// across processes, CONV-3, CONV-4).
func TestRedisBackendSharedToken(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	srv := smarttest.NewServer(t, smarttest.WithPatients(1))
	client := srv.RegisterBackendClient(t, "ES384")
	cfg := backend.Config{ClientID: client.ID, FHIRBase: srv.FHIRBase, TokenURL: client.TokenURL,
		Scopes: []string{"system/*.rs"}, PrivateKey: client.Signer, KeyID: client.KeyID}
	cfgs, srcs := workers(t, r, 20, cfg)
	tokens := make([]string, len(srcs))
	allAtOnce(srcs, func(i int, src *backend.TokenSource) {
		tok, err := src.TokenContext(t.Context())
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
			return
		}
		tokens[i] = tok.AccessToken
	})
	if got := srv.Sandbox.Count("token_requests:client_credentials"); got != 1 {
		t.Fatalf("cold start: %d token requests from 20 workers, want 1", got)
	}
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Fatalf("worker %d got another token than worker 0", i)
		}
	}

	clients := make([]*http.Client, len(cfgs))
	for i, c := range cfgs {
		clients[i] = c.Client(t.Context()) // a cache of its own, which starts from the shared token
	}
	for round := 2; round <= 3; round++ {
		srv.Sandbox.ExpireAccessTokens()
		allAtOnce(clients, func(i int, hc *http.Client) {
			resp, err := hc.Get(srv.FHIRBase + "/Patient?_count=1")
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("worker %d: HTTP %d after the tokens were revoked", i, resp.StatusCode)
			}
		})
		if got := srv.Sandbox.Count("token_requests:client_credentials"); got != int64(round) {
			t.Fatalf("after revocation %d: %d token requests in all, want %d (one per revocation)", round-1, got, round)
		}
	}
}

// TestRedisBackendExpiry: twenty workers share one token through Redis against a token endpoint
// that issues two-second tokens and counts requests; at each expiry exactly one worker fetches the
// next token and the others read it (BS-05, CONV-4).
func TestRedisBackendExpiry(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	var requests atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":2,"scope":"system/*.rs"}`, n)
	}))
	t.Cleanup(ts.Close)
	_, srcs := workers(t, r, 20, backend.Config{ClientID: "svc", ClientSecret: "svc-secret", TokenURL: ts.URL, Scopes: []string{"system/*.rs"}})
	const rounds = 3
	for round := 1; round <= rounds; round++ {
		got := make([]string, len(srcs))
		allAtOnce(srcs, func(i int, src *backend.TokenSource) {
			tok, err := src.TokenContext(t.Context())
			if err != nil {
				t.Errorf("round %d, worker %d: %v", round, i, err)
				return
			}
			got[i] = tok.AccessToken
		})
		want := fmt.Sprintf("tok-%d", round)
		for i, tok := range got {
			if tok != want {
				t.Fatalf("round %d: worker %d has %q, want %q", round, i, tok, want)
			}
		}
		if n := requests.Load(); n != int64(round) {
			t.Fatalf("round %d: %d token requests in all, want %d (one per expiry)", round, n, round)
		}
		if round < rounds {
			time.Sleep(2 * time.Second) // the token expires (its refresh margin is 10 %: 200 ms)
		}
	}
}
