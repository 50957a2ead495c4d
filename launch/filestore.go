package launch

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// FileSessionStore is a SessionStore that keeps each TokenSet in its own file, encrypted with
// AES-256-GCM (SEC-07) and readable only by the owner (0600, in a 0700 directory). File names are
// SHA-256 hashes of the keys, so no key appears on disk and no key can name a path.
type FileSessionStore struct{ f fileStore }

// FileStateStore is a StateStore on the file system, encrypted like FileSessionStore. Take renames
// the file before reading it, so a state is taken at most once even by several processes sharing
// the directory. A file that does not decrypt (another store key) is an unknown state.
type FileStateStore struct{ f fileStore }

var (
	_ SessionStore = (*FileSessionStore)(nil)
	_ StateStore   = (*FileStateStore)(nil)
)

// NewFileSessionStore returns a store in dir (created 0700 if missing) encrypting with key, which
// must be 32 random bytes. Losing the key loses the sessions; rotating it logs every user out: a
// file that does not decrypt (another key, altered, or moved) reads as no session (ErrNoSession),
// never as a store failure.
func NewFileSessionStore(dir string, key []byte) (*FileSessionStore, error) {
	f, err := newFileStore(dir, key)
	if err != nil {
		return nil, err
	}
	return &FileSessionStore{f}, nil
}

// NewFileStateStore returns a StateStore in dir (created 0700 if missing) encrypting with key
// (32 random bytes).
func NewFileStateStore(dir string, key []byte) (*FileStateStore, error) {
	f, err := newFileStore(dir, key)
	if err != nil {
		return nil, err
	}
	f.ext = stateExt
	return &FileStateStore{f}, nil
}

// Load reads and decrypts the set stored under key.
func (s *FileSessionStore) Load(_ context.Context, key string) (*TokenSet, error) {
	ts := new(TokenSet)
	if err := s.f.read(s.f.path(key), key, ts); err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, ErrNoSession
		case errors.Is(err, errUnreadable):
			return nil, fmt.Errorf("%w: %w", ErrNoSession, err)
		}
		return nil, err
	}
	if expired(ts.Expires, time.Now()) {
		_ = os.Remove(s.f.path(key))
		return nil, ErrNoSession
	}
	return ts, nil
}

// Save encrypts ts and replaces the file of key atomically.
func (s *FileSessionStore) Save(_ context.Context, key string, ts *TokenSet) error {
	return s.f.write(key, ts)
}

// Delete removes the file of key.
func (s *FileSessionStore) Delete(_ context.Context, key string) error {
	if err := os.Remove(s.f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("launch: session store: %w", err)
	}
	return nil
}

// Save encrypts rec and stores it under state until rec.Expires. Every so often it also removes
// the records of launches that were abandoned and have expired, so that the directory does not
// grow with every launch that never comes back.
func (s *FileStateStore) Save(_ context.Context, state string, rec *Record) error {
	if err := s.f.write(state, rec); err != nil {
		return err
	}
	if !rec.Expires.IsZero() {
		// The file's modification time is its expiry: sweep reads no file to find the expired.
		if err := os.Chtimes(s.f.path(state), time.Time{}, rec.Expires); err != nil {
			return fmt.Errorf("launch: state store: %w", err)
		}
	}
	if s.f.saves.Add(1)%256 == 0 {
		s.f.sweep(time.Now())
	}
	return nil
}

// Take atomically claims the file of state (by renaming it), then reads and removes it.
func (s *FileStateStore) Take(_ context.Context, state string) (*Record, error) {
	p := s.f.path(state)
	claimed := p + ".taken." + randomString(8)
	if err := os.Rename(p, claimed); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrStateUnknown
		}
		return nil, fmt.Errorf("launch: state store: %w", err)
	}
	defer os.Remove(claimed)
	rec := new(Record)
	if err := s.f.read(claimed, state, rec); err != nil {
		if errors.Is(err, errUnreadable) {
			return nil, fmt.Errorf("%w: %w", ErrStateUnknown, err)
		}
		return nil, err
	}
	return rec, nil
}

// fileStore is the encrypted-file core shared by the two file stores.
type fileStore struct {
	dir   string
	ext   string // file name extension: stateExt for FileStateStore, none for FileSessionStore
	aead  cipher.AEAD
	saves *atomic.Int64 // for the amortised sweep of FileStateStore
}

// stateExt ends the names of FileStateStore's files, so that its sweep never touches a session
// file, even in a directory shared with a FileSessionStore.
const stateExt = ".state"

func newFileStore(dir string, key []byte) (fileStore, error) {
	if len(key) != 32 {
		return fileStore{}, configErr("file store key must be 32 bytes, got %d", len(key))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fileStore{}, fmt.Errorf("launch: file store: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fileStore{}, fmt.Errorf("launch: file store: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fileStore{}, fmt.Errorf("launch: file store: %w", err)
	}
	return fileStore{dir: dir, aead: aead, saves: new(atomic.Int64)}, nil
}

// path names the file of key by its SHA-256 hash.
func (f fileStore) path(key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(f.dir, hex.EncodeToString(h[:])+f.ext)
}

// write seals v (JSON) with the key as additional data, so that a file copied to another name does
// not decrypt, and renames it into place.
func (f fileStore) write(key string, v any) error {
	plain, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("launch: file store: %w", err)
	}
	nonce := make([]byte, f.aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := f.aead.Seal(nonce, nonce, plain, []byte(key))
	clear(plain)
	tmp, err := os.CreateTemp(f.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("launch: file store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("launch: file store: %w", err)
	}
	if _, err := tmp.Write(sealed); err != nil {
		tmp.Close()
		return fmt.Errorf("launch: file store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("launch: file store: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path(key)); err != nil {
		return fmt.Errorf("launch: file store: %w", err)
	}
	return nil
}

// sweep removes the state files whose modification time, their expiry, lies more than a minute
// before now. Failures are ignored: the next sweep tries again.
func (f fileStore) sweep(now time.Time) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if len(e.Name()) != sha256.Size*2+len(stateExt) || !strings.HasSuffix(e.Name(), stateExt) || !e.Type().IsRegular() {
			continue // session, temporary and claimed files, anything else
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(now.Add(-time.Minute)) {
			_ = os.Remove(filepath.Join(f.dir, e.Name()))
		}
	}
}

// errUnreadable: a file that exists but does not hold a value this store wrote for its key (another
// store key, altered, moved, truncated). The stores treat it as absent, like redisstore.
var errUnreadable = errors.New("launch: file store: unreadable value")

// read opens and decrypts the file at p, written for key, into v. A file whose content is not such
// a value gives an error wrapping errUnreadable; I/O failures are returned as they are.
func (f fileStore) read(p, key string, v any) error {
	file, err := os.Open(p)
	if err != nil {
		return err
	}
	defer file.Close()
	sealed, err := httpx.ReadLimited(file, 4<<20)
	switch {
	case errors.Is(err, httpx.ErrBodyTooLarge):
		return fmt.Errorf("%w: %s is too large", errUnreadable, filepath.Base(p))
	case err != nil:
		return fmt.Errorf("launch: file store: %w", err)
	}
	ns := f.aead.NonceSize()
	if len(sealed) < ns {
		return fmt.Errorf("%w: %s is truncated", errUnreadable, filepath.Base(p))
	}
	plain, err := f.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(key))
	if err != nil {
		return fmt.Errorf("%w: %s does not decrypt (wrong key or tampered)", errUnreadable, filepath.Base(p))
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %s: %w", errUnreadable, filepath.Base(p), err)
	}
	return nil
}
