package launch

import (
	"context"
	"fmt"
	"net/http"

	"github.com/smartfhir/smartfhir/smart"
)

// SessionFromToken stores a token the app obtained elsewhere (a host that ran the launch, a token
// handed over by another component) as a new launch of r's browser, without the authorization
// dance (quirks §3 #14). iss must be allowed; the server is discovered for refreshes and id_token
// keys. An id_token in tok is verified like a launch's (without nonce) and rejected if invalid; the
// launch context rules of TOK-05 and TOK-07 apply. Like a completed launch, it rotates the browser
// session id and issues the new session cookie on w.
func (c *Config) SessionFromToken(ctx context.Context, w http.ResponseWriter, r *http.Request, iss string, tok *smart.Token) (*Session, error) {
	rt, err := c.runtime()
	if err != nil {
		return nil, err
	}
	norm, err := rt.policy.check(iss)
	if err != nil {
		return nil, err
	}
	if tok == nil || tok.Token == nil || !smart.ValidAccessToken(tok.AccessToken) {
		return nil, &smart.TokenResponseError{Field: "access_token", Reason: "missing or not a bearer token"}
	}
	info, err := rt.discover(ctx, norm, iss)
	if err != nil {
		return nil, fmt.Errorf("launch: discovery of %s: %w", quote(iss), err)
	}
	cp := *tok
	ts := &TokenSet{Issuer: iss, AuthIssuer: info.issuer, TokenURL: info.tokenURL, Token: &cp}
	rec := &Record{Issuer: iss, AuthIssuer: info.issuer, JWKSURI: info.jwksURI}
	if err := rt.checkGrant(ctx, norm, rec, ts); err != nil {
		return nil, err
	}
	return rt.storeRotated(ctx, w, r, ts)
}
