package backend

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// maxAttempts bounds the token requests of one fetch, retries included (CONV-3).
const maxAttempts = 3

// reservedParams are the token request parameters EndpointParams may not set.
var reservedParams = []string{"grant_type", "scope", "client_assertion_type", "client_assertion", "client_id", "client_secret"}

// RetryAfterError reports a token endpoint that asked (429 or 503 with Retry-After) to come back
// later than one call waits: after httpx.MaxAPIWait (CONV-3) or the context's deadline. Err is the
// endpoint's *oauth2.RetrieveError.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

// Error says how long the server asked to wait, and why.
func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("backend: token endpoint asks to retry after %v: %v", e.After.Round(time.Second), e.Err)
}

// Unwrap returns the token endpoint's error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// authMethod is how the client authenticates at the token endpoint.
type authMethod int

const (
	authPrivateKeyJWT authMethod = iota
	authSecretBasic
	authSecretPost
)

// resolved is a checked Config with its token endpoint and scopes known.
type resolved struct {
	cfg      *Config
	hc       *http.Client
	header   http.Header // Config.Header with the profile's headers
	auth     authMethod
	secret   authMethod // with both a key and a secret: the secret's method, for a server without private_key_jwt (AUTH-04)
	tokenURL string
	scopes   []string
	conf     *smart.Configuration // discovered (nil when TokenURL and Scopes made discovery unnecessary)
	signer   *assertionSigner
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	warnings []string // added to every token (an AUTH-04 fallback to the secret)
}

