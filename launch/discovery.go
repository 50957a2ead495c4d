package launch

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/smart"
)

// discoveryTTL is how long a server's SMART configuration is reused. Only allowed issuers are ever
// discovered, so the cache is bounded by AllowedIssuers.
const discoveryTTL = 5 * time.Minute

// serverInfo is what a launch needs from discovery, checked.
type serverInfo struct {
	authURL, tokenURL, issuer, jwksURI string
	authorizePost, issRequired         bool
	// secretOnly: token_endpoint_auth_methods_supported lists methods, none of them private_key_jwt
	// (AUTH-04: a client with a key and a secret then uses the secret).
	secretOnly bool
	// conf is the configuration as discovered, for the profile's scope grammar.
	conf *smart.Configuration
}

type discoveryCache struct {
	mu sync.Mutex
	m  map[string]discoveryEntry
	sf singleflight.Group
}

type discoveryEntry struct {
	info    *serverInfo
	fetched time.Time
}

// discover returns the checked configuration of the allowed issuer norm (whose iss as received is
// iss). Call it only after the issuer policy accepted iss.
func (rt *runtime) discover(ctx context.Context, norm, iss string) (*serverInfo, error) {
	now := rt.now()
	rt.disco.mu.Lock()
	e, ok := rt.disco.m[norm]
	rt.disco.mu.Unlock()
	if ok && now.Sub(e.fetched) < discoveryTTL && now.After(e.fetched.Add(-time.Minute)) {
		return e.info, nil
	}
	return shared(ctx, &rt.disco.sf, norm, flightTimeout, func(ctx context.Context) (*serverInfo, error) {
		d := smart.Discoverer{HTTPClient: rt.client(norm), InsecureAllowHTTP: rt.c.InsecureAllowHTTP, Now: rt.now}
		if p := rt.policy.settings[norm].Profile; p != nil {
			p.ApplyDiscoverer(&d, rt.c.ClientID) // its fallbacks; the headers come with the client
		}
		conf, err := d.Discover(ctx, iss)
		if err != nil {
			return nil, err
		}
		info, err := rt.checkConfiguration(norm, conf)
		if err != nil {
			return nil, err
		}
		rt.disco.mu.Lock()
		defer rt.disco.mu.Unlock()
		// Checked and stored in one step, so that the cache never holds two bases that claim one
		// server, even when both are discovered at once.
		if err := rt.disco.checkDistinct(norm, info, rt.c.InsecureAllowHTTP); err != nil {
			return nil, err
		}
		if rt.disco.m == nil {
			rt.disco.m = map[string]discoveryEntry{}
		}
		rt.disco.m[norm] = discoveryEntry{info: info, fetched: rt.now()}
		return info, nil
	})
}

// checkConfiguration extracts and checks what a launch needs: absolute authorize and token endpoints
// that CONV-1 allows, and S256 PKCE unless the server refuses it (then only with ForcePKCE).
func (rt *runtime) checkConfiguration(norm string, conf *smart.Configuration) (*serverInfo, error) {
	allowHTTP := rt.c.InsecureAllowHTTP
	settings := rt.policy.settings[norm]
	if p := settings.Profile; p != nil {
		if err := p.CheckLaunch(conf); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDiscovery, err)
		}
	}
	methods := conf.TokenEndpointAuthMethodsSupported
	info := &serverInfo{
		authURL:       conf.AuthorizationEndpoint,
		tokenURL:      conf.TokenEndpoint,
		issuer:        conf.Issuer,
		jwksURI:       conf.JWKSURI,
		authorizePost: conf.Supports("authorize-post"),
		secretOnly: len(methods) > 0 && !slices.Contains(methods, smart.AuthMethodPrivateKeyJWT) &&
			(settings.Profile == nil || !settings.Profile.LenientDiscovery), // a lenient server under-advertises
		conf: conf,
	}
	for name, v := range map[string]string{"authorization_endpoint": info.authURL, "token_endpoint": info.tokenURL} {
		if v == "" {
			return nil, fmt.Errorf("%w: no %s", ErrDiscovery, name)
		}
		if _, err := httpx.ParseAbsURL(v, allowHTTP); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrDiscovery, name, err)
		}
	}
	if info.jwksURI != "" {
		if _, err := httpx.ParseAbsURL(info.jwksURI, allowHTTP); err != nil {
			info.jwksURI = ""
			rt.log.Warn("ignoring jwks_uri", "issuer", norm, "err", err.Error())
		}
	}
	pkce := conf.CodeChallengeMethodsSupported
	switch {
	case len(pkce) == 0:
		if !settings.ForcePKCE {
			rt.log.Warn("server does not advertise PKCE; sending S256 anyway", "issuer", norm)
		}
	case !slices.Contains(pkce, "S256") && !settings.ForcePKCE:
		return nil, fmt.Errorf("%w: code_challenge_methods_supported lacks S256 (PKCE downgrade; set IssuerSettings.ForcePKCE if the server accepts S256 anyway)", ErrDiscovery)
	}
	var extra struct {
		ISSParam bool `json:"authorization_response_iss_parameter_supported"`
	}
	if err := conf.Claims(&extra); err == nil {
		info.issRequired = extra.ISSParam
	}
	return info, nil
}

// checkDistinct refuses a configuration of the allowed FHIR base norm that claims another allowed
// base's issuer or authorization endpoint but names a different token endpoint (SEC-04): that is the
// shape of a mix-up, where one server's codes would be redeemed at another's token endpoint, so the
// base discovered second is refused with a *MixUpError. Two bases that name the same issuer,
// authorization endpoint AND token endpoint are one authorization server serving several FHIR bases
// (an EHR's R4 and STU3 endpoints) and are allowed. Call it with d.mu held.
func (d *discoveryCache) checkDistinct(norm string, info *serverInfo, allowHTTP bool) error {
	for other, e := range d.m {
		if other == norm {
			continue
		}
		if sameServerURL(info.tokenURL, e.info.tokenURL, allowHTTP) &&
			(info.issuer == "" || sameServerURL(info.issuer, e.info.issuer, allowHTTP)) &&
			sameServerURL(info.authURL, e.info.authURL, allowHTTP) {
			continue // one authorization server, several FHIR bases
		}
		switch {
		case info.issuer != "" && sameServerURL(info.issuer, e.info.issuer, allowHTTP):
			return &MixUpError{FHIRBase: norm, Other: other, Claim: "issuer"}
		case sameServerURL(info.authURL, e.info.authURL, allowHTTP):
			return &MixUpError{FHIRBase: norm, Other: other, Claim: "authorization_endpoint"}
		}
	}
	return nil
}

// sameServerURL compares two server URLs as issuers are compared (case of scheme and host, default
// port, trailing slash); URLs that do not normalise are compared as received.
func sameServerURL(a, b string, allowHTTP bool) bool {
	if a == "" || b == "" {
		return false
	}
	na, errA := normalizeIssuer(a, allowHTTP)
	nb, errB := normalizeIssuer(b, allowHTTP)
	if errA != nil || errB != nil {
		return a == b
	}
	return na == nb
}
