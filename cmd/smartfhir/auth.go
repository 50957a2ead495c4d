package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

// maxKeyFile bounds a key file.
const maxKeyFile = 1 << 20

// credentials is the client authentication the settings call for.
type credentials struct {
	secret string        // auth secret
	key    crypto.Signer // auth private_key_jwt
	kid    string
}

// credentials loads the secret or the key the settings name. The key file may be PEM (PKCS#8,
// SEC 1, PKCS#1), a private JWK or a JWK Set; --kid overrides its kid (CONV-4).
func (g *globals) credentials(s *serverSettings) (credentials, error) {
	switch s.Auth {
	case authKeyJWT:
		f, err := os.Open(s.KeyFile)
		if err != nil {
			return credentials{}, fmt.Errorf("reading the key: %w", err)
		}
		defer f.Close()
		b, err := httpx.ReadLimited(f, maxKeyFile)
		if err != nil {
			return credentials{}, fmt.Errorf("reading the key %s: %w", s.KeyFile, err)
		}
		key, kid, err := backend.ParsePrivateKey(b)
		clear(b)
		if err != nil {
			return credentials{}, fmt.Errorf("key %s: %w", s.KeyFile, err)
		}
		if s.Kid != "" {
			kid = s.Kid
		}
		return credentials{key: key, kid: kid}, nil
	case authSecret:
		secret, err := g.clientSecret()
		if err != nil {
			return credentials{}, err
		}
		if secret == "" {
			return credentials{}, usagef("auth %q needs a client secret: set SMARTFHIR_CLIENT_SECRET or pass --client-secret-file", authSecret)
		}
		return credentials{secret: secret}, nil
	default:
		return credentials{}, nil
	}
}

// httpClient returns a client with the CONV-2 timeouts that never follows a redirect to another
// origin.
func httpClient() *http.Client { return httpx.NewClient(0) }

// discover fetches the SMART configuration of the settings' FHIR base (DISC-*), with the headers and
// discovery fallbacks of the vendor profile (named, or detected first: vendorProfile).
func (g *globals) discover(ctx context.Context, s *serverSettings) (*smart.Configuration, error) {
	d := smart.Discoverer{HTTPClient: httpClient(), Header: s.Header, InsecureAllowHTTP: s.InsecureHTTP}
	g.vendorProfile(ctx, s).ApplyDiscoverer(&d, s.ClientID)
	cfg, err := d.Discover(ctx, s.FHIR)
	if err != nil {
		return nil, fmt.Errorf("%w\n(is %s the FHIR base URL, e.g. https://host/fhir? 'smartfhir check %s' says more)", err, httpx.Redact(s.FHIR), httpx.Redact(s.FHIR))
	}
	return cfg, nil
}

// trusted returns the origins a credential may go to: the FHIR base's, the token endpoint's (when
// cfg is known) and --trust-origin's (CONV-1).
func (s *serverSettings) trusted(cfg *smart.Configuration) []string {
	out := append([]string{s.FHIR}, s.TrustOrigins...)
	if cfg != nil && cfg.TokenEndpoint != "" {
		out = append(out, cfg.TokenEndpoint)
	}
	return out
}

// launchConfig is the launch.Config of a CLI login: a standalone launch whose tokens live in the
// login store, where later commands resume it by its key (launch.Config.SessionByKey), refreshing it
// under the store's lock.
func launchConfig(s *serverSettings, cr credentials, st *loginStore, redirectURL string, scopes []string) *launch.Config {
	return &launch.Config{
		Issuers:           map[string]launch.IssuerSettings{s.FHIR: s.issuerSettings()},
		ClientID:          s.ClientID,
		RedirectURL:       redirectURL,
		Scopes:            scopes,
		ClientSecret:      cr.secret,
		PrivateKey:        cr.key,
		KeyID:             cr.kid,
		AllowedIssuers:    []string{s.FHIR},
		InsecureAllowHTTP: s.InsecureHTTP,
		SessionStore:      st.sessions,
		Locker:            st,
		// The browser-session cookie lives only as long as the login command, which adds it to the
		// loopback callback itself (its keys are random per process). Secure would only get in the
		// way of that on plain-http loopback.
		Cookie:     launch.CookieOptions{Name: "smartfhir_cli", InsecureNoSecure: true},
		HTTPClient: httpClient(),
		SessionAge: loginLifetime,
		LandingURL: "/done",
	}
}

