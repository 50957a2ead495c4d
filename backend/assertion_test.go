package backend

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// counterReader yields 0x00, 0x01, 0x02, … so that each jti is fixed and distinct.
type counterReader struct{ n byte }

func (r *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// goldenAssertion is the decoded form of a signed assertion kept in testdata/golden.
type goldenAssertion struct {
	Header json.RawMessage `json:"header"`
	Claims json.RawMessage `json:"claims"`
	// JWT is the whole compact JWS for RS384, whose PKCS#1 v1.5 signature is deterministic.
	JWT string `json:"jwt,omitempty"`
}

func signFixed(t *testing.T, key crypto.Signer, jku string) string {
	t.Helper()
	c := &Config{ClientID: "bili_monitor", TokenURL: "https://ehr.example.org/auth/token", Scopes: []string{"system/*.rs"},
		PrivateKey: key, JWKSetURL: jku, rand: &counterReader{}}
	r, err := c.resolve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.signer.sign(time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAssertionGolden(t *testing.T) { // AUTH-05, AUTH-06, golden (STYLE 17)
	t.Parallel()
	tests := []struct {
		name string
		key  crypto.Signer
		jku  string
	}{
		{"RS384", testRSAKey(), ""},
		{"ES384-jku", testECKey(), "https://app.example.org/.well-known/jwks.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := signFixed(t, tt.key, tt.jku)
			parts := strings.Split(a, ".")
			if len(parts) != 3 {
				t.Fatalf("not a compact JWS: %d parts", len(parts))
			}
			got := goldenAssertion{Header: mustB64JSON(t, parts[0]), Claims: mustB64JSON(t, parts[1])}
			if strings.HasPrefix(tt.name, "RS384") {
				got.JWT = a
			}
			path := filepath.Join("testdata", "golden", "assertion-"+tt.name+".json")
			if *update {
				b, _ := json.MarshalIndent(got, "", "  ")
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			var want goldenAssertion
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(got.Header, want.Header) {
				t.Errorf("header\n got %s\nwant %s", got.Header, want.Header)
			}
			if !jsonEqual(got.Claims, want.Claims) {
				t.Errorf("claims\n got %s\nwant %s", got.Claims, want.Claims)
			}
			if got.JWT != want.JWT {
				t.Errorf("jwt\n got %s\nwant %s", got.JWT, want.JWT)
			}
		})
	}
}

func mustB64JSON(t *testing.T, seg string) json.RawMessage {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAssertionShape(t *testing.T) { // AUTH-05, AUTH-06, AUTH-07, AUTH-08
	t.Parallel()
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		c := &Config{ClientID: "svc", TokenURL: "https://ehr.example.org/token?tenant=a", Scopes: []string{"system/*.rs"}, PrivateKey: key}
		r, err := c.resolve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		a1, err := r.signer.sign(now)
		if err != nil {
			t.Fatal(err)
		}
		a2, _ := r.signer.sign(now)
		var h1 map[string]any
		var c1, c2 map[string]any
		p1, p2 := strings.Split(a1, "."), strings.Split(a2, ".")
		_ = decodeSegment(p1[0], &h1)
		_ = decodeSegment(p1[1], &c1)
		_ = decodeSegment(p2[1], &c2)

		wantAlg := ES384
		if _, ok := key.(*rsa.PrivateKey); ok {
			wantAlg = RS384
		}
		if len(h1) != 3 || h1["typ"] != "JWT" || h1["kid"] != mustThumbprint(t, key) || h1["alg"] != wantAlg {
			t.Errorf("header %v: want exactly alg %s, kid (the thumbprint), typ JWT", h1, wantAlg)
		}
		if c1["iss"] != "svc" || c1["sub"] != "svc" || c1["aud"] != "https://ehr.example.org/token?tenant=a" {
			t.Errorf("claims %v: want iss = sub = client_id and aud = the token URL byte for byte, as a string", c1)
		}
		exp, iat := c1["exp"].(float64), c1["iat"].(float64)
		if exp-iat != DefaultAssertionLifetime.Seconds() || int64(iat) != now.Unix() {
			t.Errorf("iat %v exp %v: want iat = now and exp = iat + 4 min", iat, exp)
		}
		jti, _ := c1["jti"].(string)
		if raw, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(raw) < 16 {
			t.Errorf("jti %q: want at least 128 random bits", jti)
		}
		if c1["jti"] == c2["jti"] {
			t.Error("two assertions share a jti")
		}
		sig, _ := base64.RawURLEncoding.DecodeString(p1[2])
		if h1["alg"] == ES384 && len(sig) != 96 {
			t.Errorf("ES384 signature is %d bytes; want 96 (raw R||S)", len(sig))
		}
	}
}

func TestNewAssertion(t *testing.T) { // AUTH-05…08 for the other private_key_jwt grants
	t.Parallel()
	srv := newTokenServer(t, "app")
	for _, key := range []crypto.Signer{testRSAKey(), testECKey()} {
		srv.register(mustThumbprint(t, key), key.Public())
		a1, err := NewAssertion(Key{Signer: key}, "app", srv.TokenURL(), time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		a2, _ := NewAssertion(Key{Signer: key}, "app", srv.TokenURL(), time.Now(), time.Minute)
		for _, a := range []string{a1, a2} {
			if err := srv.verify(a); err != nil {
				t.Fatalf("%T: %v", key, err)
			}
		}
	}
	for name, f := range map[string]func() (string, error){
		"6 min": func() (string, error) {
			return NewAssertion(Key{Signer: testECKey()}, "app", "https://x/token", time.Now(), 6*time.Minute)
		},
		"no client": func() (string, error) {
			return NewAssertion(Key{Signer: testECKey()}, "", "https://x/token", time.Now(), 0)
		},
		"no key": func() (string, error) { return NewAssertion(Key{}, "app", "https://x/token", time.Now(), 0) },
		"wrong alg": func() (string, error) {
			return NewAssertion(Key{Signer: testECKey(), Algorithm: RS384}, "app", "https://x/token", time.Now(), 0)
		},
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// BenchmarkAssertionSign measures building and signing one assertion (CONV-9: ES384 ≥ 1,000/s per core).
func BenchmarkAssertionSign(b *testing.B) {
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ES384", testECKey()}, {"RS384-2048", testRSAKey()}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &Config{ClientID: "svc", TokenURL: "https://ehr.example.org/token", Scopes: []string{"system/*.rs"}, PrivateKey: tc.key}
			r, err := c.resolve(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.signer.sign(now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