// resolve checks c and, when TokenURL or Scopes are unset, discovers them from FHIRBase.
func (c *Config) resolve(ctx context.Context) (*resolved, error) {
	r, err := c.check()
	if err != nil {
		return nil, err
	}
	if c.TokenURL == "" || len(c.Scopes) == 0 {
		if err := r.discover(ctx); err != nil {
			return nil, err
		}
	}
	if p := c.Profile; p != nil {
		r.scopes = p.RequestScopes(r.scopes, r.conf)
	}
	if err := r.checkScopes(); err != nil {
		return nil, err
	}
	if r.auth == authPrivateKeyJWT {
		if err := r.assertionAudience(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// assertionAudience sets the assertion's aud: the token URL (AUTH-06), or with a profile's
// AssertionAudienceMetadata the base URL the CapabilityStatement states (Epic's on-premises backend
// flow), which must then be a trusted origin like a token endpoint (AUTH-09).
func (r *resolved) assertionAudience(ctx context.Context) error {
	c := r.cfg
	r.signer.aud = r.tokenURL
	p := c.Profile
	if p == nil || p.AssertionAud != smart.AssertionAudienceMetadata {
		return nil
	}
	var info *smart.ServerInfo
	if c.FHIRBase != "" {
		d := r.discoverer()
		var err error
		if info, err = d.ServerInfo(ctx, c.FHIRBase); err != nil {
			return fmt.Errorf("backend: assertion audience: %w", err)
		}
	}
	aud, err := p.AssertionAudience(r.tokenURL, info)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	u, err := httpx.ParseAbsURL(aud, c.InsecureAllowHTTP)
	if err != nil {
		return fmt.Errorf("backend: assertion audience from the CapabilityStatement: %w", err)
	}
	if trusted, err := r.trustedOrigins(); err != nil || !trusted.Allows(u) {
		return fmt.Errorf("backend: %w: the CapabilityStatement's implementation.url is on %s, not a trusted origin; add it to TrustedOrigins if it is yours",
			smart.ErrUntrustedEndpoint, httpx.Origin(u))
	}
	r.signer.aud = aud
	return nil
}

// trustedOrigins are the origins an assertion may be signed for (AUTH-09): the FHIR base's, the
// configured TokenURL's and TrustedOrigins.
func (r *resolved) trustedOrigins() (httpx.Origins, error) {
	c := r.cfg
	return httpx.NewOrigins(append([]string{c.FHIRBase, c.TokenURL}, c.TrustedOrigins...)...)
}

// discoverer returns the Discoverer for the server: the client's HTTP client and headers, the
// profile's fallbacks.
func (r *resolved) discoverer() *smart.Discoverer {
	c := r.cfg
	d := &smart.Discoverer{HTTPClient: r.hc, Header: r.header.Clone(), InsecureAllowHTTP: c.InsecureAllowHTTP}
	if c.Profile != nil {
		c.Profile.ApplyDiscoverer(d, c.ClientID)
	}
	return d
}

// check validates everything that needs no network.
func (c *Config) check() (*resolved, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("backend: %w: "+format, append([]any{ErrConfig}, a...)...)
	}
	if c.ClientID == "" {
		return nil, bad("ClientID is required")
	}
	r := &resolved{cfg: c, hc: c.HTTPClient, header: c.header(), tokenURL: c.TokenURL, scopes: c.Scopes, now: c.Now, sleep: c.sleep}
	if r.hc == nil {
		r.hc = httpx.NewClient(60 * time.Second)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.sleep == nil {
		r.sleep = sleepCtx
	}
	switch {
	case c.FHIRBase == "" && c.TokenURL == "":
		return nil, bad("set FHIRBase or TokenURL")
	case c.FHIRBase == "" && len(c.Scopes) == 0:
		return nil, bad("Scopes are required without FHIRBase to choose a default from (BS-02)")
	}
	for _, s := range []string{c.FHIRBase, c.TokenURL, c.JWKSetURL} {
		if s == "" {
			continue
		}
		if _, err := httpx.ParseAbsURL(s, c.InsecureAllowHTTP); err != nil {
			return nil, fmt.Errorf("backend: %w: %w", ErrConfig, err)
		}
	}
	if _, err := c.clientOrigins(); err != nil {
		return nil, err
	}
	for _, p := range reservedParams {
		if _, ok := c.EndpointParams[p]; ok {
			return nil, bad("EndpointParams may not set %s", p)
		}
	}
	if c.Header.Get("Authorization") != "" {
		return nil, bad("Header may not set Authorization")
	}
	if p := c.Profile; p != nil {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("backend: %w: %w", ErrConfig, err)
		}
	}
	if c.ClientSecret != "" {
		switch c.AuthStyle {
		case oauth2.AuthStyleAutoDetect, oauth2.AuthStyleInHeader:
			r.auth = authSecretBasic
		case oauth2.AuthStyleInParams:
			r.auth = authSecretPost
		default:
			return nil, bad("unknown AuthStyle %d", c.AuthStyle)
		}
	}
	switch {
	case c.PrivateKey != nil || c.Keys != nil:
		s, err := c.newSigner()
		if err != nil {
			return nil, err
		}
		if c.Profile != nil {
			s.issuedAt = c.Profile.AssertionIssuedAt
		}
		r.secret = r.auth // authPrivateKeyJWT (0) when there is no secret
		r.signer, r.auth = s, authPrivateKeyJWT
	case c.ClientSecret == "":
		return nil, bad("set PrivateKey or Keys (or, for plain OAuth 2.0, ClientSecret)")
	}
	return r, nil
}

// newSigner builds the assertion signer of a key-based Config.
func (c *Config) newSigner() (*assertionSigner, error) {
	lifetime, err := assertionLifetime(c.AssertionLifetime)
	if err != nil {
		return nil, err
	}
	s := &assertionSigner{clientID: c.ClientID, lifetime: lifetime, jku: c.JWKSetURL, rand: c.rand}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	switch {
	case c.PrivateKey != nil && c.Keys != nil:
		return nil, fmt.Errorf("backend: %w: set PrivateKey or Keys, not both", ErrConfig)
	case c.Keys != nil:
		if c.KeyID != "" || c.Algorithm != "" || len(c.Certificates) > 0 {
			return nil, fmt.Errorf("backend: %w: KeyID, Algorithm and Certificates go with PrivateKey, not Keys", ErrConfig)
		}
		s.key = c.Keys.Signing
	default:
		k, err := Key{Signer: c.PrivateKey, ID: c.KeyID, Algorithm: c.Algorithm}.normalize()
		if err != nil {
			return nil, err
		}
		if s.x5c, s.x5t, err = newCertHeaders(c.Certificates, k); err != nil {
			return nil, err
		}
		s.key = func(time.Time) (Key, error) { return k, nil }
	}
	return s, nil
}

// discover reads the server's SMART configuration for the token endpoint and default scopes.
func (r *resolved) discover(ctx context.Context) error {
	c := r.cfg
	conf, err := r.discoverer().Discover(ctx, c.FHIRBase)
	if err != nil {
		return fmt.Errorf("backend: discovery: %w", err)
	}
	r.conf = conf
	r.pickAuth(conf)
	if len(r.scopes) == 0 {
		r.scopes = DefaultScopes(conf)
	}
	if r.tokenURL != "" {
		return nil
	}
	lenient := c.Profile != nil && c.Profile.LenientDiscovery
	if r.auth == authPrivateKeyJWT {
		if err := r.checkBackend(conf); err != nil { // BS-01
			return fmt.Errorf("backend: %w", err)
		}
		if k, err := r.signer.key(r.now()); err == nil && !lenient {
			if _, err := conf.PickSigningAlg(k.Algorithm); err != nil {
				return fmt.Errorf("backend: %w", err)
			}
		}
	} else if lenient {
		if conf.TokenEndpoint == "" {
			return fmt.Errorf("backend: %w", smart.ErrMissingTokenEndpoint)
		}
	} else if m := conf.GrantTypesSupported; len(m) > 0 && !slices.Contains(m, "client_credentials") {
		return fmt.Errorf("backend: %w: client_credentials is not in grant_types_supported", smart.ErrGrantTypeNotSupported)
	}
	u, err := httpx.ParseAbsURL(conf.TokenEndpoint, c.InsecureAllowHTTP)
	if err != nil {
		return fmt.Errorf("backend: token_endpoint: %w", err)
	}
	trusted, err := httpx.NewOrigins(append([]string{c.FHIRBase}, c.TrustedOrigins...)...)
	if err != nil {
		return fmt.Errorf("backend: %w: %w", ErrConfig, err)
	}
	if !trusted.Allows(u) { // AUTH-09: never sign for an audience the caller did not choose
		return fmt.Errorf("backend: %w: token_endpoint is on %s, not on the FHIR base's origin; add it to TrustedOrigins if it is yours",
			smart.ErrUntrustedEndpoint, httpx.Origin(u))
	}
	r.tokenURL = conf.TokenEndpoint
	return nil
}

// checkBackend is the profile's CheckBackend, or Configuration.RequireBackend without one (BS-01).
func (r *resolved) checkBackend(conf *smart.Configuration) error {
	if p := r.cfg.Profile; p != nil {
		return p.CheckBackend(conf)
	}
	return conf.RequireBackend()
}

// pickAuth chooses between a key and a secret when the Config has both (AUTH-04): private_key_jwt,
// unless the server lists token_endpoint_auth_methods_supported without it (DISC-10). Servers
// under-advertise, so silence means the key, and so does a profile with LenientDiscovery.
func (r *resolved) pickAuth(conf *smart.Configuration) {
	if r.auth != authPrivateKeyJWT || r.secret == authPrivateKeyJWT || r.cfg.Profile != nil && r.cfg.Profile.LenientDiscovery {
		return
	}
	m := conf.TokenEndpointAuthMethodsSupported
	if len(m) == 0 || slices.Contains(m, smart.AuthMethodPrivateKeyJWT) {
		return
	}
	r.auth = r.secret
	r.warnings = append(r.warnings, "auth: the server does not support private_key_jwt (token_endpoint_auth_methods_supported: "+
		strings.Join(m, " ")+"); authenticated with the client secret, as plain OAuth 2.0 (AUTH-04)")
}

// checkScopes refuses patient/ and user/ scopes unless allowed (BS-03).
func (r *resolved) checkScopes() error {
	if len(r.scopes) == 0 {
		return fmt.Errorf("backend: %w: no scopes to request (BS-02)", ErrConfig)
	}
	if r.cfg.AllowNonSystemScopes {
		return nil
	}
	for _, s := range smart.ParseScopesLenient(strings.Join(r.scopes, " ")) {
		if s.Kind == smart.KindResource && s.Context != "system" {
			return fmt.Errorf("backend: %w: %q is not a system/ scope; backend services request system/ scopes (set AllowNonSystemScopes for an out-of-band arrangement)",
				ErrConfig, s.Raw)
		}
	}
	return nil
}

// DefaultScopes returns the scopes a backend client requests when none are configured (CONV-6,
// BS-03): system/*.rs when the server advertises permission-v2, else system/*.read.
func DefaultScopes(conf *smart.Configuration) []string {
	if conf != nil && conf.ScopeStyle() == smart.ScopeStyleV2 {
		return []string{"system/*.rs"}
	}
	return []string{"system/*.read"}
}

// MissingScopes returns the requested scopes tok does not grant, v1 and v2 spellings compared by
// meaning (system/*.read is granted by system/*.rs). When the token response omitted scope
// (tok.ScopeOmitted) the grant is unknown, not empty: MissingScopes returns nil rather than a false
// list, and the caller must check ScopeOmitted (TOK-04). A nil tok grants nothing.
func MissingScopes(requested []string, tok *smart.Token) []string {
	req := smart.ParseScopesLenient(strings.Join(requested, " "))
	if tok == nil {
		return scopeStrings(req)
	}
	if tok.ScopeOmitted {
		return nil
	}
	return scopeStrings(smart.Diff(req, tok.GrantedScopes()))
}

func scopeStrings(ss smart.Scopes) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Raw
	}
	return out
}

