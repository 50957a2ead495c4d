package bulk

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// exportLog appends records in the bulk-data-client export log format ("Bulk Data Export Log
// Items": one JSON object per line with exportId, timestamp, eventId and eventDetail) to
// log.ndjson. Event ids: kickoff, status_progress, status_error, status_complete,
// manifest_complete, download_request, download_complete, download_error, export_complete; and
// two of ours (BULK-08): typefilter_unsupported and typefilter_mismatch. File
// URLs are logged without their query (pre-signed URLs carry signatures); no token is ever logged.
type exportLog struct {
	mu  sync.Mutex
	f   *os.File
	id  string
	now func() time.Time
	err error // first write error, reported at the end of the run
}

func openExportLog(path, exportID string, now func() time.Time) (*exportLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bulk: export log: %w", err)
	}
	return &exportLog{f: f, id: exportID, now: now}, nil
}

// logDetail is an eventDetail object; nil values are written as JSON null, as bulk-data-client does.
type logDetail map[string]any

func (l *exportLog) write(eventID string, detail logDetail) {
	rec := struct {
		ExportID    string    `json:"exportId"`
		Timestamp   string    `json:"timestamp"`
		EventID     string    `json:"eventId"`
		EventDetail logDetail `json:"eventDetail"`
	}{l.id, l.now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), eventID, detail}
	b, err := json.Marshal(rec)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	if err == nil {
		_, err = l.f.Write(append(b, '\n'))
	}
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("bulk: export log: %w", err)
	}
}

// Close closes the file and returns the first error seen.
func (l *exportLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return l.err
	}
	if err := l.f.Close(); err != nil && l.err == nil {
		l.err = fmt.Errorf("bulk: export log: %w", err)
	}
	l.f = nil
	return l.err
}
