package bulk

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// target is one file to download.
type target struct {
	url        *url.URL
	auth       bool   // send the access token (requiresAccessToken and a trusted origin)
	name       string // for messages: a local file name or the URL without its query
	attachment bool   // any media type (BULK-30), not NDJSON
}

// fileTarget applies BULK-23 and CONV-1 to a manifest file: with requiresAccessToken the URL must
// be on a trusted origin and gets the token; without it the token is never sent.
func (c *Client) fileTarget(m *Manifest, f File) (target, error) {
	u, err := url.Parse(f.URL)
	if err != nil {
		return target{}, fmt.Errorf("bulk: file URL: %w", httpx.ErrInsecureURL)
	}
	if err := httpx.CheckURL(u, c.InsecureAllowHTTP); err != nil {
		return target{}, fmt.Errorf("bulk: file URL: %w", err)
	}
	t := target{url: u, name: redactURL(u)}
	if m.RequiresAccessToken {
		if err := c.checkTokenURL(u, "file (requiresAccessToken is true)"); err != nil {
			return target{}, err
		}
		t.auth = true
	}
	return t, nil
}

// fetchHooks report what the download engine does; every field may be nil.
type fetchHooks struct {
	retry       func(err error, wait time.Duration) // before waiting for a retry
	warn        func(msg string)                    // non-fatal oddities (Content-Type)
	contentType func(ct string)                     // the Content-Type of each body taken
}

// errRangeIgnored means the server did not honour a Range request on the identity encoding; the
// next attempt reads from byte zero and skips what is already written.
var errRangeIgnored = errors.New("bulk: server did not honour the Range request")

// sinkError marks an error from the destination writer (disk full, invalid line): never retried.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// fetch writes the decoded bytes of t from offset on to w, each byte exactly once and in order,
// and returns the new offset. It resumes with Range after a dropped connection or a stall, and
// retries 5xx, 408, 429 and network errors with backoff (Retry-After honoured up to 120 s); other
// 4xx fail, 404/410 wrap ErrFileExpired (BULK-20, BULK-24, BULK-26, CONV-2).
func (c *Client) fetch(ctx context.Context, t target, offset int64, w io.Writer, h fetchHooks) (int64, error) {
	noRange := false
	attempt, notFound := 0, 0
	maxRetries := intOr(c.MaxDownloadRetries, DefaultMaxDownloadRetries)
	for {
		n, err := c.fetchOnce(ctx, t, offset, &noRange, w, h)
		offset += n
		if err == nil {
			return offset, nil
		}
		if ctx.Err() != nil {
			return offset, fmt.Errorf("bulk: download %s: %w", t.name, ctx.Err())
		}
		var se *sinkError
		if errors.As(err, &se) {
			return offset, se.err
		}
		if errors.Is(err, errRangeIgnored) {
			continue // noRange is set: the next attempt reads from zero, no wait needed
		}
		if fileNotFound(err) && notFound < c.FileNotFoundRetries {
			notFound++ // CMS BCDA: the file may not be there yet
		} else if !retryableDownload(err) {
			return offset, err
		}
		if n > 0 {
			attempt = 0 // progress: a flaky connection that keeps moving is not a failure
		}
		if attempt++; attempt > maxRetries {
			return offset, err
		}
		wait := time.Duration(0)
		if n == 0 {
			ra, ok := c.retryAfterOf(err)
			if ok {
				wait = min(ra, httpx.MaxAPIWait)
			} else {
				wait = httpx.Backoff(attempt, 30*time.Second)
			}
		}
		if h.retry != nil {
			h.retry(err, wait)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return offset, fmt.Errorf("bulk: download %s: %w", t.name, err)
		}
	}
}

