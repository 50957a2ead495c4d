package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartfhir/smartfhir/fhirclient"
	"github.com/smartfhir/smartfhir/fhirclient/bulk"
)

// exportOptions are the flags of 'smartfhir export' beyond the shared server flags.
type exportOptions struct {
	group        string
	patients     []string
	types        []string
	since, until string
	typeFilters  []string
	elements     []string
	outputFormat string
	associated   []string
	post         bool
	lenient      bool
	out, resume  string
	keepJob      bool
	parallel     int
	validate     bool
	filter       bool
	checkCaps    bool
}

// newExportCmd is 'smartfhir export' (CONV-6): a Bulk Data export into a directory.
func newExportCmd(g *globals) *cobra.Command {
	o := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export --out DIR [--group ID | --patient ID…] [--type T,…] [--since INSTANT]",
		Short: "Bulk Data $export into a directory (resumable)",
		Long: `export runs a FHIR Bulk Data $export and downloads every file into --out, a new or empty
directory: <Type>.ndjson (or <Type>.<n>.ndjson when a type has several files), error/ and deleted/
for those outputs, manifest.json, log.ndjson (the bulk-data-client export log) and
export-state.json. Files are written decompressed; downloads run in parallel (--parallel), resume
with HTTP Range after a dropped connection, and the job is deleted on the server when every file
is on disk, unless --keep-job.

The export is system-level ([base]/$export) unless --group ID or --patient picks another.
--since takes a FHIR instant with a time zone (2024-01-01T00:00:00Z), or @DIR for the
transactionTime of an earlier export in DIR (incremental exports).

If the command stops (Ctrl-C, a crash, a network failure), run it again with --resume DIR: it
carries on polling the same job and downloads only what is missing.

Servers may ignore --type-filter (_typeFilter is optional for them): the command re-applies the
common search parameters itself and warns about resources that do not match; --filter drops them.
Before the kick-off it reads the server's CapabilityStatement and refuses an export level it does
not declare (--check-capabilities=false skips this).

Authentication is as for 'smartfhir get': usually a backend service with --client-id and --key.

  smartfhir export --fhir https://ehr.example.org/fhir --client-id ID --key key.pem --out ./export
  smartfhir export --profile epic-backend --group 123 --type Patient,Condition --out ./g123
  smartfhir export --profile epic-backend --resume ./g123`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(cmd.Context(), g, o)
		},
	}
	g.serverFlags(cmd)
	g.storeFlag(cmd)
	f := cmd.Flags()
	if t := f.Lookup("timeout"); t != nil {
		t.DefValue = "0s"
		t.Usage = "overall time limit (default none: exports can take hours)"
	}
	f.StringVar(&o.group, "group", "", "export the members of this Group ([base]/Group/ID/$export)")
	f.StringSliceVar(&o.patients, "patient", nil, "export these patients only ([base]/Patient/$export with a POST patient list; repeatable)")
	f.StringSliceVar(&o.types, "type", nil, "resource types to export (_type; comma-separated or repeated)")
	f.StringVar(&o.since, "since", "", "only resources changed after this instant (_since), or @DIR for the transactionTime of the export in DIR")
	f.StringVar(&o.until, "until", "", "only resources changed before this instant (_until)")
	f.StringArrayVar(&o.typeFilters, "type-filter", nil, "a FHIR query Type?param=value (_typeFilter; repeatable)")
	f.StringSliceVar(&o.elements, "elements", nil, "elements to include (_elements; comma-separated)")
	f.StringVar(&o.outputFormat, "output-format", "", "_outputFormat (default: the server's, application/fhir+ndjson)")
	f.StringSliceVar(&o.associated, "include-associated-data", nil, "includeAssociatedData values (comma-separated)")
	f.BoolVar(&o.post, "post", false, "send the kick-off as POST with a Parameters body")
	f.BoolVar(&o.lenient, "lenient", false, "ask the server to ignore parameters it does not support (Prefer: handling=lenient)")
	f.StringVar(&o.out, "out", "", "output directory (new or empty)")
	f.StringVar(&o.resume, "resume", "", "resume the export recorded in this directory")
	f.BoolVar(&o.keepJob, "keep-job", false, "do not delete the job on the server when done")
	f.IntVar(&o.parallel, "parallel", bulk.DefaultParallel, "concurrent downloads (1-32)")
	f.BoolVar(&o.validate, "validate", true, "check that every line is a JSON object of its file's resource type, and count resources that do not match --type-filter")
	f.BoolVar(&o.filter, "filter", false, "drop resources that do not match --type-filter (servers may ignore _typeFilter)")
	f.BoolVar(&o.checkCaps, "check-capabilities", true, "read the server's CapabilityStatement first and refuse an export it does not declare")
	return cmd
}

