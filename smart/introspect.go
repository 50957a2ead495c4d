package smart

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Introspection limits and defaults.
const (
	// DefaultIntrospectionTimeout bounds one Introspect call when the HTTPClient has no timeout of
	// its own.
	DefaultIntrospectionTimeout = 30 * time.Second
	// DefaultIntrospectionCacheSize bounds the cache when CacheTTL is set and MaxCacheEntries is not.
	DefaultIntrospectionCacheSize = 10000
	// maxIntrospectedToken bounds the token Introspect sends.
	maxIntrospectedToken = 64 << 10
)

// Introspection errors. HTTP failures are *IntrospectionError, malformed answers
// *IntrospectionResponseError; both wrap one of these.
var (
	// ErrIntrospection: the introspection endpoint answered with a status other than 200.
	ErrIntrospection = errors.New("token introspection failed")
	// ErrIntrospectionUnauthorized: the endpoint refused our own credentials (401 or 403).
	ErrIntrospectionUnauthorized = errors.New("token introspection not authorized")
	// ErrMalformedIntrospection: a 200 answer that breaks RFC 7662 or SMART's required members.
	ErrMalformedIntrospection = errors.New("malformed introspection response")
	// ErrIntrospectorConfig: the Introspector cannot be used as configured.
	ErrIntrospectorConfig = errors.New("introspector misconfigured")
)

// Introspector asks an authorization server about a token (RFC 7662, SMART token introspection:
// https://hl7.org/fhir/smart-app-launch/token-introspection.html). Set Endpoint and exactly one way
// of authenticating: TokenSource (a bearer token, what SMART servers expect, INTRO-01), ClientSecret
// (client_secret_basic) or ClientAssertion (private_key_jwt). An Introspector holds a cache: use it by
// pointer and do not copy it after first use. It is safe for concurrent use.
//
// Where the token goes is the caller's decision: check that Endpoint is an endpoint of the server
// that issued the tokens (Configuration.CheckEndpointOrigins, CONV-1).
type Introspector struct {
	// Endpoint is the introspection endpoint (Profile.IntrospectionURL): https, or http on loopback.
	Endpoint string
	// HTTPClient sends the requests; nil means one with the CONV-2 timeouts. Redirects are never
	// followed: the request carries credentials.
	HTTPClient *http.Client
	// TokenSource supplies the bearer token that authenticates each request. When it is an
	// Invalidator, a 401 invalidates the token and the request is retried once with a new one.
	TokenSource oauth2.TokenSource
	// ClientID, with ClientSecret (client_secret_basic) or ClientAssertion (private_key_jwt),
	// authenticates the request as a client instead.
	ClientID     string
	ClientSecret string
	// ClientAssertion returns a fresh signed client assertion for each request.
	ClientAssertion func(ctx context.Context) (string, error)
	// Header is added to every request (vendor headers, Profile.Header). It may not hold credentials.
	Header http.Header
	// InsecureAllowHTTP allows a plain-http Endpoint that is not loopback: tokens then cross the
	// network in clear text. Only for closed test networks (CONV-1).
	InsecureAllowHTTP bool
	// Now is the clock for exp, nbf and the cache (default time.Now).
	Now func() time.Time
	// Leeway is how long past exp (and before nbf) a token is still taken as valid, for clock skew
	// between this machine and the server. 0 means none: exp is checked exactly (INTRO-04).
	Leeway time.Duration
	// CacheTTL, when positive, keeps active answers for at most that long, and never past the token's
	// exp (INTRO-05). 0 disables the cache, so that a revoked token is seen at once.
	CacheTTL time.Duration
	// MaxCacheEntries bounds the cache (default DefaultIntrospectionCacheSize).
	MaxCacheEntries int

	mu    sync.Mutex
	cache map[[sha256.Size]byte]introspectionEntry
	hc    *http.Client // the default client, built once
}

type introspectionEntry struct {
	res   *Introspection
	until time.Time
}

