package bulk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/internal/httpx"
)

// DefaultParallel is the default number of concurrent downloads: few enough not to annoy an EHR's
// operators (cumulus-etl #169).
const DefaultParallel = 5

// Exporter runs a whole export into a directory and can resume it after a crash:
//
//   - kick-off (Start) or the resume state file (Resume), then status polling;
//   - every manifest page (link next), then files downloaded by Parallel workers, streamed to
//     disk decoded, resumed with Range after a dropped connection or a restart, and renamed from
//     <name>.part when complete; an expired link re-fetches its manifest page once;
//   - manifest.json, log.ndjson (bulk-data-client export log) and export-state.json beside the
//     data files <Type>.ndjson / <Type>.<n>.ndjson (error/ and deleted/ for those outputs);
//   - DELETE of the job when every file is on disk, unless KeepJob (Epic allows one export per
//     client at a time).
//
// Memory stays constant whatever the export size. Files are created mode 0600 (they hold PHI).
type Exporter struct {
	// Client talks to the server (required).
	Client *Client
	// Dir is the output directory. Start wants it empty or absent; Resume reads its state.
	Dir string
	// Parallel is the number of concurrent downloads (default 5).
	Parallel int
	// Validate checks that every line is a JSON object of the file's resourceType (BULK-25).
	// Without it lines are only counted and bounded by Client.MaxLine. With a _typeFilter in the
	// request, it also re-applies the filter on the client (BULK-08, see TypeFilter): servers may
	// ignore _typeFilter. Resources that do not match are counted per file and reported with an
	// EventWarning and a log.ndjson record (typefilter_mismatch); they stay in the files unless
	// Filter is set.
	Validate bool
	// Filter drops the resources that do not match the request's _typeFilter from the files
	// (implies the per-line pass of Validate for the filtered types). A resource the client
	// cannot judge is always kept.
	Filter bool
	// CheckCapabilities reads the server's CapabilityStatement before the kick-off and refuses,
	// with ErrNotSupported, an export level it does not declare or a resource type it marks
	// operation-not-supported (BULK-34). A statement that cannot be read or says nothing lets the
	// export go ahead, with an EventWarning.
	CheckCapabilities bool
	// KeepJob leaves the job on the server when the download is complete.
	KeepJob bool
	// OnEvent receives progress events. Calls are serialised; it must not block for long.
	OnEvent func(Event)
	// ProgressInterval is the least time between two EventFileProgress of a file (default 250 ms).
	ProgressInterval time.Duration
}

// Result summarises a finished export.
type Result struct {
	Job             *Job
	TransactionTime string      // the server's; use it as the next Since (BULK-19)
	Files           []FileEvent // every file, as written
	Resources       int64       // resources in output files
	Bytes           int64       // decoded bytes of output files
	Outcomes        int64       // OperationOutcome resources in error files (BULK-27)
	Mismatches      int64       // output resources that do not match the _typeFilter (BULK-08)
	Dropped         int64       // of those, removed from the files (Exporter.Filter)
	Issues          []string    // the first few issues of those, sanitised
	JobDeleted      bool
	Duration        time.Duration
}

// run is one Start or Resume.
type run struct {
	e   *Exporter
	c   *Client
	job *Job
	log *exportLog

	mu       sync.Mutex // guards st, the state file, lastSave, dirty and refetch
	st       *exportState
	lastSave time.Time         // of the state file
	dirty    bool              // st has finished files the state file does not record yet
	refetch  map[int]*Manifest // manifest pages re-fetched after an expired link
	filter   *TypeFilter       // the request's _typeFilter, when the per-line pass checks it
	emitMu   sync.Mutex        // serialises OnEvent
	started  time.Time
}

