package backend

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// ErrConfig is wrapped by every error about an invalid Config.
var ErrConfig = errors.New("invalid backend configuration")

// Config is a SMART Backend Services client
// (https://hl7.org/fhir/smart-app-launch/backend-services.html): the client_credentials grant
// authenticated with a signed JWT assertion (private_key_jwt), shaped like
// golang.org/x/oauth2/clientcredentials.Config. Set ClientID, a key (PrivateKey or Keys), and
// FHIRBase or TokenURL; everything else has a safe default.
//
// With ClientSecret instead of a key, the client authenticates with client_secret_basic (or
// client_secret_post): that is plain OAuth 2.0 client_credentials for the APIs that require it, NOT
// SMART Backend Services, which forbids symmetric secrets (AUTH-03, CONV-4). When both a key and a
// secret are set, the key is used whenever the server supports private_key_jwt, and the secret is then
// never sent (AUTH-04); only a server whose discovery lists token_endpoint_auth_methods_supported
// without private_key_jwt gets the secret, with a warning on the token.
//
// A Config must not be modified while its methods run; TokenSource and Client take a copy.
type Config struct {
	// ClientID is the client_id issued at registration: the assertion's iss and sub.
	ClientID string
	// TokenURL is the token endpoint. When empty it is discovered from FHIRBase, and then must be on
	// FHIRBase's origin or one of TrustedOrigins (AUTH-09).
	TokenURL string
	// FHIRBase is the FHIR server's base URL: where TokenURL and the default scopes are discovered
	// (.well-known/smart-configuration), and an origin Client sends the token to.
	FHIRBase string
	// Scopes to request (BS-03). Empty means system/*.rs when the server advertises permission-v2,
	// else system/*.read (DefaultScopes; needs FHIRBase). patient/ and user/ scopes are refused unless
	// AllowNonSystemScopes.
	Scopes []string
	// AllowNonSystemScopes allows patient/ and user/ scopes, for servers with an out-of-band
	// arrangement that gives backend clients such context (BS-03).
	AllowNonSystemScopes bool
	// RequireScopes makes a token that grants less than Scopes, or whose response does not say what it
	// grants (no scope member, TOK-04), an error wrapping smart.ErrScopeNotGranted. Without it a
	// narrower or unknown grant is reported in Token.Warnings, and MissingScopes tells what is
	// missing: never silently ignored.
	RequireScopes bool

	// PrivateKey signs the assertions: an RSA key of at least 2048 bits (RS384) or a P-384 ECDSA
	// key (ES384); any crypto.Signer, so an HSM or KMS key works (AUTH-11).
	PrivateKey crypto.Signer
	// KeyID is the kid header (default: the RFC 7638 thumbprint of the public key). It must match
	// the kid of the key registered with the server (AUTH-05).
	KeyID string
	// Algorithm is "RS384" or "ES384" (default: from the key).
	Algorithm string
	// Keys, instead of PrivateKey/KeyID/Algorithm, signs with the key set's current key, for
	// rotation without downtime (JWKS-04).
	Keys *KeySet
	// JWKSetURL, when set, is sent as the jku header. Set it only when it equals, byte for byte, the
	// JWKS URL registered with the server (AUTH-05).
	JWKSetURL string
	// Certificates, leaf first, are sent as x5c with the leaf's x5t#S256, for servers that register
	// an X.509 certificate instead of a key. The leaf must certify PrivateKey.
	Certificates []*x509.Certificate

	// ClientSecret switches to secret-based plain OAuth 2.0 (see the type's doc).
	ClientSecret string
	// AuthStyle places ClientSecret: oauth2.AuthStyleInHeader (client_secret_basic, the default) or
	// oauth2.AuthStyleInParams (client_secret_post). Credentials are never sent both ways.
	AuthStyle oauth2.AuthStyle

	// EndpointParams are added to the token request; they may not override the grant, scope or
	// client authentication parameters.
	EndpointParams url.Values
	// Header is added to token requests and to Client's requests to trusted origins, for vendor
	// headers such as Epic-Client-ID. It may not hold Authorization.
	Header http.Header
	// Profile is the vendor profile the requests follow (CONV-5; smart.LookupProfile): its headers
	// (Epic-Client-ID) on discovery, token and Client requests, its discovery fallbacks and checks
	// (LenientDiscovery), the scopes it requests (grammar, ExtraScopes), the assertion's aud
	// (AssertionAud) and iat (AssertionBackdate), and whether a bare HTTP 400 from the token endpoint
	// is retried with a fresh assertion (RetryBare400). Its TrustedOrigins are not added: trust stays
	// the caller's decision. nil keeps this package's defaults, which retry a bare 400 once (CONV-3).
	Profile *smart.Profile

	// HTTPClient makes the token, discovery and Client requests; nil means a client with the CONV-2
	// timeouts. It is never modified.
	HTTPClient *http.Client
	// Now is the clock the assertions are stamped with (default time.Now). When this machine's clock
	// is known to differ from the server's, correct it here (BS-10).
	Now func() time.Time
	// AssertionLifetime is how far ahead the assertion's exp lies: DefaultAssertionLifetime (4 min)
	// when zero, at most MaxAssertionLifetime (AUTH-06).
	AssertionLifetime time.Duration
	// TrustedOrigins are further origins allowed to receive the assertion (a discovered token
	// endpoint on another origin) and the access token (CONV-1).
	TrustedOrigins []string
	// InsecureAllowHTTP allows plain http to hosts other than loopback: credentials then travel in
	// clear text. Safe only on a private test network (CONV-1, BS-07).
	InsecureAllowHTTP bool

	// Store shares tokens between processes (for example Redis); nil caches in memory only.
	Store smart.TokenStore
	// Locker, with Store, makes replicas fetch one token at a time between them.
	Locker smart.Locker

	// rand is the jti source (tests); nil means crypto/rand.
	rand io.Reader
	// sleep waits between retries (tests); nil means a timer bounded by ctx.
	sleep func(ctx context.Context, d time.Duration) error
}

