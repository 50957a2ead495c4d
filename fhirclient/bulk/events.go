package bulk

import "time"

// EventKind names an Exporter event.
type EventKind string

// Exporter events, in the order they usually come.
const (
	EventKickoff      EventKind = "kickoff"       // the job started (StatusURL)
	EventResume       EventKind = "resume"        // an earlier run is being resumed (StatusURL)
	EventStatus       EventKind = "status"        // the job is in progress (Progress, WaitSeconds; Message on a retried error)
	EventManifest     EventKind = "manifest"      // the manifest is complete (Files, Plan, TransactionTime); also on resume
	EventFileStart    EventKind = "file_start"    // a download starts or resumes (File)
	EventFileProgress EventKind = "file_progress" // bytes arrived (File), at most every ProgressInterval per file
	EventFileDone     EventKind = "file_done"     // a file is complete on disk (File)
	EventFileError    EventKind = "file_error"    // a file failed (File, Message)
	EventRetry        EventKind = "retry"         // a download is retried (File, Message, WaitSeconds)
	EventWarning      EventKind = "warning"       // something odd but not fatal (Message)
	EventComplete     EventKind = "complete"      // every file is downloaded (Files, Resources, Bytes)
	EventJobDeleted   EventKind = "job_deleted"   // the job was deleted on the server
)

// Event reports the progress of an Exporter. Text from the server (Progress, Message) has its
// control characters escaped. It marshals to one JSON object (smartfhir export --json).
type Event struct {
	Kind            EventKind   `json:"event"`
	Time            time.Time   `json:"time"`
	StatusURL       string      `json:"statusUrl,omitempty"`
	Progress        string      `json:"progress,omitempty"`
	WaitSeconds     float64     `json:"waitSeconds,omitempty"`
	TransactionTime string      `json:"transactionTime,omitempty"`
	File            *FileEvent  `json:"file,omitempty"`
	Files           int         `json:"files,omitempty"`
	Plan            []FileEvent `json:"plan,omitempty"` // EventManifest: every file, done or not
	Resources       int64       `json:"resources,omitempty"`
	Bytes           int64       `json:"bytes,omitempty"`
	Message         string      `json:"message,omitempty"`
}

// FileEvent describes one file of the export.
type FileEvent struct {
	Kind      string `json:"kind"`            // "output", "error" or "deleted"
	Type      string `json:"type,omitempty"`  // resource type
	Name      string `json:"name"`            // path relative to Exporter.Dir
	Bytes     int64  `json:"bytes"`           // decoded bytes on disk so far
	Resources int64  `json:"resources"`       // non-blank lines so far
	Count     int64  `json:"count,omitempty"` // resources announced by the manifest, if any
	// Mismatches counts resources that do not match the request's _typeFilter (BULK-08): the
	// server may have ignored it. With Exporter.Filter they are not in the file (nor in Resources).
	Mismatches int64 `json:"mismatches,omitempty"`
	Done       bool  `json:"done,omitempty"` // on disk (in a Plan: by an earlier run)
}
