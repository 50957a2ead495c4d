package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/cwriter"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/smartfhir/smartfhir/fhirclient/bulk"
)

// exportDisplay shows the progress of 'smartfhir export' (CONV-6): with --json one JSON event per
// line on stdout; on a terminal (not TERM=dumb) one progress bar per resource type on stderr, with
// resources, bytes and an ETA when the manifest announced counts; otherwise plain lines on stderr.
// Server text in events is escaped by the bulk package and again here.
type exportDisplay struct {
	g    *globals
	mode displayMode

	mu     sync.Mutex // serialises output and guards what follows
	p      *mpb.Progress
	out    io.Writer // stderr, or the bar container while bars run
	wait   *mpb.Bar  // spinner while the job runs
	status atomic.Pointer[string]
	bars   map[string]*typeBar // by label
	files  map[string]*fileSeen
}

// displayMode is how progress is shown.
type displayMode int

const (
	displayPlain displayMode = iota
	displayBars
	displayJSON
)

// typeBar is the bar of one resource type (error and deleted outputs have their own).
type typeBar struct {
	bar         *mpb.Bar
	bytes       atomic.Int64
	files, done int
}

// fileSeen is what the display last showed of a file.
type fileSeen struct {
	label            string
	bytes, resources int64
}

// newExportDisplay picks the display: JSON with --json, bars on a terminal, else plain lines.
func newExportDisplay(g *globals) *exportDisplay {
	d := &exportDisplay{g: g, out: g.stderr, bars: map[string]*typeBar{}, files: map[string]*fileSeen{}}
	switch {
	case g.json:
		d.mode = displayJSON
	case g.getenv("TERM") != "dumb" && barsFit(g.stderr):
		d.mode = displayBars
	}
	return d
}

// barsFit reports whether w is a terminal wide enough for the bars (a pseudo-terminal without a
// size, as under some CI runners, is not).
func barsFit(w io.Writer) bool {
	cw := cwriter.New(w)
	if !cw.IsTerminal() {
		return false
	}
	width, _, err := cw.GetTermSize()
	return err == nil && width >= 60
}

// barLabel names the bar of a file: its type, and its kind unless it is output.
func barLabel(f bulk.FileEvent) string {
	if f.Kind == bulk.KindOutput {
		return f.Type
	}
	return f.Type + " (" + f.Kind + ")"
}

// event is the Exporter's OnEvent (calls are serialised by the Exporter).
func (d *exportDisplay) event(ev bulk.Event) {
	if d.mode == displayJSON {
		_ = d.writeJSON(ev)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch ev.Kind {
	case bulk.EventKickoff:
		d.linef("export started; status URL %s (resume with --resume if this stops)", safe(ev.StatusURL))
	case bulk.EventResume:
		d.linef("resuming the export at %s", safe(ev.StatusURL))
	case bulk.EventStatus:
		d.statusLine(ev)
	case bulk.EventManifest:
		d.manifest(ev)
	case bulk.EventFileProgress, bulk.EventFileDone:
		d.progress(ev)
	case bulk.EventFileError:
		d.linef("error: %s", oneLine(ev.Message))
	case bulk.EventRetry:
		d.linef("retrying %s in %s: %s", ev.File.Name, seconds(ev.WaitSeconds), oneLine(ev.Message))
	case bulk.EventWarning:
		d.linef("warning: %s", oneLine(ev.Message))
	case bulk.EventJobDeleted:
		if d.mode == displayPlain {
			d.linef("job deleted on the server")
		}
	}
}

// seconds renders a wait in seconds as a rounded duration.
func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

// linef prints a line on stderr, above the bars when they run.
func (d *exportDisplay) linef(format string, a ...any) {
	fmt.Fprintf(d.out, "smartfhir: "+format+"\n", a...)
}

// statusLine shows an in-progress poll: a line, or the spinner's text on a terminal.
func (d *exportDisplay) statusLine(ev bulk.Event) {
	msg := "export in progress"
	if ev.Progress != "" {
		msg += ": " + oneLine(ev.Progress)
	}
	if ev.Message != "" {
		msg = "status poll failed, retrying: " + oneLine(ev.Message)
	}
	msg += " (next poll in " + seconds(ev.WaitSeconds) + ")"
	if d.mode == displayPlain {
		d.linef("%s", msg)
		return
	}
	d.status.Store(&msg)
	if d.p == nil {
		d.start()
		d.wait = d.p.New(0, mpb.SpinnerStyle(), mpb.BarWidth(3), mpb.BarFillerClearOnComplete(),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return *d.status.Load() })))
	}
}

