package cli

import (
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
				return nil
			},
		}},
	}
}
