package launch

import (
	"context"
	"time"

	"github.com/smartfhir/smartfhir/backend"
)

// newAssertionSigner returns the private_key_jwt assertion builder of a confidential-asymmetric
// client (SMART client-confidential-asymmetric): a new JWT for every token request, exchange and
// refresh alike, built by backend.NewAssertion (header {alg, kid, typ:"JWT"}; claims iss = sub =
// client_id, aud = the token endpoint, a 128-bit jti, iat = now, exp = now + 4 min). RS384 needs an
// RSA key of at least 2048 bits, ES384 a P-384 key; the kid defaults to the RFC 7638 thumbprint.
func newAssertionSigner(c *Config) (func(ctx context.Context, tokenURL string) (string, error), error) {
	key := backend.Key{Signer: c.PrivateKey, ID: c.KeyID, Algorithm: c.Algorithm}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	// Validate the key once, up front, so a misconfiguration fails at start and not at the first launch.
	if _, err := backend.NewAssertion(key, c.ClientID, "https://validate.invalid/token", now(), 0); err != nil {
		return nil, configErr("PrivateKey: %v", err)
	}
	return func(_ context.Context, tokenURL string) (string, error) {
		return backend.NewAssertion(key, c.ClientID, tokenURL, now(), 0)
	}, nil
}