// String describes c without its secrets: the private key and client secret are never printed
// (AUTH-11, CONV-4).
func (c Config) String() string {
	key := "none"
	switch {
	case c.Keys != nil:
		key = "KeySet"
	case c.PrivateKey != nil:
		key = fmt.Sprintf("%T", c.PrivateKey)
	}
	secret := ""
	if c.ClientSecret != "" {
		secret = " ClientSecret:REDACTED"
	}
	return fmt.Sprintf("backend.Config{ClientID:%q TokenURL:%q FHIRBase:%q Scopes:%q Key:%s KeyID:%q Algorithm:%q%s}",
		c.ClientID, c.TokenURL, c.FHIRBase, c.Scopes, key, c.KeyID, c.Algorithm, secret)
}

// GoString is String, so that %#v does not print secrets either.
func (c Config) GoString() string { return c.String() }

// Token requests a new token now: discovery when TokenURL or Scopes are unset, then a token request
// with a freshly signed assertion. It does not cache: use TokenSource or Client for repeated use.
// Token-endpoint errors are *oauth2.RetrieveError (errors.As), with the server's error,
// error_description and error_uri (BS-06).
func (c *Config) Token(ctx context.Context) (*smart.Token, error) {
	r, err := c.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if c.HTTPClient == nil {
		defer r.hc.CloseIdleConnections() // a one-off client: leave no idle connections behind
	}
	return r.fetch(ctx)
}

