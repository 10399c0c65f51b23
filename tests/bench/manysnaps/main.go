// Command manysnaps adds N snapshots of a small directory to a local
// repository, in-process and fast, so that benchmarks can measure what
// costor does with a repository of many snapshots (the mount's start, a
// forget policy) without spending minutes on N separate backups.
//
//	go run ./tests/bench/manysnaps -repo DIR -n 1000 -src DIR   (password in COSTOR_PASSWORD)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage/local"
)

func main() {
	repoDir := flag.String("repo", "", "repository directory (must exist)")
	src := flag.String("src", "", "directory to back up N times")
	n := flag.Int("n", 1000, "number of snapshots to add")
	host := flag.String("host", "", "host name (default: this machine's)")
	flag.Parse()
	if err := run(context.Background(), *repoDir, *src, *host, *n); err != nil {
		fmt.Fprintln(os.Stderr, "manysnaps:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, repoDir, src, host string, n int) error {
	if repoDir == "" || src == "" {
		return fmt.Errorf("give -repo and -src")
	}
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		host = h
	}
	st, err := local.Open(repoDir)
	if err != nil {
		return err
	}
	r, err := repo.Open(ctx, repo.Options{Storage: st, IndexDir: filepath.Join(repoDir, "index")},
		repo.Credentials{Password: []byte(os.Getenv("COSTOR_PASSWORD"))})
	if err != nil {
		return err
	}
	defer r.Close()
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
	start := time.Now().Add(-time.Duration(n) * time.Hour)
	var parent *agent.Parent
	for i := range n {
		when := start.Add(time.Duration(i) * time.Hour)
		// Change one file each time so every snapshot differs a little.
		if err := os.WriteFile(filepath.Join(src, "counter.txt"), fmt.Appendf(nil, "%d\n", i), 0o644); err != nil {
			return err
		}
		res, err := agent.Backup(ctx, r, agent.BackupOptions{
			Paths: []string{src}, Parent: parent, Keyer: crypto.NewChunkKeyer(secret), Polynomial: pol,
			HostKey: hk, Hostname: host, Method: "none", Program: "manysnaps",
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
	return nil
}
