package redisstore_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/redisstore"
)

// TestOpenConfigErrors: unusable URLs and options fail with ErrConfig before anything is dialled,
// and no error text contains the password (CONV-1, CONV-4).
func TestOpenConfigErrors(t *testing.T) {
	t.Parallel()
	const pw = "PW-secret-in-url"
	key := [][]byte{newKey()}
	for _, tc := range []struct {
		name string
		url  string
		opts redisstore.Options
	}{
		{"no keys", "redis://127.0.0.1:1", redisstore.Options{}},
		{"short key", "redis://127.0.0.1:1", redisstore.Options{Keys: [][]byte{make([]byte, 16)}}},
		{"second key bad", "redis://127.0.0.1:1", redisstore.Options{Keys: [][]byte{newKey(), {1}}}},
		{"http scheme", "http://127.0.0.1:6379", redisstore.Options{Keys: key}},
		{"plaintext to a remote host", "redis://app:" + pw + "@redis.example.org:6379/0", redisstore.Options{Keys: key}},
		{"skip_verify", "rediss://app:" + pw + "@redis.example.org:6380?skip_verify=true", redisstore.Options{Keys: key}},
		{"InsecureSkipVerify", "rediss://redis.example.org:6380", redisstore.Options{Keys: key, TLSConfig: &tls.Config{InsecureSkipVerify: true}}},
		{"does not parse", "redis://app:" + pw + "@[::1", redisstore.Options{Keys: key}},
		{"control character", "redis://app:" + pw + "@127.0.0.1\x7f:6379", redisstore.Options{Keys: key}},
		{"unknown option", "redis://app:" + pw + "@127.0.0.1:1?frobnicate=1", redisstore.Options{Keys: key}},
		{"bad database", "redis://app:" + pw + "@127.0.0.1:1/x", redisstore.Options{Keys: key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := redisstore.Open(t.Context(), tc.url, tc.opts)
			if !errors.Is(err, redisstore.ErrConfig) || st != nil {
				t.Fatalf("Open = %v, %v; want ErrConfig", st, err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
	if _, err := redisstore.New(nil, redisstore.Options{Keys: key}); !errors.Is(err, redisstore.ErrConfig) {
		t.Errorf("New(nil) = %v, want ErrConfig", err)
	}
}

// TestOpenUnreachable: a server that is not there fails Open within the timeout with ErrUnavailable,
// without the password in the text.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	const pw = "PW-secret-unreachable"
	port := freePort(t) // nothing listens there
	start := time.Now()
	_, err := redisstore.Open(t.Context(), "redis://app:"+pw+"@127.0.0.1:"+strconv.Itoa(port),
		redisstore.Options{Keys: [][]byte{newKey()}, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), pw) {
		t.Errorf("error leaks the password: %v", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Open of an unreachable server took %v", d)
	}
}

// TestRedisACL: an ACL user with a password and a key pattern works through the URL's user info; a
// wrong password fails Open with ErrUnavailable without echoing it; keys outside the user's pattern
// are refused by Redis, as typed errors.
func TestRedisACL(t *testing.T) {
	t.Parallel()
	const pw = "PW-secret-acl-user"
	r := startRedis(t, "--user", "default", "off", "--user", "app", "on", ">"+pw, "~smartfhir:*", "+@all")
	url := "redis://app:" + pw + "@" + r.addr() + "/0"
	st, err := redisstore.Open(t.Context(), url, redisstore.Options{Keys: [][]byte{newKey()}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Sessions().Save(t.Context(), "k", newTokenSet(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sessions().Load(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}

	_, err = redisstore.Open(t.Context(), "redis://app:wrong-"+pw+"@"+r.addr(), redisstore.Options{Keys: [][]byte{newKey()}})
	if !errors.Is(err, redisstore.ErrUnavailable) || strings.Contains(err.Error(), pw) {
		t.Fatalf("wrong password: %v, want ErrUnavailable without the password", err)
	}

	other, err := redisstore.Open(t.Context(), url, redisstore.Options{Keys: [][]byte{newKey()}, Prefix: "other:"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = other.Sessions().Save(t.Context(), "k", newTokenSet(time.Now()))
	if !errors.Is(err, redisstore.ErrUnavailable) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("write outside the ACL key pattern: %v, want ErrUnavailable naming NOPERM", err)
	}
}

// TestRedisTLS: rediss:// with a private CA in TLSConfig works, the certificate is verified (no CA:
// refused), and a plain redis:// client cannot talk to the TLS port.
func TestRedisTLS(t *testing.T) {
	t.Parallel()
	r, client := startRedisTLS(t)
	keys := [][]byte{newKey()}
	opts := redisstore.Options{Keys: keys, Timeout: time.Second, TLSConfig: &tls.Config{RootCAs: client.RootCAs}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		st, err := redisstore.Open(t.Context(), "rediss://"+net.JoinHostPort(host, strconv.Itoa(r.port)), opts)
		if err != nil {
			t.Fatalf("rediss://%s: %v", host, err)
		}
		if err := st.States().Save(t.Context(), "s", newRecord(time.Now())); err != nil {
			t.Fatal(err)
		}
		if _, err := st.States().Take(t.Context(), "s"); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	untrusted := opts
	untrusted.TLSConfig = nil
	if _, err := redisstore.Open(t.Context(), "rediss://"+r.addr(), untrusted); !errors.Is(err, redisstore.ErrUnavailable) ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("rediss:// to a certificate from an unknown CA: %v, want ErrUnavailable for the certificate", err)
	}
	if _, err := redisstore.Open(t.Context(), r.URL(), untrusted); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Errorf("plain redis:// to the TLS port: %v, want ErrUnavailable", err)
	}
}

// TestRedisLoggedOutAfterKeyRemoval is the user's view of a removed key: the launch's Session
// lookup says "no session" (launch again), not a server error.
func TestRedisLoggedOutAfterKeyRemoval(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	k1 := newKey()
	before := openStore(t, r, redisstore.Options{Keys: [][]byte{k1}})
	if err := before.Sessions().Save(t.Context(), "k", newTokenSet(time.Now())); err != nil {
		t.Fatal(err)
	}
	after := openStore(t, r, redisstore.Options{Keys: [][]byte{newKey()}})
	_, err := after.Sessions().Load(t.Context(), "k")
	if !errors.Is(err, launch.ErrNoSession) || errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Load = %v, want launch.ErrNoSession", err)
	}
}

// writeTestCerts writes a CA and a server certificate for localhost and 127.0.0.1 into dir and
// returns a client TLS config that trusts the CA.
func writeTestCerts(tb testing.TB, dir string) *tls.Config {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redisstore test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		tb.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.crt":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.crt": {Type: "CERTIFICATE", Bytes: srvDER},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}
