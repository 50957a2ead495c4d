package launch

import (
	"crypto"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxStateAge   = 10 * time.Minute // CONV-5
	DefaultSessionAge    = 12 * time.Hour
	DefaultClockSkew     = 60 * time.Second // IDT-07
	DefaultRefreshMargin = 60 * time.Second // TOK-15
	// DefaultCookieName is the session cookie's name when CookieOptions forbid the __Host- prefix.
	DefaultCookieName = "smartfhir_session"
	// DefaultHostCookieName is the session cookie's default name: with the __Host- prefix, which
	// browsers accept only on a Secure, host-only cookie with Path=/, so that no other host of the
	// site can set or shadow it (cookie tossing).
	DefaultHostCookieName = "__Host-" + DefaultCookieName
	// DefaultAuthorizePostThreshold is the authorize URL length above which the request is sent by
	// POST when the server advertises authorize-post (LAUNCH-09).
	DefaultAuthorizePostThreshold = 2000
	// HandleParam is the query (or urlencoded form) parameter that names a completed launch in the
	// app's URLs. One browser may hold several launches at once (two tabs, two patients, two EHRs);
	// the handle says which one a request is about. It is not a credential: it only works with the
	// browser's own session cookie.
	HandleParam = "handle"
)

// Config is a SMART App Launch client for a web app with a server side (a confidential or public
// client whose code exchange happens on the server). Build one, then mount its handlers:
//
//	mux.Handle("/launch", cfg.EHRLaunchHandler())
//	mux.Handle("/login", cfg.StandaloneHandler("https://ehr.example.org/fhir"))
//	mux.Handle("/callback", cfg.CallbackHandler(nil))
//	mux.Handle("/app", cfg.Require(appHandler)) // appHandler calls launch.FromRequest(r)
//
// A Config must not be copied or modified after its first handler is built.
type Config struct {
	// ClientID is the client id registered with every allowed issuer.
	ClientID string
	// RedirectURL is the registered redirect URI, sent byte-for-byte in the authorize and token
	// requests. It is never built from request input (SEC-05).
	RedirectURL string
	// Scopes are requested on every launch. The EHR launch handler adds "launch"; the standalone
	// handler adds "launch/patient" when a patient/ scope is requested and drops "launch" and
	// "online_access" (LAUNCH-03, STAND-01, STAND-02, STAND-04).
	Scopes []string

	// Client authentication at the token endpoint (code exchange and refresh alike). Leave both
	// empty for a public client (client_id in the form). ClientSecret selects client_secret_basic.
	// PrivateKey selects private_key_jwt (SMART client-confidential-asymmetric): a fresh assertion
	// signed with KeyID and Algorithm ("RS384" or "ES384"; default from the key type) for every request.
	// With both, private_key_jwt is used wherever the server supports it, and the secret only with a
	// server whose token_endpoint_auth_methods_supported leaves private_key_jwt out (AUTH-04).
	ClientSecret string
	PrivateKey   crypto.Signer
	KeyID        string
	Algorithm    string

	// AllowedIssuers are the FHIR base URLs this app may be launched from or log in to. An EHR
	// launch naming any other iss is refused before any network request (LAUNCH-02, SEC-03).
	// Comparison ignores the case of scheme and host, a default port and a trailing slash; the iss as
	// received is what the server gets as aud. Empty means no launch is possible (fail closed).
	// Each must have an authorization server of its own: when the discovery documents of two of
	// them claim the same issuer or authorization endpoint, the one discovered second is refused
	// with a *MixUpError (SEC-04).
	AllowedIssuers []string
	// Issuers holds per-issuer settings (vendor quirks as data), keyed by issuer URL (compared like
	// AllowedIssuers). An entry does not allow an issuer: list it in AllowedIssuers too.
	Issuers map[string]IssuerSettings
	// InsecureAllowHTTP allows plain-http issuers that are not loopback. Tokens then cross the
	// network in clear text: only for closed test networks (CONV-1).
	InsecureAllowHTTP bool

	// UseNonce sends an OpenID Connect nonce and requires it in the id_token (LAUNCH-12).
	UseNonce bool
	// IDTokenAlgorithms are the id_token signature algorithms accepted. Default: RS256 (which
	// servers SHALL support). RS384, ES256 and ES384 may be added; none and HMAC are never accepted
	// (IDT-02).
	IDTokenAlgorithms []string
	// ClockSkew is the leeway for id_token exp/iat/nbf (default 60 s, IDT-07).
	ClockSkew time.Duration

	// StateStore keeps pending authorization requests (default: in memory, this process only).
	StateStore StateStore
	// SessionStore keeps the tokens of completed launches (default: in memory, this process only).
	// Use NewFileSessionStore or a Redis store to survive restarts or share across replicas.
	SessionStore SessionStore
	// Locker, when set, makes each launch's refresh single-flight across the processes that share
	// SessionStore (replicas, background workers, command-line runs): the holder refreshes and
	// stores the rotated tokens, the others wait and then use them, so a refresh token is never
	// redeemed twice (REF-04, SEC-06; a server that detects reuse revokes the whole grant). Within
	// one process refreshes are single-flight without it. A redisstore.Store is one. Lock receives
	// a hash of the launch's key, never the key itself; a failed Lock fails the refresh (the tokens
	// are kept).
	Locker smart.Locker
	// Cookie sets the browser session cookie. It carries only a signed and encrypted session id.
	Cookie CookieOptions
	// CookieKeys are securecookie key pairs (hash key 32 or 64 bytes, encryption key 16, 24 or 32
	// bytes), newest first; older pairs still decode existing cookies (key rotation). Empty means
	// random keys per process: sessions then end when the process restarts.
	CookieKeys [][]byte

	// HTTPClient makes discovery, JWKS, token and FHIR requests. Nil means a client with the CONV-2
	// timeouts. It is copied, never modified; the copies follow no redirect to another origin.
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnError writes the response when a launch fails. It receives typed errors
	// (*AuthorizationError, *IDTokenError, *oauth2.RetrieveError, ErrIssuerNotAllowed, ErrState…).
	// Nil means a plain error page that names the problem and never shows a token, code or state.
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives debug and warning lines; secrets are never logged. Nil discards.
	Logger *slog.Logger

	// MaxStateAge bounds the time between the redirect to the server and the callback (default 10 min).
	MaxStateAge time.Duration
	// SessionAge is the lifetime of a completed launch and of the cookie (default 12 h).
	SessionAge time.Duration
	// RefreshMargin is how long before expiry an access token is refreshed (default 60 s, or half
	// the token's lifetime when that is shorter; TOK-15).
	RefreshMargin time.Duration
	// LandingURL is where the callback handler sends the browser after a launch, with
	// ?handle=… added (default "/"). It is a path or URL chosen by the app, never by the request.
	LandingURL string
	// AuthorizePostThreshold is the authorize URL length above which the request is POSTed when the
	// server advertises authorize-post (default 2000; negative: never POST).
	AuthorizePostThreshold int

	once sync.Once
	rt   *runtime
	err  error
}

