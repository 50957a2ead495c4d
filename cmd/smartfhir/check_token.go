package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/backend"
	"github.com/smartfhir/smartfhir/internal/httpx"
	"github.com/smartfhir/smartfhir/launch"
	"github.com/smartfhir/smartfhir/smart"
)

// tokenTitles are the token-response lines, skipped together when no token can be requested.
var tokenTitles = []struct{ id, level, title string }{
	{"BS-01", levelMust, "backend services advertised (client_credentials, private_key_jwt, RS384/ES384)"},
	{"TOK-12", levelMust, "token errors are RFC 6749 JSON"},
	{"TOK-14", levelMust, "token response not cacheable (Cache-Control: no-store, Pragma: no-cache)"},
	{"TOK-02", levelMust, "access_token and token_type bearer"},
	{"TOK-13", levelMust, "token response well-formed and header-safe"},
	{"TOK-03", levelMust, "expires_in a non-negative number"},
	{"TOK-04", levelMust, "granted scope returned"},
	{"BS-04", levelMust, "backend token response: expires_in and scope, no refresh_token"},
	{"TOK-06", levelMust, "patient and encounter are FHIR ids"},
	{"TOK-08", levelMust, "fhirContext in the SMART 2.1+ object form"},
	{"TOK-09", levelMust, "need_patient_banner a boolean, smart_style_url a URL"},
	{"TOK-10", levelMust, "extension members are URIs or __-prefixed"},
}

func (c *checker) skipToken(from, reason string) {
	skipping := false
	for _, t := range tokenTitles {
		if t.id == from {
			skipping = true
		}
		if skipping {
			c.rep.add(t.id, t.level, statusSkip, t.title, reason)
		}
	}
}

func title(id string) (level, t string) {
	for _, x := range tokenTitles {
		if x.id == id {
			return x.level, x.title
		}
	}
	return levelMust, id
}

// tokenCheck adds a token line by ID.
func (c *checker) tokenCheck(id string, ok bool, detail string) {
	level, t := title(id)
	c.rep.check(id, level, t, ok, detail)
}

func (c *checker) tokenAdd(id, status, detail string) {
	level, t := title(id)
	c.rep.add(id, level, status, t, detail)
}

// token requests one client_credentials token with the given credentials and judges the responses
// as the server sent them.
func (c *checker) token(ctx context.Context) error {
	if c.cfg == nil {
		c.skipToken("BS-01", "no usable discovery document")
		return nil
	}
	if c.s.ClientID == "" || c.s.Auth == authPublic {
		c.skipToken("BS-01", "no credentials: pass --client-id with --key (or SMARTFHIR_CLIENT_SECRET) to request a real token")
		return nil
	}
	cr, err := c.g.credentials(c.s)
	if err != nil {
		return err
	}
	err = c.cfg.RequireBackend()
	c.tokenCheck("BS-01", err == nil, firstNonEmpty(errText(err), "client_credentials with private_key_jwt is advertised"))

	tokenURL, err := url.Parse(c.cfg.TokenEndpoint)
	if err != nil {
		c.skipToken("TOK-12", "token_endpoint does not parse")
		return nil
	}
	trusted, _ := httpx.NewOrigins(append([]string{c.s.FHIR}, c.s.TrustOrigins...)...)
	if !trusted.Allows(tokenURL) {
		// AUTH-09: an assertion or secret goes only to an origin the user chose.
		c.rep.add("AUTH-09", levelMust, statusSkip, "credentials go only to trusted origins",
			fmt.Sprintf("the token endpoint is on %s, not the FHIR base's origin: pass --trust-origin %s to send credentials there", httpx.Origin(tokenURL), httpx.Origin(tokenURL)))
		c.skipToken("TOK-12", "the token endpoint is not on a trusted origin (AUTH-09)")
		return nil
	}
	scopes := strings.Fields(c.s.Scope)
	if len(scopes) == 0 {
		scopes = []string{pick(c.cfg.ScopeStyle() == smart.ScopeStyleV2, "system/*.rs", "system/*.read")}
	}
	if cr.secret != "" {
		c.g.notef("note: client_credentials with a client secret is plain OAuth 2.0, not SMART Backend Services (which needs --key)")
	}
	bc := &backend.Config{
		ClientID: c.s.ClientID, TokenURL: c.cfg.TokenEndpoint, FHIRBase: c.s.FHIR, Scopes: scopes,
		PrivateKey: cr.key, KeyID: cr.kid, ClientSecret: cr.secret, Header: c.s.Header, Profile: c.s.Vendor,
		HTTPClient: c.hc, TrustedOrigins: c.s.TrustOrigins, InsecureAllowHTTP: c.s.InsecureHTTP,
	}
	tctx, cancel := context.WithTimeout(ctx, 2*c.reqTimeout)
	defer cancel()
	_, tokErr := bc.Token(tctx)
	xs := c.rec.all(func(x *exchange) bool { return x.Method == http.MethodPost && x.URL == c.cfg.TokenEndpoint })
	c.judgeTokenExchanges(xs, tokErr)
	return nil
}

