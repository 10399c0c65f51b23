//go:build linux

package agent_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage/local"
)

// BenchmarkBackup runs whole backups of a generated tree shaped like the
// performance issue's corpus at a small scale: incompressible large files,
// source-like text files, and many small files in many directories. For
// profiles of the pipeline as a backup drives it:
//
//	go test -run '^$' -bench Backup -cpuprofile cpu.out ./agent/
func BenchmarkBackup(b *testing.B) {
	src := b.TempDir()
	total := benchCorpus(b, src)
	b.Run("initial", func(b *testing.B) {
		b.SetBytes(total)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			r, opts := newBenchRepo(b, filepath.Join(b.TempDir(), fmt.Sprint("repo", i)))
			opts.Paths = []string{src}
			b.StartTimer()
			if _, err := agent.Backup(b.Context(), r, opts); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Close()
			b.StartTimer()
		}
	})
	b.Run("nochange", func(b *testing.B) {
		r, opts := newBenchRepo(b, filepath.Join(b.TempDir(), "repo"))
		defer r.Close()
		opts.Paths = []string{src}
		first, err := agent.Backup(b.Context(), r, opts)
		if err != nil {
			b.Fatal(err)
		}
		s, err := r.FindSnapshot(b.Context(), first.SnapshotID.String(), "")
		if err != nil {
			b.Fatal(err)
		}
		det, key, err := r.Details(b.Context(), s)
		if err != nil {
			b.Fatal(err)
		}
		opts.Parent = &agent.Parent{ID: first.SnapshotID, Tree: det.Tree, Key: key}
		b.ReportAllocs()
		files := first.Stats.Files
		for b.Loop() {
			res, err := agent.Backup(b.Context(), r, opts)
			if err != nil {
				b.Fatal(err)
			}
			if res.Stats.FilesSame != files {
				b.Fatalf("%d of %d files unmodified", res.Stats.FilesSame, files)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(files), "ns/file")
	})
}

func newBenchRepo(b *testing.B, dir string) (*repo.Repository, agent.BackupOptions) {
	st, err := local.Create(dir)
	if err != nil {
		b.Fatal(err)
	}
	opts := repo.Options{Storage: st, IndexDir: filepath.Join(dir, "index"), LockWait: 5 * time.Second}
	r, err := repo.Init(b.Context(), opts, password, repo.InitOptions{KDF: &crypto.TestKDFParams})
	if err != nil {
		b.Fatal(err)
	}
	secret, err := r.OrgSecret()
	if err != nil {
		b.Fatal(err)
	}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		b.Fatal(err)
	}
	hk, err := r.HostKeyFor(b.Context(), "benchhost")
	if err != nil {
		b.Fatal(err)
	}
	return r, agent.BackupOptions{
		Keyer: crypto.NewChunkKeyer(secret), Polynomial: pol, HostKey: hk,
		Hostname: "benchhost", Method: "none", Program: "bench", ExcludePaths: []string{dir},
	}
}

var benchWords = []string{"func", "return", "err", "nil", "if", "for", "range", "ctx", "repo", "chunk",
	"tree", "the", "backup", "{", "}", "(", ")", "package", "import", "var", "const", "type", "struct",
	"string", "int", "uint64", "byte", "append", "len", "make", "go", "defer", "select", "case",
	"fmt.Errorf", "errors.Is", "context.Context", "snapshot", "index", "pack", "blob", "sealed", "key",
	"=", ":=", "==", "!=", "&&", "//", "*", "&", "[]byte", ",", ";", "."}

// benchText writes n bytes of source-like text (zstd keeps about a third).
func benchText(rng *rand.Rand, w *bufio.Writer, n int) {
	for written, col := 0, 0; written < n; {
		s := benchWords[rng.IntN(len(benchWords))]
		if rng.IntN(10) == 0 {
			s = "v" + strconv.Itoa(rng.IntN(100000))
		}
		w.WriteString(s)
		written += len(s) + 1
		col += len(s) + 1
		if col > 60 && rng.IntN(4) == 0 {
			w.WriteByte('\n')
			col = 0
		} else {
			w.WriteByte(' ')
		}
	}
}

// benchCorpus writes 96 MiB of random data in two files, 32 MiB of text in
// two, and 4,000 small text files (0-8 KiB) in 80 directories; it returns
// the bytes written.
func benchCorpus(b *testing.B, dir string) int64 {
	rng := rand.New(rand.NewPCG(42, 7))
	var total int64
	write := func(p string, fill func(w *bufio.Writer)) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 64<<10)
		fill(w)
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		total += st.Size()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 2 {
		write(filepath.Join(dir, "big", fmt.Sprintf("r%d.bin", i)), func(w *bufio.Writer) {
			var buf [8]byte
			for range 48 << 17 {
				v := rng.Uint64()
				for k := range buf {
					buf[k] = byte(v >> (8 * k))
				}
				w.Write(buf[:])
			}
		})
		write(filepath.Join(dir, "text", fmt.Sprintf("t%d.txt", i)), func(w *bufio.Writer) { benchText(rng, w, 16<<20) })
	}
	for d := range 80 {
		for i := range 50 {
			write(filepath.Join(dir, "small", fmt.Sprintf("d%02d", d), fmt.Sprintf("f%02d.go", i)),
				func(w *bufio.Writer) { benchText(rng, w, rng.IntN(8192)) })
		}
	}
	return total
}