// AudienceMode says how the aud authorize parameter is sent to an issuer.
type AudienceMode int

const (
	// AudienceExact sends aud = the iss exactly as received (the SMART rule, LAUNCH-05).
	AudienceExact AudienceMode = iota
	// AudienceTrimmed sends the iss without a trailing slash (CareEvolution, eClinicalWorks, …).
	AudienceTrimmed
	// AudienceOmitted sends no aud (NextGen, VA, NHS, …).
	AudienceOmitted
)

// IssuerSettings are per-issuer deviations from the SMART defaults, as data (CONV-5). A vendor
// profile (smart presets for Epic, Oracle Health, athena, …) maps onto these fields.
type IssuerSettings struct {
	// Audience selects how aud is sent (default AudienceExact).
	Audience AudienceMode
	// ForcePKCE sends S256 PKCE even when the server's discovery advertises methods without S256.
	// PKCE S256 is always sent; without ForcePKCE a server that lists only other methods is refused
	// as a downgrade, and one that lists none (athena) gets S256 with a warning.
	ForcePKCE bool
	// Header is added to every request to this issuer's servers (discovery, JWKS, token, FHIR) that
	// does not set the header itself: Epic-Client-ID, … Never put credentials here.
	Header http.Header
	// Profile is the issuer's vendor profile, for what the three fields above cannot say: its
	// discovery fallbacks (MEDITECH's OpenID Connect document) and checks (CheckLaunch), the scopes
	// it requests (RequestScopes: grammar, extra scopes) and how refreshes authenticate
	// (RefreshClientID, RefreshAssertion). Nil: none. SettingsFromProfile fills every field.
	Profile *smart.Profile
}