// start opens the bar container on stderr; lines printed meanwhile go above the bars.
func (d *exportDisplay) start() {
	d.p = mpb.New(mpb.WithOutput(d.g.stderr), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
	d.out = d.p
}

// manifest creates the bars, or prints the plan.
func (d *exportDisplay) manifest(ev bulk.Event) {
	if d.wait != nil {
		d.wait.Abort(true)
		d.wait = nil
	}
	pending := 0
	for _, f := range ev.Plan {
		if !f.Done {
			pending++
		}
	}
	d.linef("manifest: %d files (%d to download), transactionTime %s", ev.Files, pending, safe(ev.TransactionTime))
	if d.mode == displayPlain {
		return
	}
	type agg struct {
		files, done        int
		total, have, bytes int64
		allCounted         bool
	}
	var order []string
	byLabel := map[string]*agg{}
	for _, f := range ev.Plan {
		l := barLabel(f)
		a := byLabel[l]
		if a == nil {
			a = &agg{allCounted: true}
			byLabel[l] = a
			order = append(order, l)
		}
		a.files++
		a.total += f.Count
		a.allCounted = a.allCounted && f.Count > 0
		if f.Done {
			a.done++
			a.have += f.Resources
			a.bytes += f.Bytes
		}
		d.files[f.Name] = &fileSeen{label: l, bytes: f.Bytes, resources: f.Resources}
	}
	if d.p == nil {
		d.start()
	}
	for _, l := range order {
		a := byLabel[l]
		tb := &typeBar{files: a.files, done: a.done}
		tb.bytes.Store(a.bytes)
		total, style, eta := int64(0), mpb.BarFillerBuilder(mpb.SpinnerStyle()), decor.Decorator(decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace))
		if a.allCounted {
			total, style, eta = a.total, mpb.BarStyle(), decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace)
		}
		tb.bar = d.p.New(total, style,
			mpb.PrependDecorators(decor.Name(l, decor.WCSyncSpaceR),
				decor.Any(func(s decor.Statistics) string { return fmt.Sprintf("%d res", s.Current) }, decor.WCSyncSpace)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return humanBytes(tb.bytes.Load()) }, decor.WCSyncSpace),
				decor.OnComplete(eta, " done")))
		if a.have > 0 {
			tb.bar.SetCurrent(a.have)
		}
		if tb.done == tb.files {
			tb.bar.SetTotal(-1, true)
		}
		d.bars[l] = tb
	}
}

// progress moves the bar of a file's type, or prints a line when a file is done.
func (d *exportDisplay) progress(ev bulk.Event) {
	f := ev.File
	seen := d.files[f.Name]
	if seen == nil {
		seen = &fileSeen{label: barLabel(*f)}
		d.files[f.Name] = seen
	}
	dRes, dBytes := f.Resources-seen.resources, f.Bytes-seen.bytes
	seen.resources, seen.bytes = f.Resources, f.Bytes
	if d.mode == displayPlain {
		if ev.Kind == bulk.EventFileDone {
			d.linef("%s: %d resources, %s", f.Name, f.Resources, humanBytes(f.Bytes))
		}
		return
	}
	tb := d.bars[seen.label]
	if tb == nil {
		return
	}
	tb.bytes.Add(dBytes)
	if dRes > 0 {
		tb.bar.IncrInt64(dRes)
	}
	if ev.Kind == bulk.EventFileDone {
		if tb.done++; tb.done == tb.files {
			tb.bar.SetTotal(-1, true)
		}
	}
}

// close stops the bars: complete ones stay, unfinished ones are marked aborted.
func (d *exportDisplay) close() {
	d.mu.Lock()
	p := d.p
	if p != nil {
		if d.wait != nil {
			d.wait.Abort(true)
		}
		for _, tb := range d.bars {
			if !tb.bar.Completed() {
				tb.bar.Abort(false)
			}
		}
	}
	d.out = d.g.stderr
	d.mu.Unlock()
	if p != nil {
		p.Wait()
	}
}
