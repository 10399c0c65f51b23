package lvm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ErrUnsupported is returned on platforms without LVM.
var ErrUnsupported = errors.New("lvm snapshots are not supported on this platform")

// ErrNotLVM is returned by Take for a path whose filesystem is not on an LVM
// logical volume.
var ErrNotLVM = errors.New("not on an LVM logical volume")

const (
	namePrefix = "costor-"
	// DefaultSnapshotSize is the copy-on-write space reserved for a snapshot of
	// a thick LV: the snapshot becomes invalid (reads fail) once the origin has
	// changed more than this during the backup.
	DefaultSnapshotSize = "10%ORIGIN"
	// DefaultMountDir holds one private mount point per snapshot. /run is a
	// tmpfs, so a reboot leaves no stale directories.
	DefaultMountDir = "/run/costor/snapshots"
)

// Options tune Take and Cleanup. Zero values are sensible.
type Options struct {
	// Tag is part of every snapshot name this process creates, so a later
	// run can recognise leftovers: names are "costor-<tag>-<pid>-<unix time>".
	// Letters, digits, '.', '_', '+' and '-' only. Default "backup".
	Tag string
	// SnapshotSize is the copy-on-write space of each snapshot of a thick LV:
	// a share of the origin, the VG or its free space ("10%ORIGIN", "20%FREE",
	// "5%VG") passed as lvcreate --extents, or an absolute size with a unit
	// ("2G", "512M") passed as --size. Thin LVs ignore it: their snapshots
	// share the pool. Default DefaultSnapshotSize.
	SnapshotSize string
	// MountDir is where the snapshots are mounted, one directory each, mode
	// 0700. Default DefaultMountDir.
	MountDir string
	// Run runs an external command and returns its output; nil runs it with
	// os/exec and keeps stderr for the error. Tests put stand-in programs
	// first on PATH instead.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Logf, if set, is told about each command run and snapshot made.
	Logf func(format string, args ...any)
}

func (o Options) tag() (string, error) {
	if o.Tag == "" {
		return "backup", nil
	}
	// LV names allow [A-Za-z0-9+_.-] and at most 127 bytes in all.
	if len(o.Tag) > 64 || strings.Trim(o.Tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") != "" {
		return "", fmt.Errorf("lvm snapshot tag %q: use at most 64 letters, digits, '.', '_', '+' or '-'", o.Tag)
	}
	return o.Tag, nil
}

// lastNameTime keeps names unique within a process: two snapshots made in the
// same second (two LVs of one VG, or two Takes) would otherwise collide.
var lastNameTime atomic.Int64

func snapshotName(tag string, pid int, now time.Time) string {
	t := now.Unix()
	for {
		last := lastNameTime.Load()
		if t <= last {
			t = last + 1
		}
		if lastNameTime.CompareAndSwap(last, t) {
			break
		}
	}
	return fmt.Sprintf("%s%s-%d-%d", namePrefix, tag, pid, t)
}

// parseName splits "costor-<tag>-<pid>-<unix time>"; ok is false for any
// other name, so Cleanup never touches what it did not make. The tag may
// itself hold '-': pid and time are taken from the right.
func parseName(name string) (tag string, pid int, ok bool) {
	rest, found := strings.CutPrefix(name, namePrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || !allDigits(rest[i+1:]) {
		return "", 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 || !allDigits(rest[j+1:]) {
		return "", 0, false
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return rest[:j], pid, true
}

func allDigits(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// sizeArgs turns a SnapshotSize policy into lvcreate arguments.
func sizeArgs(policy string) ([]string, error) {
	if policy == "" {
		policy = DefaultSnapshotSize
	}
	bad := func(why string) error {
		return fmt.Errorf("lvm snapshot size %q: %s; write e.g. 10%%ORIGIN, 20%%FREE or 2G", policy, why)
	}
	if num, unit, ok := strings.Cut(policy, "%"); ok {
		switch strings.ToUpper(unit) {
		case "ORIGIN", "VG", "FREE", "PVS":
		default:
			return nil, bad("a share must be of ORIGIN, VG, FREE or PVS")
		}
		n, err := strconv.Atoi(num)
		if err != nil || !allDigits(num) || n < 1 || n > 100 {
			return nil, bad("the share must be a whole number from 1 to 100")
		}
		return []string{"--extents", strconv.Itoa(n) + "%" + strings.ToUpper(unit)}, nil
	}
	// lvcreate reads a bare number as MiB; demand a unit so "2" cannot mean
	// two mebibytes by surprise.
	last := policy[len(policy)-1]
	if !strings.ContainsRune("bBsSkKmMgGtTpPeE", rune(last)) {
		return nil, bad("an absolute size needs a unit (b, s, k, m, g, t, p, e)")
	}
	f, err := strconv.ParseFloat(policy[:len(policy)-1], 64)
	if err != nil || f <= 0 || strings.ContainsAny(policy[:len(policy)-1], "eE+-xXpPnN_") {
		return nil, bad("not a positive size")
	}
	return []string{"--size", policy}, nil
}

// mountOptions chooses how to mount a snapshot of a filesystem of type
// fstype read-only without writing to it or clashing with its live origin.
func mountOptions(fstype string) (string, error) {
	switch fstype {
	case "xfs":
		// The snapshot carries its origin's UUID, and the origin is mounted:
		// XFS refuses a second filesystem with the same UUID unless told
		// nouuid. norecovery: a read-only mount of a writable device would
		// otherwise replay the log into the snapshot. lvcreate freezes the
		// filesystem while it snapshots, so the log is clean and nothing is lost.
		return "ro,nouuid,norecovery", nil
	case "ext3", "ext4":
		// noload: do not replay the journal. ext4 replays it even on a
		// read-only mount when the device is writable (a snapshot is), which
		// writes to the snapshot; after lvcreate's freeze there is nothing
		// to replay anyway.
		return "ro,noload", nil
	case "btrfs":
		// Two devices with one btrfs fsid confuse the kernel's device scan;
		// btrfs has its own snapshots.
		return "", fmt.Errorf("filesystem is btrfs: use --snapshot btrfs instead of lvm")
	default:
		return "ro", nil
	}
}
