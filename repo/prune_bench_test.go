package repo

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage/local"
)

// syntheticIndex is a repository whose index lists packs×perPack blobs in
// packs that do not exist: enough for the mark and plan phases, which read
// only the index. Pack p%4==0 is all garbage, p%4==1 all used, the others
// half used: half of all blobs are marked.
type syntheticIndex struct {
	r              *Repository
	packs, perPack int
}

// syntheticBlob derives blob i of pack p without storing it: 10 million
// IDs would themselves take 320 MB.
func syntheticBlob(p, i int) id.ID {
	var b id.ID
	x := uint64(p)<<32 | uint64(uint32(i))
	for k := 0; k < id.Size; k += 8 {
		// splitmix64: random-looking keys, as real blob IDs are.
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[k:], z^z>>31)
	}
	return b
}

func syntheticPack(p int) id.ID {
	return syntheticBlob(p, -1)
}

func used(p, i int) bool {
	switch p % 4 {
	case 0:
		return false
	case 1:
		return true
	}
	return i%2 == 0
}

func newSyntheticIndex(tb testing.TB, packs, perPack int) *syntheticIndex {
	tb.Helper()
	dir := tb.TempDir()
	s := buildSyntheticIndex(tb, dir, packs, perPack)
	tb.Cleanup(func() { s.r.Close() })
	return s
}

func syntheticOptions(tb testing.TB, dir string, create bool) Options {
	tb.Helper()
	open := local.Open
	if create {
		open = local.Create
	}
	st, err := open(filepath.Join(dir, "repo"))
	if err != nil {
		tb.Fatal(err)
	}
	return Options{Storage: st, IndexDir: filepath.Join(dir, "index")}
}

var syntheticPassword = []byte("pw")

// buildSyntheticIndex creates a repository in dir and fills its index.
func buildSyntheticIndex(tb testing.TB, dir string, packs, perPack int) *syntheticIndex {
	tb.Helper()
	ctx := context.Background()
	r, err := Init(ctx, syntheticOptions(tb, dir, true), syntheticPassword, InitOptions{KDF: &crypto.TestKDFParams})
	if err != nil {
		tb.Fatal(err)
	}
	entries := make([]pack.Entry, perPack)
	for p := range packs {
		off := uint32(8)
		for i := range entries {
			entries[i] = pack.Entry{Type: pack.DataBlob, ID: syntheticBlob(p, i), Offset: off, Length: 1500, RawLength: 4000}
			off += 1500
		}
		if err := r.idx.AddPack(ctx, syntheticPack(p), int64(off)+int64(perPack)*40, entries); err != nil {
			tb.Fatal(err)
		}
	}
	return &syntheticIndex{r: r, packs: packs, perPack: perPack}
}