// Start kicks off req and runs the export into Dir, which must be absent or empty.
func (e *Exporter) Start(ctx context.Context, req ExportRequest) (*Result, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var warnings []string
	if e.CheckCapabilities {
		var err error
		if warnings, err = e.checkCapabilities(ctx, req); err != nil {
			return nil, err
		}
	}
	if err := prepareDir(e.Dir); err != nil {
		return nil, err
	}
	id := make([]byte, 10)
	rand.Read(id)
	st := &exportState{Version: stateVersion, ExportID: hex.EncodeToString(id), Started: e.Client.now().UTC()}
	r, err := e.newRun(st)
	if err != nil {
		return nil, err
	}
	defer r.close()
	for _, w := range warnings {
		r.emit(Event{Kind: EventWarning, Message: w})
	}
	job, err := e.Client.Kickoff(ctx, req)
	r.logKickoff(job, req, err)
	if err != nil {
		return nil, err
	}
	r.job = job
	r.mu.Lock()
	st.Job = job
	err = r.saveLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	r.emit(Event{Kind: EventKickoff, StatusURL: redactURLString(job.StatusURL)})
	return r.finish(r.exec(ctx))
}

// Resume carries on the export recorded in Dir's state file: it polls the job if the manifest
// was not yet received, downloads the files not yet complete (resuming .part files with Range),
// and deletes the job unless KeepJob. A finished export returns its result again.
func (e *Exporter) Resume(ctx context.Context) (*Result, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	st, err := loadState(e.Dir)
	if err != nil {
		return nil, err
	}
	if st.Job == nil {
		return nil, fmt.Errorf("bulk: %s: the kick-off never succeeded; start a new export", e.Dir)
	}
	job, err := e.Client.attach(st.Job)
	if err != nil {
		return nil, err
	}
	r, err := e.newRun(st)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.job = job
	r.emit(Event{Kind: EventResume, StatusURL: redactURLString(job.StatusURL)})
	return r.finish(r.exec(ctx))
}

func (e *Exporter) check() error {
	if e.Client == nil {
		return errors.New("bulk: Exporter.Client is nil")
	}
	if e.Dir == "" {
		return errors.New("bulk: Exporter.Dir is empty")
	}
	return nil
}

// prepareDir creates dir (0700) or accepts an existing empty one: an export never overwrites
// files it did not write.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("bulk: output directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("bulk: output directory: %w", err)
	}
	for _, en := range entries {
		switch en.Name() {
		case LogFile: // left by a failed kick-off: the log carries on
		case StateFile:
			return fmt.Errorf("%w: %s has an export (resume it, or choose another directory)", ErrDirInUse, dir)
		default:
			return fmt.Errorf("%w: %s is not empty (choose a new or empty directory)", ErrDirInUse, dir)
		}
	}
	return nil
}

func (e *Exporter) newRun(st *exportState) (*run, error) {
	lg, err := openExportLog(filepath.Join(e.Dir, LogFile), st.ExportID, e.Client.now)
	if err != nil {
		return nil, err
	}
	return &run{e: e, c: e.Client, st: st, log: lg, refetch: map[int]*Manifest{}, started: e.Client.now()}, nil
}

func (r *run) close() { _ = r.log.Close() }

// emit delivers an event to OnEvent, one call at a time.
func (r *run) emit(ev Event) {
	if r.e.OnEvent == nil {
		return
	}
	ev.Time = r.c.now().UTC()
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.e.OnEvent(ev)
}

// saveLocked writes the state file; r.mu must be held.
func (r *run) saveLocked() error {
	b, err := json.MarshalIndent(r.st, "", "  ")
	if err == nil {
		err = writeFileAtomic(r.e.Dir, StateFile, b)
	}
	if err != nil {
		return fmt.Errorf("bulk: resume state: %w", err)
	}
	r.lastSave, r.dirty = r.c.now(), false
	return nil
}

// stateSaveInterval is the least time between two writes of the state file for finished files.
const stateSaveInterval = time.Second

// saveDoneLocked records a finished file in the state file, at most once per stateSaveInterval
// unless force: the file lists every file of the export, so a write per file would make a large
// export quadratic (10,000 files: 10,000 writes of megabytes). A file whose Done a crash loses
// is confirmed on resume by a Range request past its end (see download), not fetched again.
// downloadAll writes what is left over. r.mu must be held.
func (r *run) saveDoneLocked(force bool) error {
	if !force && r.c.now().Sub(r.lastSave) < stateSaveInterval {
		r.dirty = true
		return nil
	}
	return r.saveLocked()
}

