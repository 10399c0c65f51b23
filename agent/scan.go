package agent

import (
	"context"
	"io/fs"
	"path/filepath"
)

// scan counts files and bytes under the backup paths, so progress can show
// an ETA. It runs beside the backup and gives up quietly on any error: the
// numbers are only an estimate.
func scan(ctx context.Context, paths []string, opts *BackupOptions) {
	p := opts.Progress
	b := &backuper{opts: *opts}
	for _, root := range paths {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				return nil
			}
			if path != root && b.excluded(path, d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					p.BytesTotal.Add(uint64(info.Size()))
				}
			}
			if !d.IsDir() {
				p.FilesTotal.Add(1)
			}
			return nil
		})
	}
	p.ScanDone.Store(true)
}
