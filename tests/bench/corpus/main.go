// Command corpus writes the seeded benchmark corpus of tests/bench/compare.sh
// and, later, changes 1% of its files the same way for every tool.
//
//	go run ./tests/bench/corpus gen   -dir DIR [-seed 1] [-scale 1]
//	go run ./tests/bench/corpus touch -dir DIR [-seed 1] [-percent 1]
//
// At scale 1 the corpus is:
//
//	DIR/big/f000.bin …     ≈1 GiB of incompressible bytes in files of 1–256 MiB;
//	                       f000.bin is always the largest (256 MiB × scale)
//	DIR/text/t000.txt …    ≈0.5 GiB of source-like text (identifiers, keywords,
//	                       comments, numbers) in files of 64 KiB–8 MiB; zstd -3
//	                       compresses it about 3.3× (zstd -1: 2.9×)
//	DIR/small/dNN/NNNN/…   100,000 small files (64 B–16 KiB, log-uniform; 70%
//	                       text, 30% random) in 2,000 directories
//
// scale multiplies all three amounts (and the largest big file). Every
// file's bytes depend only on the seed and its name, so the corpus is the
// same wherever and in whatever order it is written. Files are written
// streaming through a 1 MiB buffer: memory stays flat at any scale.
//
// touch picks percent% of the regular files under DIR (sorted by path, a
// seeded permutation) and overwrites 4 KiB of each (all of it when smaller)
// at a seeded offset with seeded bytes, keeping the size. It prints one JSON
// object: {"files": N, "touched": K, "bytes_overwritten": B}.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

const (
	mib        = 1 << 20
	bigTotal   = 1024 * mib
	bigMax     = 256 * mib
	bigMin     = 1 * mib
	textTotal  = 512 * mib
	textMin    = 64 << 10
	textMax    = 8 * mib
	smallN     = 100000
	smallDirs  = 2000
	smallMin   = 64
	smallMax   = 16 << 10
	dirsPerTop = 50
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: corpus gen|touch -dir DIR [flags]")
		os.Exit(2)
	}
	fl := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fl.String("dir", "", "corpus directory")
	seed := fl.Uint64("seed", 1, "seed")
	scale := fl.Float64("scale", 1, "gen: multiply all amounts by this")
	percent := fl.Float64("percent", 1, "touch: percentage of files to change")
	_ = fl.Parse(os.Args[2:])
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "corpus: -dir is required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(*dir, *seed, *scale)
	case "touch":
		err = touch(*dir, *seed, *percent)
	default:
		err = fmt.Errorf("unknown command %q (want gen or touch)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "corpus:", err)
		os.Exit(1)
	}
}

// rng returns a ChaCha8 generator keyed by the seed and a name.
func rng(seed uint64, name string) *rand.ChaCha8 {
	h := fnv.New64a()
	h.Write([]byte(name))
	var k [32]byte
	binary.LittleEndian.PutUint64(k[0:], seed)
	binary.LittleEndian.PutUint64(k[8:], h.Sum64())
	copy(k[16:], "costor-bench-cor")
	return rand.NewChaCha8(k)
}

// file is one file to write: its path relative to the corpus root, its
// size, and whether its bytes are text.
type file struct {
	rel  string
	size int64
	text bool
}

