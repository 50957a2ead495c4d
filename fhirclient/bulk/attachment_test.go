package bulk

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/httpx"
)

// attachmentServer serves attachments and records the Authorization header of every request.
type attachmentServer struct {
	*httptest.Server
	mu   sync.Mutex
	auth map[string]string // path → Authorization
}

func newAttachmentServer(t *testing.T, other func() string) *attachmentServer {
	t.Helper()
	s := &attachmentServer{auth: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auth[r.URL.Path] = r.Header.Get("Authorization")
		s.mu.Unlock()
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, other()+"/doc.pdf", http.StatusFound)
		case "/redirect-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/private.pdf":
			if r.Header.Get("Authorization") == "" {
				writeOutcome(w, http.StatusUnauthorized, "login", "token required")
				return
			}
			fallthrough
		default:
			w.Header().Set("Content-Type", "application/pdf")
			w.Write([]byte("%PDF-1.4 " + r.URL.Path))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *attachmentServer) reset() {
	s.mu.Lock()
	s.auth = map[string]string{}
	s.mu.Unlock()
}

func (s *attachmentServer) authOf(path string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.auth[path]
	return a, ok
}

func TestFetchAttachmentTokenRules(t *testing.T) { // BULK-30, CONV-1: where Authorization arrives
	t.Parallel()
	var foreign *attachmentServer
	home := newAttachmentServer(t, func() string { return foreign.URL })
	foreign = newAttachmentServer(t, func() string { return home.URL })
	bearer := "Bearer " + testToken
	tests := []struct {
		name          string
		requiresToken bool
		trustForeign  bool
		url           string
		wantHome      map[string]string // path → Authorization seen by the FHIR server's origin
		wantForeign   map[string]string
		wantTokenSent bool
		wantErr       error
	}{
		{"token on the FHIR origin", true, false, home.URL + "/doc.pdf", map[string]string{"/doc.pdf": bearer}, nil, true, nil},
		{"relative URL resolved on the base", true, false, "Binary/7", map[string]string{"/fhir/Binary/7": bearer}, nil, true, nil},
		{"no token to a foreign origin", true, false, foreign.URL + "/doc.pdf", nil, map[string]string{"/doc.pdf": ""}, false, nil},
		{"no token when not required", false, false, home.URL + "/doc.pdf", map[string]string{"/doc.pdf": ""}, nil, false, nil},
		{"trusted foreign origin", true, true, foreign.URL + "/doc.pdf", nil, map[string]string{"/doc.pdf": bearer}, true, nil},
		{"redirect off the origin drops the token", true, false, home.URL + "/redirect", map[string]string{"/redirect": bearer}, map[string]string{"/doc.pdf": ""}, true, nil},
		{"foreign origin needing the token", true, false, foreign.URL + "/private.pdf", nil, map[string]string{"/private.pdf": ""}, false, ErrUntrustedOrigin},
		{"redirect to a metadata address", false, false, home.URL + "/redirect-metadata", map[string]string{"/redirect-metadata": ""}, nil, false, httpx.ErrInsecureURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the servers' records are shared.
			home.reset()
			foreign.reset()
			c, err := NewClient(home.URL+"/fhir", &http.Client{Transport: bearerTransport{testTransport(t)}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.trustForeign {
				c.TrustedOrigins = []string{foreign.URL}
			}
			c.Sleep = func(ctx context.Context, d time.Duration) error {
				t.Errorf("a retry after %v: none of these failures is passing", d)
				return ctx.Err()
			}
			var body bytes.Buffer
			a, err := c.FetchAttachment(t.Context(), &Manifest{RequiresAccessToken: tt.requiresToken}, tt.url, &body)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, s := range []struct {
				srv  *attachmentServer
				want map[string]string
			}{{home, tt.wantHome}, {foreign, tt.wantForeign}} {
				s.srv.mu.Lock()
				got := len(s.srv.auth)
				s.srv.mu.Unlock()
				if got != len(s.want) {
					t.Errorf("%s got %d requests, want %d", s.srv.URL, got, len(s.want))
				}
				for path, auth := range s.want {
					if got, ok := s.srv.authOf(path); !ok || got != auth {
						t.Errorf("%s%s: Authorization %q (requested %v), want %q", s.srv.URL, path, got, ok, auth)
					}
				}
			}
			if err == nil && (a.TokenSent != tt.wantTokenSent || a.ContentType != "application/pdf" || !strings.HasPrefix(body.String(), "%PDF") || a.Size != int64(body.Len())) {
				t.Errorf("attachment %+v, body %q", a, body.String())
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Error("the token is in the error")
			}
		})
	}
}

func TestFetchAttachmentHostileURLs(t *testing.T) { // BULK-30, CONV-1: refused before any request
	t.Parallel()
	home := newAttachmentServer(t, func() string { return "" })
	c, err := NewClient(home.URL+"/fhir", &http.Client{Transport: bearerTransport{testTransport(t)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"file:///etc/passwd",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/x",
		"data:text/plain,hello",
		"ftp://files.example.org/doc.pdf",
		"//evil.example.org/doc.pdf",
		"http://files.example.org/doc.pdf", // plain http off loopback
		"https://user:pw@files.example.org/doc.pdf",
	} {
		_, err := c.FetchAttachment(t.Context(), &Manifest{RequiresAccessToken: true}, u, &bytes.Buffer{})
		if !errors.Is(err, httpx.ErrInsecureURL) {
			t.Errorf("%s: %v", u, err)
		}
	}
	home.mu.Lock()
	defer home.mu.Unlock()
	if len(home.auth) != 0 {
		t.Errorf("requests were sent: %v", home.auth)
	}
}

func TestFetchAttachmentSizeLimit(t *testing.T) { // BULK-31, CONV-2: bounded body
	t.Parallel()
	home := newAttachmentServer(t, func() string { return "" })
	c, _ := NewClient(home.URL+"/fhir", nil)
	c.MaxAttachment = 8
	_, err := c.FetchAttachment(t.Context(), &Manifest{}, home.URL+"/doc.pdf", &bytes.Buffer{})
	if !errors.Is(err, httpx.ErrBodyTooLarge) {
		t.Errorf("err = %v", err)
	}
}

func TestFetchAttachmentNilManifest(t *testing.T) { // BULK-30: a typed error, no panic, no request
	t.Parallel()
	home := newAttachmentServer(t, func() string { return "" })
	c, _ := NewClient(home.URL+"/fhir", nil)
	a, err := c.FetchAttachment(t.Context(), nil, home.URL+"/doc.pdf", &bytes.Buffer{})
	if !errors.Is(err, ErrBadManifest) || a != nil {
		t.Errorf("attachment %v, err = %v; want ErrBadManifest", a, err)
	}
	home.mu.Lock()
	defer home.mu.Unlock()
	if len(home.auth) != 0 {
		t.Errorf("requests were sent: %v", home.auth)
	}
}

func TestAttachmentURLs(t *testing.T) { // BULK-30
	t.Parallel()
	doc := `{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"application/pdf","url":"https://files.example.org/a.pdf"}},{"attachment":{"data":"aGk="}},{"attachment":{"url":" Binary/2 "}}]}`
	if got := AttachmentURLs([]byte(doc)); strings.Join(got, " ") != "https://files.example.org/a.pdf Binary/2" {
		t.Errorf("got %q", got)
	}
	for _, s := range []string{`{"resourceType":"Patient","content":[{"attachment":{"url":"https://x"}}]}`, `{`, `[]`} {
		if got := AttachmentURLs([]byte(s)); got != nil {
			t.Errorf("%s: %q", s, got)
		}
	}
}
