package sandbox

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"time"
)

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// windowWriter drops the first skip bytes, passes the next left bytes, then stops the producer:
// with errWindowDone (a Range served), or with errCut (file_cut_mid_stream).
type windowWriter struct {
	w          io.Writer
	skip, left int64
	cut        bool
}

func (ww *windowWriter) Write(p []byte) (int, error) {
	n := len(p)
	if ww.skip > 0 {
		drop := min(ww.skip, int64(len(p)))
		ww.skip -= drop
		p = p[drop:]
	}
	if len(p) > 0 {
		send := min(ww.left, int64(len(p)))
		if _, err := ww.w.Write(p[:send]); err != nil {
			return 0, err
		}
		ww.left -= send
	}
	if ww.left == 0 && ww.skip == 0 {
		if ww.cut {
			return n, errCut
		}
		return n, errWindowDone
	}
	return n, nil
}

// slowWriter sends at most one chunk per delay, flushing each (file_slow).
type slowWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	ctx   context.Context
	delay time.Duration
}

const slowChunk = 16 << 10

func (s *slowWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), slowChunk)]
		n, err := s.w.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		_ = s.rc.Flush()
		p = p[len(chunk):]
		t := time.NewTimer(s.delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return written, s.ctx.Err()
		case <-t.C:
		}
	}
	return written, nil
}

// Gzip bomb (file_gzip_bomb): gzip members each expanding to 1 MiB of one letter, repeated to
// 10 GiB, after a first member that opens a resource line that never ends (BULK-31).
const (
	bombMember  = 1 << 20
	bombMembers = 10 << 10
)

func (f *fhirState) bombMember() []byte {
	f.bomb.once.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(bytes.Repeat([]byte{'A'}, bombMember))
		_ = zw.Close()
		f.bomb.member = buf.Bytes()
	})
	return f.bomb.member
}

func (f *fhirState) serveGzipBomb(w http.ResponseWriter) {
	var head bytes.Buffer
	zw := gzip.NewWriter(&head)
	_, _ = zw.Write([]byte(`{"resourceType":"Patient","id":"bomb","text":{"status":"generated","div":"`))
	_ = zw.Close()
	w.Header().Set("Content-Type", mediaFHIRNDJSON)
	w.Header().Set("Content-Encoding", "gzip")
	w.WriteHeader(http.StatusOK)
	cw := &countingWriter{w: w}
	defer func() { f.s.add("bulk_file_bytes", cw.n) }()
	if _, err := cw.Write(head.Bytes()); err != nil {
		return
	}
	member := f.bombMember()
	for range bombMembers {
		if _, err := cw.Write(member); err != nil {
			return
		}
	}
}