// Introspection is an introspection answer. Only Active, Expired and, for a locally expired token,
// Expiry are set when the token is not active: nothing else the server said is read (INTRO-02).
type Introspection struct {
	// Active is true when the server says the token is active and its exp has not passed by the
	// local clock (INTRO-04).
	Active bool `json:"active"`
	// Expired is true when the server said active but exp (or nbf) rules the token out by the local
	// clock.
	Expired bool `json:"expired,omitempty"`
	// Scope is the granted scope string (required, INTRO-03).
	Scope string `json:"scope,omitempty"`
	// ClientID is the client the token was issued to (required).
	ClientID string `json:"client_id,omitempty"`
	// Expiry is exp (required); IssuedAt and NotBefore are iat and nbf when sent.
	Expiry    time.Time `json:"exp,omitzero"`
	IssuedAt  time.Time `json:"iat,omitzero"`
	NotBefore time.Time `json:"nbf,omitzero"`
	// Issuer, Subject and FHIRUser are present when an id_token was issued (INTRO-03).
	Issuer   string `json:"iss,omitempty"`
	Subject  string `json:"sub,omitempty"`
	FHIRUser string `json:"fhirUser,omitempty"`
	// Username, TokenType and Audience are RFC 7662's optional members (aud as a list).
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	// LaunchContext is the token's launch context (patient, encounter, fhirContext, intent…), with
	// unknown members kept in Extensions.
	LaunchContext
	// Warnings lists tolerated deviations (a numeric string where a number belongs…).
	Warnings []string `json:"warnings,omitempty"`
}

// GrantedScopes parses Scope leniently.
func (in *Introspection) GrantedScopes() Scopes { return ParseScopesLenient(in.Scope) }

// clone returns a deep copy, so that cached answers cannot be changed through a returned one.
func (in *Introspection) clone() *Introspection {
	c := *in
	c.Audience = slices.Clone(in.Audience)
	c.Warnings = slices.Clone(in.Warnings)
	c.FHIRContext = slices.Clone(in.FHIRContext)
	c.Extensions = maps.Clone(in.Extensions)
	return &c
}

// IntrospectionError reports an introspection endpoint answer other than 200. It never includes the
// token: server text is scrubbed of it and bounded.
type IntrospectionError struct {
	// Origin is the endpoint's origin.
	Origin string
	// StatusCode is the HTTP status.
	StatusCode int
	// ErrorCode and Description are the OAuth error and error_description when the body had them.
	ErrorCode, Description string
}

