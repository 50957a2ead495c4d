package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// File names an Exporter writes in its directory.
const (
	StateFile    = "export-state.json" // resume state
	ManifestFile = "manifest.json"     // the complete manifest (all pages merged)
	LogFile      = "log.ndjson"        // bulk-data-client export log
	partSuffix   = ".part"             // a download in progress
)

// Kinds of manifest files, also the subdirectories of error and deleted files.
const (
	KindOutput  = "output"
	KindError   = "error"
	KindDeleted = "deleted"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// exportState is the resume state file: enough to carry on after a crash without the server's
// help beyond the status URL. It holds no secret (file URLs may be pre-signed; the directory and
// file are private to the user).
type exportState struct {
	Version             int          `json:"version"`
	ExportID            string       `json:"exportId"`
	Started             time.Time    `json:"started"`
	Job                 *Job         `json:"job,omitempty"`
	Pages               []string     `json:"pages,omitempty"` // manifest page URLs; [0] is the status URL
	RequiresAccessToken bool         `json:"requiresAccessToken,omitempty"`
	OutputOrganizedBy   string       `json:"outputOrganizedBy,omitempty"`
	TransactionTime     string       `json:"transactionTime,omitempty"`
	Expires             time.Time    `json:"expires,omitzero"` // earliest Expires of the manifest pages: re-fetch them after it (BULK-20)
	Files               []*fileState `json:"files,omitempty"`
	Planned             bool         `json:"planned,omitempty"` // Files is the whole manifest
	Complete            bool         `json:"complete,omitempty"`
	Deleted             bool         `json:"deleted,omitempty"`
}

// fileState is one manifest file and how far its download got.
type fileState struct {
	Kind      string `json:"kind"`
	Type      string `json:"type,omitempty"`
	URL       string `json:"url"`
	Page      int    `json:"page"`
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Count     *int64 `json:"count,omitempty"`
	Done      bool   `json:"done,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Resources int64  `json:"resources,omitempty"`
	// Mismatches counts the resources that do not match the _typeFilter (BULK-08); Dropped says
	// they were removed from the file (Exporter.Filter).
	Mismatches int64 `json:"mismatches,omitempty"`
	Dropped    bool  `json:"dropped,omitempty"`
	// Continues is the local name of the file this one's last block continues in (BULK-29).
	Continues string `json:"continues,omitempty"`
}

func (f *fileState) event() *FileEvent {
	e := &FileEvent{Kind: f.Kind, Type: f.Type, Name: f.Name, Bytes: f.Bytes, Resources: f.Resources, Mismatches: f.Mismatches, Done: f.Done}
	if f.Count != nil {
		e.Count = *f.Count
	}
	return e
}

// loadState reads dir's state file.
func loadState(dir string) (*exportState, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bulk: %s holds no export to resume (no %s)", dir, StateFile)
	}
	if err != nil {
		return nil, fmt.Errorf("bulk: resume state: %w", err)
	}
	var st exportState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("bulk: resume state %s: %w", StateFile, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("bulk: resume state %s: unsupported version %d", StateFile, st.Version)
	}
	for _, f := range st.Files {
		if err := checkName(f.Name); err != nil {
			return nil, fmt.Errorf("bulk: resume state %s: %w", StateFile, err)
		}
	}
	return &st, nil
}

// writeFileAtomic writes b to dir/name through a temporary file and a rename.
func writeFileAtomic(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// planFiles names every file of the manifest pages: <Type>.ndjson, or <Type>.<n>.ndjson when a
// type has several, with error and deleted files in subdirectories of those names (CONV-6). Names
// come only from validated type names, never from server paths.
func planFiles(pages []*Manifest) ([]*fileState, error) {
	var files []*fileState
	continues := map[*fileState]string{} // organised output: continuesInFile URLs (BULK-29)
	for p, m := range pages {
		for _, set := range []struct {
			kind  string
			files []File
		}{{KindOutput, m.Output}, {KindError, m.Error}, {KindDeleted, m.Deleted}} {
			for i, f := range set.files {
				base := f.Type
				if base == "" {
					base = m.OutputOrganizedBy
				}
				if !ValidType(base) {
					return nil, fmt.Errorf("%w: %s[%d] has no usable type", ErrBadManifest, set.kind, i)
				}
				fs := &fileState{Kind: set.kind, Type: f.Type, URL: f.URL, Page: p, Index: i, Name: base, Count: f.Count}
				files = append(files, fs)
				if set.kind == KindOutput && m.OutputOrganizedBy != "" && f.ContinuesInFile != "" {
					continues[fs] = f.ContinuesInFile
				}
			}
		}
	}
	// Types are counted case-insensitively: on a case-insensitive file system (macOS, Windows)
	// "Patient" and a hostile "PATIENT" would otherwise share one file, written by two downloads.
	total := map[[2]string]int{}
	for _, f := range files {
		total[[2]string{f.Kind, strings.ToLower(f.Name)}]++
	}
	seen := map[[2]string]int{}
	for _, f := range files {
		k := [2]string{f.Kind, strings.ToLower(f.Name)}
		seen[k]++
		name := f.Name + ".ndjson"
		if total[k] > 1 {
			name = f.Name + "." + strconv.Itoa(seen[k]) + ".ndjson"
		}
		if f.Kind != KindOutput {
			name = f.Kind + "/" + name
		}
		f.Name = name
	}
	if len(continues) > 0 {
		byURL := map[string]*fileState{}
		for _, f := range files {
			if f.Kind == KindOutput {
				byURL[f.URL] = f
			}
		}
		for f, u := range continues {
			target := byURL[u]
			if target == nil {
				return nil, fmt.Errorf("%w: continuesInFile %s is not an output file of the manifest", ErrBadManifest, redactURLString(u))
			}
			f.Continues = target.Name
		}
	}
	return files, nil
}

var nameRE = regexp.MustCompile(`^((error|deleted)/)?[A-Z][A-Za-z]{0,63}(\.[1-9][0-9]{0,6})?\.ndjson$`)

// checkName re-validates a stored file name: an optional error/ or deleted/ directory, then
// <Type>.ndjson or <Type>.<n>.ndjson. A tampered state file cannot make us write elsewhere.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("file name %q is not <Type>[.<n>].ndjson", name)
	}
	return nil
}
