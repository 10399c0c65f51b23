package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/server/api"
)

func pruneCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "prune",
		Usage: "delete what no snapshot references, repacking partly used packs",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "repack-threshold", Value: fmt.Sprintf("%d%%", repo.DefaultRepackPercent), Usage: "repack a pack when more than `P%` of it is unused"},
			&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only say what would be deleted"},
			&ucli.DurationFlag{Name: "grace", Usage: "on a server: keep packs (and blobs clients were told are stored) younger than `D` for backups still running (default: the server's, 6h); 0 frees all now, a backup running meanwhile then has to be run again"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			if _, remote, err := remoteURL(c.String("repo")); err != nil {
				return err
			} else if remote {
				// The server knows what every snapshot references: it
				// prunes without any key, so none is asked for.
				s, err := e.serverForAdmin(c.Context, "prune")
				if err != nil {
					return err
				}
				defer e.closeServer()
				return runServerPrune(c, e, s)
			}
			r, err := e.openRepo(c.Context, "prune")
			if err != nil {
				return err
			}
			defer r.Close()
			return runPrune(c, e, r)
		},
	}
}

func runPrune(c *ucli.Context, e *env, r *repo.Repository) error {
	if r.IsRemote() && e.server != nil {
		return runServerPrune(c, e, e.server)
	}
	opts := repo.PruneOptions{DryRun: c.Bool("dry-run")}
	if s := c.String("repack-threshold"); s != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || v <= 0 || v > 100 {
			return fmt.Errorf("--repack-threshold %q: give a percentage above 0 and at most 100, like 20%%", s)
		}
		opts.RepackPercent = v
	}
	if e.showProgress() {
		opts.Progress = func(stage string, done, total int) {
			fmt.Fprintf(e.stderr, "\r\x1b[Kprune: %s %d/%d", stage, done, total)
			if done == total {
				fmt.Fprint(e.stderr, "\r\x1b[K")
			}
		}
	}
	rep, err := r.Prune(c.Context, opts)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if c.Bool("json") {
		return json.NewEncoder(e.stdout).Encode(map[string]any{
			"dry_run": opts.DryRun, "snapshots": rep.Snapshots,
			"blobs_used": rep.BlobsUsed, "blobs_unused": rep.BlobsUnused, "bytes_unused": rep.BytesUnused,
			"packs_kept": rep.PacksKept, "packs_deleted": rep.PacksDeleted, "packs_repacked": rep.PacksRepacked,
			"packs_written": rep.PacksWritten, "bytes_repacked": rep.BytesRepacked, "bytes_freed": rep.BytesFreed,
		})
	}
	verb := "freed"
	if opts.DryRun {
		verb = "would free (dry run)"
	}
	e.info("%d snapshots; %d blobs in use, %d unused (%s)", rep.Snapshots, rep.BlobsUsed, rep.BlobsUnused, humanBytes(uint64(rep.BytesUnused)))
	e.info("packs: %d kept, %d deleted, %d repacked into %d (%s copied)",
		rep.PacksKept, rep.PacksDeleted, rep.PacksRepacked, rep.PacksWritten, humanBytes(uint64(rep.BytesRepacked)))
	if opts.DryRun {
		e.info("%s: about %s", verb, humanBytes(uint64(max(rep.BytesUnused, 0))))
	} else {
		e.info("%s %s", verb, humanBytes(uint64(max(rep.BytesFreed, 0))))
	}
	return nil
}

// runServerPrune asks the server to prune and prints what it did.
func runServerPrune(c *ucli.Context, e *env, s *serverConn) error {
	dryRun := c.Bool("dry-run")
	if c.IsSet("repack-threshold") {
		e.info("warning: --repack-threshold is ignored on a server, which chooses its own")
	}
	if e.showProgress() {
		fmt.Fprint(e.stderr, "prune: the server is pruning…")
	}
	req := api.PruneRequest{DryRun: dryRun}
	if c.IsSet("grace") {
		if c.Duration("grace") < 0 {
			return fmt.Errorf("--grace %s: give a duration of 0 or more", c.Duration("grace"))
		}
		secs := int64(c.Duration("grace") / time.Second)
		req.GraceSeconds = &secs
	}
	res, err := s.client.Prune(c.Context, req)
	if e.showProgress() {
		fmt.Fprint(e.stderr, "\r\x1b[K")
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return json.NewEncoder(e.stdout).Encode(map[string]any{
			"dry_run": dryRun, "blobs_deleted": res.BlobsDeleted, "bytes_freed": res.BytesFreed,
			"packs_deleted": res.PacksDeleted, "packs_written": res.PacksWritten,
			"packs_young": res.PacksYoung, "grace_seconds": res.GraceSeconds,
		})
	}
	if dryRun {
		e.info("dry run on %s: would delete %d blobs (%s) and %d packs, writing %d", s.url,
			res.BlobsDeleted, humanBytes(res.BytesFreed), res.PacksDeleted, res.PacksWritten)
		return nil
	}
	e.info("server %s: deleted %d blobs; packs: %d deleted, %d written; freed %s", s.url,
		res.BlobsDeleted, res.PacksDeleted, res.PacksWritten, humanBytes(res.BytesFreed))
	if res.PacksYoung > 0 {
		e.info("kept %d packs younger than the grace period (%s) for backups still running; they are pruned later (or now with --grace 0)",
			res.PacksYoung, time.Duration(res.GraceSeconds)*time.Second)
	}
	return nil
}
