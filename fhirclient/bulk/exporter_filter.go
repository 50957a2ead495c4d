package bulk

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// setupFilter compiles the request's _typeFilter for the per-line pass (BULK-08) and warns once
// about the parameters the client cannot evaluate.
func (r *run) setupFilter() {
	if (!r.e.Validate && !r.e.Filter) || len(r.job.Request.TypeFilters) == 0 {
		return
	}
	f, err := NewTypeFilter(r.job.Request.TypeFilters)
	if err != nil { // the request was validated at kick-off; a tampered state file lands here
		r.emit(Event{Kind: EventWarning, Message: "the _typeFilter is not checked on the client: " + trimPrefix(err.Error())})
		return
	}
	r.filter = f
	if u := f.Unsupported(); len(u) > 0 {
		r.log.write("typefilter_unsupported", logDetail{"parameters": u})
		r.emit(Event{Kind: EventWarning, Message: "the client cannot evaluate these _typeFilter parameters, so it keeps the resources they concern unchecked: " + strings.Join(u, ", ")})
	}
}

// lineCheck returns the per-line pass of f, or nil when there is none: validation (BULK-25) and
// the _typeFilter check (BULK-08), which counts the resources that do not match in *mismatches.
func (r *run) lineCheck(f *fileState, mismatches *int64) func([]byte, int64) error {
	want := ""
	if r.st.OutputOrganizedBy == "" {
		want = f.Type
	}
	filter := r.filter
	if filter != nil && (f.Kind != KindOutput || (f.Type != "" && !filter.Filters(f.Type))) {
		filter = nil
	}
	validate := r.e.Validate
	if !validate && filter == nil {
		return nil
	}
	return func(line []byte, n int64) error {
		if validate {
			if err := checkResource(line, want); err != nil {
				return &LineError{File: f.Name, Line: n, Err: err}
			}
		}
		if filter != nil {
			if match, ok := filter.Match(line); ok && !match {
				*mismatches++
			}
		}
		return nil
	}
}

// dropMismatches writes the lines of <name>.part that match the _typeFilter to <name>, through a
// temporary file and a rename. The .part stays until the state records the file as done, since a
// resumed download appends to it (BULK-08, BULK-32).
func (r *run) dropMismatches(path string) (kept, size int64, err error) {
	in, err := os.Open(path + partSuffix)
	if err != nil {
		return 0, 0, fmt.Errorf("bulk: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, 0, fmt.Errorf("bulk: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	ls := newLineSplitter(intOr(r.c.MaxLine, DefaultMaxLine), func(line []byte, _ int64) error {
		if match, _ := r.filter.Match(line); !match {
			return nil
		}
		kept++
		size += int64(len(line)) + 1
		bw.Write(line)
		return bw.WriteByte('\n')
	})
	if _, err = copyBody(ls, in); err != nil {
		var se *sinkError
		if errors.As(err, &se) {
			err = se.err
		}
		return 0, 0, fmt.Errorf("bulk: filter: %w", err)
	}
	if err = ls.Close(); err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("bulk: filter: %w", err)
	}
	return kept, size, nil
}

// reportMismatches warns about a file with resources that do not match the _typeFilter.
func (r *run) reportMismatches(f *fileState) {
	total, action := f.Resources, "kept them (Exporter.Filter / --filter drops them)"
	if f.Dropped {
		total += f.Mismatches
		action = "dropped them"
	}
	r.log.write("typefilter_mismatch", logDetail{"fileUrl": redactURLString(f.URL), "resourceType": typeOrNil(f.Type),
		"resourceCount": total, "mismatches": f.Mismatches, "dropped": f.Dropped})
	r.emit(Event{Kind: EventWarning, File: f.event(), Message: fmt.Sprintf(
		"%s: %d of %d resources do not match the _typeFilter (the server may have ignored it); the client %s",
		f.Name, f.Mismatches, total, action)})
}
