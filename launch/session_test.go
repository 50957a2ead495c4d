package launch_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smartfhir/smartfhir/launch"
)

// countingReader counts what is read from r.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestSessionDoesNotReadUploads: Require (Config.Session) looks for the handle in a POSTed
// urlencoded form only. It never reads a multipart body, which Go would spool to disk without a
// size limit before the app's own limits (http.MaxBytesReader) could apply (SEC-12: bounded input).
func TestSessionDoesNotReadUploads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := newBrowser(t)
	p := b.launchOK(t, e, e.ehrLaunchURL(""))

	const boundary = "b0undary"
	body := &countingReader{r: io.MultiReader(
		strings.NewReader("--"+boundary+"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\n\r\n"),
		io.LimitReader(zeros{}, 64<<20),
		strings.NewReader("\r\n--"+boundary+"\r\nContent-Disposition: form-data; name=\"handle\"\r\n\r\n"+p.Handle+"\r\n--"+boundary+"--\r\n"),
	)}
	r := requestWithCookies(t, b, e.app.URL+"/upload")
	r.Method = http.MethodPost
	r.Body = io.NopCloser(body)
	r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	if _, err := e.cfg.Session(r); !errors.Is(err, launch.ErrNoSession) {
		t.Errorf("Session = %v, want ErrNoSession (a multipart form names its launch in the URL)", err)
	}
	if n := body.n.Load(); n != 0 {
		t.Errorf("Session read %d bytes of a multipart upload", n)
	}

	// The handle in the query works for any body; an urlencoded form may carry it.
	r = requestWithCookies(t, b, e.app.URL+"/upload?handle="+p.Handle)
	r.Method = http.MethodPost
	if s, err := e.cfg.Session(r); err != nil || s.Handle != p.Handle {
		t.Errorf("handle in the query: %v", err)
	}
	r = requestWithCookies(t, b, e.app.URL+"/form")
	r.Method = http.MethodPost
	r.Body = io.NopCloser(strings.NewReader("handle=" + p.Handle))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if s, err := e.cfg.Session(r); err != nil || s.Handle != p.Handle {
		t.Errorf("handle in an urlencoded form: %v", err)
	}
}
