package backend

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// ClientAssertionType is the client_assertion_type of a JWT client assertion (RFC 7523 §2.2, AUTH-08).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// DefaultAssertionLifetime is how long an assertion lives by default: under the five-minute maximum,
// to absorb some clock skew (AUTH-06, SEC-10).
const DefaultAssertionLifetime = 4 * time.Minute

// jtiBytes is the entropy of a jti: 128 bits (AUTH-06).
const jtiBytes = 16

// assertionSigner signs SMART client assertions for one client, token endpoint and key source. It
// is the only place that builds JWTs (jwx stays out of the exported API).
type assertionSigner struct {
	clientID string
	aud      string // the token endpoint URL, byte for byte (AUTH-06)
	lifetime time.Duration
	// issuedAt gives iat for an assertion signed at now (nil: now); a profile backdates it for
	// servers whose clock runs behind (smart.Profile.AssertionIssuedAt). exp stays now + lifetime.
	issuedAt func(now time.Time) time.Time
	jku      string
	x5c      *cert.Chain
	x5t      string
	key      func(now time.Time) (Key, error)
	rand     io.Reader
}

// NewAssertion signs one client assertion for clientID at tokenURL with k (AUTH-05…07), valid from
// now for lifetime (DefaultAssertionLifetime when zero, at most MaxAssertionLifetime). It is for the
// other grants a private_key_jwt client authenticates (the authorization_code and refresh_token grants
// of a confidential-asymmetric app); Config builds its own. Send it once: each request needs a new one.
func NewAssertion(k Key, clientID, tokenURL string, now time.Time, lifetime time.Duration) (string, error) {
	k, err := k.normalize()
	if err != nil {
		return "", err
	}
	if lifetime, err = assertionLifetime(lifetime); err != nil {
		return "", err
	}
	if clientID == "" || tokenURL == "" {
		return "", fmt.Errorf("backend: %w: an assertion needs a client id and a token URL", ErrConfig)
	}
	s := &assertionSigner{clientID: clientID, aud: tokenURL, lifetime: lifetime, rand: rand.Reader,
		key: func(time.Time) (Key, error) { return k, nil }}
	return s.sign(now)
}

// assertionLifetime applies the default and the five-minute maximum (AUTH-06).
func assertionLifetime(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return DefaultAssertionLifetime, nil
	case d < 0 || d > MaxAssertionLifetime:
		return 0, fmt.Errorf("backend: %w: assertion lifetime %v is not within (0, %v]", ErrConfig, d, MaxAssertionLifetime)
	}
	return d, nil
}

// newCertHeaders returns the x5c chain and x5t#S256 thumbprint of certs (leaf first), checking that
// the leaf certifies signingKey.
func newCertHeaders(certs []*x509.Certificate, k Key) (*cert.Chain, string, error) {
	if len(certs) == 0 {
		return nil, "", nil
	}
	if certs[0] == nil || !samePublic(k.Signer.Public(), certs[0].PublicKey) {
		return nil, "", fmt.Errorf("backend: %w: the first certificate does not hold the signing key's public key", ErrConfig)
	}
	chain := &cert.Chain{}
	for i, c := range certs {
		if c == nil {
			return nil, "", fmt.Errorf("backend: %w: nil certificate %d", ErrConfig, i)
		}
		if err := chain.Add([]byte(base64.StdEncoding.EncodeToString(c.Raw))); err != nil {
			return nil, "", fmt.Errorf("backend: x5c: %w", err)
		}
	}
	sum := sha256.Sum256(certs[0].Raw)
	return chain, base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// sign returns a freshly signed assertion: header {alg, kid, typ:"JWT"[, jku][, x5c, x5t#S256]},
// claims {iss = sub = client_id, aud = token URL (a string), exp = now + lifetime, iat = now (or
// issuedAt(now)), jti = 128 random bits} (AUTH-05, AUTH-06). ES384 signatures are raw R‖S; RS384 is PKCS#1 v1.5 (AUTH-07).
func (s *assertionSigner) sign(now time.Time) (string, error) {
	k, err := s.key(now)
	if err != nil {
		return "", err
	}
	jti, err := s.newJTI()
	if err != nil {
		return "", err
	}
	iat := now
	if s.issuedAt != nil {
		iat = s.issuedAt(now)
	}
	tok, err := jwt.NewBuilder().
		Issuer(s.clientID).
		Subject(s.clientID).
		Audience([]string{s.aud}).
		IssuedAt(iat).
		Expiration(now.Add(s.lifetime)).
		JwtID(jti).
		Build()
	if err != nil {
		return "", fmt.Errorf("backend: assertion claims: %w", err)
	}
	tok.Options().Enable(jwt.FlattenAudience)

	hdr := jws.NewHeaders()
	set := func(name string, v any) {
		if err == nil {
			err = hdr.Set(name, v)
		}
	}
	set(jws.KeyIDKey, k.ID)
	set(jws.TypeKey, "JWT")
	if s.jku != "" {
		set(jws.JWKSetURLKey, s.jku)
	}
	if s.x5c != nil {
		set(jws.X509CertChainKey, s.x5c)
		set(jws.X509CertThumbprintS256Key, s.x5t)
	}
	if err != nil {
		return "", fmt.Errorf("backend: assertion header: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.SignatureAlgorithm(k.Algorithm), k.Signer, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("backend: signing the assertion with key %q: %w", k.ID, err)
	}
	return string(signed), nil
}

func (s *assertionSigner) newJTI() (string, error) {
	var b [jtiBytes]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("backend: jti: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
