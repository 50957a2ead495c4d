package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
)

func newLogoutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "revoke and delete a stored login",
		Long: `logout revokes the stored login of --fhir (and --profile) at the server's revocation_endpoint
(RFC 7009: the refresh token, which ends the whole grant, then the access token) when the server
advertises one, and deletes the tokens. A failed revocation is reported and the tokens are deleted
anyway.

The tokens are revoked as the client the login was made with. When --client-id (or the profile)
names another client, its key or secret is never used for the login: a public login client needs
none, and for a confidential one logout reports that its credentials were not given (pass its
--client-id with its --key or secret to revoke) and deletes the tokens as above.

  smartfhir logout --fhir http://127.0.0.1:9090/fhir
  smartfhir logout --profile sandbox`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runLogout(cmd.Context(), g) },
	}
	g.serverFlags(cmd)
	return cmd
}

func runLogout(ctx context.Context, g *globals) error {
	s, ctx, cancel, err := g.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	dir, err := g.configDir()
	if err != nil {
		return err
	}
	st, err := openLoginStore(dir, false)
	if errors.Is(err, errNoLogin) {
		return fmt.Errorf("not logged in to %s: nothing to log out", httpx.Redact(s.FHIR))
	}
	if err != nil {
		return err
	}
	key := loginKey(s.FHIR, s.Profile)
	rec, err := st.get(key)
	if errors.Is(err, errNoLogin) {
		return fmt.Errorf("not logged in to %s%s: nothing to log out", httpx.Redact(s.FHIR), pick(s.Profile != "", " with profile "+s.Profile, ""))
	}
	if err != nil {
		return err
	}

	revoked := "not revoked: the server advertises no revocation_endpoint"
	g.vendorProfile(ctx, s) // its headers (Epic-Client-ID) go with the refresh and the revocation
	sess, _, _, rerr := g.resumeLoginContext(ctx, s)
	switch {
	case rerr != nil:
		revoked = "not revoked: " + rerr.Error()
		if rec.Key != "" { // the tokens go anyway (a login that has expired, a missing --key)
			if err := st.sessions.Delete(ctx, rec.Key); err != nil {
				g.warnf("deleting the tokens: %v", err)
			}
		}
	case rec.RevocationURL != "":
		ls, err := s.forLogin(rec)
		if err != nil {
			return err
		}
		revoked = g.revokeLogin(ctx, ls, rec, sess)
		if err := sess.Logout(ctx); err != nil {
			g.warnf("deleting the tokens: %v", err)
		}
	default:
		if err := sess.Logout(ctx); err != nil {
			g.warnf("deleting the tokens: %v", err)
		}
	}
	if err := st.remove(key); err != nil {
		return err
	}
	if g.json {
		return printJSON(g.stdout, map[string]any{"fhir": s.FHIR, "profile": s.Profile, "logged_out": true, "revocation": revoked})
	}
	fmt.Fprintf(g.stderr, "Logged out of %s (tokens deleted; %s).\n", safe(s.FHIR), revoked)
	return nil
}

// revokeLogin revokes the refresh and access tokens of a login (RFC 7009) and says what happened.
// The revocation endpoint gets the tokens and the client's credentials, so it must be on a trusted
// origin (CONV-1).
func (g *globals) revokeLogin(ctx context.Context, s *serverSettings, rec *loginRecord, sess *launch.Session) string {
	u, err := url.Parse(rec.RevocationURL)
	if err != nil {
		return "not revoked: the revocation endpoint does not parse"
	}
	trusted, _ := httpx.NewOrigins(append([]string{s.FHIR, rec.TokenURL}, s.TrustOrigins...)...)
	if !trusted.Allows(u) {
		return fmt.Sprintf("not revoked: the revocation endpoint is on %s, not a trusted origin (--trust-origin)", httpx.Origin(u))
	}
	cr, err := g.credentials(s)
	if err != nil {
		return "not revoked: " + err.Error()
	}
	tok, err := sess.Token(ctx)
	if err != nil {
		return "not revoked: " + err.Error()
	}
	var done []string
	for _, t := range []struct{ value, hint string }{{tok.RefreshToken, "refresh_token"}, {tok.AccessToken, "access_token"}} {
		if t.value == "" {
			continue
		}
		if err := revokeToken(ctx, s, cr, rec, t.value, t.hint); err != nil {
			return "revocation failed: " + err.Error()
		}
		done = append(done, t.hint)
	}
	return "revoked: " + strings.Join(done, ", ")
}

// revokeToken POSTs one RFC 7009 revocation request to the login's revocation endpoint,
// authenticating the client as at the token endpoint: a fresh client assertion (private_key_jwt,
// aud = the token endpoint), HTTP Basic with a secret, or client_id in the form for a public client.
// It never follows a redirect, and never quotes the token in an error.
func revokeToken(ctx context.Context, s *serverSettings, cr credentials, rec *loginRecord, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	switch {
	case cr.key != nil:
		jwt, err := backend.NewAssertion(backend.Key{Signer: cr.key, ID: cr.kid}, s.ClientID, rec.TokenURL, time.Now(), 0)
		if err != nil {
			return err
		}
		form.Set("client_assertion_type", backend.ClientAssertionType)
		form.Set("client_assertion", jwt)
	case cr.secret == "":
		form.Set("client_id", s.ClientID)
	}
	var basic func(*http.Request)
	if cr.key == nil && cr.secret != "" {
		basic = func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(s.ClientID), url.QueryEscape(cr.secret)) }
	}
	resp, body, err := postForm(ctx, noRedirects(httpClient()), s, rec.RevocationURL, form, basic)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return endpointError(resp, body, token)
}

// postForm POSTs form to an OAuth endpoint (revocation, introspection) with hc, which must not follow
// redirects: the request carries a token or client credentials. It adds the profile's headers and
// returns the response with at most 1 MiB of its body.
func postForm(ctx context.Context, hc *http.Client, s *serverSettings, endpoint string, form url.Values, auth func(*http.Request)) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range s.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if auth != nil {
		auth(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: %w", httpx.Redact(endpoint), err)
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: %w", httpx.Redact(endpoint), err)
	}
	return resp, body, nil
}

// noRedirects makes hc return a redirect instead of following it.
func noRedirects(hc *http.Client) *http.Client {
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// endpointError describes a failed answer of an OAuth endpoint (revocation, introspection): the
// status and, for an RFC 6749 error body, its error and error_description, escaped, with secret
// (a token the request carried) scrubbed out should the server echo it.
func endpointError(resp *http.Response, body []byte, secret string) error {
	scrub := func(s string) string { return oneLine(strings.ReplaceAll(s, secret, "REDACTED")) }
	if code, desc, ok := oauthErrorBody(&exchange{Status: resp.StatusCode, Header: resp.Header, Body: body}); ok {
		return fmt.Errorf("HTTP %d: %s%s", resp.StatusCode, scrub(code), pick(desc != "", ": "+scrub(desc), ""))
	}
	return fmt.Errorf("HTTP %d", resp.StatusCode)
}
