package cli

import (
	"context"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/snapshot"
)

// splitSnapPath splits "SNAP:PATH" (PATH optional, "/" when absent).
func splitSnapPath(arg string) (snap, path string) {
	snap, path, found := strings.Cut(arg, ":")
	if !found || path == "" {
		path = "/"
	}
	return snap, path
}

// openedSnapshot is a snapshot with its private details unsealed.
type openedSnapshot struct {
	repo.Snapshot
	Details *snapshot.Details
	Key     *repo.HostKey
}

// findSnapshot resolves a SNAP argument ("latest" means the newest of
// --host, default this machine) and unseals it.
func findSnapshot(ctx context.Context, c *ucli.Context, r *repo.Repository, spec string) (*openedSnapshot, error) {
	host := ""
	if spec == "latest" {
		h, err := hostname(c)
		if err != nil {
			return nil, err
		}
		host = h
	}
	s, err := r.FindSnapshot(ctx, spec, host)
	if err != nil {
		return nil, err
	}
	det, hk, err := r.Details(ctx, s)
	if err != nil {
		return nil, err
	}
	return &openedSnapshot{Snapshot: s, Details: det, Key: hk}, nil
}
