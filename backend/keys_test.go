package backend

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestThumbprintRFC7638Vector(t *testing.T) { // CONV-4: kid = RFC 7638 thumbprint
	t.Parallel()
	// RFC 7638 §3.1 example key and its SHA-256 thumbprint.
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	got, err := Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("Thumbprint = %s, want %s", got, want)
	}
	if _, err := Thumbprint(ed25519.PublicKey(make([]byte, 32))); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Ed25519: err = %v", err)
	}
}

// webCryptoSet mimics the IG's RS384.private.json / ES384.private.json: a WebCrypto export holding a
// verify key and a sign key under one kid (JWKS-01).
func webCryptoSet(t *testing.T, key crypto.Signer, kid string) []byte {
	t.Helper()
	priv, _ := jwk.FromRaw(key)
	pub, _ := jwk.FromRaw(key.Public())
	for _, k := range []jwk.Key{priv, pub} {
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = k.Set("ext", true)
	}
	_ = priv.Set(jwk.KeyOpsKey, jwk.KeyOperationList{jwk.KeyOpSign})
	_ = pub.Set(jwk.KeyOpsKey, jwk.KeyOperationList{jwk.KeyOpVerify})
	pb, _ := json.Marshal(pub)
	sb, _ := json.Marshal(priv)
	return []byte(`{"keys":[` + string(pb) + `,` + string(sb) + `]}`)
}

func TestParseKeysJWKSets(t *testing.T) { // JWKS-01, CONV-4
	t.Parallel()
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		keys, err := ParseKeys(webCryptoSet(t, key, "eee9f17a3b598fd86417a980b591fbe6"))
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].ID != "eee9f17a3b598fd86417a980b591fbe6" {
			t.Fatalf("keys %v: want the one sign key", keys)
		}
		out, err := PublicJWKS(keys...)
		if err != nil {
			t.Fatal(err)
		}
		checkPublicOnly(t, out, 1)
	}
	// Several signing keys: ParsePrivateKey takes the last (the newest by convention).
	rsaJWK, _ := jwk.FromRaw(testRSAKey())
	_ = rsaJWK.Set(jwk.KeyIDKey, "old")
	ecJWK, _ := jwk.FromRaw(testECKey())
	_ = ecJWK.Set(jwk.KeyIDKey, "new")
	set := jwk.NewSet()
	_ = set.AddKey(rsaJWK)
	_ = set.AddKey(ecJWK)
	b, _ := json.Marshal(set)
	signer, kid, err := ParsePrivateKey(b)
	if err != nil || kid != "new" || !testECKey().PublicKey.Equal(signer.Public()) {
		t.Fatalf("ParsePrivateKey = %v, %v; want the last key", kid, err)
	}
	if keys, _ := ParseKeys(b); len(keys) != 2 || keys[0].ID != "old" || keys[0].Algorithm != RS384 {
		t.Fatalf("ParseKeys = %v", keys)
	}
}

