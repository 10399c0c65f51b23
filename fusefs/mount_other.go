//go:build !linux

package fusefs

import (
	"context"
	"errors"
)

// Mount is available on Linux only: the macOS (macFUSE) and Windows (WinFsp)
// ports are not written yet.
func Mount(ctx context.Context, mountpoint string, src Source, opts Options) error {
	return errors.New("costor mount is available on Linux only for now")
}