// TokenSource returns a caching oauth2.TokenSource (CONV-4, BS-05): the token is reused until shortly
// before it expires, renewed by one request at a time, dropped on Invalidate (smart.Transport calls it
// after a 401), and shared through Store when set. Discovery runs on the first fetch and is then kept,
// except that a discovered token endpoint answering invalid_client, 404 or 410 is discovered again (at
// most once a minute) and, if it moved, the request is retried once there (DISC-14).
//
// ctx bounds the fetches of Token(): pass a context that lives as long as the source (the process),
// never a request's. The source also implements smart.ContextTokenSource, whose TokenContext bounds a
// fetch by a per-call context instead; smart.Transport uses it. Its Current method returns the whole
// *smart.Token (granted scope, warnings).
func (c *Config) TokenSource(ctx context.Context) *TokenSource {
	cfg := *c
	l := &lazy{cfg: &cfg}
	cache := smart.NewCachingTokenSource(l.fetch, smart.CacheOptions{
		Key:    cfg.cacheKey(),
		Store:  cfg.Store,
		Locker: cfg.Locker,
		Now:    cfg.Now,
	})
	return &TokenSource{ctx: ctx, CachingTokenSource: cache}
}

// TokenSource is the caching token source of a Config.
type TokenSource struct {
	ctx context.Context
	*smart.CachingTokenSource
}

var (
	_ oauth2.TokenSource       = (*TokenSource)(nil)
	_ smart.ContextTokenSource = (*TokenSource)(nil)
	_ smart.Invalidator        = (*TokenSource)(nil)
)

// Token returns the cached token, fetching one bounded by the context given to Config.TokenSource.
func (s *TokenSource) Token() (*oauth2.Token, error) { return s.TokenContext(s.ctx) }

// Client returns an *http.Client that authenticates with TokenSource(ctx) (see its note on ctx). The
// token goes only to the origins of FHIRBase and TokenURL and to TrustedOrigins, checked on every
// redirect hop (CONV-1, BS-09); a 401 renews the token and retries once (CONV-3). A Config error
// surfaces on the first request.
func (c *Config) Client(ctx context.Context) *http.Client {
	hc := &http.Client{}
	var base http.RoundTripper
	if c.HTTPClient != nil {
		*hc = *c.HTTPClient
		base = c.HTTPClient.Transport
		if base == nil {
			base = http.DefaultTransport
		}
	}
	if base == nil {
		base = httpx.NewTransport()
	}
	origins, err := c.clientOrigins()
	if err != nil {
		hc.Transport = errTransport{err}
		return hc
	}
	if h := c.header(); len(h) > 0 {
		set, _ := httpx.NewOrigins(origins...)
		base = &headerTransport{base: base, header: h, trusted: set}
	}
	t, err := smart.NewTransportWithOptions(c.TokenSource(ctx), smart.TransportOptions{
		Base: base, TrustedOrigins: origins, InsecureAllowHTTP: c.InsecureAllowHTTP,
	})
	if err != nil {
		hc.Transport = errTransport{err}
		return hc
	}
	hc.Transport = t
	return hc
}