// issuerSettings are the launch settings of the server: its vendor profile's (aud, PKCE, discovery,
// scopes, refresh authentication) with the settings' headers.
func (s *serverSettings) issuerSettings() launch.IssuerSettings {
	set := launch.IssuerSettings{Header: http.Header{}}
	if s.Vendor != nil {
		set = launch.SettingsFromProfile(*s.Vendor, s.ClientID)
	}
	for k, vs := range s.Header { // the user's headers win over the profile's
		set.Header[k] = slices.Clone(vs)
	}
	return set
}

// loginLifetime bounds a stored login; refresh tokens usually die sooner.
const loginLifetime = 90 * 24 * time.Hour

// resumeLogin is resumeLoginContext for callers without a context: loading a stored login reads
// local files only, and the tokens refresh later with the context of each request.
func (g *globals) resumeLogin(s *serverSettings) (*launch.Session, *loginRecord, *loginStore, error) {
	return g.resumeLoginContext(context.Background(), s)
}

// resumeLoginContext loads the stored login of the settings' FHIR base and profile and returns its
// launch session, whose tokens refresh as needed. errNoLogin means there is none.
func (g *globals) resumeLoginContext(ctx context.Context, s *serverSettings) (*launch.Session, *loginRecord, *loginStore, error) {
	dir, err := g.configDir()
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := openLoginStore(dir, false)
	if err != nil {
		return nil, nil, nil, err
	}
	rec, err := st.get(loginKey(s.FHIR, s.Profile))
	if err != nil {
		return nil, nil, nil, err
	}
	ls, err := s.forLogin(rec)
	if err != nil {
		return nil, rec, st, err
	}
	cr, err := g.credentials(ls)
	if err != nil {
		return nil, rec, st, err
	}
	cfg := launchConfig(ls, cr, st, rec.RedirectURL, strings.Fields(rec.Scope))
	sess, err := cfg.SessionByKey(ctx, rec.Key) // a login stored before keys existed has none: ErrNoSession
	if err != nil {
		if errors.Is(err, launch.ErrNoSession) {
			return nil, rec, st, fmt.Errorf("the stored login for %s has expired: run 'smartfhir login' again: %w", httpx.Redact(s.FHIR), errNoLogin)
		}
		return nil, rec, st, err
	}
	return sess, rec, st, nil
}

// forLogin returns the settings for using a stored login: it belongs to the client it was made
// with, whose authentication (a secret, a key) is needed again for refreshes and revocation and comes
// from the flags or profile, never from the store. When --client-id (or the profile) names another
// client, the secret or key given belongs to that client, never to the login's: a public login client
// needs none, and any other fails with errOtherClient rather than sending another client's credentials
// under the login's client_id.
func (s *serverSettings) forLogin(rec *loginRecord) (*serverSettings, error) {
	ls := *s
	if s.ClientID != "" && s.ClientID != rec.ClientID {
		ls.ClientID, ls.Auth, ls.KeyFile, ls.Kid = rec.ClientID, rec.Auth, "", ""
		if rec.Auth != authPublic {
			return nil, fmt.Errorf("the login for %s belongs to client %s (%s), not %s: pass --client-id %s with its credentials: %w",
				httpx.Redact(s.FHIR), rec.ClientID, rec.Auth, s.ClientID, rec.ClientID, errOtherClient)
		}
		return &ls, nil
	}
	ls.ClientID = rec.ClientID
	if ls.Auth == authPublic {
		ls.Auth = rec.Auth
	}
	if ls.Auth == authKeyJWT && ls.KeyFile == "" {
		return nil, usagef("the login for %s was made with a private_key_jwt client: pass --key FILE", httpx.Redact(s.FHIR))
	}
	return &ls, nil
}

