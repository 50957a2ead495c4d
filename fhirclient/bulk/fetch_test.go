package bulk

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/smartfhir/smartfhir/fhirclient"
)

// manifestOf runs a job on f to completion and returns the client and the manifest.
func manifestOf(t *testing.T, f *fake) (*Client, *Manifest, *[]time.Duration) {
	t.Helper()
	job, waits := startJob(t, f)
	m, err := job.Wait(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return job.c, m, waits
}

// collect reads a whole file through Client.Resources.
func collect(t *testing.T, c *Client, m *Manifest, file File) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	for raw, err := range c.Resources(t.Context(), m, file) {
		if err != nil {
			return out.Bytes(), err
		}
		out.Write(raw)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

func TestDownloadGzipAndIdentityIdentical(t *testing.T) { // BULK-24
	t.Parallel()
	body := ndjson("Patient", 2000)
	for _, gz := range []bool{false, true} {
		t.Run("gzip="+strconv.FormatBool(gz), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.gzip = gz
			f.add("output", "Patient", "p", body)
			var enc string
			f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
				enc = r.Header.Get("Accept-Encoding")
				return false
			}
			c, m, _ := manifestOf(t, f)
			got, err := collect(t, c, m, m.Output[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("decoded %d bytes, want %d identical", len(got), len(body))
			}
			if enc != "gzip" {
				t.Errorf("Accept-Encoding = %q, want gzip", enc)
			}
			if gz && f.served.Load() >= int64(len(body))/2 {
				t.Errorf("served %d bytes: gzip was not used", f.served.Load())
			}
		})
	}
}

// cutAfter answers the first request of a file with a full Content-Length, sends frac of the body
// and drops the connection; later requests are served normally (with Range support).
func cutAfter(f *fake, body []byte, frac float64, gz bool) {
	f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
		if n > 1 {
			return false
		}
		send := body
		if gz {
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			zw.Write(body)
			zw.Close()
			send = zb.Bytes()
			w.Header().Set("Content-Encoding", "gzip")
		}
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.Header().Set("Content-Length", strconv.Itoa(len(send)))
		cw := &countingWriter{ResponseWriter: w, n: &f.served}
		cw.Write(send[:int(float64(len(send))*frac)])
		cw.Flush()
		panic(http.ErrAbortHandler) // connection cut mid-file
	}
}

func TestDownloadResumesFromExactByte(t *testing.T) { // issue: byte-range resume; CONV-2
	t.Parallel()
	body := ndjson("Observation", 20000) // ~2 MB
	for _, tt := range []struct {
		name    string
		gz      bool
		noRange bool
		maxSent float64 // total served / file size
	}{
		{"identity, Range honoured", false, false, 1.01},
		{"gzip first, identity Range resume", true, false, 1.01},
		{"server ignores Range: skip", false, true, 1.45},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.noRange = tt.noRange
			f.add("output", "Observation", "o", body)
			cutAfter(f, body, 0.4, tt.gz)
			var ranges []string
			inner := f.fileHook
			f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
				ranges = append(ranges, r.Header.Get("Range")+"|"+r.Header.Get("Accept-Encoding"))
				return inner(w, r, name, n)
			}
			c, m, _ := manifestOf(t, f)
			got, err := collect(t, c, m, m.Output[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("got %d bytes, want %d identical", len(got), len(body))
			}
			if len(ranges) != 2 || ranges[0] != "|gzip" || !strings.HasPrefix(ranges[1], "bytes=") || !strings.HasSuffix(ranges[1], "-|identity") {
				t.Errorf("requests (Range|Accept-Encoding) = %q", ranges)
			}
			if ratio := float64(f.served.Load()) / float64(len(body)); ratio > tt.maxSent {
				t.Errorf("served %d bytes for a %d-byte file (%.2f×): the resume re-downloaded", f.served.Load(), len(body), ratio)
			}
		})
	}
}

func TestDownloadStallFailsOverAndResumes(t *testing.T) { // CONV-2: 60 s without a byte
	t.Parallel()
	body := ndjson("Patient", 5000)
	f := newFake(t)
	f.add("output", "Patient", "p", body)
	f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
		if n > 1 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		cw := &countingWriter{ResponseWriter: w, n: &f.served}
		cw.Write(body[:len(body)/3])
		cw.Flush()
		<-r.Context().Done() // stall until the client gives up
		return true
	}
	c, m, _ := manifestOf(t, f)
	c.StallTimeout = time.Second
	got, err := collect(t, c, m, m.Output[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) || f.fileGets["p"] != 2 {
		t.Errorf("got %d/%d bytes in %d requests", len(got), len(body), f.fileGets["p"])
	}
	if f.served.Load() > int64(len(body))+100 {
		t.Errorf("served %d for %d", f.served.Load(), len(body))
	}
}

