package launch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/smartfhir/smartfhir/smart"
)

// clientAuth authenticates the client at the token endpoint, the same way for the code exchange and
// every refresh (TOK-01, REF-01; Epic requires private_key_jwt on refresh too).
type clientAuth struct {
	clientID string
	secret   string
	// assert builds a fresh client assertion for tokenURL (private_key_jwt), or is nil.
	assert func(ctx context.Context, tokenURL string) (string, error)
}

// grantKind is the grant a token request is for.
type grantKind int

const (
	grantCode grantKind = iota
	grantRefresh
)

// authOptions are what a token request's authentication depends on besides the client.
type authOptions struct {
	grant grantKind
	// secretOnly: the server lists token_endpoint_auth_methods_supported without private_key_jwt,
	// so a client with both a key and a secret uses the secret (AUTH-04).
	secretOnly bool
	// profile is the issuer's vendor profile (RefreshClientID, RefreshAssertion), or nil.
	profile *smart.Profile
}

func newClientAuth(c *Config) (clientAuth, error) {
	a := clientAuth{clientID: c.ClientID, secret: c.ClientSecret}
	if c.PrivateKey == nil {
		if c.KeyID != "" || c.Algorithm != "" {
			return a, configErr("KeyID and Algorithm need a PrivateKey")
		}
		return a, nil
	}
	var err error
	a.assert, err = newAssertionSigner(c)
	return a, err
}

// both reports whether the client has a key and a secret, and so picks one per server (AUTH-04).
func (a clientAuth) both() bool { return a.assert != nil && a.secret != "" }

// method names the client type, for logs.
func (a clientAuth) method() string {
	switch {
	case a.both():
		return "private_key_jwt (client_secret_basic where unsupported)"
	case a.assert != nil:
		return "private_key_jwt"
	case a.secret != "":
		return "client_secret_basic"
	default:
		return "none"
	}
}

// apply adds client authentication to a token request: a freshly signed client_assertion for an
// asymmetric client (RFC 7523), preferred whenever the server supports it (AUTH-04); HTTP Basic for
// a symmetric one (RFC 6749 §2.3.1: both parts form-urlencoded first); client_id in the form for a
// public client. Never two methods at once. On a refresh the profile may drop the assertion
// (RefreshAssertion false: client_id only) or a public client's client_id (RefreshClientID false).
func (a clientAuth) apply(ctx context.Context, tokenURL string, form url.Values, hdr http.Header, o authOptions) error {
	refresh := o.grant == grantRefresh && o.profile != nil
	useAssert := a.assert != nil && !(o.secretOnly && a.secret != "")
	switch {
	case useAssert && refresh && !o.profile.RefreshAssertion:
		form.Set("client_id", a.clientID)
	case useAssert:
		jwt, err := a.assert(ctx, tokenURL)
		if err != nil {
			return fmt.Errorf("launch: client assertion: %w", err)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", jwt)
	case a.secret != "":
		r := http.Request{Header: hdr}
		r.SetBasicAuth(url.QueryEscape(a.clientID), url.QueryEscape(a.secret))
	case refresh && !o.profile.RefreshClientID:
	default:
		form.Set("client_id", a.clientID)
	}
	return nil
}
