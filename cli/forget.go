package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/retention"
	"github.com/costor/costor/server/api"
)

// pruneAfterForget runs the prune of `forget --prune`; a variable so that
// tests can see it called without pruning.
var pruneAfterForget = runPrune

// keepFlags are the --keep-* options, in the order of retention.Policy.
var keepFlags = []string{"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"}

func forgetCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "forget",
		Usage:     "remove snapshots, by ID or by a retention policy",
		ArgsUsage: "[SNAP…]",
		Description: "A snapshot kept by any --keep-* rule stays. Rules apply to each host and set of paths\n" +
			"on its own, and hours, days, weeks, months and years follow the local calendar.\n" +
			"Data that only forgotten snapshots referenced stays until `costor prune` (or --prune).",
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "keep-last", Usage: "keep the `N` newest snapshots"},
			&ucli.IntFlag{Name: "keep-hourly", Usage: "keep the newest snapshot of each of the last `N` hours that have one"},
			&ucli.IntFlag{Name: "keep-daily", Usage: "keep the newest snapshot of each of the last `N` days that have one"},
			&ucli.IntFlag{Name: "keep-weekly", Usage: "keep the newest snapshot of each of the last `N` ISO weeks that have one"},
			&ucli.IntFlag{Name: "keep-monthly", Usage: "keep the newest snapshot of each of the last `N` months that have one"},
			&ucli.IntFlag{Name: "keep-yearly", Usage: "keep the newest snapshot of each of the last `N` years that have one"},
			&ucli.StringFlag{Name: "host", Usage: "only snapshots of `HOST` (and the host of `latest`)"},
			&ucli.StringSliceFlag{Name: "tag", Usage: "only snapshots with `TAG`"},
			&ucli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "say what would be removed, remove nothing"},
			&ucli.BoolFlag{Name: "prune", Usage: "prune the repository after removing snapshots"},
		},
		Action: runForget,
	}
}

// forgetRow is one snapshot's verdict, as printed with --json.
type forgetRow struct {
	ID      string    `json:"id"`
	ShortID string    `json:"short_id"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Paths   []string  `json:"paths"`
	Tags    []string  `json:"tags"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons"`

	snapID id.ID
}

// forgetGroup is the verdicts on one host and set of paths; policy is false
// for snapshots named on the command line, which form one group.
type forgetGroup struct {
	host   string
	paths  []string
	policy bool
	rows   []forgetRow
}

func runForget(c *ucli.Context) error {
	e := newEnv(c)
	ctx := c.Context
	policy, err := policyFromFlags(c)
	if err != nil {
		return err
	}
	args := c.Args().Slice()
	switch {
	case len(args) > 0 && !policy.Empty():
		return errors.New("forget: give snapshot IDs or --keep-* options, not both")
	case len(args) == 0 && policy.Empty():
		return errors.New("forget: give snapshot IDs or at least one --keep-* option")
	}
	r, err := e.openRepo(ctx, "forget")
	if err != nil {
		return err
	}
	defer r.Close()
	if s := e.server; s != nil && s.who.Role != api.RoleAdmin && !c.Bool("dry-run") {
		// The server refuses it anyway; saying so first removes nothing
		// halfway.
		return fmt.Errorf("forget on a server needs an admin token; the token %q is %s (agents are append-only)", s.who.Name, tokenDesc(s.who))
	}

	var groups []forgetGroup
	if len(args) > 0 {
		g, err := forgetByID(ctx, c, e, r, args)
		if err != nil {
			return err
		}
		groups = []forgetGroup{g}
	} else if groups, err = forgetByPolicy(ctx, c, r, policy); err != nil {
		return err
	}

	if len(groups) == 0 {
		e.info("no snapshots match --host and --tag: nothing to do")
	}
	dryRun := c.Bool("dry-run")
	removed := 0
	if !dryRun {
		if removed, err = removeForgotten(ctx, r, groups); err != nil {
			return err
		}
	}
	if err := printForget(c, e.stdout, groups, dryRun); err != nil {
		return err
	}
	// The tables on stdout say it all, except with --json.
	switch {
	case dryRun:
		e.info("dry run: %s would be removed, none was", plural(countRemoved(groups), "snapshot"))
	case c.Bool("json"):
		e.info("removed %s", plural(removed, "snapshot"))
	}
	if !c.Bool("prune") {
		return nil
	}
	switch {
	case dryRun:
		e.info("dry run: not pruning")
		return nil
	case removed == 0:
		e.info("no snapshot removed: nothing to prune")
		return nil
	}
	return pruneAfterForget(c, e, r)
}

func policyFromFlags(c *ucli.Context) (retention.Policy, error) {
	var n [6]int
	for i, name := range keepFlags {
		n[i] = c.Int(name)
		if n[i] < 0 {
			return retention.Policy{}, fmt.Errorf("--%s %d: give a count of 0 or more", name, n[i])
		}
	}
	return retention.Policy{
		Last: n[0], Hourly: n[1], Daily: n[2], Weekly: n[3], Monthly: n[4], Yearly: n[5],
		Location: time.Local,
	}, nil
}

