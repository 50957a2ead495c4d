package main

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// exchange is one HTTP round trip as a recorder saw it. Body holds what the client read of the
// response, at most the recorder's limit. It may hold credentials (a token response): never print it.
type exchange struct {
	Method, URL string
	Status      int
	Header      http.Header
	Body        []byte
	Truncated   bool // the client read more than the limit
	Err         error
	Duration    time.Duration // until the response headers arrived
}

// recorder is an http.RoundTripper that keeps every exchange, so that `check` can judge the raw
// responses the libraries parse (their status, headers and bytes) without a second request.
type recorder struct {
	base  http.RoundTripper
	limit int
	mu    sync.Mutex
	log   []*exchange
}

func newRecorder(base http.RoundTripper, limit int) *recorder {
	return &recorder{base: base, limit: limit}
}

// RoundTrip implements http.RoundTripper.
func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	x := &exchange{Method: req.Method, URL: req.URL.String()}
	r.mu.Lock()
	r.log = append(r.log, x)
	r.mu.Unlock()
	start := time.Now()
	resp, err := r.base.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	x.Duration = time.Since(start)
	if err != nil {
		x.Err = err
		return nil, err
	}
	x.Status, x.Header = resp.StatusCode, resp.Header.Clone()
	resp.Body = &teeBody{rc: resp.Body, x: x, r: r}
	return resp, nil
}

// find returns the last exchange whose URL satisfies match, or nil.
func (r *recorder) find(match func(*exchange) bool) *exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.log) - 1; i >= 0; i-- {
		if match(r.log[i]) {
			return r.log[i]
		}
	}
	return nil
}

// all returns the exchanges that satisfy match, oldest first.
func (r *recorder) all(match func(*exchange) bool) []*exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*exchange
	for _, x := range r.log {
		if match(x) {
			out = append(out, x)
		}
	}
	return out
}

// teeBody copies what the client reads into the exchange, up to the limit.
type teeBody struct {
	rc io.ReadCloser
	x  *exchange
	r  *recorder
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.r.mu.Lock()
		room := b.r.limit - len(b.x.Body)
		if room < n {
			b.x.Truncated = true
		}
		if room > 0 {
			b.x.Body = append(b.x.Body, p[:min(n, room)]...)
		}
		b.r.mu.Unlock()
	}
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }
