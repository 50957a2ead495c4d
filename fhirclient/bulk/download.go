package bulk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// fileSink receives the decoded bytes of one file: a buffered write to <name>.part, then the
// line splitter (counting, and validating when asked), then throttled progress events.
type fileSink struct {
	bw    *bufio.Writer
	ls    *lineSplitter
	bytes int64
	tick  func(bytes, resources int64)
}

func (s *fileSink) Write(p []byte) (int, error) {
	if _, err := s.bw.Write(p); err != nil {
		return 0, fmt.Errorf("bulk: write: %w", err)
	}
	if _, err := s.ls.Write(p); err != nil {
		return 0, err
	}
	s.bytes += int64(len(p))
	s.tick(s.bytes, s.ls.lines)
	return len(p), nil
}

// download fetches one file into Dir. It resumes a .part left by an earlier run: the part is read
// back through the line splitter (to restore counts and line state) and the rest is requested
// with Range. An expired link re-fetches its manifest page once (BULK-20).
func (r *run) download(ctx context.Context, f *fileState) error {
	path := filepath.Join(r.e.Dir, filepath.FromSlash(f.Name))
	if _, err := os.Stat(path + partSuffix); errors.Is(err, fs.ErrNotExist) {
		// A crash between the final rename and the state update leaves a complete file and no
		// .part: make it the part again, and the Range request below confirms it is whole.
		if _, err := os.Stat(path); err == nil {
			if err := os.Rename(path, path+partSuffix); err != nil {
				return r.fileFailed(f, fmt.Errorf("bulk: %w", err))
			}
		}
	}
	fh, err := os.OpenFile(path+partSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return r.fileFailed(f, fmt.Errorf("bulk: %w", err))
	}
	defer fh.Close()

	var mismatches int64
	ls := newLineSplitter(intOr(r.c.MaxLine, DefaultMaxLine), r.lineCheck(f, &mismatches))
	// Read back what an earlier run wrote, so counts and validation carry on from there.
	offset, err := copyBody(ls, fh)
	if err != nil {
		var se *sinkError
		if errors.As(err, &se) {
			err = se.err
		}
		return r.fileFailed(f, locate(err, f.Name))
	}

	r.log.write("download_request", logDetail{"fileUrl": redactURLString(f.URL), "itemType": f.Kind, "resourceType": typeOrNil(f.Type)})
	r.emit(Event{Kind: EventFileStart, File: r.fileEvent(f, offset, ls.lines)})

	interval := durationOr(r.e.ProgressInterval, 250*time.Millisecond)
	last := r.c.now()
	sink := &fileSink{bw: bufio.NewWriterSize(fh, 256<<10), ls: ls, bytes: offset, tick: func(b, n int64) {
		if now := r.c.now(); now.Sub(last) >= interval {
			last = now
			r.emit(Event{Kind: EventFileProgress, File: r.fileEvent(f, b, n)})
		}
	}}
	hooks := fetchHooks{
		retry: func(err error, wait time.Duration) {
			r.emit(Event{Kind: EventRetry, File: r.fileEvent(f, sink.bytes, ls.lines), WaitSeconds: wait.Seconds(), Message: httpx.SanitizeText(err.Error())})
		},
		warn: func(msg string) {
			r.emit(Event{Kind: EventWarning, File: r.fileEvent(f, sink.bytes, ls.lines), Message: msg})
		},
	}

	t, err := r.target(f)
	for refetched := false; err == nil; {
		_, err = r.c.fetch(ctx, t, sink.bytes, sink, hooks)
		if ferr := sink.bw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("bulk: write: %w", ferr)
		}
		if err == nil || refetched || !errors.Is(err, ErrFileExpired) {
			break
		}
		refetched = true
		r.emit(Event{Kind: EventWarning, File: r.fileEvent(f, sink.bytes, ls.lines), Message: "file link expired; re-fetching the manifest"})
		if t, err = r.refreshURL(ctx, f); err != nil {
			break
		}
	}
	if err == nil {
		err = ls.Close()
	}
	if err == nil {
		err = fh.Sync()
	}
	if err == nil {
		err = fh.Close()
	}
	kept, size, dropped := ls.lines, sink.bytes, false
	if err == nil && mismatches > 0 && r.e.Filter {
		kept, size, err = r.dropMismatches(path)
		dropped = true
	} else if err == nil {
		err = os.Rename(path+partSuffix, path)
	}
	if err != nil {
		return r.fileFailed(f, locate(err, f.Name))
	}

	r.mu.Lock()
	f.Done, f.Bytes, f.Resources, f.Mismatches, f.Dropped = true, size, kept, mismatches, dropped
	err = r.saveDoneLocked(dropped) // a dropped file's .part goes only once the state says so
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if dropped {
		_ = os.Remove(path + partSuffix)
	}
	if mismatches > 0 {
		r.reportMismatches(f)
	}
	r.log.write("download_complete", logDetail{"fileUrl": redactURLString(f.URL), "fileSize": f.Bytes, "resourceCount": f.Resources})
	r.emit(Event{Kind: EventFileDone, File: r.fileEvent(f, f.Bytes, f.Resources)})
	return nil
}

