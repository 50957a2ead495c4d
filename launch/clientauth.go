package launch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// clientAuth authenticates the client at the token endpoint, the same way for the code exchange and
// every refresh (TOK-01, REF-01; Epic requires private_key_jwt on refresh too).
type clientAuth struct {
	clientID string
	secret   string
	// assert builds a fresh client assertion for tokenURL (private_key_jwt), or is nil.
	assert func(ctx context.Context, tokenURL string) (string, error)
}

func newClientAuth(c *Config) (clientAuth, error) {
	a := clientAuth{clientID: c.ClientID, secret: c.ClientSecret}
	if c.ClientSecret != "" && c.PrivateKey != nil {
		return a, configErr("set ClientSecret or PrivateKey, not both")
	}
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

// method names the client type, for logs.
func (a clientAuth) method() string {
	switch {
	case a.assert != nil:
		return "private_key_jwt"
	case a.secret != "":
		return "client_secret_basic"
	default:
		return "none"
	}
}

// apply adds client authentication to a token request: client_id in the form for a public client,
// HTTP Basic for a symmetric one (RFC 6749 §2.3.1: both parts form-urlencoded first), or a freshly
// signed client_assertion for an asymmetric one (RFC 7523; never two methods at once).
func (a clientAuth) apply(ctx context.Context, tokenURL string, form url.Values, hdr http.Header) error {
	switch {
	case a.assert != nil:
		jwt, err := a.assert(ctx, tokenURL)
		if err != nil {
			return fmt.Errorf("launch: client assertion: %w", err)
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", jwt)
	case a.secret != "":
		r := http.Request{Header: hdr}
		r.SetBasicAuth(url.QueryEscape(a.clientID), url.QueryEscape(a.secret))
	default:
		form.Set("client_id", a.clientID)
	}
	return nil
}
