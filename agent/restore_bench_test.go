//go:build linux

package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/agent"
)

// BenchmarkRestore restores a backup of the benchmark corpus (see
// benchCorpus) into a fresh target each time. For profiles of restore:
//
//	go test -run '^$' -bench Restore -cpuprofile cpu.out ./agent/
func BenchmarkRestore(b *testing.B) {
	src := b.TempDir()
	total := benchCorpus(b, src)
	r, opts := newBenchRepo(b, filepath.Join(b.TempDir(), "repo"))
	defer r.Close()
	opts.Paths = []string{src}
	res, err := agent.Backup(b.Context(), r, opts)
	if err != nil {
		b.Fatal(err)
	}
	s, err := r.FindSnapshot(b.Context(), res.SnapshotID.String(), "")
	if err != nil {
		b.Fatal(err)
	}
	det, key, err := r.Details(b.Context(), s)
	if err != nil {
		b.Fatal(err)
	}
	targets := b.TempDir()
	b.SetBytes(total)
	b.ReportAllocs()
	var cpu time.Duration
	for i := 0; b.Loop(); i++ {
		start := cpuTime()
		out, err := agent.Restore(b.Context(), r, key, det.Tree, "/", agent.RestoreOptions{
			Target: filepath.Join(targets, fmt.Sprint(i)),
		})
		if err != nil {
			b.Fatal(err)
		}
		if out.Bytes != uint64(total) {
			b.Fatalf("restored %d bytes of %d", out.Bytes, total)
		}
		cpu += cpuTime() - start
		// Written-back pages of earlier targets would slow later rounds.
		b.StopTimer()
		if err := os.RemoveAll(filepath.Join(targets, fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