func typeOrNil(t string) any {
	if t == "" {
		return nil
	}
	return t
}

func (r *run) fileEvent(f *fileState, bytes, resources int64) *FileEvent {
	e := f.event()
	e.Bytes, e.Resources = bytes, resources
	return e
}

// fileFailed logs and reports a failed file and returns err prefixed with its name.
func (r *run) fileFailed(f *fileState, err error) error {
	d := logDetail{"fileUrl": redactURLString(f.URL), "itemType": f.Kind, "resourceType": typeOrNil(f.Type),
		"code": nil, "body": nil, "message": httpx.SanitizeText(err.Error()), "responseHeaders": nil}
	var fe *fhirclient.Error
	if errors.As(err, &fe) {
		d["code"] = fe.StatusCode
	}
	r.log.write("download_error", d)
	r.emit(Event{Kind: EventFileError, File: f.event(), Message: httpx.SanitizeText(err.Error())})
	var le *LineError
	if errors.As(err, &le) {
		return err // already names the file
	}
	return fmt.Errorf("%s: %w", f.Name, err)
}

// target builds the download target of f from the recorded requiresAccessToken.
func (r *run) target(f *fileState) (target, error) {
	t, err := r.c.fileTarget(&Manifest{RequiresAccessToken: r.st.RequiresAccessToken}, File{URL: f.URL})
	t.name = f.Name
	return t, err
}

// refreshURL re-fetches f's manifest page (once per page per run, shared by every file of the
// page) and takes f's URL from it; the entry must still have f's type.
func (r *run) refreshURL(ctx context.Context, f *fileState) (target, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, file, err := r.refreshLocked(ctx, f)
	if err != nil {
		return target{}, err
	}
	if err := r.saveLocked(); err != nil {
		return target{}, err
	}
	t, err := r.c.fileTarget(m, file)
	t.name = f.Name
	return t, err
}

// refreshExpired re-fetches, before any download, the manifest pages of the pending files when
// the manifest's Expires has passed (BULK-20): the server may return refreshed URLs, and waiting
// for each download's 404 or 410 would only waste requests. The re-fetched pages' Expires becomes
// the new one. A failed re-fetch wraps ErrManifestExpired: the export must be run again.
func (r *run) refreshExpired(ctx context.Context, pending []*fileState) error {
	r.mu.Lock()
	exp := r.st.Expires
	r.mu.Unlock()
	if exp.IsZero() || len(pending) == 0 || r.c.now().Before(exp) {
		return nil
	}
	at := exp.UTC().Format(time.RFC3339)
	r.emit(Event{Kind: EventWarning, Message: "the manifest's file links expired at " + at + "; re-fetching the manifest"})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range pending {
		if _, _, err := r.refreshLocked(ctx, f); err != nil {
			return fmt.Errorf("%w (at %s) and the manifest could not be fetched again; run the export again: %w", ErrManifestExpired, at, err)
		}
	}
	pages := make([]*Manifest, 0, len(r.refetch))
	for _, m := range r.refetch {
		pages = append(pages, m)
	}
	r.st.Expires = earliestExpiry(pages)
	return r.saveLocked()
}

// earliestExpiry returns the earliest non-zero Expires of pages, or zero.
func earliestExpiry(pages []*Manifest) time.Time {
	var t time.Time
	for _, m := range pages {
		if !m.Expires.IsZero() && (t.IsZero() || m.Expires.Before(t)) {
			t = m.Expires
		}
	}
	return t
}

// refreshLocked re-fetches f's manifest page unless this run did already, and sets f.URL from
// it; it returns the page and f's entry. r.mu must be held; the state file is not written.
func (r *run) refreshLocked(ctx context.Context, f *fileState) (*Manifest, File, error) {
	m := r.refetch[f.Page]
	if m == nil {
		if f.Page >= len(r.st.Pages) {
			return nil, File{}, fmt.Errorf("%w: no manifest page to re-fetch", ErrFileExpired)
		}
		u, err := r.c.resolveTokenURL(r.job.status, r.st.Pages[f.Page], "manifest")
		if err != nil {
			return nil, File{}, err
		}
		if m, err = r.c.fetchManifest(ctx, u); err != nil {
			return nil, File{}, fmt.Errorf("%w: re-fetching the manifest: %w", ErrFileExpired, err)
		}
		if m.RequiresAccessToken != r.st.RequiresAccessToken {
			return nil, File{}, fmt.Errorf("%w: requiresAccessToken changed on re-fetch", ErrBadManifest)
		}
		r.refetch[f.Page] = m
	}
	files := map[string][]File{KindOutput: m.Output, KindError: m.Error, KindDeleted: m.Deleted}[f.Kind]
	if f.Index >= len(files) || files[f.Index].Type != f.Type {
		return nil, File{}, fmt.Errorf("%w: the re-fetched manifest no longer lists this file", ErrFileExpired)
	}
	f.URL = files[f.Index].URL
	return m, files[f.Index], nil
}

var _ io.Writer = (*fileSink)(nil)
