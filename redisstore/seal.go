package redisstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// A sealed value is
//
//	version (1 byte, 1) | key id (8 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// with the Redis key name as additional data, so that a value copied under another key (another
// user's session, another state) does not open. The key id is a labelled SHA-256 of the key: it
// names the key without revealing it.
const (
	sealVersion = 1
	keyIDSize   = 8
	nonceSize   = 12
	sealHeader  = 1 + keyIDSize + nonceSize
)

type keyID [keyIDSize]byte

// keyring seals with its first key and opens with any of its keys.
type keyring struct {
	first keyID
	aeads map[keyID]cipher.AEAD
}

// errUnknownKey: the value was sealed with a key that is not (or no longer) configured.
var errUnknownKey = errors.New("sealed with a key that is not configured")

// errCorrupt: the value is not a sealed value of this package, or was altered or moved.
var errCorrupt = errors.New("not a valid sealed value")

func newKeyring(keys [][]byte) (*keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("redisstore: %w: Keys is empty: values must be encrypted at rest", ErrConfig)
	}
	r := &keyring{aeads: make(map[keyID]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("redisstore: %w: Keys[%d] has %d bytes, want %d random bytes", ErrConfig, i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w: Keys[%d]: %w", ErrConfig, i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w: Keys[%d]: %w", ErrConfig, i, err)
		}
		id := idOf(k)
		if i == 0 {
			r.first = id
		}
		r.aeads[id] = aead
	}
	return r, nil
}

func idOf(k []byte) keyID {
	h := sha256.New()
	h.Write([]byte("smartfhir redisstore key id\x00"))
	h.Write(k)
	var id keyID
	copy(id[:], h.Sum(nil))
	return id
}

// seal encrypts plain for the Redis key aad with the first key.
func (r *keyring) seal(plain []byte, aad string) []byte {
	out := make([]byte, sealHeader, sealHeader+len(plain)+16)
	out[0] = sealVersion
	copy(out[1:], r.first[:])
	_, _ = rand.Read(out[1+keyIDSize : sealHeader]) // crypto/rand.Read never fails (Go 1.24+)
	return r.aeads[r.first].Seal(out, out[1+keyIDSize:sealHeader], plain, []byte(aad))
}

// open decrypts a value sealed for the Redis key aad with any configured key.
func (r *keyring) open(sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < sealHeader+16 || sealed[0] != sealVersion {
		return nil, errCorrupt
	}
	var id keyID
	copy(id[:], sealed[1:])
	aead, ok := r.aeads[id]
	if !ok {
		return nil, errUnknownKey
	}
	plain, err := aead.Open(nil, sealed[1+keyIDSize:sealHeader], sealed[sealHeader:], []byte(aad))
	if err != nil {
		return nil, errCorrupt
	}
	return plain, nil
}

// ParseKeys reads encryption keys from text, newest first: base64 (standard or URL alphabet,
// padded or not) of 32 random bytes each, separated by commas or white space. It suits an
// environment variable such as SMARTFHIR_STORE_KEYS; make a key with
// `head -c 32 /dev/urandom | base64`. Errors name the position of a bad key, never its text.
func ParseKeys(s string) ([][]byte, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("redisstore: %w: no encryption key given", ErrConfig)
	}
	keys := make([][]byte, 0, len(fields))
	for i, f := range fields {
		k, err := decodeKey(f)
		if err != nil || len(k) != KeySize {
			return nil, fmt.Errorf("redisstore: %w: key %d is not the base64 of %d bytes", ErrConfig, i+1, KeySize)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
