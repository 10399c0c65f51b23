//go:build linux

package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// detachWait bounds how long an unmount waits for the kernel to let go after
// a lazy unmount; the process then ends and the kernel cleans up.
const detachWait = 2 * time.Second

// Mount mounts the repository view of src at mountpoint and serves it until
// ctx is done or the filesystem is unmounted from outside (umount,
// fusermount3 -u). It then unmounts, waits for the server to stop, and
// returns nil: a normal return never leaves a stale mount behind. An error
// means the mount never started.
func Mount(ctx context.Context, mountpoint string, src Source, opts Options) error {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkMountpoint(mountpoint); err != nil {
		return err
	}
	// Loads outlive the requests that start them (see lru) but not the
	// mount.
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	fsys := newFilesystem(base, src, opts, time.Now)
	if _, err := fsys.catalog.load(ctx); err != nil {
		return err
	}
	server, err := fs.Mount(mountpoint, &rootDir{common: common{fsys: fsys}}, fuseOptions(opts))
	if err != nil {
		return fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	fsys.noOpen.Store(server.KernelSettings().Flags&fuse.CAP_NO_OPEN_SUPPORT != 0)
	opts.Logger.Debug("mounted", "mountpoint", mountpoint)
	if opts.OnMount != nil {
		opts.OnMount()
	}
	served := make(chan struct{})
	go func() {
		server.Wait()
		close(served)
	}()
	select {
	case <-served:
		opts.Logger.Debug("unmounted from outside", "mountpoint", mountpoint)
	case <-ctx.Done():
		unmount(server, mountpoint, served, opts.Logger)
	}
	return nil
}

func fuseOptions(opts Options) *fs.Options {
	immutable := immutableTimeout
	o := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName:     "costor",
			Name:       "costor",
			AllowOther: opts.AllowOther,
			// ro: every write fails with EROFS in the kernel, before it
			// reaches us. default_permissions: the kernel checks the
			// backed-up modes and owners, so allow_other does not hand
			// everyone every file.
			Options: []string{"ro", "default_permissions"},
			// Without fusermount3 installed root can still mount.
			DirectMount:   os.Geteuid() == 0,
			MaxWrite:      1 << 20, // also max_read: fewer, larger reads
			MaxReadAhead:  1 << 20,
			MaxBackground: 32,
			// Every read answers with bytes in memory (decrypted chunks),
			// which go-fuse would still route through a pipe (a writev,
			// a splice, an ioctl and a fcntl) before giving up on
			// splicing; one writev does it.
			DisableSplice: true,
			// READDIRPLUS only while the reader also looks entries up:
			// `ls` of 100,000 names then costs one pass, not 100,000
			// inodes built in the kernel and here.
			ExtraCapabilities: fuse.CAP_READDIRPLUS_AUTO,
			Debug:             opts.Debug,
			Logger:            slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		},
		EntryTimeout: &immutable,
		AttrTimeout:  &immutable,
		// Modes are the backed-up ones, 0000 included.
		NullPermissions: true,
		Logger:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return o
}

// checkMountpoint rejects what would fail later with a worse message.
func checkMountpoint(mountpoint string) error {
	st, err := os.Stat(mountpoint)
	switch {
	case errors.Is(err, unix.ENOTCONN):
		return fmt.Errorf("mount point %s is a stale mount left by a process that died; "+
			"run `umount %s` (or `fusermount3 -u %s`) first", mountpoint, mountpoint, mountpoint)
	case err != nil:
		return fmt.Errorf("mount point: %w", err)
	case !st.IsDir():
		return fmt.Errorf("mount point %s is not a directory", mountpoint)
	}
	return nil
}

// unmount ends the mount when the caller is done with it. A plain unmount
// fails while a file is open or a shell sits in the mount; then the mount is
// detached (lazy unmount), which removes it from the namespace at once, and
// whoever still holds a file loses it when this process ends.
func unmount(server *fuse.Server, mountpoint string, served <-chan struct{}, log *slog.Logger) {
	select {
	case <-served:
		return
	default:
	}
	err := server.Unmount()
	if err == nil {
		return
	}
	log.Warn("mount point busy, detaching it", "mountpoint", mountpoint, "err", err)
	if err := detach(mountpoint); err != nil {
		log.Error("detach mount point", "mountpoint", mountpoint, "err", err)
		return
	}
	select {
	case <-served:
	case <-time.After(detachWait):
	}
}

func detach(mountpoint string) error {
	if os.Geteuid() == 0 {
		if err := unix.Unmount(mountpoint, unix.MNT_DETACH); err == nil {
			return nil
		}
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-u", "-z", mountpoint).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s -u -z %s: %w: %s", bin, mountpoint, err, out)
		}
		return nil
	}
	return fmt.Errorf("lazy unmount of %s: not root and no fusermount3", mountpoint)
}
