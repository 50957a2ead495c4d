package sandbox

import (
	"bufio"
	"compress/gzip"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// bulkFileFaults are the output-file faults (SBX-19).
var bulkFileFaults = []string{
	"file_expired",             // 410 for every file until the manifest is fetched again (BULK-20)
	"file_gzip_bomb",           // Content-Encoding: gzip expanding to 10 GiB without a newline
	"file_huge_line",           // a 5 MB single-line resource
	"file_no_trailing_newline", // the last line lacks its newline
	"file_crlf",                // CRLF line ends
	"file_wrong_resource_type", // a line of another resource type
	"file_invalid_json_line",   // a line that is not JSON
	"file_ndjson_content_type", // Content-Type: application/ndjson
	"file_transient_503",       // 503 + Retry-After + OperationOutcome transient
	"file_cut_mid_stream",      // the connection closes half-way (Content-Length promised more); resume with Range
	"file_slow",                // 16 KiB chunks with a pause between them (FHIRSettings.SlowFileDelay)
}

// fileRequest is a file response being built: its job, its file and the faults that shape it.
type fileRequest struct {
	job     *exportJob
	file    *outputFile
	content contentOptions
	cut     bool
	slow    bool
	ndjson  bool // Content-Type application/ndjson
}

// file serves GET /bulk/files/{job}/{name} (BULK-23…27, SBX-19).
func (f *fhirState) file(w http.ResponseWriter, r *http.Request) {
	job, o, capability := f.lookupFile(r)
	if o == nil {
		writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "unknown, deleted or expired output file"})
		return
	}
	clientID, ok := f.fileAuth(w, r, job, capability)
	if !ok {
		return
	}
	take := func(name string) bool { return f.s.takeFault(name, clientID) }
	if f.asFileNotFound(w, job, o) || !f.fileAvailable(w, job, take) {
		return
	}
	if take("file_transient_503") {
		w.Header().Set("Retry-After", "1")
		writeOutcome(w, http.StatusServiceUnavailable, issue{"error", "transient", "the file store is busy; retry later"})
		return
	}
	if take("file_gzip_bomb") {
		f.serveGzipBomb(w)
		return
	}
	f.serveFile(w, r, newFileRequest(job, o, take))
}

// lookupFile finds the job and file named by the request's path (nil file when either is unknown
// or the job has no manifest yet) and, when the job's files are capability URLs, their secret ("" when
// they need a token).
func (f *fhirState) lookupFile(r *http.Request) (*exportJob, *outputFile, string) {
	job := f.bulk.get(r.PathValue("job"))
	if job == nil {
		return nil, nil, ""
	}
	job.mu.Lock()
	out := job.out
	job.mu.Unlock()
	if out == nil {
		return nil, nil, ""
	}
	o, _ := out.file(r.PathValue("name"))
	return job, o, out.capability
}

// newFileRequest takes the armed file faults that shape the response.
func newFileRequest(job *exportJob, o *outputFile, take func(string) bool) *fileRequest {
	fr := &fileRequest{job: job, file: o, ndjson: take("file_ndjson_content_type"), cut: take("file_cut_mid_stream"),
		slow: take("file_slow")}
	fr.content = contentOptions{crlf: take("file_crlf"), noTrailingNewline: take("file_no_trailing_newline")}
	for _, c := range []struct {
		fault contentFault
		name  string
	}{{contentHugeLine, "file_huge_line"}, {contentWrongType, "file_wrong_resource_type"},
		{contentInvalidJSON, "file_invalid_json_line"}} {
		if fr.content.fault == contentNormal && take(c.name) {
			fr.content.fault = c.fault
		}
	}
	return fr
}

// fileAuth checks the token on a file request (requiresAccessToken true) or, for capability
// URLs, their secret and that no token was sent: a client that leaks its token there fails
// (BULK-23). It returns the client id that faults match.
func (f *fhirState) fileAuth(w http.ResponseWriter, r *http.Request, job *exportJob, capability string) (string, bool) {
	if capability != "" {
		if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(capability)) != 1 {
			writeOutcome(w, http.StatusNotFound, issue{"error", "not-found", "unknown, deleted or expired output file"})
			return "", false
		}
		if r.Header.Get("Authorization") != "" {
			f.s.incr("bulk_token_leaks")
			writeOutcome(w, http.StatusBadRequest, issue{"error", "security",
				"requiresAccessToken is false: this capability URL must be fetched without an Authorization header"})
			return "", false
		}
		return job.clientID, true
	}
	if _, g, ok := f.jobFor(w, r); ok {
		return g.ClientID, true
	}
	return "", false
}

// fileAvailable answers 410 for files past their Expires, or expired by file_expired until the
// manifest is fetched again (BULK-20).
func (f *fhirState) fileAvailable(w http.ResponseWriter, job *exportJob, take func(string) bool) bool {
	job.mu.Lock()
	if take("file_expired") {
		job.expired = true
	}
	expired := job.expired || f.s.Now().After(job.expires())
	job.mu.Unlock()
	if expired {
		writeOutcome(w, http.StatusGone, issue{"error", "expired", "the output file expired; fetch the manifest again"})
	}
	return !expired
}

var (
	errWindowDone = errors.New("sandbox: range written")
	errCut        = errors.New("sandbox: connection cut")
)

