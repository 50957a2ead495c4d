package launch

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"time"

	"github.com/smartfhir/smartfhir/backend"
)

// assertionLifetime is the exp of a client assertion: under SMART's five-minute maximum (SEC-10).
const assertionLifetime = 4 * time.Minute

// newAssertionSigner returns the private_key_jwt assertion builder of a confidential-asymmetric
// client (SMART client-confidential-asymmetric): a new JWT for every token request, exchange and
// refresh alike, with header {alg, kid, typ:"JWT"} and claims iss = sub = client_id, aud = the
// token endpoint, a 128-bit jti, iat = now and exp = now + 4 min. RS384 needs an RSA key of at least
// 2048 bits, ES384 a P-384 key. The kid defaults to the key's RFC 7638 thumbprint.
func newAssertionSigner(c *Config) (func(ctx context.Context, tokenURL string) (string, error), error) {
	alg := c.Algorithm
	switch pub := c.PrivateKey.Public().(type) {
	case *rsa.PublicKey:
		if alg == "" {
			alg = "RS384"
		}
		if alg != "RS384" || pub.N.BitLen() < 2048 {
			return nil, configErr("PrivateKey: an RSA key needs Algorithm RS384 and at least 2048 bits")
		}
	case *ecdsa.PublicKey:
		if alg == "" {
			alg = "ES384"
		}
		if alg != "ES384" || pub.Curve != elliptic.P384() {
			return nil, configErr("PrivateKey: an ECDSA key needs Algorithm ES384 and curve P-384")
		}
	default:
		return nil, configErr("PrivateKey: %T is not an RSA or ECDSA key", pub)
	}
	kid := c.KeyID
	if kid == "" {
		var err error
		if kid, err = backend.Thumbprint(c.PrivateKey.Public()); err != nil {
			return nil, configErr("PrivateKey: %v", err)
		}
	}
	header, err := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	if err != nil {
		return nil, err
	}
	h64 := base64.RawURLEncoding.EncodeToString(header)
	signer, clientID, now := c.PrivateKey, c.ClientID, c.Now
	if now == nil {
		now = time.Now
	}
	return func(_ context.Context, tokenURL string) (string, error) {
		t := now()
		claims, err := json.Marshal(map[string]any{
			"iss": clientID, "sub": clientID, "aud": tokenURL, "jti": randomString(16),
			"iat": t.Unix(), "exp": t.Add(assertionLifetime).Unix(),
		})
		if err != nil {
			return "", err
		}
		input := h64 + "." + base64.RawURLEncoding.EncodeToString(claims)
		sum := sha512.Sum384([]byte(input))
		sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA384)
		if err != nil {
			return "", fmt.Errorf("signing: %w", err)
		}
		if alg == "ES384" {
			if sig, err = rawECDSA(sig, 48); err != nil {
				return "", err
			}
		}
		return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
	}, nil
}

// rawECDSA converts an ASN.1 ECDSA signature to the JWS form R‖S, each n bytes (RFC 7518 §3.4).
func rawECDSA(der []byte, n int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("signing: malformed ECDSA signature")
	}
	out := make([]byte, 2*n)
	rs.R.FillBytes(out[:n])
	rs.S.FillBytes(out[n:])
	return out, nil
}