// Error names the origin, status and the server's error.
func (e *IntrospectionError) Error() string {
	msg := fmt.Sprintf("smart: introspection at %s: HTTP %d", e.Origin, e.StatusCode)
	if e.ErrorCode != "" {
		msg += ": " + e.ErrorCode
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

// Is matches ErrIntrospection, and ErrIntrospectionUnauthorized for 401 and 403.
func (e *IntrospectionError) Is(target error) bool {
	return target == ErrIntrospection ||
		target == ErrIntrospectionUnauthorized && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// IntrospectionResponseError reports a 200 answer that breaks RFC 7662 §2.2 or SMART's required
// members (INTRO-03). Field names the member; its value is never quoted.
type IntrospectionResponseError struct {
	Field, Reason string
}

// Error names the member and the reason.
func (e *IntrospectionResponseError) Error() string {
	if e.Field == "" {
		return "smart: malformed introspection response: " + e.Reason
	}
	return "smart: malformed introspection response: " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrMalformedIntrospection) true.
func (e *IntrospectionResponseError) Unwrap() error { return ErrMalformedIntrospection }

// Introspect asks the server about token (INTRO-01…05); see IntrospectWithHint.
func (in *Introspector) Introspect(ctx context.Context, token string) (*Introspection, error) {
	return in.IntrospectWithHint(ctx, token, "")
}

// IntrospectWithHint asks the server about token, with a token_type_hint ("access_token",
// "refresh_token") when hint is not empty:
//   - POST application/x-www-form-urlencoded token=…, Accept: application/json, authenticated as
//     configured; redirects are not followed; the answer is capped at 1 MiB (INTRO-01);
//   - "active": false means inactive and nothing else is read (INTRO-02);
//   - an active answer must have scope, client_id and exp; the launch context, iss, sub and fhirUser
//     are read (INTRO-03);
//   - exp (and nbf) are checked against the local clock with Leeway even when the server says active:
//     a token past exp comes back inactive with Expired set (INTRO-04);
//   - with CacheTTL, an active answer is reused until min(exp, now + CacheTTL), and only for the same
//     credentials: the cache key covers our bearer token or client identity (INTRO-05).
//
// Errors never contain the token or our credentials.
func (in *Introspector) IntrospectWithHint(ctx context.Context, token, hint string) (*Introspection, error) {
	if token == "" || len(token) > maxIntrospectedToken {
		return nil, fmt.Errorf("smart: introspection: %w: the token is empty or longer than %d bytes", ErrIntrospectorConfig, maxIntrospectedToken)
	}
	endpoint, err := in.endpoint()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok && (in.HTTPClient == nil || in.HTTPClient.Timeout == 0) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultIntrospectionTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		auth, err := in.credentials(ctx)
		if err != nil {
			return nil, err
		}
		key := cacheKey(auth.identity, token, hint)
		if res, ok := in.cached(key); ok {
			return res, nil
		}
		res, status, err := in.post(ctx, endpoint, token, hint, auth)
		if status == http.StatusUnauthorized && attempt == 0 && auth.bearer != nil {
			if inv, ok := in.TokenSource.(Invalidator); ok {
				inv.Invalidate(auth.bearer)
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		in.store(key, res)
		return res.clone(), nil
	}
}

// endpoint parses and checks Endpoint (CONV-1).
func (in *Introspector) endpoint() (*url.URL, error) {
	if in.Endpoint == "" {
		return nil, fmt.Errorf("smart: introspection: %w: no Endpoint", ErrIntrospectorConfig)
	}
	u, err := httpx.ParseAbsURL(in.Endpoint, in.InsecureAllowHTTP)
	if err != nil {
		return nil, fmt.Errorf("smart: introspection endpoint: %w", err)
	}
	return u, nil
}

// introspectionAuth is how one request authenticates.
type introspectionAuth struct {
	bearer   *oauth2.Token // TokenSource
	form     url.Values    // client_assertion
	basic    bool          // client_secret_basic
	identity []byte        // what the cache key binds answers to
	secrets  []string      // scrubbed from server text
}

// credentials returns the authentication of the next request.
func (in *Introspector) credentials(ctx context.Context) (*introspectionAuth, error) {
	n := 0
	for _, set := range []bool{in.TokenSource != nil, in.ClientSecret != "", in.ClientAssertion != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("smart: introspection: %w: set exactly one of TokenSource, ClientSecret and ClientAssertion", ErrIntrospectorConfig)
	}
	for k := range in.Header {
		if httpx.IsSensitive(k) || strings.EqualFold(k, "Proxy-Authorization") {
			return nil, fmt.Errorf("smart: introspection: %w: Header may not carry %s", ErrIntrospectorConfig, k)
		}
	}
	switch {
	case in.TokenSource != nil:
		tok, err := (&Transport{src: in.TokenSource}).token(ctx) // the same checks as every bearer request
		if err != nil {
			return nil, fmt.Errorf("smart: introspection: bearer token: %w", err)
		}
		return &introspectionAuth{bearer: tok, identity: []byte("bearer\x00" + tok.AccessToken), secrets: []string{tok.AccessToken}}, nil
	case in.ClientSecret != "":
		if in.ClientID == "" {
			return nil, fmt.Errorf("smart: introspection: %w: ClientSecret needs ClientID", ErrIntrospectorConfig)
		}
		return &introspectionAuth{basic: true, identity: []byte("basic\x00" + in.ClientID + "\x00" + in.ClientSecret),
			secrets: []string{in.ClientSecret}}, nil
	default:
		a, err := in.ClientAssertion(ctx)
		if err != nil {
			return nil, fmt.Errorf("smart: introspection: client assertion: %w", err)
		}
		form := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		if in.ClientID != "" {
			form.Set("client_id", in.ClientID)
		}
		// The assertion changes with every request; the client it names does not.
		return &introspectionAuth{form: form, identity: []byte("assertion\x00" + in.ClientID), secrets: []string{a}}, nil
	}
}

// cacheKey binds a cached answer to the credentials, the token and the hint, hashed so that the cache
// holds no token.
func cacheKey(identity []byte, token, hint string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(identity))))
	h.Write(identity)
	h.Write([]byte("\x00" + strconv.Itoa(len(token)) + "\x00" + token + "\x00" + hint))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// client returns the HTTP client for a request: a copy of HTTPClient, or the default one, that never
// follows a redirect (the request carries credentials).
func (in *Introspector) client() *http.Client {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if in.HTTPClient != nil {
		c := *in.HTTPClient
		c.CheckRedirect = noRedirect
		return &c
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.hc == nil {
		in.hc = httpx.NewClient(0)
		in.hc.CheckRedirect = noRedirect
	}
	return in.hc
}

func (in *Introspector) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Introspector) cached(key [sha256.Size]byte) (*Introspection, bool) {
	if in.CacheTTL <= 0 {
		return nil, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	e, ok := in.cache[key]
	if !ok {
		return nil, false
	}
	if !in.now().Before(e.until) {
		delete(in.cache, key)
		return nil, false
	}
	return e.res.clone(), true
}

// store caches an active answer until min(exp, now + CacheTTL) (INTRO-05).
func (in *Introspector) store(key [sha256.Size]byte, res *Introspection) {
	if in.CacheTTL <= 0 || !res.Active {
		return
	}
	now := in.now()
	until := now.Add(in.CacheTTL)
	if res.Expiry.Before(until) {
		until = res.Expiry
	}
	if !now.Before(until) {
		return
	}
	limit := in.MaxCacheEntries
	if limit <= 0 {
		limit = DefaultIntrospectionCacheSize
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cache == nil {
		in.cache = map[[sha256.Size]byte]introspectionEntry{}
	}
	if len(in.cache) >= limit {
		for k, e := range in.cache {
			if !now.Before(e.until) {
				delete(in.cache, k)
			}
		}
		for k := range in.cache {
			if len(in.cache) < limit {
				break
			}
			delete(in.cache, k)
		}
	}
	in.cache[key] = introspectionEntry{res: res.clone(), until: until}
}

// post sends one introspection request and parses the answer. status is the HTTP status (0 when none
// arrived).
func (in *Introspector) post(ctx context.Context, endpoint *url.URL, token, hint string, auth *introspectionAuth) (*Introspection, int, error) {
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	for k, v := range auth.form {
		form[k] = v
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, 0, fmt.Errorf("smart: introspection request: %w", err)
	}
	for k, vs := range in.Header {
		req.Header[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	switch {
	case auth.bearer != nil:
		req.Header.Set("Authorization", "Bearer "+auth.bearer.AccessToken)
	case auth.basic:
		// RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	}
	secrets := append(slices.Clone(auth.secrets), token)
	origin := httpx.Origin(endpoint)

	resp, err := in.client().Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("smart: introspection at %s: %w", origin, scrubErr(err, secretsOf(form, req.Header)))
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("smart: introspection at %s: %w", origin, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &IntrospectionError{Origin: origin, StatusCode: resp.StatusCode}
		var oe struct {
			Code string `json:"error"`
			Desc string `json:"error_description"`
		}
		if json.Unmarshal(body, &oe) == nil {
			e.ErrorCode, e.Description = sanitize(redact(oe.Code, secrets)), sanitize(redact(oe.Desc, secrets))
		}
		return nil, resp.StatusCode, e
	}
	if err := checkJSONMediaType(resp.Header.Get("Content-Type"), body); err != nil {
		return nil, resp.StatusCode, &IntrospectionResponseError{Reason: err.Error()}
	}
	res, err := parseIntrospection(body, in.now(), in.Leeway)
	return res, resp.StatusCode, err
}

// isIntrospectionMember reports whether parseIntrospection reads member k itself; the others go to
// Extensions.
func isIntrospectionMember(k string) bool {
	switch k {
	case "active", "scope", "client_id", "exp", "iat", "nbf", "iss", "sub", "fhirUser", "username", "token_type",
		"aud", "jti", "patient", "encounter", "fhirContext", "need_patient_banner", "smart_style_url", "intent", "tenant":
		return true
	}
	return false
}

// parseIntrospection parses a 200 answer received at now (INTRO-02…04).
func parseIntrospection(body []byte, now time.Time, leeway time.Duration) (*Introspection, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, &IntrospectionResponseError{Reason: err.Error()}
	}
	var active bool
	if raw, ok := m["active"]; !ok {
		return nil, &IntrospectionResponseError{Field: "active", Reason: "missing"}
	} else if err := json.Unmarshal(raw, &active); err != nil {
		return nil, &IntrospectionResponseError{Field: "active", Reason: "not a boolean"}
	}
	if !active {
		return &Introspection{}, nil // INTRO-02: nothing else is read
	}
	res := &Introspection{Active: true}
	for _, f := range []struct {
		name     string
		dst      *string
		required bool
	}{
		{"scope", &res.Scope, true}, {"client_id", &res.ClientID, true}, {"iss", &res.Issuer, false},
		{"sub", &res.Subject, false}, {"fhirUser", &res.FHIRUser, false}, {"username", &res.Username, false},
		{"token_type", &res.TokenType, false},
	} {
		v, err := stringMember(m, f.name, false)
		if err != nil {
			return nil, &IntrospectionResponseError{Field: f.name, Reason: "not a string"}
		}
		if f.required && v == "" {
			return nil, &IntrospectionResponseError{Field: f.name, Reason: "missing (SMART requires it of an active token)"}
		}
		*f.dst = v
	}
	for _, f := range []struct {
		name     string
		dst      *time.Time
		required bool
	}{{"exp", &res.Expiry, true}, {"iat", &res.IssuedAt, false}, {"nbf", &res.NotBefore, false}} {
		t, warn, err := numericDate(m, f.name, f.required)
		if err != nil {
			return nil, err
		}
		if warn != "" {
			res.Warnings = append(res.Warnings, warn)
		}
		*f.dst = t
	}
	if res.Audience, err = audience(m["aud"]); err != nil {
		return nil, err
	}
	tok := &Token{}
	if err := tok.parseContext(m); err != nil {
		var te *TokenResponseError
		if errors.As(err, &te) {
			return nil, &IntrospectionResponseError{Field: te.Field, Reason: te.Reason}
		}
		return nil, &IntrospectionResponseError{Reason: err.Error()}
	}
	res.LaunchContext = tok.LaunchContext
	res.Warnings = append(res.Warnings, tok.Warnings...)
	for k, v := range m {
		if !isIntrospectionMember(k) {
			if res.Extensions == nil {
				res.Extensions = map[string]json.RawMessage{}
			}
			res.Extensions[k] = v
		}
	}
	// INTRO-04: exp is authoritative by our clock, whatever "active" said.
	if !now.Before(res.Expiry.Add(leeway)) || !res.NotBefore.IsZero() && now.Add(leeway).Before(res.NotBefore) {
		return &Introspection{Expired: true, Expiry: res.Expiry}, nil
	}
	return res, nil
}

// numericDate reads an RFC 7519 NumericDate member: a JSON number of seconds, or (with a warning) a
// numeric string.
func numericDate(m map[string]json.RawMessage, name string, required bool) (time.Time, string, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return time.Time{}, "", &IntrospectionResponseError{Field: name, Reason: "missing (SMART requires it of an active token)"}
		}
		return time.Time{}, "", nil
	}
	s, warn := string(raw), ""
	if strings.HasPrefix(s, `"`) {
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, "", &IntrospectionResponseError{Field: name, Reason: "not a number"}
		}
		warn = name + ": a string where a number belongs"
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f <= 0 || f > 1e11 {
		return time.Time{}, "", &IntrospectionResponseError{Field: name, Reason: "not a plausible NumericDate"}
	}
	return time.Unix(int64(f), 0), warn, nil
}

// audience reads aud: a string or an array of strings.
func audience(raw json.RawMessage) ([]string, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, &IntrospectionResponseError{Field: "aud", Reason: "neither a string nor an array of strings"}
	}
	return many, nil
}
