package launch

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// runtime is the validated, immutable form of a Config plus the caches shared by its handlers.
type runtime struct {
	c        *Config
	policy   *issuerPolicy
	clients  map[string]*http.Client // normalised issuer -> client with that issuer's extra headers
	now      func() time.Time
	log      *slog.Logger
	states   StateStore
	sessions SessionStore
	cookies  *browserSessions
	auth     clientAuth
	onError  func(http.ResponseWriter, *http.Request, error)

	maxStateAge, sessionAge, skew, margin time.Duration
	algs                                  []string
	landing                               string
	postThreshold                         int

	disco   discoveryCache
	jwks    jwksCache
	refresh singleflight.Group // one refresh at a time per session key (REF-04)
	invalid sync.Map           // session key -> access token invalidated after a 401
}

func newRuntime(c *Config) (*runtime, error) {
	if c.ClientID == "" {
		return nil, configErr("ClientID is required")
	}
	if err := c.checkRedirectURL(); err != nil {
		return nil, err
	}
	if len(c.AllowedIssuers) == 0 {
		return nil, configErr("AllowedIssuers is empty: no issuer could launch this app")
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			return nil, configErr("Scopes: %q is not a single scope token", quote(s))
		}
	}
	rt := &runtime{
		c:             c,
		now:           c.Now,
		states:        c.StateStore,
		sessions:      c.SessionStore,
		onError:       c.OnError,
		maxStateAge:   orDefault(c.MaxStateAge, DefaultMaxStateAge),
		sessionAge:    orDefault(c.SessionAge, DefaultSessionAge),
		skew:          orDefault(c.ClockSkew, DefaultClockSkew),
		margin:        orDefault(c.RefreshMargin, DefaultRefreshMargin),
		landing:       c.LandingURL,
		postThreshold: c.AuthorizePostThreshold,
	}
	var err error
	if rt.policy, err = newIssuerPolicy(c); err != nil {
		return nil, err
	}
	if rt.auth, err = newClientAuth(c); err != nil {
		return nil, err
	}
	if rt.cookies, err = newBrowserSessions(c, rt.sessionAge); err != nil {
		return nil, err
	}
	rt.algs = []string{"RS256"}
	if len(c.IDTokenAlgorithms) > 0 {
		rt.algs = nil
		for _, a := range c.IDTokenAlgorithms {
			if !slices.Contains(asymmetricAlgs, a) {
				return nil, configErr("IDTokenAlgorithms: %q is not allowed (RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512)", quote(a))
			}
			rt.algs = append(rt.algs, a)
		}
	}
	if rt.now == nil {
		rt.now = time.Now
	}
	if rt.states == nil {
		rt.states = new(MemoryStateStore)
	}
	if rt.sessions == nil {
		rt.sessions = new(MemorySessionStore)
	}
	if rt.onError == nil {
		rt.onError = ErrorPage
	}
	if rt.landing == "" {
		rt.landing = "/"
	}
	if strings.ContainsAny(rt.landing, "#") {
		return nil, configErr("LandingURL must not have a fragment")
	}
	if rt.postThreshold == 0 {
		rt.postThreshold = DefaultAuthorizePostThreshold
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rt.log = slog.New(httpx.NewRedactingHandler(logger.Handler())).With("pkg", "launch")

	base := c.HTTPClient
	if base == nil {
		base = httpx.NewClient(60 * time.Second)
	}
	rt.clients = map[string]*http.Client{}
	for n := range rt.policy.allowed {
		hc := *base
		hc.CheckRedirect = sameOriginRedirects(base.CheckRedirect)
		if h := rt.policy.settings[n].Header; len(h) > 0 {
			tr := hc.Transport
			if tr == nil {
				tr = http.DefaultTransport
			}
			hc.Transport = &headerTransport{base: tr, header: h.Clone()}
		}
		rt.clients[n] = &hc
	}
	return rt, nil
}

// sameOriginRedirects refuses a redirect to another origin (DISC-14), then applies the app's own
// policy, if any. Discovery, JWK Sets and openid-configuration are fetched with it; token requests
// follow no redirect at all, and the FHIR client of a Session only same-origin ones.
func sameOriginRedirects(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if err := httpx.SameOriginRedirects(req, via); err != nil {
			return err
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// asymmetricAlgs are the signature algorithms an id_token may use at all (IDT-02): never none, never HMAC.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}

// headerTransport adds an issuer's extra (non-credential) headers to every request that does not set
// them itself (IssuerSettings.Header).
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range t.header {
		if r.Header.Get(k) != "" {
			continue
		}
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return t.base.RoundTrip(r)
}

// client returns the HTTP client for a normalised, allowed issuer.
func (rt *runtime) client(norm string) *http.Client { return rt.clients[norm] }

// fail reports err to the log and to OnError.
func (rt *runtime) fail(w http.ResponseWriter, r *http.Request, err error) {
	rt.log.Warn("launch failed", "path", r.URL.Path, "err", err.Error())
	rt.onError(w, r, err)
}
