package backend

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The two signature algorithms SMART Backend Services allows for client assertions (AUTH-05).
const (
	RS384 = "RS384" // RSASSA-PKCS1-v1_5 with SHA-384, RSA keys of at least 2048 bits
	ES384 = "ES384" // ECDSA on P-384 with SHA-384
)

// MinRSABits is the smallest RSA modulus accepted (AUTH-07).
const MinRSABits = 2048

// Key errors.
var (
	// ErrUnsupportedKey is wrapped for keys SMART cannot use: RSA under 2048 bits, curves other than
	// P-384, Ed25519, symmetric keys, or an algorithm other than RS384/ES384.
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrNoPrivateKey is wrapped when data holds no private signing key.
	ErrNoPrivateKey = errors.New("no private signing key found")
	// ErrEncryptedKey is wrapped for password-protected PEM keys, which are not supported: decrypt
	// the key first (openssl pkcs8 -in enc.pem -out key.pem) and protect the file instead.
	ErrEncryptedKey = errors.New("encrypted private key")
	// ErrDuplicateKeyID is wrapped when two different keys share a kid (JWKS-01).
	ErrDuplicateKeyID = errors.New("two different keys share a kid")
)

// Key is a client signing key: a crypto.Signer (an in-memory key, or an HSM or KMS handle; AUTH-11)
// with the kid and algorithm its assertions carry.
type Key struct {
	// Signer signs assertions; its Public() must be an RSA key of at least 2048 bits or a P-384
	// ECDSA key.
	Signer crypto.Signer
	// ID is the kid (default: the RFC 7638 thumbprint of the public key).
	ID string
	// Algorithm is RS384 or ES384 (default: from the key type).
	Algorithm string
	// NotBefore, in a KeySet, delays signing with the key while it is already published (JWKS-04).
	NotBefore time.Time
	// NotAfter, in a KeySet, is when the key stops being published (set by Rotate).
	NotAfter time.Time
}

// String describes the key without its material (AUTH-11).
func (k Key) String() string {
	return fmt.Sprintf("backend.Key{ID:%q Algorithm:%q}", k.ID, k.Algorithm)
}

// GoString is String, so that %#v does not print private key material either.
func (k Key) GoString() string { return k.String() }

// normalize checks k and fills ID and Algorithm.
func (k Key) normalize() (Key, error) {
	if k.Signer == nil {
		return Key{}, fmt.Errorf("backend: %w: nil signer", ErrUnsupportedKey)
	}
	alg, err := algorithmFor(k.Signer.Public())
	if err != nil {
		return Key{}, err
	}
	if k.Algorithm == "" {
		k.Algorithm = alg
	} else if k.Algorithm != alg {
		return Key{}, fmt.Errorf("backend: %w: algorithm %q does not fit a key for %s", ErrUnsupportedKey, k.Algorithm, alg)
	}
	if k.ID == "" {
		if k.ID, err = Thumbprint(k.Signer.Public()); err != nil {
			return Key{}, err
		}
	}
	return k, nil
}

// algorithmFor returns the SMART algorithm for a public key, refusing anything else (AUTH-07).
func algorithmFor(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("backend: %w: RSA key of %d bits (at least %d required)", ErrUnsupportedKey, p.N.BitLen(), MinRSABits)
		}
		return RS384, nil
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P384() {
			return "", fmt.Errorf("backend: %w: curve %s (ES384 needs P-384)", ErrUnsupportedKey, p.Curve.Params().Name)
		}
		return ES384, nil
	default:
		return "", fmt.Errorf("backend: %w: %T (want RSA or ECDSA P-384)", ErrUnsupportedKey, pub)
	}
}

