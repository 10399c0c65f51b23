//go:build darwin

package apfs

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func realHost() host {
	return host{
		volumeOf:   statfsVolume,
		mounts:     mountPoints,
		pid:        os.Getpid(),
		now:        time.Now,
		alive:      pidAlive,
		retryDelay: time.Second,
	}
}

func statfsVolume(path string) (volume, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return volume{}, err
	}
	return volume{
		mountPoint: unix.ByteSliceToString(st.Mntonname[:]),
		device:     unix.ByteSliceToString(st.Mntfromname[:]),
		fstype:     unix.ByteSliceToString(st.Fstypename[:]),
		readOnly:   st.Flags&unix.MNT_RDONLY != 0,
	}, nil
}

func mountPoints() ([]string, error) {
	n, err := unix.Getfsstat(nil, unix.MNT_NOWAIT)
	if err != nil {
		return nil, err
	}
	buf := make([]unix.Statfs_t, n+8) // room for mounts made meanwhile
	n, err = unix.Getfsstat(buf, unix.MNT_NOWAIT)
	if err != nil {
		return nil, err
	}
	var mps []string
	for _, st := range buf[:n] {
		mps = append(mps, unix.ByteSliceToString(st.Mntonname[:]))
	}
	return mps, nil
}

// pidAlive errs on the side of "alive": a reused pid only postpones a cleanup.
func pidAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Supported reports whether path lives on an APFS volume.
func Supported(path string) (bool, error) {
	vol, err := statfsVolume(path)
	if err != nil {
		return false, err
	}
	return vol.fstype == "apfs", nil
}

// Take snapshots every APFS volume holding one of paths (one tmutil local
// snapshot) and mounts each read-only. On error it removes whatever it made.
func Take(ctx context.Context, paths []string, opts Options) (*View, error) {
	return take(ctx, paths, opts, realHost())
}

// Cleanup unmounts and deletes the snapshots left by costor runs whose
// process is gone, and returns what it removed.
func Cleanup(ctx context.Context, opts Options) ([]string, error) {
	return cleanup(ctx, opts, realHost())
}