// finish turns the outcome of exec into the Result and, on failure, says how to carry on.
func (r *run) finish(res *Result, err error) (*Result, error) {
	if lerr := r.log.Close(); err == nil && lerr != nil {
		err = lerr
	}
	if err != nil && r.st.Job != nil && !errors.Is(err, ErrJobFailed) && !errors.Is(err, ErrJobGone) &&
		!errors.Is(err, ErrManifestExpired) {
		err = fmt.Errorf("%w (the job and the files so far are kept: resume with Exporter.Resume / smartfhir export --resume %s)", err, r.e.Dir)
	}
	return res, err
}

// exec is the common body of Start and Resume once a job exists.
func (r *run) exec(ctx context.Context) (*Result, error) {
	r.setupFilter()
	if !r.st.Planned {
		if err := r.awaitManifest(ctx); err != nil {
			return nil, err
		}
	}
	r.emit(r.planEvent())
	if !r.st.Complete {
		if err := r.downloadAll(ctx); err != nil {
			return nil, err
		}
	}
	res := r.result()
	r.collectOutcomes(res)
	if !r.st.Complete {
		r.log.write("export_complete", logDetail{"files": len(res.Files), "resources": res.Resources,
			"bytes": res.Bytes, "attachments": 0, "duration": r.c.now().Sub(r.started).Milliseconds()})
		r.mu.Lock()
		r.st.Complete = true
		err := r.saveLocked()
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
		r.emit(Event{Kind: EventComplete, Files: len(res.Files), Resources: res.Resources, Bytes: res.Bytes})
	}
	if !r.e.KeepJob && !r.st.Deleted {
		err := r.job.Cancel(ctx)
		gone := errors.Is(err, ErrJobGone)
		switch {
		case gone:
			// Nothing is left to delete; say so, since a job that vanished before its DELETE was
			// removed by someone (HAPI does it itself: its profile expects the 404).
			r.emit(Event{Kind: EventWarning, Message: "the job was already gone when deleted (" + err.Error() + ")"})
		case err != nil:
			r.emit(Event{Kind: EventWarning, Message: "the job could not be deleted on the server: " + err.Error()})
		}
		if err == nil || gone {
			r.mu.Lock()
			r.st.Deleted = true
			serr := r.saveLocked()
			r.mu.Unlock()
			if serr != nil {
				return nil, serr
			}
			if err == nil {
				r.emit(Event{Kind: EventJobDeleted, StatusURL: redactURLString(r.job.StatusURL)})
			}
		}
	}
	res.JobDeleted = r.st.Deleted
	res.Duration = r.c.now().Sub(r.started)
	return res, nil
}

// awaitManifest waits for the job, follows every manifest page, writes manifest.json and plans
// the local file names.
func (r *run) awaitManifest(ctx context.Context) error {
	first, err := r.job.Wait(ctx, func(s *Status) {
		if s.Err != nil {
			r.logStatusError(s.Err)
			r.emit(Event{Kind: EventStatus, WaitSeconds: s.Wait.Seconds(), Message: httpx.SanitizeText(s.Err.Error())})
			return
		}
		r.log.write("status_progress", logDetail{"body": nil, "xProgress": s.Progress, "retryAfter": retryAfterText(s)})
		r.emit(Event{Kind: EventStatus, Progress: s.Progress, WaitSeconds: s.Wait.Seconds()})
	})
	if err != nil {
		r.logStatusError(err)
		return err
	}
	r.log.write("status_complete", logDetail{"transactionTime": first.TransactionTime})
	pages, err := r.allPages(ctx, first)
	if err != nil {
		return err
	}
	files, err := planFiles(pages)
	if err != nil {
		return err
	}
	merged := mergePages(pages)
	for _, f := range files {
		if f.Kind != KindOutput {
			if err := os.MkdirAll(filepath.Join(r.e.Dir, f.Kind), 0o700); err != nil {
				return fmt.Errorf("bulk: %w", err)
			}
		}
	}
	if b, err := json.MarshalIndent(merged, "", "  "); err != nil {
		return fmt.Errorf("bulk: manifest: %w", err)
	} else if err := writeFileAtomic(r.e.Dir, ManifestFile, b); err != nil {
		return fmt.Errorf("bulk: manifest: %w", err)
	}
	r.log.write("manifest_complete", logDetail{"transactionTime": first.TransactionTime,
		"totalOutputFileCount": len(merged.Output), "totalDeletedFileCount": len(merged.Deleted),
		"totalErrorFileCount": len(merged.Error), "totalManifests": len(pages)})
	r.mu.Lock()
	r.st.Pages = make([]string, len(pages))
	for i, p := range pages {
		r.st.Pages[i] = p.URL
	}
	r.st.RequiresAccessToken = first.RequiresAccessToken
	r.st.OutputOrganizedBy = first.OutputOrganizedBy
	r.st.TransactionTime = first.TransactionTime
	r.st.Expires = earliestExpiry(pages)
	r.st.Files, r.st.Planned = files, true
	err = r.saveLocked()
	r.mu.Unlock()
	return err
}

