package index

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
)

const benchPackSize = 1000

// procStatusMiB reads a kB field of /proc/self/status (Linux; 0 elsewhere):
// VmHWM is the peak RSS, RssAnon and RssFile split the current RSS into
// memory the process owns and mmapped table pages the kernel can drop.
func procStatusMiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// fill adds n blobs in packs of benchPackSize, building each pack's entries
// on the fly so that only the index holds memory.
func fill(b *testing.B, x *Index, n int) {
	ctx := context.Background()
	for p := 0; p*benchPackSize < n; p++ {
		es := testEntries(p*benchPackSize, min(benchPackSize, n-p*benchPackSize))
		if err := x.AddPack(ctx, testID("pack", p), 16<<20, es); err != nil {
			b.Fatal(err)
		}
	}
}

// missingBatches queries batches of 1000 IDs, half indexed and half not,
// and returns the time per queried ID.
func missingBatches(b *testing.B, x *Index, n, batches int) time.Duration {
	ctx := context.Background()
	q := make([]id.ID, 1000)
	start := time.Now()
	for i := range batches {
		for j := range q {
			k := (i*len(q) + j) * 7919 % n // spread over the whole index
			if j%2 == 1 {
				k += n // not indexed
			}
			q[j] = testID("blob", k)
		}
		got, err := x.Missing(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(q)/2 {
			b.Fatalf("Missing found %d of %d absent", len(got), len(q)/2)
		}
	}
	return time.Since(start) / time.Duration(batches*len(q))
}

func benchFill(b *testing.B, n int) {
	for b.Loop() {
		dir := b.TempDir()
		x, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		fill(b, x, n)
		b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/blob-add")
		b.ReportMetric(float64(missingBatches(b, x, n, 1000).Nanoseconds()), "ns/blob-missing")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap-inuse")
		b.ReportMetric(float64(ms.Sys)/(1<<20), "MiB-go-sys")
		b.ReportMetric(procStatusMiB("VmHWM"), "MiB-peak-rss")
		b.ReportMetric(procStatusMiB("RssAnon"), "MiB-rss-anon")
		b.ReportMetric(procStatusMiB("RssFile"), "MiB-rss-file")
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFill1M adds 1,000,000 blobs in packs of 1,000, then asks Missing
// for 1,000 batches of 1,000. Run with -benchtime=1x.
func BenchmarkFill1M(b *testing.B) { benchFill(b, 1_000_000) }

// BenchmarkFill10M is BenchmarkFill1M with 10,000,000 blobs; it takes
// minutes, so it runs only with COSTOR_BIG=1.
func BenchmarkFill10M(b *testing.B) {
	if os.Getenv("COSTOR_BIG") != "1" {
		b.Skip("set COSTOR_BIG=1 to fill 10 million blobs")
	}
	benchFill(b, 10_000_000)
}

// BenchmarkAddPack times one AddPack of benchPackSize new blobs.
func BenchmarkAddPack(b *testing.B) {
	x, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	ctx := context.Background()
	p := 0
	for b.Loop() {
		b.StopTimer()
		es := testEntries(p*benchPackSize, benchPackSize)
		b.StartTimer()
		if err := x.AddPack(ctx, testID("pack", p), 16<<20, es); err != nil {
			b.Fatal(err)
		}
		p++
	}
}

// BenchmarkMissing times a Missing batch of 1,000 IDs against 100,000
// indexed blobs.
func BenchmarkMissing(b *testing.B) {
	const n = 100_000
	x, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	fill(b, x, n)
	ctx := context.Background()
	q := make([]id.ID, 1000)
	for j := range q {
		q[j] = testID("blob", j*97+j%2*n)
	}
	for b.Loop() {
		if _, err := x.Missing(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
