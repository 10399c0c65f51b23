package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
)

func checkCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "check",
		Usage: "verify the repository's structure; with --read-data, every blob against its ID",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "read-data", Usage: "read every pack and verify every blob"},
			&ucli.StringFlag{Name: "read-data-subset", Usage: "read `P%` of the packs, chosen at random"},
		},
		Action: func(c *ucli.Context) error {
			e := newEnv(c)
			ctx := c.Context
			var pct float64
			if c.Bool("read-data") {
				pct = 100
			}
			if s := c.String("read-data-subset"); s != "" {
				v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
				if err != nil || v <= 0 || v > 100 {
					return fmt.Errorf("--read-data-subset %q: give a percentage between 0 and 100, like 10%%", s)
				}
				pct = v
			}
			r, err := e.openRepo(ctx, "check")
			if err != nil {
				return err
			}
			defer r.Close()
			rep, err := r.Check(ctx, repo.CheckOptions{ReadDataPercent: pct})
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			if c.Bool("json") {
				out := map[string]any{
					"snapshots": rep.Snapshots, "trees": rep.Trees, "packs_read": rep.PacksRead,
					"problems": nonNil(rep.Problems), "affected": nonNil(rep.Affected),
				}
				if err := json.NewEncoder(e.stdout).Encode(out); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintln(e.stdout, "error: "+p)
				}
				for _, a := range rep.Affected {
					fmt.Fprintln(e.stdout, "affected: "+a)
				}
				e.info("checked %d snapshots, %d trees; read %d packs", rep.Snapshots, rep.Trees, rep.PacksRead)
			}
			if len(rep.Problems) > 0 {
				return fmt.Errorf("check found %d problem(s); damaged packs: %s", len(rep.Problems), damagedList(rep))
			}
			e.info("no errors found")
			return nil
		},
	}
}

func damagedList(rep *repo.CheckReport) string {
	if len(rep.DamagedPacks) == 0 {
		return "none"
	}
	var names []string
	for p := range rep.DamagedPacks {
		names = append(names, p.String())
	}
	return strings.Join(names, ", ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