// retryableDownload: 408, 429 and 5xx answers, network errors, stalls, and bodies cut short or
// corrupted on the way (a gzip stream that does not check out).
func retryableDownload(err error) bool {
	var fe *fhirclient.Error
	if errors.As(err, &fe) {
		return fe.StatusCode == http.StatusRequestTimeout || fe.StatusCode == http.StatusTooManyRequests || fe.StatusCode >= 500
	}
	var ce flate.CorruptInputError
	return isNetworkError(err) || errors.Is(err, ErrStalled) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.As(err, &ce)
}

// errPermanent marks a download failure that retrying cannot fix (unsupported encoding, HTML).
var errPermanent = errors.New("bulk: download failed")

// fetchOnce makes one request and copies its body to w. It returns the bytes written to w.
func (c *Client) fetchOnce(ctx context.Context, t target, offset int64, noRange *bool, w io.Writer, h fetchHooks) (int64, error) {
	useRange := offset > 0 && !*noRange
	hdr := http.Header{"Accept": {"application/fhir+ndjson"}}
	if t.attachment {
		hdr.Set("Accept", "*/*")
	}
	if useRange {
		// Resume on the decoded offset: ask for the identity encoding, whose byte ranges are the
		// decoded bytes we already hold (see the package doc).
		hdr.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		hdr.Set("Accept-Encoding", "identity")
	} else if c.DisableCompression {
		hdr.Set("Accept-Encoding", "identity")
	} else {
		// Setting Accept-Encoding turns off Go's transparent decompression: we decode below.
		hdr.Set("Accept-Encoding", "gzip")
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stall := durationOr(c.StallTimeout, DefaultStallTimeout)
	var stalled atomic.Bool
	timer := time.AfterFunc(stall, func() { stalled.Store(true); cancel() })
	defer timer.Stop()
	wrap := func(err error) error {
		if stalled.Load() {
			return fmt.Errorf("%w: no byte for %s from %s", ErrStalled, stall, t.name)
		}
		return err
	}

	resp, err := c.get(rctx, t, hdr)
	if err != nil {
		return 0, wrap(fmt.Errorf("bulk: download %s: %w", t.name, err))
	}
	defer resp.Body.Close()

	skip := int64(0)
	switch {
	case resp.StatusCode == http.StatusOK:
		skip = offset // a full body: drop what we already hold
	case resp.StatusCode == http.StatusPartialContent:
		if !useRange {
			return 0, fmt.Errorf("%w: %s: 206 Partial Content to a request without Range", errPermanent, t.name)
		}
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != offset || !identity(resp.Header.Get("Content-Encoding")) {
			*noRange = true
			return 0, errRangeIgnored
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && useRange:
		if size, ok := contentRangeSize(resp.Header.Get("Content-Range")); ok && size == offset {
			return 0, nil // we already hold every byte
		}
		*noRange = true
		return 0, errRangeIgnored
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return 0, fmt.Errorf("%w: %s: %w", ErrFileExpired, t.name, fhirclient.CheckResponse(resp))
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return 0, fmt.Errorf("%w: %s: unexpected redirect (%s)", errPermanent, t.name, resp.Status)
	default:
		return 0, fmt.Errorf("bulk: download %s: %w", t.name, fhirclient.CheckResponse(resp))
	}
	if t.attachment {
		if h.contentType != nil {
			h.contentType(resp.Header.Get("Content-Type"))
		}
	} else if err := checkNDJSONType(resp.Header.Get("Content-Type"), h.warn, t.name); err != nil {
		return 0, err
	}

	counted := &stallReader{r: resp.Body, timer: timer, d: stall}
	var body io.Reader = counted
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(counted)
		if err != nil {
			return 0, wrap(fmt.Errorf("bulk: download %s: gzip: %w", t.name, err))
		}
		defer zr.Close()
		body = &ratioReader{r: zr, compressed: counted, ratio: intOr(c.MaxCompressionRatio, DefaultMaxCompressionRatio), name: t.name}
	default:
		return 0, fmt.Errorf("%w: %s: unsupported Content-Encoding %q", errPermanent, t.name, httpx.SanitizeText(enc))
	}

	if skip > 0 {
		if n, err := io.CopyN(io.Discard, body, skip); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("body shorter (%d bytes) than the part already downloaded (%d)", n, skip)
			}
			return 0, wrap(fmt.Errorf("bulk: download %s: %w", t.name, err))
		}
	}
	n, err := copyBody(w, body)
	if err != nil {
		var se *sinkError
		if errors.As(err, &se) {
			return n, err
		}
		return n, wrap(fmt.Errorf("bulk: download %s: %w", t.name, err))
	}
	return n, nil
}

