package bulk

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartfhir/smartfhir/internal/sandbox"
)

// The export benchmarks run a whole system-level export from the in-process sandbox (generated
// NDJSON, gzip on the wire) into a temporary directory and report throughput (MB/s of decoded
// NDJSON) and the peak heap in use and peak RSS while it ran, sampled every 50 ms, so that
// 100 MB and 1 GB can be compared (CONV-9: RSS flat from 100 MB to 1 GB). The sandbox shares the
// process, so the figures include its heap. SMARTFHIR_BENCH_MB overrides the size.
//
//	go test -run XXX -bench 'Export(100MB|1GB)' -benchtime 1x -benchmem ./fhirclient/bulk/

func BenchmarkExport100MB(b *testing.B) { benchExport(b, 100) }
func BenchmarkExport1GB(b *testing.B)   { benchExport(b, 1024) }

func benchExport(b *testing.B, mb int64) {
	if v, err := strconv.ParseInt(os.Getenv("SMARTFHIR_BENCH_MB"), 10, 64); err == nil && v > 0 {
		mb = v
	}
	perPatient := bytesPerPatient(b)
	patients := int(max(1, (mb<<20)/perPatient))
	e := newSandboxEnv(b, patients, sandbox.FHIRSettings{ExportDuration: -1}, time.Second)
	// The last case re-applies a _typeFilter the server ignores (BULK-08): every Observation and
	// Condition line is evaluated on the client, the others only validated.
	filters := []string{"Observation?category=vital-signs&date=ge2022-01-01", "Condition?clinical-status=active"}
	for _, tt := range []struct {
		name           string
		gzip, validate bool
		typeFilters    []string
	}{{"gzip,validate", true, true, nil}, {"gzip", true, false, nil}, {"identity,validate", false, true, nil},
		{"gzip,validate,typefilter-ignored", true, true, filters}} {
		b.Run(tt.name, func(b *testing.B) {
			c := *e.c
			c.DisableCompression = !tt.gzip
			var total int64
			peak := startPeakSampler()
			b.ResetTimer()
			for range b.N {
				x := &Exporter{Client: &c, Dir: filepath.Join(b.TempDir(), "out"), Validate: tt.validate}
				if tt.typeFilters != nil {
					e.srv.Fault("bulk_ignore_typefilter", 1)
				}
				res, err := x.Start(b.Context(), ExportRequest{TypeFilters: tt.typeFilters})
				if err != nil {
					b.Fatal(err)
				}
				if tt.typeFilters != nil && res.Mismatches == 0 {
					b.Fatal("the filter was not re-applied")
				}
				total = res.Bytes
				b.StopTimer()
				os.RemoveAll(x.Dir) // keep the disk small between iterations
				b.StartTimer()
			}
			heap, rss := peak()
			b.SetBytes(total)
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
			b.ReportMetric(float64(total)/(1<<20), "export-MB")
		})
	}
}

// bytesPerPatient measures the NDJSON bytes one sandbox patient exports to.
func bytesPerPatient(b *testing.B) int64 {
	b.Helper()
	const n = 50
	e := newSandboxEnv(b, n, sandbox.FHIRSettings{ExportDuration: -1}, time.Second)
	x := &Exporter{Client: e.c, Dir: filepath.Join(b.TempDir(), "calibrate")}
	res, err := x.Start(b.Context(), ExportRequest{})
	if err != nil {
		b.Fatal(err)
	}
	return max(1, res.Bytes/n)
}

// startPeakSampler samples HeapInuse and RSS until the returned function is called, which
// returns their peaks.
func startPeakSampler() func() (heap, rss int64) {
	runtime.GC()
	var mu sync.Mutex
	var peakHeap, peakRSS int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r := currentRSS()
		mu.Lock()
		peakHeap = max(peakHeap, int64(ms.HeapInuse))
		peakRSS = max(peakRSS, r)
		mu.Unlock()
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() (int64, int64) {
		close(done)
		<-stopped
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peakHeap, peakRSS
	}
}

// currentRSS reads the resident set size from /proc (0 where unavailable).
func currentRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(bytes.TrimSpace(b)))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