// SettingsFromProfile returns the IssuerSettings of a vendor profile (CONV-5): Audience from p.Aud,
// ForcePKCE, Header from p.Header(clientID) (Epic-Client-ID), and Profile itself.
func SettingsFromProfile(p smart.Profile, clientID string) IssuerSettings {
	s := IssuerSettings{ForcePKCE: p.ForcePKCE, Header: p.Header(clientID)}
	switch p.Aud {
	case smart.AudienceTrimSlash:
		s.Audience = AudienceTrimmed
	case smart.AudienceOmit:
		s.Audience = AudienceOmitted
	}
	p = p.Clone()
	s.Profile = &p
	return s
}

// CookieOptions sets the browser session cookie. Its zero value is the safe default:
// HttpOnly, Secure, SameSite=Lax, Path "/".
type CookieOptions struct {
	// Name of the cookie. Default: DefaultHostCookieName ("__Host-smartfhir_session") when the
	// cookie is Secure (no InsecureNoSecure), Path is "/" and Domain is empty; DefaultCookieName
	// ("smartfhir_session") otherwise. Set it to choose another name (two apps on one host need
	// two names); a name with the __Host- or __Secure- prefix whose requirements the other options
	// break is refused with ErrConfig.
	Name string
	// Path and Domain of the cookie (default Path "/", host-only).
	Path, Domain string
	// SameSiteNone sends the cookie with SameSite=None (and Secure), for apps that run inside an
	// EHR iframe on another site (quirks §3 #4). Lax otherwise.
	SameSiteNone bool
	// InsecureNoSecure drops the Secure attribute, for plain-http development hosts that are not
	// loopback. Browsers treat http://localhost and 127.0.0.1 as secure, so the default works there.
	InsecureNoSecure bool
	// Partitioned adds the CHIPS Partitioned attribute (with SameSiteNone, for iframes).
	Partitioned bool
}

// Validate reports whether c is usable: client id, an absolute redirect URL, at least one allowed
// issuer, valid issuer URLs, at most one client authentication method, sane cookie keys. Handlers
// validate too and answer every request with an ErrConfig error page when c is invalid; call Validate
// at start-up to fail early.
func (c *Config) Validate() error {
	_, err := c.runtime()
	return err
}

// runtime validates c once and returns the derived state.
func (c *Config) runtime() (*runtime, error) {
	c.once.Do(func() { c.rt, c.err = newRuntime(c) })
	return c.rt, c.err
}

func configErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
}

// checkRedirectURL applies SEC-05: an absolute https (or loopback http) URL without a fragment.
func (c *Config) checkRedirectURL() error {
	if c.RedirectURL == "" {
		return configErr("RedirectURL is required")
	}
	u, err := httpx.ParseAbsURL(c.RedirectURL, c.InsecureAllowHTTP)
	if err != nil {
		return configErr("RedirectURL: %v", err)
	}
	if u.Fragment != "" || strings.Contains(c.RedirectURL, "#") {
		return configErr("RedirectURL must not have a fragment")
	}
	return nil
}