// judgeTokenExchanges judges every token response (errors: TOK-12; the final success: TOK-*, BS-04).
func (c *checker) judgeTokenExchanges(xs []*exchange, tokErr error) {
	if len(xs) == 0 {
		c.tokenAdd("TOK-12", statusFail, "no token request was sent: "+errText(tokErr))
		c.skipToken("TOK-14", "no token response")
		return
	}
	var errProblems, errSeen []string
	for i, x := range xs {
		if x.Err != nil {
			errProblems = append(errProblems, fmt.Sprintf("request %d: %v", i+1, x.Err))
			continue
		}
		if x.Status >= 200 && x.Status < 300 {
			continue
		}
		code, desc, ok := oauthErrorBody(x)
		if !ok {
			ct := x.Header.Get("Content-Type")
			errProblems = append(errProblems, fmt.Sprintf("HTTP %d %s with %s: not an RFC 6749 error response (JSON with \"error\")",
				x.Status, http.StatusText(x.Status), pick(len(x.Body) == 0, "an empty body", firstNonEmpty(ct, "no Content-Type"))))
			continue
		}
		errSeen = append(errSeen, fmt.Sprintf("HTTP %d %s%s", x.Status, code, pick(desc != "", ": "+desc, "")))
	}
	switch {
	case len(errProblems) > 0:
		c.tokenAdd("TOK-12", statusFail, strings.Join(errProblems, "; ")+pick(len(xs) > 1, fmt.Sprintf(" (%d attempts)", len(xs)), ""))
	case len(errSeen) > 0:
		c.tokenAdd("TOK-12", statusPass, "error responses: "+strings.Join(errSeen, "; "))
	default:
		c.tokenAdd("TOK-12", statusPass, "no error response to judge")
	}

	last := xs[len(xs)-1]
	if last.Err != nil || last.Status != http.StatusOK {
		reason := "the token request failed"
		var re *oauth2.RetrieveError
		if errors.As(tokErr, &re) && re.ErrorCode != "" {
			reason = fmt.Sprintf("the token request was refused: %s%s", re.ErrorCode, pick(re.ErrorDescription != "", " ("+re.ErrorDescription+")", ""))
		} else if tokErr != nil {
			reason += ": " + tokErr.Error()
		}
		c.rep.add("BS-06", levelMust, statusFail, "token request accepted", reason+"; check --client-id, the key or secret registered with the server, and --scope")
		c.skipToken("TOK-14", "no token was issued")
		return
	}
	c.judgeTokenSuccess(last, tokErr)
}

// oauthErrorBody reads an RFC 6749 §5.2 error body.
func oauthErrorBody(x *exchange) (code, desc string, ok bool) {
	mt, _, _ := mime.ParseMediaType(x.Header.Get("Content-Type"))
	var e struct {
		Error any    `json:"error"`
		Desc  string `json:"error_description"`
	}
	if mt != "application/json" || json.Unmarshal(x.Body, &e) != nil {
		return "", "", false
	}
	s, ok := e.Error.(string)
	return s, e.Desc, ok && s != ""
}

// knownTokenMembers are the token response members of RFC 6749 and SMART App Launch 2.2.
var knownTokenMembers = []string{"access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token",
	"patient", "encounter", "fhirContext", "need_patient_banner", "smart_style_url", "intent", "tenant", "authorization_details"}