// planEvent describes every file of the export.
func (r *run) planEvent() Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := Event{Kind: EventManifest, Files: len(r.st.Files), TransactionTime: r.st.TransactionTime}
	for _, f := range r.st.Files {
		ev.Plan = append(ev.Plan, *f.event())
	}
	return ev
}

func retryAfterText(s *Status) any {
	if !s.HasRetryAfter {
		return nil
	}
	return s.RetryAfter.Seconds()
}

// allPages follows link next from the first page, bounded by MaxManifestPages and MaxFiles, and
// refuses a link seen before.
func (r *run) allPages(ctx context.Context, first *Manifest) ([]*Manifest, error) {
	pages := []*Manifest{first}
	seen := map[string]bool{first.URL: true}
	files := len(first.Output) + len(first.Error) + len(first.Deleted)
	maxPages, maxFiles := intOr(r.c.MaxManifestPages, DefaultMaxManifestPages), intOr(r.c.MaxFiles, DefaultMaxFiles)
	for m := first; ; {
		if files > maxFiles {
			return nil, fmt.Errorf("%w: more than %d files", ErrBadManifest, maxFiles)
		}
		next, err := r.job.NextPage(ctx, m)
		if err != nil || next == nil {
			return pages, err
		}
		if seen[next.URL] {
			return nil, fmt.Errorf("%w: manifest next link repeats", ErrBadManifest)
		}
		if len(pages) >= maxPages {
			return nil, fmt.Errorf("%w: more than %d manifest pages", ErrBadManifest, maxPages)
		}
		seen[next.URL] = true
		if next.RequiresAccessToken != first.RequiresAccessToken {
			return nil, fmt.Errorf("%w: requiresAccessToken differs between manifest pages", ErrBadManifest)
		}
		pages = append(pages, next)
		files += len(next.Output) + len(next.Error) + len(next.Deleted)
		m = next
	}
}

// mergePages joins manifest pages into one manifest for manifest.json.
func mergePages(pages []*Manifest) *Manifest {
	m := *pages[0]
	m.Link = nil
	m.Output = append([]File{}, m.Output...)
	m.Error = append([]File{}, m.Error...)
	m.Deleted = append([]File{}, m.Deleted...)
	for _, p := range pages[1:] {
		m.Output = append(m.Output, p.Output...)
		m.Error = append(m.Error, p.Error...)
		m.Deleted = append(m.Deleted, p.Deleted...)
	}
	return &m
}

