package sandbox

import (
	"sync"
	"time"
)

// Bulk Data export (BULK-01…35 seen from the server, SBX-10): kick-off at /fhir/$export,
// /fhir/Patient/$export and /fhir/Group/{id}/$export; status, manifest and DELETE at
// /bulk/status/{job}; output files at /bulk/files/{job}/{name}. A job holds only its parameters:
// the manifest is computed once, by a counting pass over the generator, and every file is
// generated again on each request, so an export of any size streams in constant memory and a
// file's bytes never change (resumable with Range).

// maxJobs bounds the jobs kept at once; a kick-off beyond it gets 429.
const maxJobs = 1000

type bulkState struct {
	mu   sync.Mutex
	jobs map[string]*exportJob
}

// exportJob is one export: the parsed request, the access the token had at kick-off and the
// job's mutable status.
type exportJob struct {
	id       string
	clientID string
	req      exportRequest
	access   map[rtype]access
	// population lists the patients exported (sorted), nil for all: the group's members, the
	// patient= parameter and the token's patient compartment combined.
	population []int
	created    time.Time // also the transactionTime
	ready      time.Time // when the manifest becomes available
	cfg        FHIRSettings
	separate   bool // Prefer: separate-export-status (or its fault)

	mu       sync.Mutex
	lastPoll time.Time
	failed   bool // bulk_status_500_fatal: every later poll fails
	expired  bool // file_expired: files answer 410 until the manifest is fetched again
	out      *jobOutput
	sizes    map[string]int64 // file name -> byte size, computed on the first Range request
}

// expires is when the job and its files go away.
func (j *exportJob) expires() time.Time { return j.ready.Add(j.cfg.FileLifetime) }

// add stores a new job, first dropping expired ones. It reports false when too many remain.
func (b *bulkState) add(job *exportJob, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, j := range b.jobs {
		if now.After(j.expires()) {
			delete(b.jobs, id)
		}
	}
	if len(b.jobs) >= maxJobs {
		return false
	}
	b.jobs[job.id] = job
	return true
}

func (b *bulkState) get(id string) *exportJob {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.jobs[id]
}

func (b *bulkState) remove(id string) {
	b.mu.Lock()
	delete(b.jobs, id)
	b.mu.Unlock()
}
