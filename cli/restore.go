package cli

import (
	"errors"
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/agent"
)

func restoreCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot, a directory or a single file",
		ArgsUsage: "SNAP[:PATH]",
		Description: "SNAP --target DIR recreates every backed-up path under DIR with its absolute path.\n" +
			"SNAP:PATH --target DIR puts the contents of directory PATH into DIR, or file PATH at DIR/<name>.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "target", Aliases: []string{"t"}, Required: true, Usage: "restore into `DIR`"},
			&ucli.StringSliceFlag{Name: "include", Aliases: []string{"i"}, Usage: "restore only paths matching `GLOB`"},
			&ucli.BoolFlag{Name: "verify", Usage: "re-read every restored file and compare it with the backup"},
			&ucli.StringFlag{Name: "host", Usage: "for latest: the newest snapshot of `HOST`"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			ctx := c.Context
			if c.NArg() != 1 {
				return errors.New("restore: give exactly one SNAP[:PATH]")
			}
			r, err := e.openRepo(ctx, "restore")
			if err != nil {
				return err
			}
			defer r.Close()
			spec, p := splitSnapPath(c.Args().First())
			s, err := findSnapshot(ctx, c, r, spec)
			if err != nil {
				return err
			}
			var progress *agent.Progress
			stop := func() {}
			if e.showProgress() {
				progress = &agent.Progress{}
				progress.BytesTotal.Store(s.Details.Stats.Bytes)
				stop = startProgress(e, progress, "restore")
			}
			res, err := agent.Restore(ctx, r, s.Key, s.Details.Tree, p, agent.RestoreOptions{
				Target: c.String("target"), Includes: c.StringSlice("include"),
				Owner: os.Geteuid() == 0, Verify: c.Bool("verify"), Progress: progress,
				Warn: func(msg string) {
					stop()
					fmt.Fprintln(e.stderr, "warning: "+msg)
				},
			})
			stop()
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			e.info("restored %d files (%s), %d directories, %d other entries into %s",
				res.Files, humanBytes(res.Bytes), res.Dirs, res.Other, c.String("target"))
			if c.Bool("verify") {
				e.info("verified %d files", res.Verified)
			}
			return nil
		},
	}
}
