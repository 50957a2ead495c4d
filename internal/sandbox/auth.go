package sandbox

import (
	"encoding/json"
	"net/http"
)

// STUB: the authorization-server helper replaces this file.

// Client is a registered client (RFC 7591 metadata subset).
type Client struct {
	ID           string          `json:"client_id"`
	Secret       string          `json:"client_secret,omitempty"`
	AuthMethod   string          `json:"token_endpoint_auth_method"` // none, client_secret_basic, client_secret_post, private_key_jwt
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	LaunchURL    string          `json:"launch_url,omitempty"` // app launch URL for the EHR launch simulator
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	JWKSURI      string          `json:"jwks_uri,omitempty"`
	Scope        string          `json:"scope,omitempty"`       // allowed scopes; backend clients: pre-authorised system scopes
	GrantTypes   []string        `json:"grant_types,omitempty"` // authorization_code, refresh_token, client_credentials
	Name         string          `json:"client_name,omitempty"`
}

var authFaultNames = []string{}

type authState struct{}

func newAuthState(s *Server) (*authState, error) { return &authState{}, nil }

func (a *authState) routes(mux *http.ServeMux) {}

// RegisterClient registers c, filling ID (and Secret for client_secret_* methods) when empty.
func (s *Server) RegisterClient(c Client) (Client, error) { return c, nil }