// judgeTokenSuccess judges a 200 token response as sent. Token values are never quoted.
func (c *checker) judgeTokenSuccess(x *exchange, tokErr error) {
	cc, pragma := x.Header.Get("Cache-Control"), x.Header.Get("Pragma")
	c.tokenCheck("TOK-14", strings.Contains(strings.ToLower(cc), "no-store") && strings.Contains(strings.ToLower(pragma), "no-cache"),
		fmt.Sprintf("Cache-Control %q, Pragma %q", cc, pragma))

	var m rawDocument
	if err := json.Unmarshal(x.Body, &m); err != nil || m == nil || x.Truncated {
		c.tokenAdd("TOK-13", statusFail, "the body is not one JSON object of at most 1 MiB")
		c.skipToken("TOK-02", "no JSON token response")
		return
	}

	// TOK-02: access_token and token_type.
	access, okAccess := m.str("access_token")
	tt, okType := m.str("token_type")
	switch {
	case !okAccess || access == "":
		c.tokenAdd("TOK-02", statusFail, "access_token is missing or not a non-empty string")
	case !okType:
		c.tokenAdd("TOK-02", statusFail, "token_type is missing or not a string")
	case !strings.EqualFold(tt, "bearer"):
		c.tokenAdd("TOK-02", statusFail, fmt.Sprintf("token_type %q is not bearer", tt))
	default:
		c.tokenAdd("TOK-02", statusPass, fmt.Sprintf("token_type %q (compared case-insensitively)", tt))
	}

	// TOK-13: well-formed, and an access token that cannot inject headers.
	_, parseErr := smart.ParseTokenResponse(x.Body, time.Now())
	switch {
	case okAccess && access != "" && !smart.ValidAccessToken(access):
		c.tokenAdd("TOK-13", statusFail, "access_token has characters outside RFC 6750 b64token (CR, LF, spaces…): it could inject HTTP headers")
	case parseErr != nil && !isFieldErr(parseErr, "token_type", "expires_in", "patient", "encounter", "access_token"):
		c.tokenAdd("TOK-13", statusFail, parseErr.Error())
	default:
		c.tokenAdd("TOK-13", statusPass, fmt.Sprintf("one JSON object, %d bytes", len(x.Body)))
	}

	// TOK-03 and BS-04: expires_in.
	expires, expiresState := expiresIn(m)
	switch expiresState {
	case "missing":
		c.tokenAdd("TOK-03", statusWarn, "expires_in is missing (clients assume 300 s)")
	case "string":
		c.tokenAdd("TOK-03", statusWarn, fmt.Sprintf("expires_in is a string (%q), not a number: tolerated", expires))
	case "negative", "invalid":
		c.tokenAdd("TOK-03", statusFail, fmt.Sprintf("expires_in %s is %s", expires, expiresState))
	default:
		c.tokenAdd("TOK-03", statusPass, "expires_in "+expires+" s")
	}

	// TOK-04: scope.
	scope, okScope := m.str("scope")
	switch {
	case !m.has("scope"):
		c.tokenAdd("TOK-04", statusFail, "scope is missing: SMART requires the granted scope in every token response")
	case !okScope:
		c.tokenAdd("TOK-04", statusFail, "scope is not a string")
	default:
		c.tokenAdd("TOK-04", statusPass, fmt.Sprintf("granted %q", scope))
	}

	// BS-04: what a backend services response must have.
	var bs []string
	if expiresState == "missing" {
		bs = append(bs, "expires_in is missing (REQUIRED for backend services)")
	}
	if !m.has("scope") {
		bs = append(bs, "scope is missing (REQUIRED)")
	}
	bsFail := len(bs) > 0
	if m.has("refresh_token") {
		bs = append(bs, "a refresh_token was issued (SHOULD NOT for backend services; it is ignored)")
	}
	switch {
	case bsFail:
		c.tokenAdd("BS-04", statusFail, strings.Join(bs, "; "))
	case len(bs) > 0:
		c.tokenAdd("BS-04", statusWarn, strings.Join(bs, "; "))
	default:
		c.tokenAdd("BS-04", statusPass, "expires_in and scope present, no refresh_token")
	}

	// TOK-06: launch context ids.
	var ids []string
	badID := false
	for _, k := range []string{"patient", "encounter"} {
		if !m.has(k) {
			continue
		}
		v, ok := m.str(k)
		if !ok || !smart.IsFHIRID(v) {
			badID = true
			ids = append(ids, fmt.Sprintf("%s %q is not a FHIR id ([A-Za-z0-9-.]{1,64}); clients must not build URLs from it", k, v))
		} else {
			ids = append(ids, k+" "+v)
		}
	}
	c.tokenCheck("TOK-06", !badID, firstNonEmpty(strings.Join(ids, "; "), "no patient or encounter in this token response"))

	// TOK-08: fhirContext shape.
	if raw, ok := m["fhirContext"]; ok {
		var items []json.RawMessage
		switch {
		case json.Unmarshal(raw, &items) != nil:
			c.tokenAdd("TOK-08", statusFail, "fhirContext is not an array")
		case slices.ContainsFunc(items, func(it json.RawMessage) bool { return strings.HasPrefix(strings.TrimSpace(string(it)), `"`) }):
			c.tokenAdd("TOK-08", statusWarn, "fhirContext items are strings: the SMART 2.0 form; 2.1+ sends objects with reference, canonical or identifier")
		default:
			c.tokenAdd("TOK-08", statusPass, fmt.Sprintf("%d fhirContext item(s) as objects", len(items)))
		}
	} else {
		c.tokenAdd("TOK-08", statusSkip, "no fhirContext in this token response")
	}

	// TOK-09: need_patient_banner and smart_style_url.
	var t9 []string
	t9fail := false
	if raw, ok := m["need_patient_banner"]; ok {
		if s := strings.TrimSpace(string(raw)); s != "true" && s != "false" {
			t9fail = true
			t9 = append(t9, fmt.Sprintf("need_patient_banner is %s, not a JSON boolean", s))
		}
	}
	if s, ok := m.str("smart_style_url"); ok && s != "" {
		if u, err := url.Parse(s); err != nil || u.Scheme != "https" && !(u.Scheme == "http" && httpx.IsLoopbackHost(u.Hostname())) {
			t9 = append(t9, "smart_style_url is not an https URL")
		}
	}
	switch {
	case !m.has("need_patient_banner") && !m.has("smart_style_url"):
		c.tokenAdd("TOK-09", statusSkip, "no need_patient_banner or smart_style_url in this token response")
	case t9fail:
		c.tokenAdd("TOK-09", statusFail, strings.Join(t9, "; "))
	case len(t9) > 0:
		c.tokenAdd("TOK-09", statusWarn, strings.Join(t9, "; "))
	default:
		c.tokenAdd("TOK-09", statusPass, "types as specified")
	}

	// TOK-10: extension members.
	var ext, badExt []string
	for k := range m {
		if slices.Contains(knownTokenMembers, k) {
			continue
		}
		ext = append(ext, k)
		if u, err := url.Parse(k); !strings.HasPrefix(k, "__") && (err != nil || !u.IsAbs()) {
			badExt = append(badExt, k)
		}
	}
	slices.Sort(ext)
	slices.Sort(badExt)
	switch {
	case len(badExt) > 0:
		c.tokenAdd("TOK-10", statusWarn, "members that are neither SMART nor extensions (a full URI or __ prefix): "+strings.Join(badExt, ", "))
	case len(ext) > 0:
		c.tokenAdd("TOK-10", statusPass, "extension members (kept by clients): "+strings.Join(ext, ", "))
	default:
		c.tokenAdd("TOK-10", statusPass, "no extension members")
	}
	if tokErr != nil && !c.rep.failed() {
		c.rep.add("BS-06", levelMust, statusFail, "token response usable", "the toolkit refused the response: "+tokErr.Error())
	}
}

