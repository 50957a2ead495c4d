package launch

import (
	"crypto/rand"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/sessions"
)

// This is the only file that imports gorilla/sessions (STYLE 8, 20). The cookie carries one value:
// a random browser session id, signed (HMAC-SHA256) and encrypted (AES) by securecookie. Tokens never
// go into the cookie: a SMART token set does not fit in 4 KB (deps.md §3), and the cookie would carry
// bearer credentials (SEC-07).

// Cookie values: the session id; the previous one and when it was replaced (rotate), so that an
// authorization started before a rotation can still complete within MaxStateAge; and the handles of
// the browser's launches, space-separated, so that a rotation can move them to the new id.
const (
	sidKey      = "sid"
	prevKey     = "prev"
	rotatedKey  = "rotated"
	launchesKey = "launches"
)

// maxBrowserLaunches bounds the launches one browser holds at once (and so the cookie's size): when
// a new launch would exceed it, the oldest is deleted.
const maxBrowserLaunches = 16

// cookieState is what the browser session cookie says.
type cookieState struct {
	sid, prev string
	rotated   time.Time
	handles   []string // oldest first
}

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
	// A __Host- cookie is Secure, host-only and for Path=/: a sibling or parent domain cannot set
	// or overwrite it (cookie tossing), so it is the default wherever the options allow it.
	hostOK := !o.InsecureNoSecure && st.Options.Secure && st.Options.Path == "/" && st.Options.Domain == ""
	name := o.Name
	switch lower := strings.ToLower(name); {
	case name == "" && hostOK:
		name = DefaultHostCookieName
	case name == "":
		name = DefaultCookieName
	case strings.HasPrefix(lower, "__host-") && !hostOK:
		return nil, configErr("Cookie.Name: a __Host- cookie needs Secure, Path \"/\" and no Domain")
	case strings.HasPrefix(lower, "__secure-") && (o.InsecureNoSecure || !st.Options.Secure):
		return nil, configErr("Cookie.Name: a __Secure- cookie needs Secure")
	}
	return &browserSessions{store: st, name: name}, nil
}

// read returns what r's cookie says; the zero cookieState when r carries no valid cookie.
func (b *browserSessions) read(r *http.Request) cookieState {
	s, err := b.store.New(r, b.name)
	if err != nil || s.IsNew {
		return cookieState{}
	}
	var cs cookieState
	cs.sid, _ = s.Values[sidKey].(string)
	if cs.sid == "" {
		return cookieState{}
	}
	cs.prev, _ = s.Values[prevKey].(string)
	if sec, ok := s.Values[rotatedKey].(int64); ok {
		cs.rotated = time.Unix(sec, 0)
	}
	if l, _ := s.Values[launchesKey].(string); l != "" {
		cs.handles = strings.Fields(l)
	}
	return cs
}

// write issues a cookie that says cs.
func (b *browserSessions) write(w http.ResponseWriter, r *http.Request, cs cookieState) error {
	s, _ := b.store.New(r, b.name) // a fresh session on error; its values are replaced below
	s.Values = map[any]any{sidKey: cs.sid}
	if cs.prev != "" {
		s.Values[prevKey] = cs.prev
		s.Values[rotatedKey] = cs.rotated.Unix()
	}
	if len(cs.handles) > 0 {
		s.Values[launchesKey] = strings.Join(cs.handles, " ")
	}
	return b.store.Save(r, w, s)
}

// get returns the browser session id of r, or "" when r carries no valid cookie (none, forged,
// expired, or signed with a retired key: all mean "no session", never a server error).
func (b *browserSessions) get(r *http.Request) string { return b.read(r).sid }

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