// openSyntheticIndex opens an index buildSyntheticIndex made. Its packs
// exist only in the index: Open's reconcile would drop them, so the index is
// opened alone, as the Repository's.
func openSyntheticIndex(tb testing.TB, dir string, packs, perPack int) *syntheticIndex {
	tb.Helper()
	opts := syntheticOptions(tb, dir, false)
	idx, err := index.Open(opts.IndexDir, index.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	r := &Repository{st: opts.Storage, idx: idx, closeCtx: context.Background()}
	return &syntheticIndex{r: r, packs: packs, perPack: perPack}
}

// markAndPlan runs what a prune does before it touches a pack: mark the
// used blobs (in batches, as markUsed does) and sort the packs.
func (s *syntheticIndex) markAndPlan(tb testing.TB) *PruneReport {
	tb.Helper()
	ctx := context.Background()
	if err := s.r.idx.ClearMarks(ctx); err != nil {
		tb.Fatal(err)
	}
	m := &marker{r: s.r}
	for p := range s.packs {
		for i := range s.perPack {
			if used(p, i) {
				if err := m.add(ctx, syntheticBlob(p, i)); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
	if err := m.flush(ctx); err != nil {
		tb.Fatal(err)
	}
	rep := &PruneReport{}
	plan, err := s.r.planPrune(ctx, rep, PruneOptions{RepackPercent: DefaultRepackPercent})
	if err != nil {
		tb.Fatal(err)
	}
	n := s.packs
	wantDelete, wantRepack := (n+3)/4, n/4+(n+1)/4
	if len(plan.delete) != wantDelete || len(plan.repack) != wantRepack {
		tb.Fatalf("plan: %d packs to delete, %d to repack; want %d and %d", len(plan.delete), len(plan.repack), wantDelete, wantRepack)
	}
	if total := rep.BlobsUsed + rep.BlobsUnused; total != uint64(s.packs*s.perPack) {
		tb.Fatalf("plan counted %d blobs, the index has %d", total, s.packs*s.perPack)
	}
	return rep
}

// BenchmarkPrunePlan: mark and plan over an index of 100,000 blobs in 100
// packs.
func BenchmarkPrunePlan(b *testing.B) {
	s := newSyntheticIndex(b, 100, 1000)
	b.ResetTimer()
	for b.Loop() {
		s.markAndPlan(b)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(s.packs*s.perPack), "ns/blob")
}

// TestPruneBigIndex shows that the memory of a prune is bounded by the
// index, not by the number of blobs: 10 million blobs in 10,000 packs. It
// builds the index, then marks and plans in a fresh process (as `costor
// prune` opens an existing repository) and reports that process's peak RSS.
// It takes minutes, so it runs only with COSTOR_BIG=1:
//
//	COSTOR_BIG=1 go test -run TestPruneBigIndex -v -timeout 2h ./repo/
func TestPruneBigIndex(t *testing.T) {
	if os.Getenv("COSTOR_BIG") != "1" {
		t.Skip("set COSTOR_BIG=1 to build and prune a 10-million-blob index")
	}
	packs, perPack := 10_000, 1000
	if v, err := strconv.Atoi(os.Getenv("COSTOR_BIG_PACKS")); err == nil && v > 0 {
		packs = v
	}
	if dir := os.Getenv("COSTOR_BIG_PLAN_DIR"); dir != "" {
		planBigIndex(t, dir, packs, perPack)
		return
	}
	// COSTOR_BIG_DIR keeps the built index for later runs.
	dir := os.Getenv("COSTOR_BIG_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	built := filepath.Join(dir, fmt.Sprintf("built-%d", packs))
	if _, err := os.Stat(built); err != nil {
		start := time.Now()
		s := buildSyntheticIndex(t, dir, packs, perPack)
		if err := s.r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(built, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("built an index of %d blobs in %d packs in %v (peak RSS of the build %s)",
			packs*perPack, packs, time.Since(start).Round(time.Second), peakRSS(t))
	}
	args := []string{"-test.run=^TestPruneBigIndex$", "-test.v"}
	if prof := os.Getenv("COSTOR_BIG_MEMPROFILE"); prof != "" {
		args = append(args, "-test.memprofile="+prof)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COSTOR_BIG_PLAN_DIR="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("fresh process:\n%s", out)
	if err != nil {
		t.Fatalf("mark and plan in a fresh process: %v", err)
	}
}

func planBigIndex(t *testing.T, dir string, packs, perPack int) {
	mem := sampleMemory(t)
	start := time.Now()
	s := openSyntheticIndex(t, dir, packs, perPack)
	defer s.r.idx.Close()
	t.Logf("opened the index in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	rep := s.markAndPlan(t)
	elapsed := time.Since(start)
	peaks := mem()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("marked %d and planned %d blobs in %v (%.1f µs/blob)", rep.BlobsUsed, rep.BlobsUsed+rep.BlobsUnused,
		elapsed.Round(time.Second), float64(elapsed.Microseconds())/float64(rep.BlobsUsed+rep.BlobsUnused))
	t.Logf("peak RSS (VmHWM) %d MiB; peak anonymous RSS %d MiB; peak file-backed RSS (Badger's mmapped tables: page cache the kernel can drop) %d MiB; peak Go heap objects %d MiB; Go sys now %d MiB",
		peaks.hwm>>20, peaks.anon>>20, peaks.file>>20, peaks.heap>>20, ms.Sys>>20)
	t.Logf("report: %+v", *rep)
	if limit := int64(512 << 20); peaks.anon > limit {
		t.Errorf("peak anonymous RSS %d MiB, want under %d MiB", peaks.anon>>20, limit>>20)
	}
}

type memPeaks struct{ hwm, anon, file, heap int64 }

// sampleMemory records the peak anonymous and file-backed RSS every 20 ms
// until the returned function is called. VmHWM alone counts the pages of
// Badger's memory-mapped tables, which are page cache, not allocations.
func sampleMemory(t *testing.T) func() memPeaks {
	var peaks memPeaks
	stop := make(chan struct{})
	done := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		anon, file, hwm := procStatus(t, "RssAnon:"), procStatus(t, "RssFile:"), procStatus(t, "VmHWM:")
		peaks.anon, peaks.file, peaks.hwm = max(peaks.anon, anon), max(peaks.file, file), max(peaks.hwm, hwm)
		metrics.Read(sample)
		peaks.heap = max(peaks.heap, int64(sample[0].Value.Uint64()))
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				read()
				return
			case <-tick.C:
				read()
			}
		}
	}()
	return func() memPeaks {
		close(stop)
		<-done
		return peaks
	}
}

func peakRSS(t *testing.T) string {
	return fmt.Sprintf("%d MiB", peakRSSBytes(t)>>20)
}

// peakRSSBytes reads VmHWM, the peak resident set size.
func peakRSSBytes(t *testing.T) int64 {
	return procStatus(t, "VmHWM:")
}

// procStatus reads one "Name: N kB" line of /proc/self/status, in bytes.
func procStatus(t *testing.T, name string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Errorf("no /proc/self/status: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Errorf("/proc/self/status: %q", line)
			}
			return kb << 10
		}
	}
	t.Errorf("no %s in /proc/self/status", name)
	return 0
}