func TestDownloadRetriesAndFailures(t *testing.T) { // BULK-26
	t.Parallel()
	body := ndjson("Patient", 10)
	tests := []struct {
		name      string
		fail      func(w http.ResponseWriter, n int) bool
		wantErr   error // nil: success; errAny: any error
		wantGets  int
		wantWaits []time.Duration
	}{
		{"503 then 200", func(w http.ResponseWriter, n int) bool {
			if n == 1 {
				writeOutcome(w, 503, "transient", "busy")
				return true
			}
			return false
		}, nil, 2, nil},
		{"429 Retry-After honoured", func(w http.ResponseWriter, n int) bool {
			if n <= 2 {
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(429)
				return true
			}
			return false
		}, nil, 3, []time.Duration{3 * time.Second, 3 * time.Second}},
		{"500 forever", func(w http.ResponseWriter, n int) bool { w.WriteHeader(500); return true }, errAny, DefaultMaxDownloadRetries + 1, nil},
		{"403 not retried", func(w http.ResponseWriter, n int) bool { writeOutcome(w, 403, "forbidden", "no"); return true }, fhirclient.ErrForbidden, 1, nil},
		{"404 expired", func(w http.ResponseWriter, n int) bool { w.WriteHeader(404); return true }, ErrFileExpired, 1, nil},
		{"410 expired", func(w http.ResponseWriter, n int) bool { w.WriteHeader(410); return true }, ErrFileExpired, 1, nil},
		{"HTML page refused", func(w http.ResponseWriter, n int) bool {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte("<html>login</html>"))
			return true
		}, errPermanent, 1, nil},
		{"unknown encoding refused", func(w http.ResponseWriter, n int) bool {
			w.Header().Set("Content-Type", "application/fhir+ndjson")
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte("xx"))
			return true
		}, errPermanent, 1, nil},
		{"corrupt gzip retried then fails", func(w http.ResponseWriter, n int) bool {
			w.Header().Set("Content-Type", "application/fhir+ndjson")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("not gzip at all"))
			return true
		}, errAny, DefaultMaxDownloadRetries + 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.add("output", "Patient", "p", body)
			f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool { return tt.fail(w, n) }
			c, m, waits := manifestOf(t, f)
			*waits = nil
			got, err := collect(t, c, m, m.Output[0])
			if f.fileGets["p"] != tt.wantGets {
				t.Errorf("GETs = %d, want %d", f.fileGets["p"], tt.wantGets)
			}
			if tt.wantWaits != nil && !equalDurations(*waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", *waits, tt.wantWaits)
			}
			switch tt.wantErr {
			case nil:
				if err != nil || !bytes.Equal(got, body) {
					t.Errorf("err %v, %d bytes", err, len(got))
				}
			case errAny:
				if err == nil {
					t.Error("want an error")
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

var errAny = errors.New("any error")

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDownloadGzipBomb(t *testing.T) { // BULK-31
	t.Parallel()
	bomb := readFixture(t, "bomb-64MiB.ndjson.gz") // 64 KiB that decode to 64 MiB
	f := newFake(t)
	f.add("output", "Patient", "bomb", nil)
	f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bomb)
		return true
	}
	c, m, _ := manifestOf(t, f)
	_, err := collect(t, c, m, m.Output[0])
	if !errors.Is(err, ErrDecompressionBomb) {
		t.Fatalf("err = %v, want ErrDecompressionBomb", err)
	}
	if f.fileGets["bomb"] != 1 {
		t.Errorf("a bomb was fetched %d times", f.fileGets["bomb"])
	}
}

func TestDownloadTokenRules(t *testing.T) { // BULK-23, CONV-1; quirk: pre-signed S3 URLs
	t.Parallel()
	body := ndjson("Patient", 3)
	t.Run("requiresAccessToken false: never sent, same origin or not", func(t *testing.T) {
		t.Parallel()
		for _, foreign := range []bool{false, true} {
			f := newFake(t)
			f.requiresToken = false
			if foreign {
				f.foreignFiles()
			}
			f.add("output", "Patient", "p", body)
			c, m, _ := manifestOf(t, f)
			if _, err := collect(t, c, m, m.Output[0]); err != nil {
				t.Fatal(err)
			}
			for _, a := range f.fileAuth {
				if a != "" {
					t.Errorf("foreign=%v: Authorization %q reached a capability URL", foreign, a)
				}
			}
			if len(f.fileAuth) == 0 {
				t.Error("no file request recorded")
			}
		}
	})
	t.Run("requiresAccessToken true on a foreign origin: refused, origin named", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.foreignFiles()
		f.add("output", "Patient", "p", body)
		c, m, _ := manifestOf(t, f)
		_, err := collect(t, c, m, m.Output[0])
		if !errors.Is(err, ErrUntrustedOrigin) || !strings.Contains(err.Error(), strings.TrimPrefix(f.fileSrv.URL, "http://")) {
			t.Fatalf("err = %v", err)
		}
		if len(f.fileAuth) != 0 {
			t.Error("a request reached the foreign file server")
		}
		c.TrustedOrigins = []string{f.fileSrv.URL} // --trust-origin
		if _, err := collect(t, c, m, m.Output[0]); err != nil || f.fileAuth[0] != "Bearer "+testToken {
			t.Errorf("trusted: %v, auth %q", err, f.fileAuth)
		}
	})
	t.Run("redirect to an object store drops the token", func(t *testing.T) {
		t.Parallel()
		var s3Auth []string
		s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s3Auth = append(s3Auth, r.Header.Get("Authorization"))
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(body)
		}))
		t.Cleanup(s3.Close)
		f := newFake(t)
		f.add("output", "Patient", "p", body)
		f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				t.Error("the FHIR origin's file URL did not get the token")
			}
			http.Redirect(w, r, s3.URL+"/bucket/p.ndjson?X-Amz-Signature=abc", http.StatusFound)
			return true
		}
		c, m, _ := manifestOf(t, f)
		got, err := collect(t, c, m, m.Output[0])
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("err %v", err)
		}
		if len(s3Auth) != 1 || s3Auth[0] != "" {
			t.Errorf("object store saw Authorization %q", s3Auth)
		}
	})
	t.Run("redirect to metadata address refused", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.add("output", "Patient", "p", body)
		f.fileHook = func(w http.ResponseWriter, r *http.Request, name string, n int) bool {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
			return true
		}
		c, m, _ := manifestOf(t, f)
		if _, err := collect(t, c, m, m.Output[0]); err == nil || f.fileGets["p"] != 1 {
			t.Errorf("err = %v after %d GETs", err, f.fileGets["p"])
		}
	})
}

