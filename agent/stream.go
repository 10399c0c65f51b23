package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/restic/chunker"

	"github.com/costor/costor/internal/cpus"
	"github.com/costor/costor/repo/tree"
)

// BackupStream backs up everything read from rd as the single file /name
// of a new snapshot (a database dump piped in), chunked and deduplicated
// like any file. finish, if set, is called once the stream is consumed and
// before the snapshot is written: an error from it (the dump command
// failed) fails the backup and no snapshot is written.
func BackupStream(ctx context.Context, r Repository, opts BackupOptions, name string, rd io.Reader, finish func() error) (*BackupResult, error) {
	if opts.Keyer == nil || opts.HostKey == nil {
		return nil, errors.New("backup: keys missing")
	}
	if err := tree.ValidateName(name); err != nil {
		return nil, fmt.Errorf("--stdin-filename %q: %w (give a plain file name)", name, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = cpus.N
	}
	opts.Parent = nil
	start := opts.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := &backuper{repo: r, opts: opts, cancel: cancel, statsAtStart: r.BlobStats(), sealJobs: make(chan *sealJob, 2*opts.Workers)}
	b.bufs.New = func() any { buf := make([]byte, 0, chunker.MinSize*2); return &buf }
	var sealers sync.WaitGroup
	for range opts.Workers {
		sealers.Go(func() { b.sealWorker(ctx) })
	}
	content, total, err := b.readChunked(ctx, rd, chunker.New(nil, opts.Polynomial))
	close(b.sealJobs)
	sealers.Wait()
	var fatal *fatalError
	if errors.As(err, &fatal) {
		err = fatal.err
	}
	if err != nil {
		return nil, fmt.Errorf("read the stream: %w", err)
	}
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	if finish != nil {
		if err := finish(); err != nil {
			return nil, err
		}
	}
	now := opts.Now().UnixNano()
	node := tree.Node{
		Name: name, Type: tree.File, Mode: 0o600, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		User: opts.Username, Size: total, MTime: now, ATime: now, CTime: now, Links: 1, Content: content,
	}
	b.files.Add(1)
	b.filesNew.Add(1)
	b.bytes.Add(total)
	rootTree, err := b.saveTree(ctx, &tree.Tree{Nodes: []tree.Node{node}}, parentDir{})
	if err != nil {
		return nil, err
	}
	b.dirs.Add(1)
	return b.saveSnapshot(ctx, start, []string{"/" + name}, rootTree)
}
