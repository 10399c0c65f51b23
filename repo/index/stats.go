package index

import (
	"context"
	"fmt"
)

// Stats counts the indexed packs, blobs and snapshots. It reads every key,
// so it takes time proportional to the index size.
func (x *Index) Stats(ctx context.Context) (packs, blobs, snapshots int, err error) {
	for _, c := range []struct {
		prefix byte
		n      *int
	}{{prefixPack, &packs}, {prefixBlob, &blobs}, {prefixSnapshot, &snapshots}} {
		if err := x.scan(ctx, c.prefix, false, func(_, _ []byte) error { *c.n++; return nil }); err != nil {
			return 0, 0, 0, err
		}
	}
	return packs, blobs, snapshots, nil
}

// DropAll empties the index, for a rebuild from the packs.
func (x *Index) DropAll(ctx context.Context) error {
	if x.readOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	defer x.wrote()
	if err := x.db.DropAll(); err != nil {
		return fmt.Errorf("empty index %s: %w", x.dir, err)
	}
	return x.writeFormat()
}