// forgetByID resolves every argument before anything is removed: one
// unknown snapshot removes none.
func forgetByID(ctx context.Context, c *ucli.Context, e *env, r *repo.Repository, args []string) (forgetGroup, error) {
	host := ""
	g := forgetGroup{}
	seen := map[string]bool{}
	for _, spec := range args {
		if spec == "latest" && host == "" {
			h, err := hostname(c)
			if err != nil {
				return g, err
			}
			host = h
		}
		s, err := r.FindSnapshot(ctx, spec, host)
		if err != nil {
			return g, err
		}
		if seen[s.ID.String()] {
			continue
		}
		seen[s.ID.String()] = true
		// Paths are only shown: a snapshot whose details cannot be
		// opened can still be forgotten.
		var paths []string
		if det, _, err := r.Details(ctx, s); err == nil {
			paths = det.Paths
		} else {
			e.info("warning: %v", err)
		}
		g.rows = append(g.rows, newForgetRow(s, paths, false, nil))
	}
	return g, nil
}

// forgetByPolicy applies p to each group of the snapshots that pass
// --host and --tag.
func forgetByPolicy(ctx context.Context, c *ucli.Context, r *repo.Repository, p retention.Policy) ([]forgetGroup, error) {
	list, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]repo.Snapshot{}
	var snaps []retention.Snapshot
	for _, s := range list {
		if h := c.String("host"); h != "" && s.Host != h {
			continue
		}
		if !hasAll(s.Tags, c.StringSlice("tag")) {
			continue
		}
		// Grouping needs the paths: a snapshot that cannot be grouped must
		// not be decided on as if it belonged elsewhere.
		det, _, err := r.Details(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%w (forget groups snapshots by their paths)", err)
		}
		byID[s.ID.String()] = s
		snaps = append(snaps, retention.Snapshot{ID: s.ID.String(), Time: s.Time, Host: s.Host, Paths: det.Paths, Tags: s.Tags})
	}
	var groups []forgetGroup
	for _, grp := range retention.Groups(snaps) {
		g := forgetGroup{host: grp.Host, paths: grp.Paths, policy: true}
		for _, d := range retention.Apply(grp.Snapshots, p) {
			g.rows = append(g.rows, newForgetRow(byID[d.ID], d.Paths, d.Keep, d.Reasons))
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func newForgetRow(s repo.Snapshot, paths []string, keep bool, reasons []string) forgetRow {
	return forgetRow{
		snapID: s.ID, ID: s.ID.String(), ShortID: s.ID.Short(), Time: s.Time, Host: s.Host,
		Paths: nonNil(paths), Tags: nonNil(s.Tags), Keep: keep, Reasons: nonNil(reasons),
	}
}

func removeForgotten(ctx context.Context, r *repo.Repository, groups []forgetGroup) (int, error) {
	removed := 0
	total := countRemoved(groups)
	for _, g := range groups {
		for _, row := range g.rows {
			if row.Keep {
				continue
			}
			if err := r.ForgetSnapshot(ctx, row.snapID); err != nil {
				return removed, fmt.Errorf("%w (%d of %d snapshots were removed before)", err, removed, total)
			}
			removed++
		}
	}
	return removed, nil
}

func countRemoved(groups []forgetGroup) int {
	n := 0
	for _, g := range groups {
		for _, row := range g.rows {
			if !row.Keep {
				n++
			}
		}
	}
	return n
}

func printForget(c *ucli.Context, w io.Writer, groups []forgetGroup, dryRun bool) error {
	if c.Bool("json") {
		rows := []forgetRow{}
		for _, g := range groups {
			rows = append(rows, g.rows...)
		}
		return json.NewEncoder(w).Encode(rows)
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		var keep, remove []forgetRow
		for _, row := range g.rows {
			if row.Keep {
				keep = append(keep, row)
			} else {
				remove = append(remove, row)
			}
		}
		if g.policy {
			fmt.Fprintf(tw, "host %s, paths %s:\n", displayPath(g.host), displayPaths(g.paths))
			fmt.Fprintf(tw, "keep %s:\n", plural(len(keep), "snapshot"))
			printForgetRows(tw, keep)
		}
		if len(remove) > 0 {
			fmt.Fprintf(tw, "%s %s:\n", verb, plural(len(remove), "snapshot"))
			printForgetRows(tw, remove)
		}
	}
	return tw.Flush()
}

// printForgetRows prints one table: why a kept snapshot stays, and what a
// removed one held.
func printForgetRows(tw io.Writer, rows []forgetRow) {
	last := "Paths"
	if len(rows) > 0 && rows[0].Keep {
		last = "Reasons"
	}
	fmt.Fprintf(tw, "ID\tTime\tHost\tTags\t%s\n", last)
	for _, row := range rows {
		col := displayPaths(row.Paths)
		if row.Keep {
			col = strings.Join(row.Reasons, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.ShortID, row.Time.Local().Format("2006-01-02 15:04:05"),
			displayPath(row.Host), displayPath(strings.Join(row.Tags, ",")), col)
	}
}

// displayPaths shows paths on one line whatever bytes they hold.
func displayPaths(paths []string) string {
	shown := make([]string, len(paths))
	for i, p := range paths {
		shown[i] = displayPath(p)
	}
	return strings.Join(shown, " ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
