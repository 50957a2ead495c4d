package redisstore_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
	"github.com/smartfhir/smartfhir/smart/smarttest"
)

// cluster is one app running as two instances (two launch.Configs over two httptest servers) that
// share one Redis, behind a proxy that sends each browser's requests to the instances in turn: a
// launch that starts on one instance has its callback on the other.
type cluster struct {
	srv   *smarttest.Server
	redis *redisServer
	proxy *httptest.Server
	cfgs  [2]*launch.Config
	clock *clock

	mu     sync.Mutex
	served map[string][]int   // browser id -> instance of each request, in order
	errs   map[string][]error // browser id -> errors handed to OnError
}

type clusterOptions struct {
	locker bool // the Store is launch.Config.Locker: refreshes are single-flight across instances
}

// newCluster starts the sandbox, Redis, two app instances and the proxy.
func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{redis: startRedis(t), clock: &clock{}, served: map[string][]int{}, errs: map[string][]error{}}
	c.srv = smarttest.NewServer(t, smarttest.WithPatients(5))

	var apps [2]*httptest.Server
	rr := map[string]int{} // browser id -> requests so far
	var rrMu sync.Mutex
	targets := [2]*url.URL{}
	proxies := [2]*httputil.ReverseProxy{}
	c.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := r.Header.Get("X-Test-Browser")
		rrMu.Lock()
		i := rr[b] % 2
		rr[b]++
		rrMu.Unlock()
		proxies[i].ServeHTTP(w, r)
	}))
	t.Cleanup(c.proxy.Close)

	app := c.srv.RegisterApp(t, smarttest.App{Name: "scaled-out app", SkipLogin: true,
		RedirectURIs: []string{c.proxy.URL + "/callback"}, LaunchURL: c.proxy.URL + "/launch"})
	cookieKeys := [][]byte{randomBytes(32), randomBytes(32)}
	storeKeys := [][]byte{randomBytes(32)}
	for i := range 2 {
		st := openStore(t, c.redis, redisstore.Options{Keys: storeKeys})
		cfg := &launch.Config{
			ClientID:       app.ID,
			RedirectURL:    c.proxy.URL + "/callback",
			Scopes:         []string{"openid", "fhirUser", "offline_access", "patient/*.rs"},
			AllowedIssuers: []string{c.srv.FHIRBase},
			StateStore:     st.States(),
			SessionStore:   st.Sessions(),
			CookieKeys:     cookieKeys,
			Now:            c.clock.now,
			OnError: redisstore.ErrorHandler(func(w http.ResponseWriter, r *http.Request, err error) {
				c.mu.Lock()
				b := r.Header.Get("X-Test-Browser")
				c.errs[b] = append(c.errs[b], err)
				c.mu.Unlock()
				launch.ErrorPage(w, r, err)
			}),
		}
		if o.locker {
			cfg.Locker = st
		}
		c.cfgs[i] = cfg
		apps[i] = httptest.NewServer(c.instance(i, cfg))
		t.Cleanup(apps[i].Close)
		targets[i], _ = url.Parse(apps[i].URL)
		proxies[i] = httputil.NewSingleHostReverseProxy(targets[i])
	}
	return c
}

// instance is one app instance: the launch handlers, a landing page and a FHIR read with the token.
func (c *cluster) instance(i int, cfg *launch.Config) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /launch", cfg.EHRLaunchHandler())
	mux.Handle("GET /callback", cfg.CallbackHandler(nil))
	mux.Handle("GET /{$}", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := launch.FromRequest(r)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(landing{Handle: s.Handle, Patient: s.Patient, Instance: i})
	})))
	mux.Handle("GET /patient", cfg.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := launch.FromRequest(r)
		resp, err := s.HTTPClient().Get(s.Issuer + "/Patient/" + url.PathEscape(s.Patient))
		if err != nil {
			cfg.OnError(w, r, err)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := r.Header.Get("X-Test-Browser")
		c.mu.Lock()
		c.served[b] = append(c.served[b], i)
		c.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

type landing struct {
	Handle, Patient string
	Instance        int
}

// browser is a cookie-keeping client whose requests carry its id, for the proxy's rotation.
type browser struct {
	id string
	*http.Client
}

func (c *cluster) newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%x", randomBytes(8))
	return &browser{id: id, Client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: headerTransport{id: id, base: http.DefaultTransport}}}
}

type headerTransport struct {
	id   string
	base http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Browser", h.id)
	return h.base.RoundTrip(r)
}

// launchURL mints an EHR launch of patient and returns the URL the EHR opens.
func (c *cluster) launchURL(patient string) string {
	id := c.srv.Launch(smarttest.LaunchContext{Patient: patient, User: "Practitioner/" + c.srv.Sandbox.Practitioners()[0].ID})
	return c.srv.LaunchURL(c.proxy.URL+"/launch", id)
}