func TestResourcesLines(t *testing.T) { // BULK-25
	t.Parallel()
	big := `{"resourceType":"Binary","id":"b","data":"` + strings.Repeat("A", 5<<20) + `"}`
	tests := []struct {
		name, body, typ string
		want            int
		wantErr         error
		wantLine        int64
	}{
		{"CRLF, blank lines, no trailing newline", "{\"resourceType\":\"Patient\",\"id\":\"1\"}\r\n\r\n  \n{\"resourceType\":\"Patient\",\"id\":\"2\"}", "Patient", 2, nil, 0},
		{"5 MB line", big + "\n" + big, "Binary", 2, nil, 0},
		{"wrong resourceType", "{\"resourceType\":\"Patient\"}\n\n{\"resourceType\":\"Observation\"}\n", "Patient", 1, ErrInvalidLine, 3},
		{"not an object", "{\"resourceType\":\"Patient\"}\n[1,2]\n", "Patient", 1, ErrInvalidLine, 2},
		{"broken JSON", "{\"resourceType\":\"Patient\",\n", "Patient", 0, ErrInvalidLine, 1},
		{"no resourceType", "{\"id\":\"1\"}\n", "Patient", 0, ErrInvalidLine, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.add("output", tt.typ, "f", []byte(tt.body))
			c, m, _ := manifestOf(t, f)
			var n int
			var err error
			for raw, e := range c.Resources(t.Context(), m, m.Output[0]) {
				if e != nil {
					err = e
					break
				}
				if !json.Valid(raw) {
					t.Errorf("invalid JSON yielded: %.40s", raw)
				}
				n++
			}
			if n != tt.want {
				t.Errorf("resources = %d, want %d", n, tt.want)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var le *LineError
			if !errors.Is(err, tt.wantErr) || !errors.As(err, &le) || le.Line != tt.wantLine || !strings.Contains(le.File, "/files/f") {
				t.Errorf("err = %v, want %v at line %d with the file named", err, tt.wantErr, tt.wantLine)
			}
		})
	}
}

func TestResourcesLineLimit(t *testing.T) { // BULK-25, BULK-31
	t.Parallel()
	f := newFake(t)
	f.add("output", "Binary", "f", []byte(`{"resourceType":"Binary","data":"`+strings.Repeat("A", 3000)+`"}`+"\n"))
	c, m, _ := manifestOf(t, f)
	c.MaxLine = 1024
	_, err := collect(t, c, m, m.Output[0])
	var le *LineError
	if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &le) || le.Line != 1 {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeTyped(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.add("output", "Patient", "p", []byte(`{"resourceType":"Patient","id":"a","gender":"female"}`+"\n"+`{"resourceType":"Patient","id":"b","birthDate":"1970-01-01"}`+"\n"))
	c, m, _ := manifestOf(t, f)
	var ids []string
	for p, err := range Decode[fhir.Patient](c.Resources(t.Context(), m, m.Output[0])) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *p.Id)
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Errorf("ids = %v", ids)
	}
	// A bad enum code stops the iteration with ErrInvalidLine.
	bad := `{"resourceType":"Patient","id":"c","gender":"diverse"}` + "\n"
	for _, err := range Decode[fhir.Patient](ReadNDJSON(strings.NewReader(bad), "Patient", "bad.ndjson")) {
		if !errors.Is(err, ErrInvalidLine) {
			t.Errorf("err = %v", err)
		}
	}
}

func TestReadNDJSONStopsEarly(t *testing.T) {
	t.Parallel()
	n := 0
	for _, err := range ReadNDJSON(bytes.NewReader(ndjson("Patient", 100)), "Patient", "p.ndjson") {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("n = %d", n)
	}
}