// request builds the ExportRequest of the flags.
func (o *exportOptions) request() (bulk.ExportRequest, error) {
	req := bulk.ExportRequest{
		GroupID: o.group, Types: o.types, TypeFilters: o.typeFilters, Elements: o.elements,
		OutputFormat: o.outputFormat, IncludeAssociatedData: o.associated, POST: o.post, Lenient: o.lenient,
	}
	if len(o.patients) > 0 {
		if o.group == "" {
			req.Level = bulk.LevelPatient
		}
		req.Patients = o.patients
	}
	var err error
	if req.Since, err = exportInstant("--since", o.since); err != nil {
		return req, err
	}
	if req.Until, err = exportInstant("--until", o.until); err != nil {
		return req, err
	}
	if err := req.Validate(); err != nil {
		return req, usagef("%s", strings.TrimPrefix(err.Error(), "bulk: "))
	}
	return req, nil
}

// exportInstant parses an instant flag: RFC 3339 with a time zone, or @DIR for the transactionTime
// recorded by an earlier export in DIR (BULK-19).
func exportInstant(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if dir, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(filepath.Join(dir, bulk.ManifestFile))
		if err != nil {
			return time.Time{}, usagef("%s %s: no finished export there (%v)", flag, v, err)
		}
		var m struct {
			TransactionTime string `json:"transactionTime"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.TransactionTime == "" {
			return time.Time{}, usagef("%s %s: %s has no transactionTime", flag, v, bulk.ManifestFile)
		}
		v = m.TransactionTime
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("%s %q is not an instant with a time zone, like 2024-01-01T00:00:00Z", flag, v)
	}
	return t, nil
}

// runExport authenticates as the other server commands do and runs a bulk.Exporter, starting or
// resuming, with the display on stderr (or JSON events on stdout).
func runExport(ctx context.Context, g *globals, o *exportOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	switch {
	case o.out == "" && o.resume == "":
		return usagef("pass --out DIR (a new or empty directory), or --resume DIR to carry on an export")
	case o.out != "" && o.resume != "" && filepath.Clean(o.out) != filepath.Clean(o.resume):
		return usagef("--out and --resume name different directories; --resume DIR alone carries on the export in DIR")
	case o.parallel < 1 || o.parallel > 32:
		return usagef("--parallel %d: use 1 to 32", o.parallel)
	}
	s, err := resolveServer(g, true)
	if err != nil {
		return err
	}
	ctx, cancel := g.commandContext(ctx)
	defer cancel()
	a, err := g.authenticate(ctx, s)
	if err != nil {
		return err
	}
	c, err := bulk.NewClient(s.FHIR, a.fhir)
	if err != nil {
		return usagef("--fhir: %v", err)
	}
	c.TrustedOrigins = s.TrustOrigins
	c.InsecureAllowHTTP = s.InsecureHTTP
	c.UserAgent = "smartfhir-cli"
	if err := c.SetProfile(*s.Vendor); err != nil { // authenticate set the vendor profile
		return err
	}

	disp := newExportDisplay(g)
	e := &bulk.Exporter{Client: c, Dir: o.out, Parallel: o.parallel, Validate: o.validate, Filter: o.filter,
		CheckCapabilities: o.checkCaps, KeepJob: o.keepJob, OnEvent: disp.event}
	var res *bulk.Result
	if o.resume != "" {
		e.Dir = o.resume
		res, err = e.Resume(ctx)
	} else {
		res, err = e.Start(ctx, req)
	}
	disp.close()
	if err != nil {
		return exportError(err, e.Dir)
	}
	return disp.result(res, e.Dir, o.keepJob)
}

// exportError explains a failed export: what went wrong, with server text escaped, and what to
// do next.
func exportError(err error, dir string) error {
	hint := ""
	var fe *fhirclient.Error
	var ra *fhirclient.RetryAfterError
	switch {
	case errors.As(err, &ra):
		hint = fmt.Sprintf("the server is busy or another export of this client is still running (Epic allows one at a time): try again after %s, or delete the other job", ra.At.Local().Format(time.RFC3339))
	case errors.Is(err, bulk.ErrNotSupported):
		hint = "if the server's CapabilityStatement is wrong, run again with --check-capabilities=false"
	case errors.Is(err, bulk.ErrDirInUse):
		hint = "choose a new --out directory, or carry on with --resume " + dir
	case errors.Is(err, bulk.ErrUntrustedOrigin):
		hint = "if that origin belongs to the FHIR server, allow it with --trust-origin"
	case errors.Is(err, bulk.ErrJobFailed), errors.Is(err, bulk.ErrJobGone):
		hint = "the server ended the job: start a new export"
	case errors.As(err, &fe) && (fe.StatusCode == 401 || fe.StatusCode == 403):
		hint = "check that the client is registered for bulk export and its scopes (--scope, e.g. system/*.read) cover the requested types"
	case errors.As(err, &fe) && fe.StatusCode == 404:
		hint = "check --fhir (the FHIR base URL) and that the server supports $export at this level"
	}
	msg := safe(err.Error())
	if hint != "" {
		msg += "\n" + hint
	}
	return &exportFailure{msg: "export: " + msg, err: err}
}

// exportFailure carries the escaped message of a failed export and keeps the cause for errors.Is.
type exportFailure struct {
	msg string
	err error
}

func (e *exportFailure) Error() string { return e.msg }
func (e *exportFailure) Unwrap() error { return e.err }

// result prints the summary: JSON on stdout with --json, else text on stdout.
func (d *exportDisplay) result(res *bulk.Result, dir string, keepJob bool) error {
	if d.g.json {
		return d.writeJSON(struct {
			Event           string   `json:"event"`
			Dir             string   `json:"dir"`
			Files           int      `json:"files"`
			Resources       int64    `json:"resources"`
			Bytes           int64    `json:"bytes"`
			Outcomes        int64    `json:"outcomes"`
			Mismatches      int64    `json:"typeFilterMismatches,omitempty"`
			Dropped         int64    `json:"typeFilterDropped,omitempty"`
			Issues          []string `json:"issues,omitempty"`
			TransactionTime string   `json:"transactionTime"`
			JobDeleted      bool     `json:"jobDeleted"`
			Seconds         float64  `json:"seconds"`
		}{"result", dir, len(res.Files), res.Resources, res.Bytes, res.Outcomes, res.Mismatches, res.Dropped, res.Issues,
			res.TransactionTime, res.JobDeleted, res.Duration.Seconds()})
	}
	w := d.g.stdout
	fmt.Fprintf(w, "Exported %d resources (%s) in %d files to %s in %s.\n", res.Resources, humanBytes(res.Bytes), len(res.Files), dir, res.Duration.Round(time.Second))
	if res.TransactionTime != "" {
		fmt.Fprintf(w, "transactionTime %s: for the changes since, run again with --since %s\n", safe(res.TransactionTime), safe(res.TransactionTime))
	}
	switch {
	case res.Dropped > 0:
		fmt.Fprintf(w, "%d resources did not match --type-filter (the server may have ignored it) and were dropped (--filter).\n", res.Dropped)
	case res.Mismatches > 0:
		fmt.Fprintf(w, "%d resources do not match --type-filter (the server may have ignored it); they were kept: run with --filter to drop them.\n", res.Mismatches)
	}
	if res.Outcomes > 0 {
		fmt.Fprintf(w, "The server reported %d OperationOutcome(s) in %s/error/ (partial success):\n", res.Outcomes, dir)
		for _, is := range res.Issues {
			fmt.Fprintf(w, "  %s\n", oneLine(is))
		}
	}
	switch {
	case res.JobDeleted:
		fmt.Fprintln(w, "The job was deleted on the server.")
	case keepJob:
		fmt.Fprintln(w, "The job was kept on the server (--keep-job).")
	default:
		fmt.Fprintln(w, "The job could not be deleted on the server; it will expire there.")
	}
	return nil
}

// humanBytes renders n in binary units (12.3 MiB).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// writeJSON prints one JSON object per line on stdout.
func (d *exportDisplay) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err = d.g.stdout.Write(append(b, '\n'))
	return err
}