// expiresIn classifies expires_in: "number", "string", "missing", "negative" or "invalid".
func expiresIn(m rawDocument) (string, string) {
	raw, ok := m["expires_in"]
	if !ok || string(raw) == "null" {
		return "", "missing"
	}
	s := strings.TrimSpace(string(raw))
	state := "number"
	if strings.HasPrefix(s, `"`) {
		if json.Unmarshal(raw, &s) != nil {
			return "", "invalid"
		}
		state = "string"
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return s, "invalid"
	case f < 0:
		return s, "negative"
	}
	return s, state
}

// isFieldErr reports whether err is a *smart.TokenResponseError about one of fields (judged by
// their own lines).
func isFieldErr(err error, fields ...string) bool {
	var te *smart.TokenResponseError
	return errors.As(err, &te) && slices.Contains(fields, te.Field)
}

// refresh refreshes the stored login of the server once (REF-01, REF-06), persisting the rotated
// tokens as any command would.
func (c *checker) refresh(ctx context.Context) {
	const title = "refresh of the stored login"
	sess, rec, _, err := c.g.resumeLogin(c.s)
	switch {
	case rec != nil && c.s.ClientID != "" && rec.ClientID != c.s.ClientID:
		// Its refresh would go out with this client's credentials, which the server rightly refuses.
		c.rep.add("REF-01", levelMust, statusSkip, title, fmt.Sprintf("the stored login belongs to client %s, not %s: run check with --client-id %s to check its refresh",
			rec.ClientID, c.s.ClientID, rec.ClientID))
		return
	case errors.Is(err, errNoLogin):
		c.rep.add("REF-01", levelMust, statusSkip, title, "no stored login for this server: run 'smartfhir login' first to check refresh")
		return
	case err != nil:
		var ue *usageError
		st := statusFail
		if errors.As(err, &ue) {
			st = statusSkip // the check lacks the login's credentials; the server is not at fault
		}
		c.rep.add("REF-01", levelMust, st, title, err.Error())
		return
	case !sess.Refreshable:
		c.rep.add("REF-01", levelMust, statusSkip, title, "the stored login has no refresh token (ask for offline_access)")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*c.reqTimeout)
	defer cancel()
	err = sess.Refresh(ctx)
	var re *oauth2.RetrieveError
	switch {
	case err == nil:
		c.rep.add("REF-01", levelMust, statusPass, title, "a new access token was issued")
	case errors.As(err, &re) && re.ErrorCode == "invalid_grant", errors.Is(err, launch.ErrReauthRequired):
		c.rep.add("REF-06", levelMust, statusFail, "refresh token accepted",
			"the refresh was refused ("+err.Error()+"); the stored tokens are unusable: run 'smartfhir login' again")
	default:
		c.rep.add("REF-01", levelMust, statusFail, title, err.Error())
	}
}