// copyBody copies r to w in 256 KiB reads, tagging writer errors as sinkError.
func copyBody(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return total, &sinkError{err}
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// get sends a GET for t. When the authenticated client stops at a redirect to an origin that may
// not receive the token (an object store with a pre-signed URL), the redirect is followed with
// PlainClient, so the token never leaves its origin (CONV-1).
func (c *Client) get(ctx context.Context, t target, hdr http.Header) (*http.Response, error) {
	u, auth := t.url, t.auth
	for hop := 0; ; hop++ {
		resp, err := c.do(ctx, http.MethodGet, u, hdr, nil, auth)
		if err != nil {
			return nil, err
		}
		if !auth || resp.StatusCode < 300 || resp.StatusCode >= 400 || resp.Header.Get("Location") == "" {
			return resp, nil
		}
		loc, err := resp.Location()
		drain(resp)
		if err != nil {
			return nil, fmt.Errorf("%w: bad redirect Location: %v", errPermanent, err)
		}
		if err := httpx.CheckURL(loc, c.InsecureAllowHTTP); err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		if hop >= maxHops {
			return nil, fmt.Errorf("%w: more than %d redirects", errPermanent, maxHops)
		}
		u, auth = loc, false
	}
}

func identity(enc string) bool {
	enc = strings.ToLower(strings.TrimSpace(enc))
	return enc == "" || enc == "identity"
}

// contentRangeStart parses "bytes START-END/SIZE".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil && n >= 0
}

// contentRangeSize parses the SIZE of "bytes */SIZE" or "bytes A-B/SIZE".
func contentRangeSize(v string) (int64, bool) {
	_, size, ok := strings.Cut(v, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
	return n, err == nil && n >= 0
}

// checkNDJSONType applies BULK-26: application/fhir+ndjson is expected; other NDJSON and generic
// binary types (object stores) are tolerated with a warning; HTML (a login or error page) is
// refused.
func checkNDJSONType(ct string, warn func(string), name string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	switch mt {
	case "application/fhir+ndjson":
		return nil
	case "text/html", "application/xhtml+xml":
		return fmt.Errorf("%w: %s: the server sent %s, not NDJSON (a login or error page?)", errPermanent, name, mt)
	}
	if warn != nil {
		if mt == "" {
			mt = "no Content-Type"
		}
		warn(fmt.Sprintf("%s: Content-Type %s, expected application/fhir+ndjson", name, httpx.SanitizeText(mt)))
	}
	return nil
}

// stallReader counts the bytes received and pushes the stall deadline back on each read.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
	n     int64
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.n += int64(n)
		s.timer.Reset(s.d)
	}
	return n, err
}

// bombSlack is how much a gzip body may decode to before the ratio limit applies.
const bombSlack = 1 << 20

// ratioReader stops a gzip body whose decoded size exceeds ratio times its compressed size
// (BULK-31).
type ratioReader struct {
	r          io.Reader
	compressed *stallReader
	ratio      int64
	n          int64
	name       string
}

func (r *ratioReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.n > bombSlack && r.n > r.ratio*r.compressed.n {
		return n, fmt.Errorf("%w: %s: %d bytes from %d compressed (limit %d:1)", ErrDecompressionBomb, r.name, r.n, r.compressed.n, r.ratio)
	}
	return n, err
}
