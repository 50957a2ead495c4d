package sandbox

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strings"
	"time"
)

const (
	jwtBearer       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" // RFC 7523 §2.2
	maxAssertionLen = 16 << 10
	maxJTILen       = 255
)

// jwsHeader is the protected header of a compact JWS.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid,omitempty"`
	Typ  string          `json:"typ,omitempty"`
	Jku  string          `json:"jku,omitempty"`
	Crit json.RawMessage `json:"crit,omitempty"`
}

// assertionClaims are the claims SMART requires in a client assertion
// (client-confidential-asymmetric.md › "Authentication JWT Claims").
type assertionClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud audience `json:"aud"`
	Exp *float64 `json:"exp"`
	Iat *float64 `json:"iat"`
	Nbf *float64 `json:"nbf"`
	Jti string   `json:"jti"`
}

// audience is a JWT aud: one string or an array of strings (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// parsedJWS is a compact JWS split and decoded; signature is not yet verified.
type parsedJWS struct {
	header       jwsHeader
	payload      []byte
	signingInput string
	sig          []byte
}

func parseJWS(tok string) (*parsedJWS, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS (want three dot-separated parts)")
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, errors.New("a JWS part is not unpadded base64url")
	}
	p := &parsedJWS{payload: pb, signingInput: parts[0] + "." + parts[1], sig: sig}
	if err := json.Unmarshal(hb, &p.header); err != nil {
		return nil, errors.New("the JWS header is not a JSON object")
	}
	return p, nil
}

// verifyAssertion authenticates a private_key_jwt client exactly as SMART requires
// (client-confidential-asymmetric.md › "Signature Verification"; SBX-05, AUTH-05…08, JWKS-07). Every
// failure is invalid_client with a description that never quotes the assertion.
func (a *authState) verifyAssertion(ctx context.Context, assertion, tokenURL string) (*clientRecord, *oauthError) {
	if len(assertion) > maxAssertionLen {
		return nil, invalidClient("client_assertion is longer than %d bytes", maxAssertionLen)
	}
	p, err := parseJWS(assertion)
	if err != nil {
		return nil, invalidClient("client_assertion: %v", err)
	}
	h := p.header
	switch {
	case !strings.EqualFold(h.Typ, "JWT"):
		return nil, invalidClient(`client_assertion header: typ must be "JWT"`)
	case h.Alg != "RS384" && h.Alg != "ES384":
		return nil, invalidClient("client_assertion header: alg %q is not allowed (RS384 or ES384)", trunc(h.Alg))
	case h.Kid == "":
		return nil, invalidClient("client_assertion header: kid is required")
	case len(h.Crit) > 0:
		return nil, invalidClient("client_assertion header: crit is not supported")
	}
	var cl assertionClaims
	if err := json.Unmarshal(p.payload, &cl); err != nil {
		return nil, invalidClient("client_assertion claims: %v", err)
	}
	c, ok := a.clients.get(cl.Iss)
	if !ok || cl.Iss == "" {
		return nil, invalidClient("client_assertion: iss %q is not a registered client", trunc(cl.Iss))
	}
	if c.AuthMethod != authPrivateJWT {
		return nil, invalidClient("client %q is not registered for private_key_jwt", c.ID)
	}
	if h.Jku != "" && h.Jku != c.JWKSURI {
		return nil, invalidClient("client_assertion header: jku does not match the registered jwks_uri")
	}
	key, oe := a.verificationKey(ctx, c, h.Kid, h.Alg)
	if oe != nil {
		return nil, oe
	}
	if !verifySignature(key, p.signingInput, p.sig) {
		return nil, invalidClient("client_assertion: signature does not verify with key %q", h.Kid)
	}
	if oe := a.checkAssertionClaims(c, key, &cl, tokenURL); oe != nil {
		return nil, oe
	}
	return c, nil
}

