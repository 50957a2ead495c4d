package smart

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// tokenServer serves h and counts requests.
func tokenServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func replyJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// TOK-01, TOK-14: one form POST with the right headers.
func TestExchangeTokenRequest(t *testing.T) {
	t.Parallel()
	body := loadTestdata(t, "token", "ehr-launch.json")
	srv, n := tokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
		for h, want := range map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
			"Cache-Control": "no-store", "Epic-Client-Id": "app", "Authorization": "Basic YXBwOnNlY3JldA==",
		} {
			if got := r.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		if r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("code") != "c0de" || r.PostForm.Get("code_verifier") != "v" {
			t.Errorf("form %v", r.PostForm)
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"c0de"}, "code_verifier": {"v"}, "redirect_uri": {"https://app.example/cb"}}
	hdr := http.Header{"Epic-Client-Id": {"app"}, "Authorization": {"Basic YXBwOnNlY3JldA=="}}
	tok, err := ExchangeToken(t.Context(), nil, srv.URL+"/token", form, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Patient != "123" || tok.AccessToken != "m7rt6i7s9nuxkjvi8vsx" || tok.Expiry.IsZero() {
		t.Errorf("token %+v", tok)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests", n.Load())
	}
}

// TOK-12 and CONV-3: errors are *oauth2.RetrieveError whatever the status and body, and nothing is
// retried.
func TestExchangeTokenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		h      http.HandlerFunc
		status int
		code   string
		desc   string
		inErr  string // a substring err.Error() must contain
	}{
		{"401 invalid_scope", replyJSON(401, `{"error":"invalid_scope","error_description":"scope not allowed"}`), 401, "invalid_scope", "scope not allowed", "invalid_scope"},
		{"400 invalid_grant", replyJSON(400, `{"error":"invalid_grant","error_uri":"https://ehr.example.org/errors/grant"}`), 400, "invalid_grant", "", "https://ehr.example.org/errors/grant"},
		{"403 unauthorized_client with persona", replyJSON(403, `{"error":"unauthorized_client","error_uri":"https://oracle-like.example.com/client-persona-mismatch?persona=provider"}`), 403, "unauthorized_client", "", "persona=provider"},
		{"200 with an error member", replyJSON(200, `{"error":"invalid_request","error_description":"bad"}`), 200, "invalid_request", "bad", "invalid_request"},
		{"HTML 502", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1>"+strings.Repeat("<p>x</p>", 2000)+"</body></html>")
		}, 502, "", "", "502"},
		{"athenaPractice message", replyJSON(401, `{"message":"Invalid client credentials","id":401}`), 401, "", "Invalid client credentials", "Invalid client credentials"},
		{"bare 400", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(400) }, 400, "", "", "400"},
		{"503 is not retried", replyJSON(503, `{"error":"temporarily_unavailable"}`), 503, "temporarily_unavailable", "", "temporarily_unavailable"},
		{"302 is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://evil.example/token", http.StatusFound)
		}, 302, "", "", "302"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, n := tokenServer(t, tt.h)
			_, err := ExchangeToken(t.Context(), nil, srv.URL, url.Values{"grant_type": {"client_credentials"}}, nil)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("ExchangeToken = %v, want a *oauth2.RetrieveError", err)
			}
			if re.Response == nil || re.Response.StatusCode != tt.status || re.ErrorCode != tt.code || re.ErrorDescription != tt.desc {
				t.Errorf("RetrieveError{status %v code %q desc %q}", re.Response, re.ErrorCode, re.ErrorDescription)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.inErr) || len(msg) > 1200 {
				t.Errorf("Error() = %.300q… (%d bytes)", msg, len(msg))
			}
			if n.Load() != 1 {
				t.Errorf("%d requests: a token request is never retried", n.Load())
			}
		})
	}
}

// TOK-13, CONV-2: malformed success bodies and size limits.
func TestExchangeTokenBadSuccess(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		h    http.HandlerFunc
		want error
	}{
		"HTML 200":   {func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>login</html>") }, ErrMalformedTokenResponse},
		"CRLF token": {replyJSON(200, `{"access_token":"abc\r\nX-Evil: 1","token_type":"bearer","scope":""}`), ErrMalformedTokenResponse},
		"2 MiB body": {func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"access_token":"`+strings.Repeat("a", 2<<20))
		}, ErrBodyTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := tokenServer(t, tt.h)
			if _, err := ExchangeToken(t.Context(), nil, srv.URL, url.Values{}, nil); !errors.Is(err, tt.want) {
				t.Fatalf("ExchangeToken = %v, want %v", err, tt.want)
			}
		})
	}
}