// serveFile streams the file: a Range (206) of the plain bytes, gzip when accepted, or plain.
func (f *fhirState) serveFile(w http.ResponseWriter, r *http.Request, fr *fileRequest) {
	h := w.Header()
	h.Set("Content-Type", mediaFHIRNDJSON)
	if fr.ndjson {
		h.Set("Content-Type", "application/ndjson")
	}
	h.Set("Accept-Ranges", "bytes")
	etag := `"` + fr.job.id + "." + fr.file.name + `"`
	if fr.content.normal() {
		h.Set("ETag", etag)
	}
	h.Set("Last-Modified", fr.job.created.UTC().Format(http.TimeFormat))
	cw := &countingWriter{w: w}
	defer func() { f.s.add("bulk_file_bytes", cw.n) }()

	rangeHeader := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		rangeHeader = ""
	}
	switch {
	case rangeHeader != "" && fr.content.normal() && !fr.cut:
		f.serveRange(w, r, cw, fr, rangeHeader)
	case fr.cut:
		f.serveCut(w, r, cw, fr)
	case r.Method == http.MethodHead:
		h.Set("Content-Length", strconv.FormatInt(f.fileSize(fr), 10))
		w.WriteHeader(http.StatusOK)
	default:
		f.serveWhole(w, r, cw, fr)
	}
}

// serveWhole streams the whole file, gzip-compressed when the client accepts it (BULK-24).
func (f *fhirState) serveWhole(w http.ResponseWriter, r *http.Request, cw *countingWriter, fr *fileRequest) {
	zip := acceptsGzip(r)
	if zip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Add("Vary", "Accept-Encoding")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(f.pace(w, cw, fr, r), 64<<10)
	var dst io.Writer = bw
	var gz *gzip.Writer
	if zip {
		gz, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed)
		dst = gz
	}
	if f.writeFile(dst, fr.job, fr.file, fr.content) != nil {
		return
	}
	if gz != nil && gz.Close() != nil {
		return
	}
	_ = bw.Flush()
}

// serveRange answers a single byte range of the plain content (206), or 416.
func (f *fhirState) serveRange(w http.ResponseWriter, r *http.Request, cw *countingWriter, fr *fileRequest, header string) {
	size := f.fileSize(fr)
	start, end, ok := parseRange(header, size)
	if !ok {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		writeOutcome(w, http.StatusRequestedRangeNotSatisfiable, issue{"error", "invalid", "unsatisfiable range"})
		return
	}
	w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10)+"/"+
		strconv.FormatInt(size, 10))
	w.Header().Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	w.WriteHeader(http.StatusPartialContent)
	if r.Method == http.MethodHead {
		return
	}
	bw := bufio.NewWriterSize(f.pace(w, cw, fr, r), 64<<10)
	err := f.writeFile(&windowWriter{w: bw, skip: start, left: end - start + 1}, fr.job, fr.file, fr.content)
	if err == nil || errors.Is(err, errWindowDone) {
		_ = bw.Flush()
	}
}

// serveCut promises the whole file in Content-Length, sends half and drops the connection
// (file_cut_mid_stream): the client must resume with Range.
func (f *fhirState) serveCut(w http.ResponseWriter, r *http.Request, cw *countingWriter, fr *fileRequest) {
	size := f.fileSize(fr)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw := bufio.NewWriterSize(cw, 64<<10)
	err := f.writeFile(&windowWriter{w: bw, left: size / 2, cut: true}, fr.job, fr.file, fr.content)
	if errors.Is(err, errCut) {
		_ = bw.Flush()
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

// fileSize returns the byte size of the plain content, computing it once per job and file.
func (f *fhirState) fileSize(fr *fileRequest) int64 {
	if !fr.content.normal() {
		cw := &countingWriter{w: io.Discard}
		_ = f.writeFile(cw, fr.job, fr.file, fr.content)
		return cw.n
	}
	j := fr.job
	j.mu.Lock()
	size, ok := j.sizes[fr.file.name]
	j.mu.Unlock()
	if ok {
		return size
	}
	cw := &countingWriter{w: io.Discard}
	_ = f.writeFile(cw, j, fr.file, fr.content)
	j.mu.Lock()
	if j.sizes == nil {
		j.sizes = map[string]int64{}
	}
	j.sizes[fr.file.name] = cw.n
	j.mu.Unlock()
	return cw.n
}

// pace slows cw (which writes to rw) down under file_slow.
func (f *fhirState) pace(rw http.ResponseWriter, cw io.Writer, fr *fileRequest, r *http.Request) io.Writer {
	if !fr.slow {
		return cw
	}
	return &slowWriter{w: cw, rc: http.NewResponseController(rw), ctx: r.Context(), delay: fr.job.cfg.SlowFileDelay}
}

// parseRange resolves a single "bytes=" range against size; several ranges are not supported
// (the caller then serves the whole file).
func parseRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	var err error
	switch {
	case a == "": // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(0, size-n), size - 1, size > 0
	case b == "":
		end = size - 1
	default:
		if end, err = strconv.ParseInt(b, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 || start >= size || end < start {
		return 0, 0, false
	}
	return start, min(end, size-1), true
}

// acceptsGzip reports whether Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			q := strings.ReplaceAll(params, " ", "")
			if (strings.EqualFold(name, "gzip") || name == "*") && q != "q=0" && q != "q=0.0" && q != "q=0.00" {
				return true
			}
		}
	}
	return false
}
