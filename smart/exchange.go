package smart

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// ExchangeToken POSTs form to tokenURL once (RFC 6749 §3.2) and parses the answer with
// ParseTokenResponse. It is the single token-endpoint round trip that launch and backend share:
//   - the form is sent as application/x-www-form-urlencoded with Accept: application/json and
//     Cache-Control: no-store (TOK-01, TOK-14); hdr adds headers (client authentication, vendor headers);
//   - it never retries: a retried code exchange or assertion is a replay (CONV-3);
//   - redirects are not followed: credentials must not travel to a URL the caller did not choose;
//   - the body is capped at 1 MiB (CONV-2);
//   - any OAuth error, JSON or not, with any status, is an *oauth2.RetrieveError with ErrorCode,
//     ErrorDescription and ErrorURI filled when the server sent them (TOK-12); non-OAuth JSON such as
//     athenaPractice's {"message":…} lands in ErrorDescription. The body kept in the error is a short,
//     escaped snippet with every credential from form scrubbed out.
//
// hc nil means a client with the CONV-2 timeouts.
func ExchangeToken(ctx context.Context, hc *http.Client, tokenURL string, form url.Values, hdr http.Header) (*Token, error) {
	if hc == nil {
		hc = httpx.NewClient(60 * time.Second)
		// A client of its own for one request: leave no idle connection (and its goroutines) behind.
		defer hc.CloseIdleConnections()
	}
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("smart: token request: %w", err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cache-Control", "no-store")

	secrets := secretsOf(form, req.Header)
	resp, err := noRedirect.Do(req)
	if err != nil {
		return nil, fmt.Errorf("smart: token request to %s: %w", originOf(tokenURL), scrubErr(err, secrets))
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, fmt.Errorf("smart: token response from %s: %w", originOf(tokenURL), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, retrieveError(resp, body, secrets)
	}
	tok, err := ParseTokenResponse(body, time.Now())
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// A 200 with an error member: rebuild the error from the body with the secrets
			// removed before the server text is bounded, so that no part of one survives.
			return nil, retrieveError(resp, body, secrets)
		}
		return nil, err
	}
	return tok, nil
}

// retrieveError builds the *oauth2.RetrieveError for an error response (non-2xx, or 2xx with an
// error member). Server text is stripped of every secret first, then bounded and escaped: a hostile
// server may echo our assertion or secret in error_description, which Error prints.
func retrieveError(resp *http.Response, body []byte, secrets []string) *oauth2.RetrieveError {
	// Without an error code, RetrieveError.Error prints resp.Status, whose reason phrase the server
	// writes freely (an echoed credential, terminal escapes): keep only the code and its standard text.
	resp.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	re := &oauth2.RetrieveError{Response: resp, Body: scrub(body, secrets)}
	var e struct {
		Code    any    `json:"error"`
		Desc    string `json:"error_description"`
		URI     string `json:"error_uri"`
		Message string `json:"message"`
	}
	clean := func(s string) string { return sanitize(redact(s, secrets)) }
	if json.Unmarshal(body, &e) == nil {
		if s, ok := e.Code.(string); ok {
			re.ErrorCode = clean(s)
		}
		re.ErrorDescription = clean(e.Desc)
		if re.ErrorDescription == "" && e.Message != "" {
			re.ErrorDescription = clean(e.Message)
		}
		re.ErrorURI = clean(e.URI)
	}
	// A non-OAuth JSON body (athenaPractice {"message","id"}) keeps its scrubbed, bounded snippet in
	// Body: RetrieveError.Error() prints it, and ClassifyTokenError reads its members.
	return re
}

// secretsOf lists every credential the request carries, in the forms a server might echo it: the
// sensitive form values raw and URL-encoded, and the Authorization header whole, as its
// credentials part and, for Basic, decoded (x/oauth2 URL-encodes the id and secret inside it).
func secretsOf(form url.Values, hdr http.Header) []string {
	var out []string
	add := func(v string) {
		if len(v) >= 4 {
			out = append(out, v)
			if e := url.QueryEscape(v); e != v {
				out = append(out, e)
			}
		}
	}
	for k, vs := range form {
		if httpx.IsSensitive(k) {
			for _, v := range vs {
				add(v)
			}
		}
	}
	for k, vs := range hdr {
		if !httpx.IsSensitive(k) {
			continue
		}
		for _, v := range vs {
			add(v)
			scheme, cred, ok := strings.Cut(v, " ")
			if !ok {
				continue
			}
			add(cred)
			if !strings.EqualFold(scheme, "Basic") {
				continue
			}
			if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
				add(string(dec))
				if _, pass, ok := strings.Cut(string(dec), ":"); ok {
					add(pass)
					if p, err := url.QueryUnescape(pass); err == nil {
						add(p)
					}
				}
			}
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// redact replaces every secret in s with REDACTED.
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "REDACTED")
	}
	return s
}

// scrub returns a short escaped snippet of body with every secret removed, so that a hostile server
// echoing our assertion or secret cannot make us print it.
func scrub(body []byte, secrets []string) []byte {
	return []byte(httpx.Snippet([]byte(redact(string(body), secrets))))
}

// scrubErr returns err with every secret removed from its text. The chain is kept, so that
// errors.Is(err, context.DeadlineExceeded) and errors.As(err, *net.OpError) still work; only Error()
// changes. (A caller that digs out a wrapped *url.Error and prints it sees what net/http wrote: the
// request URL, which carries no credential here, since credentials travel in the body or headers.)
func scrubErr(err error, secrets []string) error {
	msg := redact(err.Error(), secrets)
	if msg == err.Error() {
		return err
	}
	return &scrubbedError{msg: httpx.SanitizeText(msg), err: err}
}

// scrubbedError is an error whose text has had the secrets removed; Unwrap returns the original.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "token endpoint"
	}
	return httpx.Origin(u)
}