// fetch requests a token, retrying only where a retry cannot replay anything (CONV-3, AUTH-10):
// each attempt signs a new assertion; 429 and 503 wait for Retry-After (or back off); a bare 400
// with no JSON body (Epic; with a Profile, only when it says so) and an invalid_client that blames
// the clock or the jti are retried once.
// At most maxAttempts requests are made.
func (r *resolved) fetch(ctx context.Context) (*smart.Token, error) {
	var bareRetried, clockRetried bool
	for attempt := 1; ; attempt++ {
		form, hdr, err := r.request()
		if err != nil {
			return nil, err
		}
		tok, err := smart.ExchangeToken(ctx, r.hc, r.tokenURL, form, hdr)
		if err == nil {
			r.rebase(tok)
			return r.grant(tok)
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response == nil || attempt >= maxAttempts {
			return nil, r.explain(err, clockRetried)
		}
		var wait time.Duration
		switch status := re.Response.StatusCode; {
		case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
			d, ok := httpx.ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
			if !ok {
				d = httpx.Backoff(attempt, 0)
			}
			if dl, has := ctx.Deadline(); d > httpx.MaxAPIWait || has && time.Until(dl) < d {
				return nil, &RetryAfterError{After: d, Err: err}
			}
			wait = d
		case !bareRetried && r.retryBare400(err, re):
			bareRetried = true // Epic's flaky bare 400: once more with a fresh assertion
		case re.ErrorCode == "invalid_client" && r.auth == authPrivateKeyJWT && blamesClock(re.ErrorDescription) && !clockRetried:
			clockRetried = true
		default:
			return nil, r.explain(err, clockRetried)
		}
		if err := r.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("backend: waiting to retry the token request: %w", err)
		}
	}
}