func logUniform(r *rand.Rand, lo, hi int64) int64 {
	return int64(math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

// plan lists every file of the corpus, deterministically.
func plan(seed uint64, scale float64) []file {
	var out []file
	// big: the first file is the largest; the rest are uniform in [1 MiB, max].
	r := rand.New(rng(seed, "plan-big"))
	maxBig := max(int64(float64(bigMax)*scale), bigMin)
	left := max(int64(float64(bigTotal)*scale), maxBig)
	for i := 0; left > 0; i++ {
		n := maxBig
		if i > 0 {
			n = bigMin + r.Int64N(maxBig-bigMin+1)
		}
		if n > left || left-n < bigMin {
			n = left
		}
		out = append(out, file{fmt.Sprintf("big/f%03d.bin", i), n, false})
		left -= n
	}
	r = rand.New(rng(seed, "plan-text"))
	left = max(int64(float64(textTotal)*scale), textMin)
	for i := 0; left > 0; i++ {
		n := min(logUniform(r, textMin, textMax), left)
		if left-n < textMin {
			n = left
		}
		out = append(out, file{fmt.Sprintf("text/t%03d.txt", i), n, true})
		left -= n
	}
	r = rand.New(rng(seed, "plan-small"))
	nFiles := max(int(math.Round(smallN*scale)), 1)
	nDirs := max(int(math.Round(smallDirs*scale)), 1)
	for i := 0; i < nFiles; i++ {
		d := i % nDirs
		out = append(out, file{
			fmt.Sprintf("small/d%02d/%04d/f%06d.%s", d/dirsPerTop, d, i, map[bool]string{true: "txt", false: "bin"}[r.IntN(10) < 7]),
			logUniform(r, smallMin, smallMax), false,
		})
		out[len(out)-1].text = strings.HasSuffix(out[len(out)-1].rel, ".txt")
	}
	return out
}

func gen(dir string, seed uint64, scale float64) error {
	if scale <= 0 {
		return errors.New("-scale must be > 0")
	}
	files := plan(seed, scale)
	jobs := make(chan file)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := write(dir, seed, f); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	var total int64
	for _, f := range files {
		jobs <- f
		total += f.size
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Fprintf(os.Stderr, "corpus: %d files, %d bytes under %s\n", len(files), total, dir)
	return nil
}

func write(dir string, seed uint64, f file) error {
	p := filepath.Join(dir, f.rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	out, err := os.Create(p)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, mib)
	src := rng(seed, f.rel)
	if f.text {
		_, err = io.CopyN(w, newText(src), f.size)
	} else {
		_, err = io.CopyN(w, src, f.size)
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// text is an endless stream of source-like lines.
type text struct {
	r    *rand.Rand
	buf  []byte
	line []byte
}

var keywords = strings.Fields(`func return if else for range var const type struct interface
	map chan go defer switch case default break continue nil true false err ctx len append make`)

var vocab = func() []string {
	// ~3,000 identifiers built from syllables, fixed for all seeds, as a
	// code base's vocabulary is: a Zipf-like choice over them gives text a
	// compressor finds structure in, without long exact repeats.
	syl := strings.Fields(`ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu
		na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo vu
		str buf idx cnt key val err msg req res ctx cfg opt src dst tmp pos len sum`)
	r := rand.New(rand.NewPCG(7, 7))
	seen := map[string]bool{}
	var out []string
	for len(out) < 3000 {
		n := 1 + r.IntN(3)
		var b strings.Builder
		for i := 0; i < n; i++ {
			s := syl[r.IntN(len(syl))]
			if i > 0 && r.IntN(2) == 0 {
				s = strings.ToUpper(s[:1]) + s[1:]
			}
			b.WriteString(s)
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

func newText(src *rand.ChaCha8) *text { return &text{r: rand.New(src)} }

func (t *text) word() string {
	// Zipf-ish: low indices are far more frequent.
	i := int(math.Pow(t.r.Float64(), 8) * float64(len(vocab)))
	return vocab[i]
}

func (t *text) nextLine() {
	l := t.line[:0]
	for i := t.r.IntN(4); i > 0; i-- {
		l = append(l, '\t')
	}
	switch k := t.r.IntN(10); {
	case k < 2:
		l = append(l, "// "...)
		for i := 3 + t.r.IntN(9); i > 0; i-- {
			l = append(l, t.word()...)
			l = append(l, ' ')
		}
	case k < 4:
		l = append(l, t.word()...)
		l = append(l, " := "...)
		l = append(l, t.word()...)
		l = append(l, '(')
		for i := t.r.IntN(4); i > 0; i-- {
			l = append(l, t.word()...)
			if i > 1 {
				l = append(l, ", "...)
			}
		}
		l = append(l, ')')
	case k < 6:
		l = append(l, keywords[t.r.IntN(len(keywords))]...)
		l = append(l, ' ')
		l = append(l, t.word()...)
		l = append(l, " != "...)
		l = fmt.Appendf(l, "%d", t.r.IntN(64))
		l = append(l, " {"...)
	case k < 7:
		l = append(l, '}')
	case k < 8:
		l = append(l, "return "...)
		l = append(l, t.word()...)
		l = append(l, ", "...)
		l = append(l, keywords[t.r.IntN(len(keywords))]...)
	default:
		l = append(l, t.word()...)
		l = append(l, '.')
		l = append(l, t.word()...)
		l = fmt.Appendf(l, "(%q, %d)", t.word(), t.r.IntN(256))
	}
	t.line = append(l, '\n')
}

func (t *text) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(t.buf) == 0 {
			t.nextLine()
			t.buf = t.line
		}
		c := copy(p[n:], t.buf)
		t.buf = t.buf[c:]
		n += c
	}
	return n, nil
}

func touch(dir string, seed uint64, percent float64) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no files under %s", dir)
	}
	sort.Strings(files)
	k := max(int(math.Round(float64(len(files))*percent/100)), 1)
	r := rand.New(rng(seed, "touch"))
	perm := r.Perm(len(files))[:k]
	var overwritten int64
	buf := make([]byte, 4096)
	for _, i := range perm {
		p := files[i]
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		n := min(st.Size(), int64(len(buf)))
		off := int64(0)
		if st.Size() > n {
			off = r.Int64N(st.Size() - n + 1)
		}
		_, _ = rng(seed, "touch:"+rel).Read(buf[:n])
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			f.Close()
			return fmt.Errorf("touch %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		overwritten += n
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]int64{
		"files": int64(len(files)), "touched": int64(k), "bytes_overwritten": overwritten,
	})
}
