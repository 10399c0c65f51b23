package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"
)

func versionsCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "versions",
		Usage:     "every distinct version of one path across snapshots",
		ArgsUsage: "PATH",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "host", Usage: "versions backed up on `HOST` (default: this machine)"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			ctx := c.Context
			if c.NArg() != 1 {
				return errors.New("versions: give exactly one PATH")
			}
			p, err := filepath.Abs(c.Args().First())
			if err != nil {
				return fmt.Errorf("versions: %w", err)
			}
			host, err := hostname(c)
			if err != nil {
				return err
			}
			r, err := e.openRepo(ctx, "versions")
			if err != nil {
				return err
			}
			defer r.Close()
			list, err := r.Versions(ctx, host, p)
			if err != nil {
				return fmt.Errorf("versions of %s: %w", p, err)
			}
			type row struct {
				SnapshotID string    `json:"snapshot_id"`
				ShortID    string    `json:"short_id"`
				Time       time.Time `json:"time"`
				Path       string    `json:"path"`
				Size       uint64    `json:"size"`
				MTime      time.Time `json:"mtime"`
				ContentID  string    `json:"content_id"`
			}
			rows := []row{}
			for _, v := range list {
				rows = append(rows, row{
					SnapshotID: v.Snapshot.ID.String(), ShortID: v.Snapshot.ID.Short(), Time: v.Snapshot.Time,
					Path: v.Path, Size: v.Size, MTime: time.Unix(0, v.MTime), ContentID: v.Content.String(),
				})
			}
			if c.Bool("json") {
				return json.NewEncoder(e.stdout).Encode(rows)
			}
			if len(rows) == 0 {
				return fmt.Errorf("no versions of %s on host %q (is the path right? `costor ls latest` lists what was backed up)", p, host)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "First seen\tSnapshot\tSize\tModified")
			for _, rw := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rw.Time.Local().Format("2006-01-02 15:04:05"), rw.ShortID,
					humanBytes(rw.Size), rw.MTime.Local().Format("2006-01-02 15:04:05"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			e.info("%d distinct versions of %s", len(rows), p)
			return nil
		},
	}
}
