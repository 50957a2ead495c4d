package launch

import (
	"crypto/rand"
	"net/http"
	"time"

	"github.com/gorilla/sessions"
)

// This is the only file that imports gorilla/sessions (STYLE 8, 20). The cookie carries one value:
// a random browser session id, signed (HMAC-SHA256) and encrypted (AES) by securecookie. Tokens never
// go into the cookie: a SMART token set does not fit in 4 KB (deps.md §3), and the cookie would carry
// bearer credentials (SEC-07).

const sidKey = "sid"

// browserSessions reads and issues the browser session cookie.
type browserSessions struct {
	store *sessions.CookieStore
	name  string
}

func newBrowserSessions(c *Config, maxAge time.Duration) (*browserSessions, error) {
	keys := c.CookieKeys
	if len(keys) == 0 {
		keys = [][]byte{randomKey(32), randomKey(32)}
	}
	for i, k := range keys {
		if k == nil && i%2 == 1 {
			continue
		}
		if i%2 == 0 && len(k) < 32 {
			return nil, configErr("CookieKeys[%d]: hash key must be at least 32 bytes", i)
		}
		if i%2 == 1 && len(k) != 16 && len(k) != 24 && len(k) != 32 {
			return nil, configErr("CookieKeys[%d]: encryption key must be 16, 24 or 32 bytes", i)
		}
	}
	if len(keys) < 2 || keys[1] == nil {
		return nil, configErr("CookieKeys: the newest pair needs an encryption key")
	}
	st := sessions.NewCookieStore(keys...)
	o := c.Cookie
	st.Options = &sessions.Options{
		Path:        o.Path,
		Domain:      o.Domain,
		HttpOnly:    true,
		Secure:      !o.InsecureNoSecure || o.SameSiteNone,
		SameSite:    http.SameSiteLaxMode,
		Partitioned: o.Partitioned,
	}
	if st.Options.Path == "" {
		st.Options.Path = "/"
	}
	if o.SameSiteNone {
		st.Options.SameSite = http.SameSiteNoneMode
	}
	st.MaxAge(int(maxAge / time.Second))
	name := o.Name
	if name == "" {
		name = DefaultCookieName
	}
	return &browserSessions{store: st, name: name}, nil
}

// get returns the browser session id of r, or "" when r carries no valid cookie (none, forged,
// expired, or signed with a retired key: all mean "no session", never a server error).
func (b *browserSessions) get(r *http.Request) string {
	s, err := b.store.New(r, b.name)
	if err != nil || s.IsNew {
		return ""
	}
	sid, _ := s.Values[sidKey].(string)
	return sid
}

// ensure returns the browser session id of r, issuing a new cookie on w when r has none. The cookie
// is re-issued on every call so that its expiry slides with use.
func (b *browserSessions) ensure(w http.ResponseWriter, r *http.Request) (string, error) {
	s, err := b.store.New(r, b.name)
	sid, _ := s.Values[sidKey].(string)
	if err != nil || s.IsNew || sid == "" {
		s.Values = map[any]any{}
		sid = randomString(32)
		s.Values[sidKey] = sid
	}
	if err := b.store.Save(r, w, s); err != nil {
		return "", err
	}
	return sid, nil
}

// clear expires the cookie.
func (b *browserSessions) clear(w http.ResponseWriter, r *http.Request) {
	s, _ := b.store.New(r, b.name)
	s.Options.MaxAge = -1
	s.Values = map[any]any{}
	_ = b.store.Save(r, w, s)
}

func randomKey(n int) []byte {
	k := make([]byte, n)
	_, _ = rand.Read(k)
	return k
}