// GenerateKey generates a signing key for alg (JWKS-06): ES384 gives an ECDSA P-384 key (bits must be
// 0); RS384 an RSA key of bits bits (0 means 2048; at least 2048).
func GenerateKey(alg string, bits int) (crypto.Signer, error) {
	switch alg {
	case ES384:
		if bits != 0 && bits != 384 {
			return nil, fmt.Errorf("backend: %w: ES384 keys are P-384, not %d bits", ErrUnsupportedKey, bits)
		}
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RS384:
		if bits == 0 {
			bits = MinRSABits
		}
		if bits < MinRSABits || bits > 8192 {
			return nil, fmt.Errorf("backend: %w: RSA keys of %d bits (want %d to 8192)", ErrUnsupportedKey, bits, MinRSABits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	default:
		return nil, fmt.Errorf("backend: %w: algorithm %q (want RS384 or ES384)", ErrUnsupportedKey, alg)
	}
}

// MarshalPrivateKey encodes key as a PKCS#8 PEM block ("PRIVATE KEY"), the format GenerateKey's
// output is saved in.
func MarshalPrivateKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("backend: %w: %T cannot be encoded as PKCS#8", ErrUnsupportedKey, key)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of pub (SHA-256, base64url without padding), the
// default kid (CONV-4).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	if _, err := algorithmFor(pub); err != nil {
		return "", err
	}
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("backend: thumbprint: %w", err)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("backend: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// ParsePrivateKey parses a private signing key and returns it with its kid: the JWK's kid when it
// has one, else the RFC 7638 thumbprint. data may be PEM (PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE
// KEY", SEC 1 "EC PRIVATE KEY"; other blocks such as "EC PARAMETERS" or certificates are skipped), a
// private JWK, or a private JWK Set. When data holds several signing keys, the last one is returned:
// by convention a rotation appends the successor. Use ParseKeys to choose another.
func ParsePrivateKey(data []byte) (crypto.Signer, string, error) {
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, "", err
	}
	k := keys[len(keys)-1]
	return k.Signer, k.ID, nil
}

// ParseKeys parses every private signing key in data (see ParsePrivateKey for the formats), in order,
// each checked (RSA ≥ 2048 bits or P-384, private and public halves consistent) and with ID and
// Algorithm filled. JWK entries that hold no private key, or are marked for encryption ("use":"enc",
// or key_ops without "sign"), are skipped, so a WebCrypto export holding a verify and a sign key
// under one kid yields one key. Two different keys under one kid are an error (JWKS-01).
func ParseKeys(data []byte) ([]Key, error) {
	trimmed := bytes.TrimSpace(data)
	var keys []Key
	var err error
	switch {
	case len(trimmed) == 0:
		return nil, fmt.Errorf("backend: %w: empty input", ErrNoPrivateKey)
	case trimmed[0] == '{':
		keys, err = parseJWKs(trimmed)
	default:
		keys, err = parsePEM(trimmed)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("backend: %w", ErrNoPrivateKey)
	}
	return dedupe(keys)
}

func parsePEM(data []byte) ([]Key, error) {
	var keys []Key
	sawPEM := false
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		sawPEM = true
		if _, encrypted := block.Headers["Proc-Type"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("backend: %w", ErrEncryptedKey)
		}
		var parsed any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			parsed, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // EC PARAMETERS, CERTIFICATE, PUBLIC KEY…
		}
		if err != nil {
			return nil, fmt.Errorf("backend: PEM %s block: %w", block.Type, err)
		}
		k, err := keyFromRaw(parsed, "", "")
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if !sawPEM {
		return nil, fmt.Errorf("backend: %w: neither PEM nor JSON", ErrNoPrivateKey)
	}
	return keys, nil
}

func parseJWKs(data []byte) ([]Key, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("backend: JWK: %w", err)
	}
	var keys []Key
	for i := range set.Len() {
		jk, _ := set.Key(i)
		if private, err := jwk.IsPrivateKey(jk); err != nil || !private {
			continue // public or symmetric
		}
		if u := jk.KeyUsage(); u != "" && u != string(jwk.ForSignature) {
			continue
		}
		if ops := jk.KeyOps(); len(ops) > 0 && !hasSign(ops) {
			continue
		}
		var raw any
		if err := jk.Raw(&raw); err != nil {
			return nil, fmt.Errorf("backend: JWK %q: %w", jk.KeyID(), err)
		}
		alg := ""
		if a := jk.Algorithm(); a != nil {
			alg = a.String()
		}
		k, err := keyFromRaw(raw, jk.KeyID(), alg)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func hasSign(ops jwk.KeyOperationList) bool {
	for _, op := range ops {
		if op == jwk.KeyOpSign {
			return true
		}
	}
	return false
}

// keyFromRaw checks a parsed private key's consistency and builds a normalised Key.
func keyFromRaw(raw any, kid, alg string) (Key, error) {
	var signer crypto.Signer
	switch p := raw.(type) {
	case *rsa.PrivateKey:
		if err := p.Validate(); err != nil {
			return Key{}, fmt.Errorf("backend: %w: inconsistent RSA key: %w", ErrUnsupportedKey, err)
		}
		signer = p
	case *ecdsa.PrivateKey:
		if err := checkECDSA(p); err != nil {
			return Key{}, err
		}
		signer = p
	default:
		return Key{}, fmt.Errorf("backend: %w: %T (want RSA or ECDSA P-384)", ErrUnsupportedKey, raw)
	}
	return Key{Signer: signer, ID: kid, Algorithm: alg}.normalize()
}

// checkECDSA verifies that the private scalar matches the public point, so that a JWK with a wrong
// x or y cannot produce assertions nobody can verify.
func checkECDSA(p *ecdsa.PrivateKey) error {
	if p.Curve != elliptic.P384() {
		return fmt.Errorf("backend: %w: curve %s (ES384 needs P-384)", ErrUnsupportedKey, p.Curve.Params().Name)
	}
	priv, err := p.ECDH()
	if err != nil {
		return fmt.Errorf("backend: %w: invalid EC private key", ErrUnsupportedKey)
	}
	pub, err := p.PublicKey.ECDH()
	if err != nil || !priv.PublicKey().Equal(pub) {
		return fmt.Errorf("backend: %w: EC private key does not match its public point", ErrUnsupportedKey)
	}
	return nil
}

// dedupe drops repeated keys and refuses two different keys under one kid.
func dedupe(keys []Key) ([]Key, error) {
	out := keys[:0:0]
	seen := map[string]crypto.PublicKey{}
	for _, k := range keys {
		if prev, ok := seen[k.ID]; ok {
			if !samePublic(prev, k.Signer.Public()) {
				return nil, fmt.Errorf("backend: %w: %q", ErrDuplicateKeyID, k.ID)
			}
			continue
		}
		seen[k.ID] = k.Signer.Public()
		out = append(out, k)
	}
	return out, nil
}

func samePublic(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