// downloadAll downloads every file not yet done with Parallel workers. A failed file does not
// stop the others, so that as much as possible is on disk for a resume; the errors are joined.
func (r *run) downloadAll(ctx context.Context) error {
	var pending []*fileState
	for _, f := range r.st.Files {
		if !f.Done {
			pending = append(pending, f)
		} else if f.Dropped {
			// A crash after the state update may have left the unfiltered download behind.
			_ = os.Remove(filepath.Join(r.e.Dir, filepath.FromSlash(f.Name)) + partSuffix)
		}
	}
	if err := r.refreshExpired(ctx, pending); err != nil {
		return err
	}
	// Check every token rule before the first byte moves (BULK-23, CONV-1).
	m := &Manifest{RequiresAccessToken: r.st.RequiresAccessToken}
	for _, f := range pending {
		if _, err := r.c.fileTarget(m, File{URL: f.URL}); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	var g errgroup.Group
	g.SetLimit(intOr(r.e.Parallel, DefaultParallel))
	var errMu sync.Mutex
	var errs []error
	for _, f := range pending {
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil
			}
			if err := r.download(ctx, f); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	var serr error
	r.mu.Lock()
	if r.dirty { // the files finished since the last write, even when the run is cut short
		serr = r.saveLocked()
	}
	r.mu.Unlock()
	if ctx.Err() != nil {
		return errors.Join(fmt.Errorf("bulk: download: %w", ctx.Err()), serr)
	}
	return errors.Join(append(errs, serr)...)
}

// result summarises the state.
func (r *run) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{Job: r.job, TransactionTime: r.st.TransactionTime}
	for _, f := range r.st.Files {
		res.Files = append(res.Files, *f.event())
		switch f.Kind {
		case KindOutput:
			res.Resources += f.Resources
			res.Bytes += f.Bytes
			res.Mismatches += f.Mismatches
			if f.Dropped {
				res.Dropped += f.Mismatches
			}
		case KindError:
			res.Outcomes += f.Resources
		}
	}
	return res
}

// maxIssues bounds the OperationOutcome issues quoted in Result.Issues.
const maxIssues = 10

// collectOutcomes reads the first issues of the error files (BULK-27) for Result.Issues.
func (r *run) collectOutcomes(res *Result) {
	for _, f := range res.Files {
		if f.Kind != KindError || len(res.Issues) >= maxIssues {
			continue
		}
		fh, err := os.Open(filepath.Join(r.e.Dir, f.Name))
		if err != nil {
			continue
		}
		for raw, err := range readNDJSON(fh, intOr(r.c.MaxLine, DefaultMaxLine), "", f.Name) {
			if err != nil || len(res.Issues) >= maxIssues {
				break
			}
			var oo struct {
				Issue []fhirclient.Issue `json:"issue"`
			}
			if json.Unmarshal(raw, &oo) != nil {
				continue
			}
			for _, is := range oo.Issue {
				if len(res.Issues) < maxIssues {
					res.Issues = append(res.Issues, truncate(httpx.SanitizeText(is.Severity+" "+is.Code+": "+is.Diagnostics), 300))
				}
			}
		}
		fh.Close()
	}
}

// logKickoff writes the kickoff log record, with the error status and body on failure.
func (r *run) logKickoff(job *Job, req ExportRequest, err error) {
	d := logDetail{"exportUrl": nil, "errorCode": nil, "errorBody": nil, "softwareName": nil,
		"softwareVersion": nil, "softwareReleaseDate": nil, "fhirVersion": nil, "requestParameters": req.logParameters()}
	if base, berr := r.c.base(); berr == nil {
		d["exportUrl"] = redactURL(base) + req.path()
	}
	var fe *fhirclient.Error
	if errors.As(err, &fe) {
		d["errorCode"] = fe.StatusCode
		d["errorBody"] = fe.BodySnippet()
	} else if err != nil {
		d["errorBody"] = httpx.SanitizeText(err.Error())
	}
	if job != nil {
		d["statusUrl"] = redactURLString(job.StatusURL)
	}
	r.log.write("kickoff", d)
}

// logStatusError writes a status_error record.
func (r *run) logStatusError(err error) {
	d := logDetail{"code": nil, "body": nil, "message": httpx.SanitizeText(err.Error()), "responseHeaders": nil}
	var fe *fhirclient.Error
	if errors.As(err, &fe) {
		d["code"] = fe.StatusCode
		d["body"] = fe.BodySnippet()
	}
	r.log.write("status_error", d)
}
