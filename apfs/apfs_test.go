//go:build !windows

package apfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeScript stands in for tmutil, mount_apfs and umount: it appends its argv
// to $FAKE_DIR/log, prints $FAKE_DIR/<name>[-<first arg>].out, and fails with
// $FAKE_DIR/<name>[-<first arg>].fail as stderr when that file exists.
const fakeScript = `#!/bin/sh
name=$(basename "$0")
echo "$name $*" >> "$FAKE_DIR/log"
key="$name"
case "$1" in [a-z]*) key="$name-$1";; -f) key="$name-force";; esac
for f in "$FAKE_DIR/$key.fail" "$FAKE_DIR/$name.fail"; do
  if [ -f "$f" ]; then cat "$f" >&2; exit 5; fi
done
if [ -f "$FAKE_DIR/$key.out" ]; then cat "$FAKE_DIR/$key.out"; fi
exit 0
`

const date = "2024-01-15-123456"

type fake struct {
	t    *testing.T
	dir  string
	host host
	opts Options
	vols map[string]volume // directory (relative) → volume
}

var fakeClock = time.Unix(1_700_000_000, 0)

// newFake lays out, under a temporary directory $T:
//
//	$T/data       the data volume, mounted at $T/data from /dev/disk3s5
//	$T/ext        another APFS volume, /dev/disk4s1
//	$T/sys        a read-only (sealed) APFS volume
//	$T/fat        a FAT volume
func newFake(t *testing.T) *fake {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	must(t, os.Mkdir(bin, 0o755))
	for _, name := range []string{"tmutil", "mount_apfs", "umount"} {
		must(t, os.WriteFile(filepath.Join(bin, name), []byte(fakeScript), 0o755))
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_DIR", dir)
	for _, d := range []string{"data/Users/a", "ext/proj", "sys/bin", "fat/x"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	f := &fake{t: t, dir: dir, vols: map[string]volume{
		"data": {mountPoint: filepath.Join(dir, "data"), device: "/dev/disk3s5", fstype: "apfs"},
		"ext":  {mountPoint: filepath.Join(dir, "ext"), device: "/dev/disk4s1", fstype: "apfs"},
		"sys":  {mountPoint: filepath.Join(dir, "sys"), device: "/dev/disk3s1s1", fstype: "apfs", readOnly: true},
		"fat":  {mountPoint: filepath.Join(dir, "fat"), device: "/dev/disk5s1", fstype: "msdos"},
	}}
	f.set("tmutil-localsnapshot.out", "NOTE: local snapshots are considered purgeable.\nCreated local snapshot with date: "+date+"\n")
	f.set("tmutil-listlocalsnapshots.out", "Snapshots for disk /:\ncom.apple.TimeMachine.2024-01-14-000000.local\ncom.apple.TimeMachine."+date+".local\n")
	fakeClock = fakeClock.Add(time.Hour)
	now := fakeClock
	var mounted []string
	f.host = host{
		volumeOf: func(p string) (volume, error) {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return volume{}, err
			}
			first, _, _ := strings.Cut(rel, string(filepath.Separator))
			if v, ok := f.vols[first]; ok {
				return v, nil
			}
			return volume{}, fmt.Errorf("no fake volume for %s", p)
		},
		mounts:     func() ([]string, error) { return mounted, nil },
		pid:        4242,
		now:        func() time.Time { return now },
		alive:      func(pid int) bool { return pid == 555 },
		retryDelay: time.Millisecond,
	}
	f.opts = Options{MountDir: filepath.Join(dir, "mnt")}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fake) set(file, content string) {
	must(f.t, os.WriteFile(filepath.Join(f.dir, file), []byte(content), 0o644))
}

func (f *fake) log() []string {
	data, err := os.ReadFile(filepath.Join(f.dir, "log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	must(f.t, err)
	must(f.t, os.Remove(filepath.Join(f.dir, "log")))
	s := strings.ReplaceAll(string(data), f.dir, "$T")
	s = strings.ReplaceAll(s, f.name(), "$N")
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func (f *fake) name() string { return fmt.Sprintf("costor-backup-4242-%d", f.host.now().Unix()) }

func (f *fake) p(rel string) string { return filepath.Join(f.dir, rel) }

func (f *fake) assertClean() {
	f.t.Helper()
	entries, _ := os.ReadDir(f.opts.MountDir)
	if len(entries) != 0 {
		f.t.Errorf("left in the mount directory: %v", entries)
	}
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s ran\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTakeCommandSequence(t *testing.T) {
	f := newFake(t)
	v, err := take(context.Background(), []string{f.p("data/Users/a"), f.p("ext/proj"), f.p("sys/bin"), f.p("data/Users")}, f.opts, f.host)
	must(t, err)
	equal(t, "Take", f.log(), []string{
		"tmutil localsnapshot",
		"tmutil listlocalsnapshots $T/data",
		"mount_apfs -o ro,nobrowse -s com.apple.TimeMachine." + date + ".local /dev/disk3s5 $T/mnt/$N/vol0",
		"tmutil listlocalsnapshots $T/ext",
		"mount_apfs -o ro,nobrowse -s com.apple.TimeMachine." + date + ".local /dev/disk4s1 $T/mnt/$N/vol1",
	})
	got, err := os.ReadFile(filepath.Join(f.opts.MountDir, f.name(), dateFile))
	if err != nil || strings.TrimSpace(string(got)) != date {
		t.Errorf("date file = %q, %v", got, err)
	}
	base := filepath.Join(f.opts.MountDir, f.name())
	for orig, want := range map[string]string{
		"data/Users/a/f": base + "/vol0/Users/a/f",
		"data/Users":     base + "/vol0/Users",
		"ext/proj/x/y":   base + "/vol1/proj/x/y",
		"sys/bin/ls":     f.p("sys/bin/ls"),
	} {
		if got, err := v.Path(f.p(orig)); err != nil || got != want {
			t.Errorf("Path(%s) = %q, %v; want %q", orig, got, err, want)
		}
	}
	if _, err := v.Path(f.p("ext/other")); err == nil {
		t.Error("Path outside the given paths: no error")
	}
	must(t, v.Release(context.Background()))
	equal(t, "Release", f.log(), []string{
		"umount $T/mnt/$N/vol1",
		"umount $T/mnt/$N/vol0",
		"tmutil deletelocalsnapshots " + date,
	})
	f.assertClean()
	if err := v.Release(context.Background()); err != nil || f.log() != nil {
		t.Errorf("second Release: %v", err)
	}
}

func TestTakeFirmlinkedDataVolume(t *testing.T) {
	// statfs of /Users names /System/Volumes/Data although /Users is not below it.
	vol := volume{mountPoint: dataVolume, fstype: "apfs", device: "/dev/disk3s5"}
	tg := target{}
	var err error
	h := host{volumeOf: func(string) (volume, error) { return vol, nil }}
	dir := t.TempDir()
	_, tg, err = locate(dir, h)
	must(t, err)
	resolved, _ := filepath.EvalSymlinks(dir)
	if tg.rel != resolved {
		t.Errorf("rel = %q, want %q", tg.rel, resolved)
	}
}

func TestTakeOnlyReadOnlyVolumeRunsNothing(t *testing.T) {
	f := newFake(t)
	v, err := take(context.Background(), []string{f.p("sys/bin")}, f.opts, f.host)
	must(t, err)
	if got := f.log(); got != nil {
		t.Errorf("ran %q", got)
	}
	if p, err := v.Path(f.p("sys/bin/ls")); err != nil || p != f.p("sys/bin/ls") {
		t.Errorf("Path = %q, %v", p, err)
	}
	must(t, v.Release(context.Background()))
	f.assertClean()
}

func TestTakeUndoesOnError(t *testing.T) {
	snap := "com.apple.TimeMachine." + date + ".local"
	tests := []struct {
		name   string
		paths  []string
		files  map[string]string
		want   []string
		errHas string
		errIs  error
	}{
		{name: "not APFS", paths: []string{"data", "fat/x"}, errIs: ErrNotAPFS, errHas: "(msdos)"},
		{name: "bad tag", paths: []string{"data"}, files: nil, errHas: "tag"},
		{
			name:   "tmutil localsnapshot fails",
			paths:  []string{"data"},
			files:  map[string]string{"tmutil-localsnapshot.fail": "Failed to create local snapshot"},
			want:   []string{"tmutil localsnapshot"},
			errHas: "Full Disk Access",
		},
		{
			name:   "unreadable date",
			paths:  []string{"data"},
			files:  map[string]string{"tmutil-localsnapshot.out": "something else\n"},
			want:   []string{"tmutil localsnapshot"},
			errHas: "no snapshot date",
		},
		{
			name:  "snapshot missing on the volume: deleted",
			paths: []string{"data"},
			files: map[string]string{"tmutil-listlocalsnapshots.out": "Snapshots for disk /:\n"},
			want: []string{
				"tmutil localsnapshot",
				"tmutil listlocalsnapshots $T/data",
				"tmutil deletelocalsnapshots " + date,
			},
			errHas: "included in Time Machine",
		},
		{
			name:  "second mount fails: first unmounted, snapshot deleted",
			paths: []string{"data", "ext"},
			files: map[string]string{},
			want: []string{
				"tmutil localsnapshot",
				"tmutil listlocalsnapshots $T/data",
				"mount_apfs -o ro,nobrowse -s " + snap + " /dev/disk3s5 $T/mnt/$N/vol0",
				"tmutil listlocalsnapshots $T/ext",
				"mount_apfs -o ro,nobrowse -s " + snap + " /dev/disk4s1 $T/mnt/$N/vol1",
				"umount $T/mnt/$N/vol0",
				"tmutil deletelocalsnapshots " + date,
			},
			errHas: "Resource busy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if tt.name == "bad tag" {
				f.opts.Tag = "a/b"
			}
			if strings.HasPrefix(tt.name, "second mount") {
				// Fail mount_apfs only for the second volume.
				must(t, os.WriteFile(filepath.Join(f.dir, "bin", "mount_apfs"), []byte(`#!/bin/sh
echo "mount_apfs $*" >> "$FAKE_DIR/log"
case "$*" in *disk4s1*) echo "mount_apfs: volume could not be mounted: Resource busy" >&2; exit 75;; esac
`), 0o755))
			}
			for file, content := range tt.files {
				f.set(file, content)
			}
			var paths []string
			for _, p := range tt.paths {
				paths = append(paths, f.p(p))
			}
			v, err := take(context.Background(), paths, f.opts, f.host)
			if err == nil || v != nil {
				t.Fatalf("Take = %v, %v; want an error", v, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q lacks %q", err, tt.errHas)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("error %v is not %v", err, tt.errIs)
			}
			equal(t, "Take", f.log(), tt.want)
			f.assertClean()
		})
	}
}

func TestReleaseErrors(t *testing.T) {
	f := newFake(t)
	v, err := take(context.Background(), []string{f.p("data")}, f.opts, f.host)
	must(t, err)
	f.log()
	f.set("umount.fail", "umount: unmount(/x): Resource busy")
	f.set("tmutil-deletelocalsnapshots.fail", "Failed to delete local snapshot: busy")
	err = v.Release(context.Background())
	if err == nil || !strings.Contains(err.Error(), "lsof") || !strings.Contains(err.Error(), "tmutil deletelocalsnapshots "+date) {
		t.Fatalf("Release error = %v", err)
	}
	equal(t, "Release", f.log(), []string{
		"umount $T/mnt/$N/vol0", "umount $T/mnt/$N/vol0", "umount $T/mnt/$N/vol0", "umount -f $T/mnt/$N/vol0",
		"tmutil deletelocalsnapshots " + date,
	})
	if _, err := os.Stat(filepath.Join(f.opts.MountDir, f.name(), dateFile)); err != nil {
		t.Error("date file of an undeleted snapshot was removed")
	}
	must(t, os.Remove(filepath.Join(f.dir, "umount.fail")))
	must(t, os.Remove(filepath.Join(f.dir, "tmutil-deletelocalsnapshots.fail")))
	must(t, v.Release(context.Background()))
	equal(t, "second Release", f.log(), []string{"umount $T/mnt/$N/vol0", "tmutil deletelocalsnapshots " + date})
	f.assertClean()
}

func TestCleanup(t *testing.T) {
	f := newFake(t)
	mnt := f.opts.MountDir
	dead := "costor-backup-999999-1700000000"
	deadNoDate := "costor-x-999998-1700000000"
	live := "costor-backup-555-1700000000"
	own := "costor-backup-4242-1700000000"
	for _, n := range []string{dead, deadNoDate, live, own, "unrelated"} {
		must(t, os.MkdirAll(filepath.Join(mnt, n, "vol0"), 0o700))
		must(t, os.WriteFile(filepath.Join(mnt, n, dateFile), []byte(date+"\n"), 0o600))
	}
	must(t, os.Remove(filepath.Join(mnt, deadNoDate, dateFile)))
	mounted := []string{"/", filepath.Join(mnt, dead, "vol0"), filepath.Join(mnt, live, "vol0")}
	f.host.mounts = func() ([]string, error) { return mounted, nil }

	removed, err := cleanup(context.Background(), f.opts, f.host)
	must(t, err)
	if want := []string{filepath.Join(mnt, dead, "vol0"), "local snapshot " + date}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	equal(t, "Cleanup", f.log(), []string{
		"umount $T/mnt/" + dead + "/vol0",
		"tmutil deletelocalsnapshots " + date,
	})
	entries, _ := os.ReadDir(mnt)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{own, live, "unrelated"}; !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
}