// CONV-4, SEC: a server echoing our credentials never makes us print them.
func TestExchangeTokenNeverLeaksCredentials(t *testing.T) {
	t.Parallel()
	const (
		assertion = "eyJhbGciOiJFUzM4NCIsImtpZCI6ImsxIn0.eyJpc3MiOiJhcHAifQ.c2lnbmF0dXJlLXNlY3JldA"
		secret    = "s3cr3t/with+chars"
		code      = "auth-code-12345"
		verifier  = "verifier-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("app:"+url.QueryEscape(secret)))
	echo := func(status int, wrap func(string) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			all := r.PostForm.Encode() + " " + r.Header.Get("Authorization") + " " + r.PostForm.Get("client_assertion") + " " + secret
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, wrap(all))
		}
	}
	tests := map[string]http.HandlerFunc{
		"error_description": echo(400, func(s string) string {
			return `{"error":"invalid_client","error_description":"assertion ` + jsonEscape(s) + ` rejected"}`
		}),
		"error_uri": echo(400, func(s string) string {
			return `{"error":"invalid_client","error_uri":"https://x.example/?a=` + jsonEscape(s) + `"}`
		}),
		"200 error member": echo(200, func(s string) string {
			return `{"error":"invalid_client","error_description":"` + jsonEscape(s) + `"}`
		}),
		"non-JSON body": echo(401, func(s string) string { return "denied: " + s }),
		"truncation boundary": echo(400, func(s string) string {
			return `{"error":"invalid_client","error_description":"` + strings.Repeat("p", 176) + assertion + " " + jsonEscape(s) + `"}`
		}),
		"200 at the truncation boundary": echo(200, func(s string) string {
			return `{"error":"invalid_client","error_description":"` + strings.Repeat("p", 176) + assertion + " " + jsonEscape(s) + `"}`
		}),
		"athena message": echo(401, func(s string) string {
			return `{"message":"bad ` + jsonEscape(s) + `","id":401}`
		}),
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := tokenServer(t, h)
			_, err := ExchangeToken(t.Context(), nil, srv.URL, form, http.Header{"Authorization": {basic}})
			if err == nil {
				t.Fatal("no error")
			}
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("%v is not a RetrieveError", err)
			}
			texts := []string{err.Error(), string(re.Body), re.ErrorDescription, re.ErrorURI, re.ErrorCode}
			for _, secretValue := range []string{assertion, secret, url.QueryEscape(secret), code, verifier, strings.TrimPrefix(basic, "Basic ")} {
				for _, text := range texts {
					if leaks(text, secretValue) {
						t.Errorf("%q leaked into %.300q", secretValue, text)
					}
				}
			}
		})
	}
}

// leaks reports whether text holds secret or, for a long secret, any 16-byte piece of it (a
// truncated echo).
func leaks(text, secret string) bool {
	if len(secret) < 32 {
		return strings.Contains(text, secret)
	}
	for i := 0; i+16 <= len(secret); i++ {
		if strings.Contains(text, secret[i:i+16]) {
			return true
		}
	}
	return false
}

func jsonEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return r.Replace(s)
}

func TestExchangeTokenTransportErrors(t *testing.T) {
	t.Parallel()
	srv, _ := tokenServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := ExchangeToken(ctx, nil, srv.URL, url.Values{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := ExchangeToken(t.Context(), nil, "://bad", url.Values{}, nil); err == nil || !strings.HasPrefix(err.Error(), "smart: ") {
		t.Errorf("bad URL: %v", err)
	}
	hc := &http.Client{}
	ok, _ := tokenServer(t, replyJSON(200, `{"access_token":"a","token_type":"bearer","scope":""}`))
	if _, err := ExchangeToken(t.Context(), hc, ok.URL, url.Values{}, nil); err != nil {
		t.Errorf("with a caller's client: %v", err)
	}
	if hc.CheckRedirect != nil {
		t.Error("the caller's client was modified")
	}
}

// TestExchangeTokenStatusLineNeitherLeaksNorInjects: with no OAuth error code,
// (*oauth2.RetrieveError).Error prints the response's status line, which the server writes: an echoed
// assertion or terminal escape codes there must not reach the error string (CONV-4, TOK-12).
func TestExchangeTokenStatusLineNeitherLeaksNorInjects(t *testing.T) {
	t.Parallel()
	const assertion = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJhcHAifQ.c2lnbmF0dXJlLXNlY3JldC1zdGF0dXM"
	srv, _ := tokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 502 bad " + r.PostForm.Get("client_assertion") + " \x1b[2J\x1b]0;pwned\x07\r\n" +
			"Content-Type: text/html\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops")
		_ = buf.Flush()
	})
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion": {assertion}}
	_, err := ExchangeToken(t.Context(), nil, srv.URL, form, nil)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil || re.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("err = %v, want a RetrieveError with status 502", err)
	}
	for _, text := range []string{err.Error(), re.Response.Status} {
		if leaks(text, assertion) {
			t.Errorf("the assertion leaked into %q", text)
		}
		if strings.ContainsAny(text, "\x1b\x07") {
			t.Errorf("control characters from the status line reached %q", text)
		}
	}
}

// TestExchangeTokenDefaultClientLeavesNoIdleConnection: with hc nil, ExchangeToken builds a client for
// one request; its keep-alive connection must be closed, not left idle (with its goroutines) for the
// transport's 90 s idle timeout on every login.
func TestExchangeTokenDefaultClientLeavesNoIdleConnection(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(replyJSON(200, `{"access_token":"a","token_type":"bearer","expires_in":60,"scope":""}`))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			select {
			case closed <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	if _, err := ExchangeToken(t.Context(), nil, srv.URL, url.Values{"grant_type": {"client_credentials"}}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection of ExchangeToken's own client was left open")
	}
}

// TestExchangeTokenScrubbedErrorKeepsChain: when a transport error's text carries a credential it is
// redacted, but the wrapped chain survives, so that errors.Is(err, context.DeadlineExceeded) still
// tells a timeout from a refusal (CONV-4).
func TestExchangeTokenScrubbedErrorKeepsChain(t *testing.T) {
	t.Parallel()
	const assertion = "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJhcHAifQ.c2lnbmF0dXJlLWNoYWluLXNlY3JldA"
	srv, _ := tokenServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client hanging up
		<-r.Context().Done()
	})
	// A caller's middleware that (carelessly) quotes the request body in its error, around a real
	// transport whose request times out.
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			return nil, fmt.Errorf("middleware: request %s: %w", body, err)
		}
		return resp, nil
	})}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion": {assertion}}
	_, err := ExchangeToken(ctx, hc, srv.URL, form, nil)
	if err == nil {
		t.Fatal("no error")
	}
	if leaks(err.Error(), assertion) {
		t.Errorf("the assertion leaked into %q", err)
	}
	if !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("err = %q, want the credential redacted (else this test proves nothing)", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false: the chain was dropped", err)
	}
}