// CheckPublished fetches JWKSetURL, the JWK Set the server will verify assertions with, and checks
// that it publishes the current signing key under its kid (AUTH-12). Call it at start-up: a kid
// missing after a rotation mistake otherwise shows only as invalid_client at the token endpoint.
// The error wraps ErrKeyNotPublished when the key is missing, ErrConfig without JWKSetURL or a key.
func (c *Config) CheckPublished(ctx context.Context) error {
	if c.JWKSetURL == "" {
		return fmt.Errorf("backend: %w: CheckPublished needs JWKSetURL", ErrConfig)
	}
	if _, err := httpx.ParseAbsURL(c.JWKSetURL, c.InsecureAllowHTTP); err != nil {
		return fmt.Errorf("backend: %w: %w", ErrConfig, err)
	}
	s, err := c.newSigner()
	if err != nil {
		return err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	k, err := s.key(now())
	if err != nil {
		return err
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = httpx.NewClient(30 * time.Second)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.JWKSetURL, nil)
	if err != nil {
		return fmt.Errorf("backend: JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("backend: fetching the published JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return fmt.Errorf("backend: published JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("backend: published JWKS at %s: HTTP %d", originOf(c.JWKSetURL), resp.StatusCode)
	}
	return CheckPublished(body, k)
}

// clientOrigins lists the origins Client sends the access token to.
func (c *Config) clientOrigins() ([]string, error) {
	var out []string
	for _, s := range append([]string{c.FHIRBase, c.TokenURL}, c.TrustedOrigins...) {
		if s == "" {
			continue
		}
		u, err := httpx.ParseAbsURL(s, c.InsecureAllowHTTP)
		if err != nil {
			return nil, fmt.Errorf("backend: %w: %w", ErrConfig, err)
		}
		out = append(out, httpx.Origin(u))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("backend: %w: set FHIRBase or TokenURL", ErrConfig)
	}
	return out, nil
}

// header returns Header with the profile's vendor headers added (Header's own values win).
func (c *Config) header() http.Header {
	h := c.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if c.Profile != nil {
		c.Profile.ApplyHeaders(h, c.ClientID)
	}
	return h
}

// cacheKey names this client's token in a shared Store.
func (c *Config) cacheKey() string {
	h := sha256.New()
	parts := []string{c.TokenURL, c.FHIRBase, c.ClientID, strings.Join(c.Scopes, " ")}
	if c.Profile != nil { // a profile changes the scopes requested (ExtraScopes, grammar)
		b, _ := json.Marshal(c.Profile)
		parts = append(parts, string(b))
	}
	for _, s := range parts {
		io.WriteString(h, s)
		h.Write([]byte{0})
	}
	return "smartfhir:backend:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// rediscoverEvery bounds how often a TokenSource re-runs discovery after a token endpoint failure
// that suggests the endpoint moved (DISC-14).
const rediscoverEvery = time.Minute

// lazy resolves a Config once (discovery included) for a TokenSource; a failure is not kept. When the
// token endpoint was discovered and then answers invalid_client, 404 or 410, discovery runs again (at
// most once per rediscoverEvery), and if the token endpoint changed the request is sent once more, with
// a fresh assertion, to the new one (DISC-14). It never loops: one rediscovery and one retry per fetch.
type lazy struct {
	cfg *Config
	mu  sync.Mutex
	r   *resolved
	// rediscovered is when discovery last ran again (r.now's clock).
	rediscovered time.Time
}

func (l *lazy) fetch(ctx context.Context) (*smart.Token, error) {
	l.mu.Lock()
	r := l.r
	l.mu.Unlock()
	if r == nil {
		var err error
		if r, err = l.cfg.resolve(ctx); err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.r = r
		l.mu.Unlock()
	}
	tok, err := r.fetch(ctx)
	if err == nil || !l.mayRediscover(r, err) {
		return tok, err
	}
	fresh, derr := l.cfg.resolve(ctx)
	if derr != nil {
		return nil, err // the token endpoint's error is the one that matters
	}
	l.mu.Lock()
	l.r = fresh
	l.mu.Unlock()
	if fresh.tokenURL == r.tokenURL {
		return nil, err
	}
	return fresh.fetch(ctx)
}

// mayRediscover reports whether err, from r's token endpoint, warrants discovering it again: the
// endpoint was discovered (not configured), the server rejected the client or does not know the
// URL (invalid_client, 404, 410), and discovery has not run again within rediscoverEvery.
func (l *lazy) mayRediscover(r *resolved, err error) bool {
	if l.cfg.TokenURL != "" || l.cfg.FHIRBase == "" {
		return false
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return false
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	if re.ErrorCode != "invalid_client" && status != http.StatusNotFound && status != http.StatusGone {
		return false
	}
	now := r.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.rediscovered.IsZero() && now.Sub(l.rediscovered) < rediscoverEvery {
		return false
	}
	l.rediscovered = now
	return true
}

// headerTransport adds Config.Header to requests for trusted origins, without overriding headers the
// request already has.
type headerTransport struct {
	base    http.RoundTripper
	header  http.Header
	trusted httpx.Origins
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.trusted.Allows(req.URL) {
		return t.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	for k, vs := range t.header {
		if _, ok := r.Header[k]; !ok {
			r.Header[k] = append([]string(nil), vs...)
		}
	}
	return t.base.RoundTrip(r)
}

// errTransport fails every request with a configuration error.
type errTransport struct{ err error }

func (t errTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, t.err
}
