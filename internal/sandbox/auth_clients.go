package sandbox

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// Token endpoint authentication methods (RFC 7591 §2, SMART client types).
const (
	authNone       = "none"                // client-public
	authSecretBas  = "client_secret_basic" // client-confidential-symmetric
	authSecretPost = "client_secret_post"
	authPrivateJWT = "private_key_jwt" // client-confidential-asymmetric, backend services
)

// Grant types.
const (
	grantCode    = "authorization_code"
	grantRefresh = "refresh_token"
	grantClient  = "client_credentials"
)

// Client is a registered client: the RFC 7591 metadata the sandbox uses, plus two sandbox extensions
// (launch_url and skip_login).
type Client struct {
	ID           string          `json:"client_id"`
	Secret       string          `json:"client_secret,omitempty"`
	AuthMethod   string          `json:"token_endpoint_auth_method"` // none, client_secret_basic, client_secret_post, private_key_jwt
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	LaunchURL    string          `json:"launch_url,omitempty"` // app launch URL for the EHR launch simulator
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	JWKSURI      string          `json:"jwks_uri,omitempty"`
	Scope        string          `json:"scope,omitempty"`       // allowed scopes ("" = any); backend clients: pre-authorised system scopes
	GrantTypes   []string        `json:"grant_types,omitempty"` // authorization_code, refresh_token, client_credentials
	Name         string          `json:"client_name,omitempty"`
	// SkipLogin makes the authorize endpoint skip the login/consent and patient-picker pages for this
	// client: the launch's patient, else the first patient, is picked automatically.
	SkipLogin bool `json:"skip_login,omitempty"`
}

// clientRecord is a registered client as stored: the secret only as a hash, the inline JWKS parsed.
type clientRecord struct {
	Client
	secretHash [sha256.Size]byte
	keys       []*clientKey // inline jwks
	issuedAt   time.Time
}

// allows reports whether the client is registered for grant type gt.
func (c *clientRecord) allows(gt string) bool { return slices.Contains(c.GrantTypes, gt) }

// secretOK compares a presented secret with the stored hash in constant time.
func (c *clientRecord) secretOK(secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], c.secretHash[:]) == 1
}

type clientStore struct {
	mu      sync.RWMutex
	m       map[string]*clientRecord
	revoked map[[2]string]bool // {client id, kid} of revoked keys
}

func (cs *clientStore) get(id string) (*clientRecord, bool) {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	c, ok := cs.m[id]
	return c, ok
}

func (cs *clientStore) keyRevoked(clientID, kid string) bool {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	return cs.revoked[[2]string{clientID, kid}]
}

// list returns the registered clients sorted by name, then id.
func (cs *clientStore) list() []*clientRecord {
	cs.mu.RLock()
	out := make([]*clientRecord, 0, len(cs.m))
	for _, c := range cs.m {
		out = append(out, c)
	}
	cs.mu.RUnlock()
	slices.SortFunc(out, func(a, b *clientRecord) int {
		return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID)
	})
	return out
}

// RegisterClient registers c after the checks of the registration endpoint and returns it with ID
// (when empty) and, for client_secret_* methods, Secret filled in. The secret is returned only here.
//
// Defaults: AuthMethod is private_key_jwt when JWKS or JWKSURI is set, else client_secret_basic
// (RFC 7591 §2); GrantTypes is [client_credentials] for a private_key_jwt client without redirect URIs,
// else [authorization_code, refresh_token].
func (s *Server) RegisterClient(c Client) (Client, error) {
	rec, err := s.auth.newClientRecord(c)
	if err != nil {
		return Client{}, err
	}
	out := rec.Client
	rec.Secret = ""
	cs := &s.auth.clients
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*clientRecord{}
	}
	if _, dup := cs.m[rec.ID]; dup {
		return Client{}, newOAuthError(http.StatusBadRequest, "invalid_client_metadata", "client_id %q is taken", rec.ID)
	}
	cs.m[rec.ID] = rec
	return out, nil
}

// RevokeClientKey revokes one key of a private_key_jwt client: assertions signed with it fail with
// invalid_client from now on (CONV-7).
func (s *Server) RevokeClientKey(clientID, kid string) error {
	cs := &s.auth.clients
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.m[clientID]; !ok {
		return fmt.Errorf("sandbox: unknown client %q", clientID)
	}
	if cs.revoked == nil {
		cs.revoked = map[[2]string]bool{}
	}
	cs.revoked[[2]string{clientID, kid}] = true
	return nil
}