// get fetches u with b and returns the status and body.
func (b *browser) get(u string) (int, []byte, error) {
	resp, err := b.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// ehrLaunch runs one EHR launch to the landing page, and checks that the callback was served by the
// other instance than the launch.
func (c *cluster) ehrLaunch(t *testing.T, b *browser, patient string) (landing, error) {
	status, body, err := b.get(c.launchURL(patient))
	if err != nil {
		return landing{}, err
	}
	c.mu.Lock()
	served, errs := c.served[b.id], c.errs[b.id]
	c.mu.Unlock()
	if status != http.StatusOK {
		return landing{}, fmt.Errorf("launch ended with %d (instances %v, errors %v): %.200s", status, served, errs, body)
	}
	var p landing
	if err := json.Unmarshal(body, &p); err != nil {
		return landing{}, fmt.Errorf("landing page: %w", err)
	}
	if len(served) < 3 || served[len(served)-3] == served[len(served)-2] {
		return p, fmt.Errorf("launch and callback on the same instance: %v", served)
	}
	if p.Patient != patient {
		return p, fmt.Errorf("landed on patient %q, want %q", p.Patient, patient)
	}
	return p, nil
}

// TestRedisLaunchAcrossInstances: 200 EHR launches against the sandbox through the proxy; every
// callback lands on the other instance than its launch, and completes there because the state and
// the session live in Redis (CONV-5, LAUNCH-10, SEC-01).
func TestRedisLaunchAcrossInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{})
	patients := c.srv.Sandbox.Patients()
	const launches, workers = 200, 8
	var next atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= launches || t.Failed() {
					return
				}
				b := c.newBrowser(t)
				if _, err := c.ehrLaunch(t, b, patients[n%len(patients)].ID); err != nil {
					t.Errorf("launch %d: %v", n, err)
				}
			}
		})
	}
	wg.Wait()
	if got := c.srv.Sandbox.Count("token_requests:authorization_code"); got != launches {
		t.Errorf("code exchanges = %d, want %d", got, launches)
	}
	// Each state was taken once: nothing pending is left, only the sessions.
	for k := range dumpRedis(t, c.redis.raw(t)) {
		if strings.Contains(k, ":state:") {
			t.Errorf("state left in Redis after its callback: %s", k)
		}
	}
}

// TestRedisRefreshAcrossInstances: once the access tokens expire, requests of each launch reach both
// instances at once; each refresh token is redeemed exactly once across the replicas (the
// sandbox's reuse detection would revoke the launch otherwise), and every request succeeds (REF-04,
// SEC-06). Without launch.Config.Locker both instances refresh, and the sandbox revokes the grant.
func TestRedisRefreshAcrossInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{locker: true})
	patients := c.srv.Sandbox.Patients()
	const sessions, parallel = 20, 10
	type launched struct {
		b *browser
		p landing
	}
	var ls []launched
	for i := range sessions {
		b := c.newBrowser(t)
		p, err := c.ehrLaunch(t, b, patients[i%len(patients)].ID)
		if err != nil {
			t.Fatalf("launch %d: %v", i, err)
		}
		ls = append(ls, launched{b, p})
	}
	for round := 1; round <= 2; round++ {
		c.clock.advance(61 * time.Minute) // past the one-hour access tokens, app and sandbox alike
		c.srv.Sandbox.SetClockOffset(c.clock.offset())
		before := c.srv.Sandbox.Count("token_requests:refresh_token")
		var wg sync.WaitGroup
		for _, l := range ls {
			for range parallel {
				wg.Go(func() {
					status, body, err := l.b.get(c.proxy.URL + "/patient?handle=" + url.QueryEscape(l.p.Handle))
					if err != nil || status != http.StatusOK {
						t.Errorf("round %d: FHIR read: %d %v %.200s", round, status, err, body)
					}
				})
			}
		}
		wg.Wait()
		if got := c.srv.Sandbox.Count("token_requests:refresh_token") - before; got != sessions {
			t.Fatalf("round %d: %d refresh requests for %d launches, want exactly one each", round, got, sessions)
		}
	}
}

// clock is an adjustable clock shared by the apps (launch.Config.Now) and the sandbox.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(c.offset()) }
func (c *clock) offset() time.Duration   { return time.Duration(c.off.Load()) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestRedisLaunchOutage: with Redis down the app answers 503 with a plain message at once (launch,
// callback and pages alike), with no panic and no secret in the page; once Redis is back, launches
// work again without a restart of the app.
func TestRedisLaunchOutage(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{})
	patient := c.srv.Sandbox.Patients()[0].ID
	b := c.newBrowser(t)
	p, err := c.ehrLaunch(t, b, patient)
	if err != nil {
		t.Fatal(err)
	}
	// A launch that reached the EHR before the outage, with its callback after.
	pending := c.newBrowser(t)
	pending.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := pending.Get(c.launchURL(patient))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")

	c.redis.stop()
	for name, u := range map[string]struct {
		b   *browser
		url string
	}{
		"launch":   {c.newBrowser(t), c.launchURL(patient)},
		"callback": {pending, callback},
		"page":     {b, c.proxy.URL + "/?handle=" + url.QueryEscape(p.Handle)},
	} {
		start := time.Now()
		status, body, err := u.b.get(u.url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "temporarily unavailable") {
			t.Errorf("%s with Redis down: %d %.300s, want 503 with a plain message", name, status, body)
		}
		if d := time.Since(start); d > 2*redisstore.DefaultTimeout+time.Second {
			t.Errorf("%s with Redis down took %v", name, d)
		}
		if strings.Contains(string(body), "code=") || strings.Contains(string(body), "state=") {
			t.Errorf("%s: the 503 page leaks request parameters: %s", name, body)
		}
	}

	c.redis.start()
	var last error
	for range 20 { // go-redis reconnects on the next call
		if _, last = c.ehrLaunch(t, c.newBrowser(t), patient); last == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("no launch after Redis came back: %v", last)
	}
	if _, err := c.ehrLaunch(t, c.newBrowser(t), patient); err != nil {
		t.Fatalf("second launch after recovery: %v", err)
	}
}