func TestParseKeysErrors(t *testing.T) { // AUTH-07, CONV-4: each bad input a typed error, no key material in it
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalPKCS8PrivateKey(p256)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(testECKey().Public())

	// An EC JWK whose public point belongs to another key.
	mismatch, _ := jwk.FromRaw(testECKey())
	other, _ := jwk.FromRaw(otherECKey().Public())
	_ = mismatch.Set("x", other.(jwk.ECDSAPublicKey).X())
	_ = mismatch.Set("y", other.(jwk.ECDSAPublicKey).Y())
	mismatchJSON, _ := json.Marshal(mismatch)
	otherJSON, _ := json.Marshal(other)

	rs256, _ := jwk.FromRaw(testRSAKey())
	_ = rs256.Set(jwk.AlgorithmKey, "RS256")
	rs256JSON, _ := json.Marshal(rs256)

	encOnly, _ := jwk.FromRaw(testECKey())
	_ = encOnly.Set(jwk.KeyUsageKey, "enc")
	encJSON, _ := json.Marshal(encOnly)

	dupA, _ := jwk.FromRaw(testECKey())
	_ = dupA.Set(jwk.KeyIDKey, "same")
	dupB, _ := jwk.FromRaw(otherECKey())
	_ = dupB.Set(jwk.KeyIDKey, "same")
	a, _ := json.Marshal(dupA)
	bb, _ := json.Marshal(dupB)

	pemOf := func(typ string, der []byte, hdr map[string]string) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der, Headers: hdr})
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNoPrivateKey},
		{"garbage", []byte("hello"), ErrNoPrivateKey},
		{"public key PEM only", pemOf("PUBLIC KEY", pubDER, nil), ErrNoPrivateKey},
		{"legacy encrypted PEM", pemOf("RSA PRIVATE KEY", []byte{1, 2}, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}), ErrEncryptedKey},
		{"PKCS#8 encrypted", pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2}, nil), ErrEncryptedKey},
		{"P-256", pemOf("PRIVATE KEY", p256DER, nil), ErrUnsupportedKey},
		{"Ed25519", pemOf("PRIVATE KEY", edDER, nil), ErrUnsupportedKey},
		{"EC JWK with another key's point", mismatchJSON, ErrUnsupportedKey},
		{"JWK with alg RS256", rs256JSON, ErrUnsupportedKey},
		{"encryption key only", encJSON, ErrNoPrivateKey},
		{"public JWK", otherJSON, ErrNoPrivateKey},
		{"symmetric JWK", []byte(`{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}`), ErrNoPrivateKey},
		{"two keys, one kid", []byte(`{"keys":[` + string(a) + `,` + string(bb) + `]}`), ErrDuplicateKeyID},
	}
	d := testECKey().D.Text(16)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := ParsePrivateKey(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "backend: ") || strings.Contains(err.Error(), d[:16]) {
				t.Fatalf("bad error text: %v", err)
			}
		})
	}
	// Corrupt DER inside a known block type is an error, never a panic.
	for _, typ := range []string{"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"} {
		if _, _, err := ParsePrivateKey(pemOf(typ, []byte{0x30, 0x03, 0x02, 0x01}, nil)); err == nil {
			t.Errorf("corrupt %s: no error", typ)
		}
	}
}

func TestGenerateKey(t *testing.T) { // JWKS-06
	t.Parallel()
	tests := []struct {
		alg     string
		bits    int
		wantAlg string
		wantErr bool
	}{
		{ES384, 0, ES384, false},
		{RS384, 0, RS384, false},
		{RS384, 1024, "", true},
		{ES384, 256, "", true},
		{"HS256", 0, "", true},
		{"RS256", 2048, "", true},
	}
	for _, tt := range tests {
		key, err := GenerateKey(tt.alg, tt.bits)
		if tt.wantErr {
			if !errors.Is(err, ErrUnsupportedKey) {
				t.Errorf("GenerateKey(%s, %d): err = %v", tt.alg, tt.bits, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		pemBytes, err := MarshalPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		back, kid, err := ParsePrivateKey(pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		if !samePublic(back.Public(), key.Public()) || kid != mustThumbprint(t, key) {
			t.Fatalf("%s: round trip lost the key", tt.alg)
		}
		if rk, ok := key.(*rsa.PrivateKey); ok && rk.N.BitLen() != MinRSABits {
			t.Fatalf("RSA default is %d bits", rk.N.BitLen())
		}
		// The generated key authenticates at a verifying server.
		srv := newTokenServer(t, "svc")
		srv.register(kid, key.Public())
		c := &Config{ClientID: "svc", TokenURL: srv.TokenURL(), Scopes: []string{"system/*.rs"}, PrivateKey: back}
		if _, err := c.Token(t.Context()); err != nil {
			t.Fatalf("%s: %v", tt.alg, err)
		}
	}
	if _, err := MarshalPrivateKey(hsmSigner{testECKey()}); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("MarshalPrivateKey of an opaque signer: %v", err)
	}
}