// retryBare400 reports whether a failed client_credentials request is sent once more with a fresh
// assertion: after a bare HTTP 400 (no OAuth error, no description), as the profile's
// ShouldRetryToken says, or always without a profile (CONV-3).
func (r *resolved) retryBare400(err error, re *oauth2.RetrieveError) bool {
	if p := r.cfg.Profile; p != nil {
		return p.ShouldRetryToken(err)
	}
	return re.Response.StatusCode == http.StatusBadRequest && re.ErrorCode == "" && re.ErrorDescription == ""
}

// rebase moves tok's expiry from the real clock, which smart.ExchangeToken reads, to Config.Now,
// which the cache compares it with: with a skew-corrected Now (BS-10) every token would otherwise look
// expired (or fresh) by the correction.
func (r *resolved) rebase(tok *smart.Token) {
	if r.cfg.Now == nil || tok.Expiry.IsZero() {
		return
	}
	tok.Expiry = tok.Expiry.Add(r.now().Sub(time.Now()))
}

// request builds one token request; a key-based client gets a freshly signed assertion.
func (r *resolved) request() (url.Values, http.Header, error) {
	c := r.cfg
	form := url.Values{}
	for k, vs := range c.EndpointParams {
		form[k] = slices.Clone(vs)
	}
	form.Set("grant_type", "client_credentials")
	form.Set("scope", strings.Join(r.scopes, " "))
	hdr := r.header.Clone()
	switch r.auth {
	case authPrivateKeyJWT:
		a, err := r.signer.sign(r.now())
		if err != nil {
			return nil, nil, err
		}
		form.Set("client_assertion_type", ClientAssertionType)
		form.Set("client_assertion", a)
	case authSecretBasic: // RFC 6749 §2.3.1: each part form-encoded before base64 (AUTH-02)
		creds := url.QueryEscape(c.ClientID) + ":" + url.QueryEscape(c.ClientSecret)
		hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(creds)))
	case authSecretPost:
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
	}
	return form, hdr, nil
}

