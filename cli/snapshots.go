package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"
)

func snapshotsCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "snapshots",
		Usage: "list snapshots",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "host", Usage: "only snapshots of `HOST`"},
			&ucli.StringSliceFlag{Name: "tag", Usage: "only snapshots with `TAG`"},
			&ucli.StringSliceFlag{Name: "path", Usage: "only snapshots that include `PATH`"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			ctx := c.Context
			r, err := e.openRepo(ctx, "snapshots")
			if err != nil {
				return err
			}
			defer r.Close()
			list, err := r.Snapshots(ctx)
			if err != nil {
				return err
			}
			type row struct {
				ID      string    `json:"id"`
				ShortID string    `json:"short_id"`
				Time    time.Time `json:"time"`
				Host    string    `json:"host"`
				Paths   []string  `json:"paths"`
				Tags    []string  `json:"tags"`
				Parent  *string   `json:"parent"`
				Tree    string    `json:"tree"`
				Files   uint64    `json:"files"`
				Bytes   uint64    `json:"bytes"`
				Method  string    `json:"method"`
				Errors  []string  `json:"errors"`
			}
			rows := []row{}
			for _, s := range list {
				if h := c.String("host"); h != "" && s.Host != h {
					continue
				}
				if !hasAll(s.Tags, c.StringSlice("tag")) {
					continue
				}
				det, _, err := r.Details(ctx, s)
				if err != nil {
					e.info("warning: %v", err)
					continue
				}
				if !hasAll(det.Paths, c.StringSlice("path")) {
					continue
				}
				rw := row{
					ID: s.ID.String(), ShortID: s.ID.Short(), Time: s.Time, Host: s.Host,
					Paths: det.Paths, Tags: s.Tags, Tree: det.Tree.String(),
					Files: det.Stats.Files, Bytes: det.Stats.Bytes, Method: det.Method, Errors: nonNil(det.Errors),
				}
				if rw.Tags == nil {
					rw.Tags = []string{}
				}
				if !s.Parent.IsNull() {
					p := s.Parent.String()
					rw.Parent = &p
				}
				rows = append(rows, rw)
			}
			if c.Bool("json") {
				return json.NewEncoder(e.stdout).Encode(rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tSize\tPaths")
			for _, rw := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rw.ShortID, rw.Time.Local().Format("2006-01-02 15:04:05"),
					rw.Host, strings.Join(rw.Tags, ","), humanBytes(rw.Bytes), strings.Join(rw.Paths, " "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			e.info("%d snapshots", len(rows))
			return nil
		},
	}
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
