package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

// Stored logins (CONV-6, SEC-07) live in <config dir>/logins:
//
//	key        32 random bytes (0600), made by the first login; every key below is derived from it
//	           with HKDF-SHA256
//	sessions/  the token sets, one AES-256-GCM file each (launch.FileSessionStore)
//	index      which login is which: FHIR base and profile name -> the launch's session key (a bearer
//	           secret: launch.Session.Key), AES-256-GCM
//	locks/     a lock file while a command refreshes a login, so that two commands never redeem one
//	           refresh token (REF-04)
//
// The key lies beside the data it protects. The encryption keeps tokens out of backups, search
// indexes and an accidental cat; it cannot hide them from someone who can read your files as you,
// which the 0700 directory and 0600 files are for. Delete the directory to forget every login.

const (
	loginDirName   = "logins"
	loginKeyFile   = "key"
	loginIndexFile = "index"
	maxIndexFile   = 4 << 20
	indexAD        = "smartfhir login index v1"
)

// errNoLogin is returned when no login is stored for a server.
var errNoLogin = errors.New("not logged in")

// errOtherClient is returned when a stored login belongs to a confidential client other than the one
// the command names, whose credentials are therefore not at hand.
var errOtherClient = errors.New("the credentials of the login's client are not given")

// loginRecord describes one stored login. The tokens themselves are in the session store; the
// record holds what finds them (the launch's key) and what logout and refresh need.
type loginRecord struct {
	FHIR        string `json:"fhir"`
	Profile     string `json:"profile,omitempty"`
	ClientID    string `json:"client_id"`
	Auth        string `json:"auth"`
	RedirectURL string `json:"redirect_url"`
	Scope       string `json:"scope"`
	// Key resumes the launch (launch.Config.SessionByKey). It is a bearer secret, like the tokens.
	Key              string    `json:"key"`
	TokenURL         string    `json:"token_url,omitempty"`
	RevocationURL    string    `json:"revocation_url,omitempty"`
	IntrospectionURL string    `json:"introspection_url,omitempty"`
	Created          time.Time `json:"created"`
}

// loginStore is the directory of stored logins.
type loginStore struct {
	dir      string
	sessions *launch.FileSessionStore
	index    cipher.AEAD
}

// openLoginStore opens the store under configDir. With create it makes the directory and the key
// when missing; without, a missing key means no login was ever stored (errNoLogin).
func openLoginStore(configDir string, create bool) (*loginStore, error) {
	dir := filepath.Join(configDir, loginDirName)
	master, err := readLoginKey(dir, create)
	if err != nil {
		return nil, err
	}
	derive := func(info string, n int) []byte {
		k, err := hkdf.Key(sha256.New, master, nil, "smartfhir "+info, n)
		if err != nil {
			panic(err) // only for lengths HKDF-SHA256 cannot produce; ours are constants
		}
		return k
	}
	sessions, err := launch.NewFileSessionStore(filepath.Join(dir, "sessions"), derive("sessions", 32))
	if err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	block, err := aes.NewCipher(derive("index", 32))
	if err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	return &loginStore{dir: dir, sessions: sessions, index: aead}, nil
}

// readLoginKey reads dir/key, creating dir (0700) and the key (0600, 32 random bytes) when create.
func readLoginKey(dir string, create bool) ([]byte, error) {
	path := filepath.Join(dir, loginKeyFile)
	k, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(k) != 32 {
			return nil, fmt.Errorf("login store: %s is damaged (want 32 bytes); delete %s to forget every login", path, dir)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("login store: %w", err)
	case !create:
		return nil, errNoLogin
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	k = make([]byte, 32)
	_, _ = rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readLoginKey(dir, false) // another login made it first
	}
	if err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	if _, err := f.Write(k); err != nil {
		f.Close()
		return nil, fmt.Errorf("login store: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	return k, nil
}

// loginKey names the login of a FHIR base (compared without case in scheme and host and without
// a trailing slash) and profile.
func loginKey(fhir, profile string) string {
	norm := strings.TrimRight(fhir, "/")
	if u, err := url.Parse(norm); err == nil && u.Host != "" {
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		norm = u.String()
	}
	return norm + "\x00" + profile
}

// readIndex decrypts the index; a missing index is empty.
func (st *loginStore) readIndex() (map[string]*loginRecord, error) {
	path := filepath.Join(st.dir, loginIndexFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*loginRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	defer f.Close()
	sealed, err := httpx.ReadLimited(f, maxIndexFile)
	if err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	ns := st.index.NonceSize()
	if len(sealed) < ns {
		return nil, fmt.Errorf("login store: %s is damaged; delete it to forget every login", path)
	}
	plain, err := st.index.Open(nil, sealed[:ns], sealed[ns:], []byte(indexAD))
	if err != nil {
		return nil, fmt.Errorf("login store: %s does not decrypt with %s; delete both to start over", path, filepath.Join(st.dir, loginKeyFile))
	}
	defer clear(plain)
	m := map[string]*loginRecord{}
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("login store: index: %w", err)
	}
	return m, nil
}

// writeIndex encrypts m and replaces the index atomically.
func (st *loginStore) writeIndex(m map[string]*loginRecord) error {
	plain, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("login store: %w", err)
	}
	defer clear(plain)
	nonce := make([]byte, st.index.NonceSize())
	_, _ = rand.Read(nonce)
	tmp, err := os.CreateTemp(st.dir, ".index-*")
	if err != nil {
		return fmt.Errorf("login store: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(st.index.Seal(nonce, nonce, plain, []byte(indexAD)))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(st.dir, loginIndexFile))
	}
	if err != nil {
		return fmt.Errorf("login store: %w", err)
	}
	return nil
}

// get returns the login stored under key, or errNoLogin.
func (st *loginStore) get(key string) (*loginRecord, error) {
	m, err := st.readIndex()
	if err != nil {
		return nil, err
	}
	rec, ok := m[key]
	if !ok {
		return nil, errNoLogin
	}
	return rec, nil
}

// put stores rec under key, replacing an earlier login. Two logins that finish at the same moment
// race on the index (the last write wins; the other login is then simply not found).
func (st *loginStore) put(key string, rec *loginRecord) error {
	m, err := st.readIndex()
	if err != nil {
		return err
	}
	m[key] = rec
	return st.writeIndex(m)
}

// remove forgets the login under key.
func (st *loginStore) remove(key string) error {
	m, err := st.readIndex()
	if err != nil {
		return err
	}
	if _, ok := m[key]; !ok {
		return errNoLogin
	}
	delete(m, key)
	return st.writeIndex(m)
}

var _ smart.Locker = (*loginStore)(nil)

// Lock implements smart.Locker with a lock file in locks/, so that smartfhir commands running at
// once refresh a login once: the first refreshes and stores the rotated tokens, the others wait and
// use them (REF-04; a server that sees a refresh token twice revokes the login). A lock file older
// than ttl was left by a command that died, and is taken over; a live holder never keeps it that
// long, as its refresh is bounded by the same ttl.
func (st *loginStore) Lock(ctx context.Context, name string, ttl time.Duration) (func(), error) {
	dir := filepath.Join(st.dir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("login store: %w", err)
	}
	h := sha256.Sum256([]byte(name))
	path := filepath.Join(dir, hex.EncodeToString(h[:]))
	pause := 5 * time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			var once sync.Once
			return func() { once.Do(func() { _ = os.Remove(path) }) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("login store: lock: %w", err)
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > ttl {
			_ = os.Remove(path) // stale: its holder died
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("login store: waiting for another smartfhir command to refresh the login: %w", ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
