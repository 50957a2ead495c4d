package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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

	resp, err := noRedirect.Do(req)
	if err != nil {
		return nil, fmt.Errorf("smart: token request to %s: %w", originOf(tokenURL), scrubErr(err, form))
	}
	defer resp.Body.Close()
	body, err := httpx.ReadLimited(resp.Body, httpx.MaxSmallBody)
	if err != nil {
		return nil, fmt.Errorf("smart: token response from %s: %w", originOf(tokenURL), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, retrieveError(resp, body, form)
	}
	tok, err := ParseTokenResponse(body, time.Now())
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			re.Response = resp
			re.Body = scrub(body, form)
		}
		return nil, err
	}
	return tok, nil
}

// retrieveError builds the *oauth2.RetrieveError for a non-2xx token response.
func retrieveError(resp *http.Response, body []byte, form url.Values) *oauth2.RetrieveError {
	re := &oauth2.RetrieveError{Response: resp, Body: scrub(body, form)}
	var e struct {
		Code    any    `json:"error"`
		Desc    string `json:"error_description"`
		URI     string `json:"error_uri"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if s, ok := e.Code.(string); ok {
			re.ErrorCode = sanitize(s)
		}
		re.ErrorDescription = sanitize(e.Desc)
		if re.ErrorDescription == "" && e.Message != "" {
			re.ErrorDescription = sanitize(e.Message)
		}
		re.ErrorURI = sanitize(e.URI)
	}
	if re.ErrorCode == "" && re.ErrorDescription != "" {
		// A non-OAuth JSON body (athenaPractice): keep Error() informative and bounded.
		re.Body = []byte(re.ErrorDescription)
	}
	return re
}

// scrub returns a short escaped snippet of body with every sensitive form value removed, so that a
// hostile server echoing our assertion or secret cannot make us print it.
func scrub(body []byte, form url.Values) []byte {
	s := string(body)
	for k, vs := range form {
		if !httpx.IsSensitive(k) && k != "client_assertion" && k != "code_verifier" && k != "refresh_token" {
			continue
		}
		for _, v := range vs {
			if len(v) >= 4 {
				s = strings.ReplaceAll(s, v, "REDACTED")
			}
		}
	}
	return []byte(httpx.Snippet([]byte(s)))
}

func scrubErr(err error, form url.Values) error {
	msg := string(scrub([]byte(err.Error()), form))
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "token endpoint"
	}
	return httpx.Origin(u)
}
