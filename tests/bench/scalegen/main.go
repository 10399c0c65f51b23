// Command scalegen makes the inputs of tests/bench/scale.sh, fast and
// deterministically:
//
//	scalegen files -dir DIR -n 1000000 [-dirs 10000] [-max 4096] [-seed 1]
//	    N small files of 0..max bytes of seeded random data in about `dirs`
//	    directories, all with the same fixed mtime.
//	scalegen repo -repo DIR -blobs 10000000 -src DIR [-snapshots 5]
//	    a new local repository (password in COSTOR_PASSWORD) holding
//	    `blobs` tiny data blobs in real, indexed packs, written through
//	    repo.Repository.SaveBlob, plus `snapshots` real backups of the small
//	    directory src, so that `costor snapshots` and `costor mount` open it
//	    as any other repository. The synthetic blobs are referenced by no
//	    snapshot: they stand for the history a big repository carries.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage/local"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scalegen files|repo [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "files":
		err = files(os.Args[2:])
	case "repo":
		err = makeRepo(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (files or repo)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scalegen:", err)
		os.Exit(1)
	}
}

// fixedTime is every generated file's mtime and atime, so that two runs
// make identical trees.
var fixedTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func files(args []string) error {
	fl := flag.NewFlagSet("files", flag.ExitOnError)
	dir := fl.String("dir", "", "directory to fill (created)")
	n := fl.Int("n", 1_000_000, "number of files")
	dirs := fl.Int("dirs", 10_000, "number of directories")
	maxSize := fl.Int("max", 4096, "largest file size in bytes (sizes are uniform in 0..max)")
	seed := fl.Uint64("seed", 1, "seed")
	workers := fl.Int("workers", 8, "parallel writers")
	_ = fl.Parse(args)
	if *dir == "" || *n < 0 || *dirs < 1 {
		return fmt.Errorf("files: give -dir, -n ≥ 0 and -dirs ≥ 1")
	}
	perDir := (*n + *dirs - 1) / *dirs
	if perDir == 0 {
		perDir = 1
	}
	ndirs := (*n + perDir - 1) / perDir
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, *workers)
	next := make(chan int)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, *maxSize)
			for d := range next {
				if err := fillDir(*dir, d, perDir, *n, *maxSize, *seed, buf); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for d := range ndirs {
		next <- d
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	fmt.Fprintf(os.Stderr, "scalegen: %d files in %d directories in %v\n", *n, ndirs, time.Since(start).Round(time.Millisecond))
	return nil
}

// fillDir writes directory d: its files' sizes and contents come from a
// generator seeded by (seed, d) alone, whatever the order of the workers.
func fillDir(root string, d, perDir, n, maxSize int, seed uint64, buf []byte) error {
	// Two levels (100 per level) so that no directory holds thousands of
	// subdirectories.
	dir := filepath.Join(root, fmt.Sprintf("g%03d", d/100), fmt.Sprintf("d%05d", d))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(d))
	rng := rand.NewChaCha8(key)
	for i := d * perDir; i < min(n, (d+1)*perDir); i++ {
		size := int(rng.Uint64() % uint64(maxSize+1))
		b := buf[:size]
		_, _ = rng.Read(b)
		name := filepath.Join(dir, fmt.Sprintf("f%07d.dat", i))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return err
		}
		if err := os.Chtimes(name, fixedTime, fixedTime); err != nil {
			return err
		}
	}
	return os.Chtimes(dir, fixedTime, fixedTime)
}

func makeRepo(args []string) error {
	fl := flag.NewFlagSet("repo", flag.ExitOnError)
	repoDir := fl.String("repo", "", "repository directory to create")
	blobs := fl.Int("blobs", 10_000_000, "number of synthetic blobs")
	blobSize := fl.Int("blob-size", 256, "size of each synthetic blob in bytes")
	packSize := fl.Int("pack-size", 1<<20, "target pack size: with -blob-size, sets the blobs per pack (default about 4,000, as 16 MiB packs of 4 KiB chunks hold)")
	src := fl.String("src", "", "small directory backed up as the snapshots")
	snapshots := fl.Int("snapshots", 5, "number of snapshots of src")
	host := fl.String("host", "", "host name (default: this machine's)")
	_ = fl.Parse(args)
	if *repoDir == "" || *src == "" || *blobSize < 8 {
		return fmt.Errorf("repo: give -repo, -src and -blob-size ≥ 8")
	}
	pw := os.Getenv("COSTOR_PASSWORD")
	if pw == "" {
		return fmt.Errorf("repo: set COSTOR_PASSWORD")
	}
	if *host == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		*host = h
	}
	ctx := context.Background()
	st, err := local.Create(*repoDir)
	if err != nil {
		return err
	}
	// The default KDF, as `costor init` uses: what the measured commands
	// pay to unlock the repository is part of their memory.
	r, err := repo.Init(ctx, repo.Options{Storage: st, IndexDir: filepath.Join(*repoDir, "index"), Command: "scalegen"},
		[]byte(pw), repo.InitOptions{PackSize: *packSize})
	if err != nil {
		return err
	}
	if err := fill(ctx, r, *blobs, *blobSize, *src, *host, *snapshots); err != nil {
		r.Close()
		return err
	}
	return r.Close()
}

func fill(ctx context.Context, r *repo.Repository, blobs, blobSize int, src, host string, snapshots int) error {
	start := time.Now()
	data := make([]byte, blobSize)
	for i := range blobs {
		// A blob is opaque sealed bytes to the repository; its ID must be
		// their SHA-256 (check --read-data verifies it).
		binary.LittleEndian.PutUint64(data, uint64(i))
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id.Hash(data), data, uint32(blobSize)); err != nil {
			return err
		}
		if (i+1)%1_000_000 == 0 {
			fmt.Fprintf(os.Stderr, "scalegen: %d blobs in %v\n", i+1, time.Since(start).Round(time.Second))
		}
	}
	if err := r.Flush(ctx); err != nil {
		return err
	}
	stats := r.BlobStats()
	fmt.Fprintf(os.Stderr, "scalegen: %d blobs in %d packs in %v\n", stats.Blobs, stats.Packs, time.Since(start).Round(time.Second))

	secret, err := r.OrgSecret()
	if err != nil {
		return err
	}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		return err
	}
	hk, err := r.HostKeyFor(ctx, host)
	if err != nil {
		return err
	}
	first := time.Now().Add(-time.Duration(snapshots) * time.Hour)
	var parent *agent.Parent
	for i := range snapshots {
		when := first.Add(time.Duration(i) * time.Hour)
		if err := os.WriteFile(filepath.Join(src, "counter.txt"), fmt.Appendf(nil, "%d\n", i), 0o644); err != nil {
			return err
		}
		res, err := agent.Backup(ctx, r, agent.BackupOptions{
			Paths: []string{src}, Parent: parent, Keyer: crypto.NewChunkKeyer(secret), Polynomial: pol,
			HostKey: hk, Hostname: host, Method: "none", Program: "scalegen",
			Now: func() time.Time { return when },
		})
		if err != nil {
			return err
		}
		s, err := r.FindSnapshot(ctx, res.SnapshotID.String(), "")
		if err != nil {
			return err
		}
		det, key, err := r.Details(ctx, s)
		if err != nil {
			return err
		}
		parent = &agent.Parent{ID: res.SnapshotID, Tree: det.Tree, Key: key}
	}
	fmt.Fprintf(os.Stderr, "scalegen: %d snapshots of %s\n", snapshots, src)
	return nil
}
