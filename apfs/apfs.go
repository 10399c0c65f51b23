package apfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrUnsupported is returned on platforms without APFS.
var ErrUnsupported = errors.New("apfs snapshots are not supported on this platform")

// ErrNotAPFS is returned by Take for a path that is not on an APFS volume.
var ErrNotAPFS = errors.New("not on an APFS volume")

const (
	namePrefix = "costor-"
	// DefaultMountDir holds one private directory per view.
	DefaultMountDir = "/private/var/run/costor/snapshots"
)

// Options tune Take and Cleanup. Zero values are sensible.
type Options struct {
	// Tag is part of the name of every private directory this process
	// makes, so a later run can recognise leftovers: names are
	// "costor-<tag>-<pid>-<unix time>". Default "backup".
	Tag string
	// MountDir holds the private directories, mode 0700. Default DefaultMountDir.
	MountDir string
	// Run runs an external command and returns its output; nil runs it with
	// os/exec and keeps stderr for the error.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Logf, if set, is told about each command run.
	Logf func(format string, args ...any)
}

// parseName splits "costor-<tag>-<pid>-<unix time>"; ok is false for any
// other name, so Cleanup never touches what it did not make.
func parseName(name string) (pid int, ok bool) {
	rest, found := strings.CutPrefix(name, namePrefix)
	if !found {
		return 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || !allDigits(rest[i+1:]) {
		return 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 || !allDigits(rest[j+1:]) {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[j+1:])
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
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

// snapshotDate is tmutil's date format, YYYY-MM-DD-HHMMSS.
var snapshotDate = regexp.MustCompile(`\b[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{6}\b`)

// parseCreatedDate reads the date from `tmutil localsnapshot`:
//
//	NOTE: local snapshots are considered purgeable …
//	Created local snapshot with date: 2024-01-15-123456
func parseCreatedDate(out []byte) (string, error) {
	for _, line := range strings.Split(string(out), "\n") {
		if _, after, ok := strings.Cut(line, "Created local snapshot with date:"); ok {
			if d := snapshotDate.FindString(after); d != "" {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("no snapshot date in tmutil output %q", bytes.TrimSpace(out))
}

// parseSnapshotNames reads `tmutil listlocalsnapshots <volume>`, whose names
// are com.apple.TimeMachine.<date> up to 10.15 and com.apple.TimeMachine.<date>.local
// since 11, under an optional "Snapshots for disk /:" header.
func parseSnapshotNames(out []byte) []string {
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "com.apple.TimeMachine.") && !strings.ContainsAny(line, " \t") {
			names = append(names, line)
		}
	}
	return names
}

// snapshotWithDate picks the snapshot made at date.
func snapshotWithDate(names []string, date string) (string, bool) {
	for _, n := range names {
		d := strings.TrimSuffix(strings.TrimPrefix(n, "com.apple.TimeMachine."), ".local")
		if d == date {
			return n, true
		}
	}
	return "", false
}
