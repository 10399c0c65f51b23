package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
)

func pruneCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "prune",
		Usage: "delete what no snapshot references, repacking partly used packs",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "repack-threshold", Value: fmt.Sprintf("%d%%", repo.DefaultRepackPercent), Usage: "repack a pack when more than `P%` of it is unused"},
			&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only say what would be deleted"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
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
