package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// credentials are what a request presents to authenticate its client (RFC 6749 §2.3).
type credentials struct {
	method    string // the method used: none, client_secret_basic, client_secret_post, private_key_jwt
	clientID  string // claimed; for private_key_jwt read from the unverified assertion
	secret    string
	assertion string
	n         int // how many methods the request used
}

// readCredentials collects the client credentials of a token, introspection or revocation request
// without checking them.
func readCredentials(r *http.Request, form url.Values) (credentials, *oauthError) {
	var c credentials
	if id, secret, ok, err := basicAuth(r); err != nil {
		return c, invalidClient("malformed Basic credentials: %v", err)
	} else if ok {
		c.method, c.clientID, c.secret = authSecretBas, id, secret
		c.n++
	}
	if form.Has("client_secret") {
		c.method, c.clientID, c.secret = authSecretPost, form.Get("client_id"), form.Get("client_secret")
		c.n++
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		if form.Get("client_assertion_type") != jwtBearer {
			return c, invalidClient("client_assertion_type must be %s", jwtBearer)
		}
		c.method, c.assertion = authPrivateJWT, form.Get("client_assertion")
		c.clientID = unverifiedIssuer(c.assertion)
		c.n++
	}
	if c.n == 0 {
		c.method, c.clientID = authNone, form.Get("client_id")
	}
	return c, nil
}

// basicAuth decodes client_secret_basic: base64 of form-urlencoded id ":" form-urlencoded secret
// (RFC 6749 §2.3.1, which Go's Request.BasicAuth does not undo).
func basicAuth(r *http.Request) (id, secret string, ok bool, err error) {
	h := r.Header.Get("Authorization")
	scheme, b64, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", "", false, err
	}
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false, errBasicNoColon
	}
	// url.QueryUnescape's error quotes the bad escape: from the secret, that is part of the secret.
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", false, errBasicEscape
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", false, errBasicEscape
	}
	return id, secret, true, nil
}

var (
	errBasicNoColon = errors.New("no ':' between client id and secret")
	errBasicEscape  = errors.New("the client id or secret is not form-urlencoded (RFC 6749 §2.3.1)")
)

// unverifiedIssuer reads iss from an assertion without verifying it: only to key faults and counters.
func unverifiedIssuer(assertion string) string {
	p, err := parseJWS(assertion)
	if err != nil {
		return ""
	}
	var cl struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(p.payload, &cl) != nil {
		return ""
	}
	return cl.Iss
}

// authenticateClient authenticates the client of a request by the method it registered; using
// another method, or more than one (RFC 6749 §2.3), fails. A public client names itself with
// client_id in the body (TOK-01, AUTH-01).
func (a *authState) authenticateClient(r *http.Request, form url.Values, cred credentials) (*clientRecord, *oauthError) {
	if cred.n > 1 {
		return nil, invalidRequest("use exactly one client authentication method")
	}
	if cred.method == authPrivateJWT {
		c, oe := a.verifyAssertion(r.Context(), cred.assertion, a.endpoint(r, "/auth/token"))
		if oe == nil && form.Has("client_id") && form.Get("client_id") != c.ID {
			oe = invalidClient("client_id does not match the assertion's iss")
		}
		return c, oe
	}
	if cred.clientID == "" {
		return nil, invalidRequest("client_id is required for a public client")
	}
	c, ok := a.clients.get(cred.clientID)
	if !ok {
		return nil, invalidClient("unknown client_id %q", trunc(cred.clientID))
	}
	if c.AuthMethod != cred.method {
		return nil, invalidClient("client %q is registered for %s, not %s", c.ID, c.AuthMethod, cred.method)
	}
	if cred.method != authNone {
		if form.Has("client_id") && form.Get("client_id") != c.ID {
			return nil, invalidClient("client_id does not match the authenticated client")
		}
		if !c.secretOK(cred.secret) {
			return nil, invalidClient("client secret does not match")
		}
	}
	return c, nil
}
