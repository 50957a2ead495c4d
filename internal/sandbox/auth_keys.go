package sandbox

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// maxJWKSCache caps how long a fetched client JWK Set is kept, whatever its Cache-Control says.
const maxJWKSCache = time.Hour

// clientKey is one public verification key of a client, parsed once from its JWK.
type clientKey struct {
	kid  string
	alg  string // the JWK's alg, "" when the JWK does not pin one
	pub  crypto.PublicKey
	leaf *x509.Certificate // first certificate of x5c, nil without one
}

// fits reports whether k can verify a JWS with header alg (SMART "Signature Verification": filter by
// kid and by a kty consistent with the algorithm).
func (k *clientKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return alg == "RS384"
	case *ecdsa.PublicKey:
		return alg == "ES384" && pub.Curve == elliptic.P384()
	}
	return false
}

// parseClientJWKS parses a client's public JWK Set. Private keys, RSA keys under 2048 bits, keys
// without an RSA or EC public part and x5c chains whose first certificate holds another key are
// refused; keys for encryption only are skipped; a missing kid becomes the RFC 7638 thumbprint.
func parseClientJWKS(raw []byte) ([]*clientKey, error) {
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	var keys []*clientKey
	for i := range set.Len() {
		k, _ := set.Key(i)
		if ak, ok := k.(jwk.AsymmetricKey); !ok || ak.IsPrivate() {
			return nil, fmt.Errorf("key %d: want an RSA or EC public key (never private key material)", i)
		}
		if u := k.KeyUsage(); u != "" && u != "sig" {
			continue
		}
		if ops := k.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
			continue
		}
		ck := &clientKey{kid: k.KeyID(), alg: k.Algorithm().String()}
		if err := k.Raw(&ck.pub); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if rk, ok := ck.pub.(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
			return nil, fmt.Errorf("key %d: RSA keys need at least 2048 bits", i)
		}
		if ck.kid == "" {
			tp, err := k.Thumbprint(crypto.SHA256)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
			ck.kid = base64.RawURLEncoding.EncodeToString(tp)
		}
		if chain := k.X509CertChain(); chain != nil && chain.Len() > 0 {
			if ck.leaf, err = parseLeaf(chain.Get(0)); err != nil {
				return nil, fmt.Errorf("key %q: %w", ck.kid, err)
			}
			if eq, ok := ck.leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(ck.pub) {
				return nil, fmt.Errorf("key %q: the x5c certificate holds another key", ck.kid)
			}
		}
		keys = append(keys, ck)
	}
	if len(keys) == 0 {
		return nil, errors.New("no signature key in the JWK Set")
	}
	return keys, nil
}

// parseLeaf decodes one x5c entry (base64 DER, RFC 7517 §4.7).
func parseLeaf(b64 []byte, ok bool) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(string(b64))
	if err != nil || !ok {
		return nil, errors.New("x5c is not base64 DER")
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("x5c: %w", err)
	}
	return c, nil
}

// jwksCache keeps fetched client JWK Sets no longer than their Cache-Control allows (SBX-05, JWKS-07).
type jwksCache struct {
	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu      sync.Mutex // one fetch at a time per URL
	keys    []*clientKey
	expires time.Time
}

// remoteKeys returns the keys published at jwksURL, from the cache unless force or stale.
// fresh reports whether they were fetched just now.
func (a *authState) remoteKeys(ctx context.Context, jwksURL string, force bool) (keys []*clientKey, fresh bool, err error) {
	a.jwks.mu.Lock()
	if a.jwks.entries == nil {
		a.jwks.entries = map[string]*jwksEntry{}
	}
	e, ok := a.jwks.entries[jwksURL]
	if !ok {
		e = &jwksEntry{}
		a.jwks.entries[jwksURL] = e
	}
	a.jwks.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := a.s.Now()
	if !force && e.keys != nil && now.Before(e.expires) {
		return e.keys, false, nil
	}
	keys, maxAge, err := a.fetchJWKS(ctx, jwksURL)
	if err != nil {
		return nil, false, err
	}
	e.keys, e.expires = keys, now.Add(maxAge)
	return keys, true, nil
}

// fetchJWKS GETs a JWK Set (https or loopback http, same-origin redirects, 1 MiB, 10 s) and reads how
// long it may be cached.
func (a *authState) fetchJWKS(ctx context.Context, jwksURL string) ([]*clientKey, time.Duration, error) {
	u, err := httpx.ParseAbsURL(jwksURL, false)
	if err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	a.s.incr("jwks_fetches")
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching the JWK Set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetching the JWK Set: HTTP %d", resp.StatusCode)
	}
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, 0, fmt.Errorf("fetching the JWK Set: %w", err)
	}
	keys, err := parseClientJWKS(body)
	if err != nil {
		return nil, 0, err
	}
	return keys, cacheLifetime(resp.Header.Get("Cache-Control")), nil
}

// cacheLifetime reads max-age from a Cache-Control header; no-store, no-cache or no max-age mean the
// set is not reused (SMART: never cache beyond what the client's Cache-Control allows).
func cacheLifetime(cc string) time.Duration {
	var maxAge time.Duration
	for _, d := range strings.Split(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(strings.ToLower(d)), "=")
		switch name {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n > 0 {
				maxAge = time.Duration(n) * time.Second
			}
		}
	}
	return min(maxAge, maxJWKSCache)
}