// checkAssertionClaims applies the claim rules after the signature verified: sub = iss, aud = the token
// URL, exp present, in the future and at most five minutes ahead, iat/nbf not in the future, the x5c
// certificate (if any) valid now, and jti unused.
func (a *authState) checkAssertionClaims(c *clientRecord, key *clientKey, cl *assertionClaims, tokenURL string) *oauthError {
	now := a.s.Now()
	switch {
	case cl.Sub != cl.Iss:
		return invalidClient("client_assertion: sub must equal iss (the client_id)")
	case len(cl.Aud) != 1 || cl.Aud[0] != tokenURL:
		return invalidClient("client_assertion: aud must be the token endpoint URL %q", tokenURL)
	case cl.Exp == nil:
		return invalidClient("client_assertion: exp is required")
	}
	exp := epoch(*cl.Exp)
	switch {
	case !now.Before(exp):
		return invalidClient("client_assertion has expired (exp %s, now %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case exp.After(now.Add(maxAssertionLifetime)):
		return invalidClient("client_assertion: exp is more than 5 minutes in the future (exp %s, now %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case cl.Iat != nil && epoch(*cl.Iat).After(now.Add(jwtLeeway)):
		return invalidClient("client_assertion: iat is in the future")
	case cl.Nbf != nil && epoch(*cl.Nbf).After(now.Add(jwtLeeway)):
		return invalidClient("client_assertion: nbf is in the future")
	case key.leaf != nil && (now.Before(key.leaf.NotBefore) || now.After(key.leaf.NotAfter)):
		return invalidClient("client_assertion: the certificate of key %q is not valid now", key.kid)
	case cl.Jti == "" || len(cl.Jti) > maxJTILen:
		return invalidClient("client_assertion: jti is required (at most %d characters)", maxJTILen)
	}
	if !a.jtis.putNew(c.ID+"\x00"+cl.Jti, struct{}{}, exp, now) {
		return invalidClient("client_assertion: jti has already been used")
	}
	return nil
}

// verificationKey finds the one key of c with this kid whose kty fits alg: in the inline JWK Set, or
// at jwks_uri (cached per Cache-Control, fetched again once when the kid is unknown, for rotation).
func (a *authState) verificationKey(ctx context.Context, c *clientRecord, kid, alg string) (*clientKey, *oauthError) {
	if a.clients.keyRevoked(c.ID, kid) {
		return nil, invalidClient("key %q of client %q has been revoked", kid, c.ID)
	}
	keys, fresh := c.keys, true
	if c.JWKSURI != "" {
		var err error
		if keys, fresh, err = a.remoteKeys(ctx, c.JWKSURI, false); err != nil {
			return nil, invalidClient("the client's jwks_uri: %v", err)
		}
	}
	match := matchingKeys(keys, kid, alg)
	if len(match) == 0 && !fresh {
		var err error
		if keys, _, err = a.remoteKeys(ctx, c.JWKSURI, true); err != nil {
			return nil, invalidClient("the client's jwks_uri: %v", err)
		}
		match = matchingKeys(keys, kid, alg)
	}
	switch len(match) {
	case 0:
		return nil, invalidClient("no key of client %q has kid %q and fits alg %s", c.ID, kid, alg)
	case 1:
		return match[0], nil
	}
	return nil, invalidClient("several keys of client %q have kid %q", c.ID, kid)
}

func matchingKeys(keys []*clientKey, kid, alg string) []*clientKey {
	var out []*clientKey
	for _, k := range keys {
		if k.kid == kid && k.fits(alg) {
			out = append(out, k)
		}
	}
	return out
}

// verifySignature checks an RS384 (RSASSA-PKCS1-v1_5, SHA-384) or ES384 (P-384, raw R‖S) signature;
// k.fits(alg) has already tied the key type to the header's alg.
func verifySignature(k *clientKey, signingInput string, sig []byte) bool {
	h := sha512.Sum384([]byte(signingInput))
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA384, h[:], sig) == nil
	case *ecdsa.PublicKey:
		if len(sig) != 96 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
		return ecdsa.Verify(pub, h[:], r, s)
	}
	return false
}

// epoch converts a JWT NumericDate (seconds, possibly fractional) to a time.
func epoch(sec float64) time.Time {
	switch {
	case math.IsNaN(sec) || sec < 0:
		return time.Unix(0, 0)
	case sec > 1e11: // milliseconds or garbage: far in the future
		return time.Unix(1e11, 0)
	}
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9))
}

// trunc shortens a client-supplied value quoted in an error description.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
