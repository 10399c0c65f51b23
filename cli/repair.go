package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
)

func repairCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "repair",
		Usage: "repair a repository",
		Subcommands: []*ucli.Command{{
			Name:  "index",
			Usage: "rebuild the index from the packs and snapshot records",
			Action: func(c *ucli.Context) error {
				e := newEnv(c)
				ctx := c.Context
				dir, isDefault, err := e.repoLocation()
				if err != nil {
					return err
				}
				opts, err := e.openOptions(dir, "repair index", false)
				if err != nil {
					return err
				}
				opts.RebuildIndex = true
				creds, err := e.credentials(isDefault)
				if err != nil {
					return err
				}
				r, err := repo.Open(ctx, opts, creds)
				if err != nil {
					return err
				}
				defer r.Close()
				packs, blobs, snaps, err := r.Index().Stats(ctx)
				if err != nil {
					return err
				}
				e.info("index rebuilt: %d packs, %d blobs, %d snapshots", packs, blobs, snaps)
				if bad := r.DamagedSnapshotRecords(); len(bad) > 0 {
					for _, s := range bad {
						fmt.Fprintf(e.stderr, "error: snapshot record snapshots/%s is damaged and was left out\n", s)
					}
					return fmt.Errorf("repair index: %d damaged snapshot record(s) left out (restore them from a copy of the repository, or delete them if those snapshots are lost)", len(bad))
				}
				return nil
			},
		}},
	}
}