// grant checks the granted scope against the requested one: a narrower grant is an error with
// RequireScopes, else a warning on the token. It drops any refresh token.
func (r *resolved) grant(tok *smart.Token) (*smart.Token, error) {
	// Backend services get a new token with a new assertion; a refresh token (which servers SHOULD
	// NOT issue here) is a credential with no use: drop it rather than cache or share it (BS-04).
	tok.RefreshToken = ""
	tok.Warnings = append(tok.Warnings, r.warnings...)
	if tok.ScopeOmitted { // TOK-04: the grant is unknown, which is not the same as nothing granted
		if r.cfg.RequireScopes {
			return nil, fmt.Errorf("backend: %w", &smart.ScopeError{Scope: strings.Join(r.scopes, " "),
				Reason: "the server did not say which scopes it granted (no scope in the token response)", Err: smart.ErrScopeNotGranted})
		}
		tok.Warnings = append(tok.Warnings, "scope: the server did not say which scopes it granted; requested: "+strings.Join(r.scopes, " "))
		return tok, nil
	}
	missing := MissingScopes(r.scopes, tok)
	if len(missing) == 0 {
		return tok, nil
	}
	if r.cfg.RequireScopes {
		return nil, fmt.Errorf("backend: %w", &smart.ScopeError{Scope: strings.Join(missing, " "),
			Reason: "requested but not granted", Err: smart.ErrScopeNotGranted})
	}
	tok.Warnings = append(tok.Warnings, "scope: not granted: "+strings.Join(missing, " "))
	return tok, nil
}

// explain wraps a final token error, adding a clock hint when the server kept blaming the
// assertion's timing (BS-10).
func (r *resolved) explain(err error, clockRetried bool) error {
	var re *oauth2.RetrieveError
	if clockRetried && errors.As(err, &re) && blamesClock(re.ErrorDescription) {
		return fmt.Errorf("backend: token endpoint %s rejected the assertion twice for its timing or jti; check this machine's clock (or correct it with Config.Now): %w",
			originOf(r.tokenURL), err)
	}
	// athenaPractice's {"message","id"} and other non-OAuth errors: the server's message, not an empty code.
	return fmt.Errorf("backend: token endpoint %s: %w", originOf(r.tokenURL), smart.ClassifyTokenError(err))
}

// blamesClock reports whether an invalid_client description points at the assertion's exp, iat,
// nbf or jti, the failures a fresh assertion may cure (AUTH-10). An expired registration or a revoked
// key is not among them.
func blamesClock(desc string) bool {
	d := strings.ToLower(desc)
	if strings.Contains(d, "registration") || strings.Contains(d, "revoked") {
		return false
	}
	if strings.Contains(d, "not yet valid") || strings.Contains(d, "in the future") || strings.Contains(d, "already been used") ||
		strings.Contains(d, "already used") {
		return true
	}
	for _, w := range strings.FieldsFunc(d, func(r rune) bool { return !unicode.IsLetter(r) }) {
		switch w {
		case "jti", "exp", "iat", "nbf", "expired", "clock", "skew", "replay", "replayed":
			return true
		}
	}
	return false
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return httpx.Origin(u)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