// authn is how a command authenticates to a server.
type authn struct {
	kind string             // "login" (a stored login) or "backend" (client_credentials)
	src  oauth2.TokenSource // for requests to other trusted endpoints (introspection)
	fhir *http.Client       // sends the token to the FHIR base
}

// authenticate picks the stored login for the settings' FHIR base and profile, else SMART Backend
// Services with --client-id and --key (or plain OAuth client_credentials with a secret). A login made
// with another client than the one --client-id (or the profile) names is not used: that client's own
// credentials are, rather than its key or secret going out under the login's client_id and the
// command silently running with the login's patient-level access.
func (g *globals) authenticate(ctx context.Context, s *serverSettings) (*authn, error) {
	g.vendorProfile(ctx, s)
	sess, rec, _, err := g.resumeLoginContext(ctx, s)
	if rec != nil && s.ClientID != "" && rec.ClientID != s.ClientID {
		g.notef("note: the stored login for %s belongs to client %s, not %s: not using it", httpx.Redact(s.FHIR), rec.ClientID, s.ClientID)
		sess, err = nil, errNoLogin
	}
	switch {
	case err == nil:
		return &authn{kind: "login", src: sess.TokenSource(), fhir: sess.HTTPClient()}, nil
	case !errors.Is(err, errNoLogin):
		return nil, err
	}
	if s.ClientID == "" || s.Auth == authPublic {
		hint := ""
		if errors.Is(err, errNoLogin) && err != errNoLogin {
			hint = err.Error() + "\n"
		}
		return nil, fmt.Errorf("%snot logged in to %s: run 'smartfhir login --fhir %s --client-id ID', or pass --client-id with --key (backend services) or SMARTFHIR_CLIENT_SECRET",
			hint, httpx.Redact(s.FHIR), httpx.Redact(s.FHIR))
	}
	cr, err := g.credentials(s)
	if err != nil {
		return nil, err
	}
	if cr.secret != "" {
		g.notef("note: client_credentials with a client secret is plain OAuth 2.0, not SMART Backend Services (which needs --key)")
	}
	bc := &backend.Config{
		ClientID: s.ClientID, FHIRBase: s.FHIR, Scopes: strings.Fields(s.Scope),
		PrivateKey: cr.key, KeyID: cr.kid, ClientSecret: cr.secret, Profile: s.Vendor,
		Header: s.Header, HTTPClient: httpClient(), TrustedOrigins: s.TrustOrigins, InsecureAllowHTTP: s.InsecureHTTP,
	}
	if err := g.shareTokens(ctx, bc); err != nil {
		return nil, err
	}
	// Client and TokenSource each cache their own token; a command uses one or the other.
	return &authn{kind: "backend", src: bc.TokenSource(ctx), fhir: bc.Client(ctx)}, nil
}

// connect authenticates to the settings' server (see authenticate) and returns a FHIR client for it.
func (g *globals) connect(ctx context.Context, s *serverSettings) (*fhirclient.Client, *authn, error) {
	a, err := g.authenticate(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.fhirClient(a)
	if err != nil {
		return nil, nil, err
	}
	return c, a, nil
}

// fhirClient returns a FHIR client for the settings' base that authenticates with a.
func (s *serverSettings) fhirClient(a *authn) (*fhirclient.Client, error) {
	c, err := fhirclient.NewClient(s.FHIR, a.fhir)
	if err != nil {
		return nil, err
	}
	c.Header = s.Header.Clone()
	if s.Vendor != nil {
		if err := c.SetProfile(*s.Vendor, s.ClientID); err != nil { // Accept, $everything, X-RateLimit-*
			return nil, err
		}
	}
	c.TrustedOrigins = s.TrustOrigins
	c.InsecureAllowHTTP = s.InsecureHTTP
	c.UserAgent = "smartfhir-cli"
	return c, nil
}
