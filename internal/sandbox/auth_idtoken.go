package sandbox

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"sync"
)

// maxSigningKeys is how many id_token keys the JWKS keeps published after rotations.
const maxSigningKeys = 3

// signingKey is an RS256 id_token key; kid is its RFC 7638 thumbprint.
type signingKey struct {
	priv *rsa.PrivateKey
	kid  string
	jwk  map[string]string // public JWK
}

// signingKeys are the id_token keys: the current one signs, all are published at /auth/jwks.
type signingKeys struct {
	mu      sync.RWMutex
	current *signingKey
	all     []*signingKey
}

func newSigningKeys() (*signingKeys, error) {
	k, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	return &signingKeys{current: k, all: []*signingKey{k}}, nil
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	n := base64.RawURLEncoding.EncodeToString(priv.N.Bytes())
	e := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(priv.E)).Bytes())
	tp := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`)) // RFC 7638 §3
	kid := base64.RawURLEncoding.EncodeToString(tp[:])
	return &signingKey{priv: priv, kid: kid, jwk: map[string]string{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e,
	}}, nil
}

func (ks *signingKeys) signer() *signingKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.current
}

// rotate makes a new key current and publishes it next to the previous ones (JWKS-05: a client that
// cached the old set meets an unknown kid and must fetch the set again).
func (ks *signingKeys) rotate() (*signingKey, error) {
	k, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.current = k
	ks.all = append(ks.all, k)
	if len(ks.all) > maxSigningKeys {
		ks.all = ks.all[len(ks.all)-maxSigningKeys:]
	}
	return k, nil
}

// serveJWKS is GET /auth/jwks: the public id_token keys (JWKS-02 headers).
func (a *authState) serveJWKS(w http.ResponseWriter, r *http.Request) {
	a.keys.mu.RLock()
	keys := make([]map[string]string, 0, len(a.keys.all))
	for _, k := range a.keys.all {
		keys = append(keys, k.jwk)
	}
	a.keys.mu.RUnlock()
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// idToken builds and signs the OpenID Connect id_token of an authorization (SBX-04, SBX-14): RS256,
// kid, iss = the FHIR base, aud = the client, sub, fhirUser (profile in v1 mode) as an absolute URL,
// nonce, iat and exp. Armed idtoken_* faults bend it.
func (a *authState) idToken(r *http.Request, z *authz) (string, error) {
	now := a.s.Now()
	base := a.s.FHIRBase(r)
	id := z.clientID
	claims := map[string]any{
		"iss": base, "sub": subject(z), "aud": id,
		"iat": now.Unix(), "exp": now.Add(idTokenLifetime).Unix(),
	}
	if z.nonce != "" {
		claims["nonce"] = z.nonce
	}
	if user := z.launch.User; user != "" {
		switch {
		case a.v1() && (hasScope(z.scopes, "profile") || hasScope(z.scopes, "fhirUser")):
			claims["profile"] = base + "/" + user // SMART v1 name of the claim
		case hasScope(z.scopes, "fhirUser"):
			claims["fhirUser"] = base + "/" + user
		}
	}
	a.idTokenClaimFaults(r, id, claims)

	key := a.keys.signer()
	if a.s.takeFault("idtoken_unknown_kid", id) {
		var err error
		if key, err = a.keys.rotate(); err != nil {
			return "", err
		}
	}
	hdr := jwsHeader{Alg: "RS256", Kid: key.kid, Typ: "JWT"}
	switch {
	case a.s.takeFault("idtoken_alg_none", id):
		hdr.Alg = "none"
		return encodeJWS(hdr, claims, func([]byte) []byte { return nil })
	case a.s.takeFault("idtoken_hs256", id):
		// Alg confusion (RFC 8725 §2.1): an HMAC keyed with the public key a naive verifier would use.
		hdr.Alg = "HS256"
		der, _ := x509.MarshalPKIXPublicKey(&key.priv.PublicKey)
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		return encodeJWS(hdr, claims, func(in []byte) []byte {
			m := hmac.New(sha256.New, secret)
			m.Write(in)
			return m.Sum(nil)
		})
	}
	badSig := a.s.takeFault("idtoken_bad_signature", id)
	return encodeJWS(hdr, claims, func(in []byte) []byte {
		h := sha256.Sum256(in)
		sig, _ := rsa.SignPKCS1v15(nil, key.priv, crypto.SHA256, h[:])
		if badSig {
			sig[len(sig)/2] ^= 0x40
		}
		return sig
	})
}

// idTokenClaimFaults applies the armed claim faults (SBX-14).
func (a *authState) idTokenClaimFaults(r *http.Request, clientID string, claims map[string]any) {
	now := a.s.Now()
	take := func(name string) bool { return a.s.takeFault(name, clientID) }
	user, _ := claims["fhirUser"].(string)
	if user == "" {
		user = a.s.FHIRBase(r) + "/Practitioner/unknown"
	}
	if take("idtoken_wrong_iss") {
		claims["iss"] = foreignOrigin(r) + "/fhir"
	}
	if take("idtoken_wrong_aud") {
		claims["aud"] = "another-client"
	}
	if take("idtoken_aud_array_no_azp") {
		claims["aud"] = []string{clientID, "another-client"}
	}
	if take("idtoken_expired") {
		claims["iat"], claims["exp"] = now.Add(-2*idTokenLifetime).Unix(), now.Add(-idTokenLifetime).Unix()
	}
	if take("idtoken_future_iat") {
		claims["iat"], claims["exp"] = now.Add(idTokenLifetime).Unix(), now.Add(2*idTokenLifetime).Unix()
	}
	if take("idtoken_foreign_fhiruser") {
		claims["fhirUser"] = foreignOrigin(r) + "/fhir/Practitioner/1"
	}
	if take("idtoken_wrong_fhiruser_type") {
		claims["fhirUser"] = a.s.FHIRBase(r) + "/Organization/1"
	}
	if take("idtoken_profile_only") {
		delete(claims, "fhirUser")
		claims["profile"] = user
	}
}

// subject is the id_token sub: the user's reference, stable for a user.
func subject(z *authz) string {
	if z.launch.User != "" {
		return z.launch.User
	}
	return "sandbox-user"
}

// encodeJWS serialises a compact JWS, signing header.payload with sign.
func encodeJWS(hdr jwsHeader, claims any, sign func([]byte) []byte) (string, error) {
	hb, err := json.Marshal(hdr)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	in := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	return in + "." + enc.EncodeToString(sign([]byte(in))), nil
}