// newClientRecord fills defaults into c and validates it (RFC 7591 §2, SMART client types).
func (a *authState) newClientRecord(c Client) (*clientRecord, error) {
	bad := func(format string, args ...any) error {
		return newOAuthError(http.StatusBadRequest, "invalid_client_metadata", format, args...)
	}
	if c.AuthMethod == "" {
		c.AuthMethod = authSecretBas
		if len(c.JWKS) > 0 || c.JWKSURI != "" {
			c.AuthMethod = authPrivateJWT
		}
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{grantCode, grantRefresh}
		if c.AuthMethod == authPrivateJWT && len(c.RedirectURIs) == 0 {
			c.GrantTypes = []string{grantClient}
		}
	}
	for _, gt := range c.GrantTypes {
		if gt != grantCode && gt != grantRefresh && gt != grantClient {
			return nil, bad("grant type %q is not supported", gt)
		}
	}
	rec := &clientRecord{Client: c, issuedAt: a.s.Now()}
	switch c.AuthMethod {
	case authNone:
		if rec.allows(grantClient) {
			return nil, bad("a public client cannot use client_credentials")
		}
	case authSecretBas, authSecretPost:
		if rec.Secret == "" {
			rec.Secret = randomToken()
		}
		rec.secretHash = sha256.Sum256([]byte(rec.Secret))
	case authPrivateJWT:
		if err := a.checkClientKeys(rec); err != nil {
			return nil, err
		}
	default:
		return nil, bad("token_endpoint_auth_method %q is not supported", c.AuthMethod)
	}
	if rec.allows(grantCode) && len(c.RedirectURIs) == 0 {
		return nil, newOAuthError(http.StatusBadRequest, "invalid_redirect_uri", "authorization_code needs redirect_uris")
	}
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return nil, newOAuthError(http.StatusBadRequest, "invalid_redirect_uri", "%v", err)
		}
	}
	if c.LaunchURL != "" {
		if _, err := httpx.ParseAbsURL(c.LaunchURL, false); err != nil {
			return nil, bad("launch_url: %v", err)
		}
	}
	switch {
	case rec.ID == "":
		rec.ID = randomToken()[:20]
	case len(rec.ID) > 255 || strings.IndexFunc(rec.ID, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return nil, bad("client_id must be 1-255 printable ASCII characters (RFC 6749 VSCHAR)")
	}
	return rec, nil
}

// checkClientKeys validates the key metadata of a private_key_jwt client: exactly one of jwks and
// jwks_uri (RFC 7591 §2), an https (or loopback http) jwks_uri, a parseable public JWK Set.
func (a *authState) checkClientKeys(rec *clientRecord) error {
	bad := func(format string, args ...any) error {
		return newOAuthError(http.StatusBadRequest, "invalid_client_metadata", format, args...)
	}
	switch {
	case len(rec.JWKS) > 0 && rec.JWKSURI != "":
		return bad("jwks and jwks_uri must not both be present")
	case rec.JWKSURI != "":
		if _, err := httpx.ParseAbsURL(rec.JWKSURI, false); err != nil {
			return bad("jwks_uri: %v", err)
		}
	case len(rec.JWKS) > 0:
		keys, err := parseClientJWKS(rec.JWKS)
		if err != nil {
			return bad("jwks: %v", err)
		}
		rec.keys = keys
	default:
		return bad("private_key_jwt needs jwks or jwks_uri")
	}
	return nil
}

// checkRedirectURI accepts https URLs, http on loopback, and private-use schemes of native apps
// (RFC 8252 §7.1: a reverse domain name); never a fragment.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("redirect_uri %q is not an absolute URI", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("redirect_uri %q has a fragment", s)
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return httpx.CheckURL(u, false)
	}
	if !strings.Contains(u.Scheme, ".") {
		return fmt.Errorf("redirect_uri scheme %q is neither https nor a private-use (reverse domain) scheme", u.Scheme)
	}
	return nil
}

// register is the open RFC 7591 registration endpoint (CONV-7): no initial access token.
func (a *authState) register(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeOAuthError(w, invalidRequest("the body must be application/json"))
		return
	}
	body, err := httpx.ReadLimited(r.Body, httpx.MaxSmallBody)
	if err != nil {
		writeOAuthError(w, invalidRequest("reading the body: %v", err))
		return
	}
	var c Client
	if err := json.Unmarshal(body, &c); err != nil {
		writeOAuthError(w, newOAuthError(http.StatusBadRequest, "invalid_client_metadata", "malformed JSON: %v", err))
		return
	}
	c.ID, c.Secret = "", "" // the server assigns both
	out, err := a.s.RegisterClient(c)
	var oe *oauthError
	if errors.As(err, &oe) {
		writeOAuthError(w, oe)
		return
	} else if err != nil {
		writeOAuthError(w, newOAuthError(http.StatusBadRequest, "invalid_client_metadata", "%v", err))
		return
	}
	resp := struct {
		Client
		IssuedAt        int64 `json:"client_id_issued_at"`
		SecretExpiresAt *int  `json:"client_secret_expires_at,omitempty"`
	}{Client: out, IssuedAt: a.s.Now().Unix()}
	if out.Secret != "" {
		resp.SecretExpiresAt = new(int) // 0: never
	}
	writeJSON(w, http.StatusCreated, resp)
}

// revokeKeyHandler is DELETE /sandbox/clients/{client_id}/keys/{kid}: RevokeClientKey over HTTP.
func (a *authState) revokeKeyHandler(w http.ResponseWriter, r *http.Request) {
	if err := a.s.RevokeClientKey(r.PathValue("client_id"), r.PathValue("kid")); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
