//go:build linux

package lvm

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

// fakeScript stands in for lvs, lvcreate, lvremove, mount and umount: it
// appends its argv to $FAKE_DIR/log, prints $FAKE_DIR/<name>.out, and fails
// with the contents of $FAKE_DIR/<name>.fail as stderr when that file exists
// (<name>-lazy.fail for `umount -l`).
const fakeScript = `#!/bin/sh
name=$(basename "$0")
echo "$name $*" >> "$FAKE_DIR/log"
fail="$FAKE_DIR/$name.fail"
if [ "$name" = umount ] && [ "$1" = -l ]; then fail="$FAKE_DIR/$name-lazy.fail"; fi
if [ -f "$fail" ]; then cat "$fail" >&2; exit 5; fi
if [ -f "$FAKE_DIR/$name.out" ]; then cat "$FAKE_DIR/$name.out"; fi
exit 0
`

const lvsOutput = `  vg0:data:-wi-ao----:253:3
  vg0:home:-wi-ao----:253:4
  vg0:thin1:Vwi-aotz--:253:5
  vg0:pool:twi-aotz--:-1:-1
  vg1:srv:-wi-ao----:253:6
`

type fake struct {
	t    *testing.T
	dir  string // holds the scripts, the log and the fake filesystem tree
	host host
	opts Options
}

var fakeClock = time.Unix(1_700_000_000, 0)

// newFake puts the stand-in commands first on PATH and builds a mount table
// whose mount points are real directories under a temporary directory:
//
//	/            ext4 on /dev/sda1 (not LVM)
//	$T/data      xfs  on vg0/data
//	$T/bind      xfs  on vg0/data, bind of its /exports
//	$T/home      ext4 on vg0/home
//	$T/thin      ext4 on vg0/thin1 (thin)
//	$T/srv       ext4 on vg1/srv
//	$T/btr       btrfs on vg0/home's numbers faked as 253:7 (no such LV)
func newFake(t *testing.T) *fake {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	must(t, os.Mkdir(bin, 0o755))
	for _, name := range []string{"lvs", "lvcreate", "lvremove", "mount", "umount"} {
		must(t, os.WriteFile(filepath.Join(bin, name), []byte(fakeScript), 0o755))
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_DIR", dir)
	for _, d := range []string{"data/db", "exports/x", "bind/x", "home/alice", "thin", "srv", "btr"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	mountinfo := fmt.Sprintf(`1 0 8:1 / / rw - ext4 /dev/sda1 rw
2 1 253:3 / %[1]s/data rw - xfs /dev/mapper/vg0-data rw
3 1 253:3 /exports %[1]s/bind rw - xfs /dev/mapper/vg0-data rw
4 1 253:4 / %[1]s/home rw - ext4 /dev/mapper/vg0-home rw
5 1 253:5 / %[1]s/thin rw - ext4 /dev/mapper/vg0-thin1 rw
6 1 253:6 / %[1]s/srv rw - ext4 /dev/mapper/vg1-srv rw
7 1 253:3 / %[1]s/btr rw - btrfs /dev/mapper/vg0-data rw
`, dir)
	must(t, os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(mountinfo), 0o644))
	f := &fake{t: t, dir: dir}
	f.set("lvs.out", lvsOutput)
	fakeClock = fakeClock.Add(time.Hour) // names stay unique across tests
	now := fakeClock
	f.host = host{
		mountinfo:  filepath.Join(dir, "mountinfo"),
		sysBlock:   filepath.Join(dir, "sys"),
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

func (f *fake) clear(file string) { must(f.t, os.Remove(filepath.Join(f.dir, file))) }

// log returns and forgets the commands run so far, with $T for the temporary
// directory and $N, $N1 … for the snapshot names in order of creation.
func (f *fake) log() []string {
	data, err := os.ReadFile(filepath.Join(f.dir, "log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	must(f.t, err)
	must(f.t, os.Remove(filepath.Join(f.dir, "log")))
	s := strings.ReplaceAll(string(data), f.dir, "$T")
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// name is the n-th snapshot name this test's Take makes.
func (f *fake) name(n int) string {
	return fmt.Sprintf("costor-backup-4242-%d", f.host.now().Unix()+int64(n))
}

func (f *fake) p(rel string) string { return filepath.Join(f.dir, rel) }

const lvsCmd = "lvs --noheadings --separator : -o vg_name,lv_name,lv_attr,lv_kernel_major,lv_kernel_minor"

func TestTakeCommandSequence(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		size  string
		// want is the log of Take; $N0, $N1 are the snapshot names.
		want []string
		// paths maps an original (relative to $T) to its place in the view.
		mapped map[string]string
		// release is the log of Release.
		release []string
	}{
		{
			name:  "xfs",
			paths: []string{"data/db"},
			want: []string{
				lvsCmd,
				"lvcreate --snapshot --name $N0 --extents 10%ORIGIN vg0/data",
				"mount -t xfs -o ro,nouuid,norecovery /dev/vg0/$N0 $T/mnt/$N0",
			},
			mapped:  map[string]string{"data/db": "$T/mnt/$N0/db", "data/db/f.sql": "$T/mnt/$N0/db/f.sql"},
			release: []string{"umount $T/mnt/$N0", "lvremove -f vg0/$N0"},
		},
		{
			name:  "ext4 absolute size",
			paths: []string{"home/alice"},
			size:  "2G",
			want: []string{
				lvsCmd,
				"lvcreate --snapshot --name $N0 --size 2G vg0/home",
				"mount -t ext4 -o ro,noload /dev/vg0/$N0 $T/mnt/$N0",
			},
			mapped:  map[string]string{"home/alice/x": "$T/mnt/$N0/alice/x"},
			release: []string{"umount $T/mnt/$N0", "lvremove -f vg0/$N0"},
		},
		{
			name:  "thin takes no size",
			paths: []string{"thin"},
			size:  "20%FREE",
			want: []string{
				lvsCmd,
				"lvcreate --snapshot --name $N0 --setactivationskip n vg0/thin1",
				"mount -t ext4 -o ro,noload /dev/vg0/$N0 $T/mnt/$N0",
			},
			mapped:  map[string]string{"thin": "$T/mnt/$N0"},
			release: []string{"umount $T/mnt/$N0", "lvremove -f vg0/$N0"},
		},
		{
			name:  "one snapshot per LV, bind mounts share it",
			paths: []string{"data/db", "bind/x", "srv"},
			size:  "5%VG",
			want: []string{
				lvsCmd,
				"lvcreate --snapshot --name $N0 --extents 5%VG vg0/data",
				"mount -t xfs -o ro,nouuid,norecovery /dev/vg0/$N0 $T/mnt/$N0",
				"lvcreate --snapshot --name $N1 --extents 5%VG vg1/srv",
				"mount -t ext4 -o ro,noload /dev/vg1/$N1 $T/mnt/$N1",
			},
			mapped: map[string]string{
				"data/db/a": "$T/mnt/$N0/db/a",
				"bind/x/b":  "$T/mnt/$N0/exports/x/b",
				"srv/c":     "$T/mnt/$N1/c",
			},
			release: []string{"umount $T/mnt/$N1", "lvremove -f vg1/$N1", "umount $T/mnt/$N0", "lvremove -f vg0/$N0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.opts.SnapshotSize = tt.size
			var paths []string
			for _, p := range tt.paths {
				paths = append(paths, f.p(p))
			}
			v, err := take(context.Background(), paths, f.opts, f.host)
			if err != nil {
				t.Fatal(err)
			}
			names := strings.NewReplacer("$N0", f.name(0), "$N1", f.name(1))
			expand := func(lines []string) []string {
				out := make([]string, len(lines))
				for i, l := range lines {
					out[i] = names.Replace(l)
				}
				return out
			}
			if got, want := f.log(), expand(tt.want); !slices.Equal(got, want) {
				t.Errorf("Take ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for orig, want := range tt.mapped {
				got, err := v.Path(f.p(orig))
				if err != nil {
					t.Fatal(err)
				}
				if got = strings.ReplaceAll(got, f.dir, "$T"); got != names.Replace(want) {
					t.Errorf("Path(%s) = %s, want %s", orig, got, names.Replace(want))
				}
			}
			if _, err := v.Path(f.p("elsewhere")); err == nil {
				t.Error("Path of an unsnapshotted path: no error")
			}
			for _, n := range []string{f.name(0), f.name(1)} {
				if info, err := os.Stat(filepath.Join(f.opts.MountDir, n)); err == nil && info.Mode().Perm() != 0o700 {
					t.Errorf("mount directory mode %v, want 0700", info.Mode())
				}
			}
			if err := v.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, want := f.log(), expand(tt.release); !slices.Equal(got, want) {
				t.Errorf("Release ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			assertNoMountDirs(t, f)
			if err := v.Release(context.Background()); err != nil || f.log() != nil {
				t.Errorf("second Release: %v, ran commands", err)
			}
		})
	}
}

func assertNoMountDirs(t *testing.T, f *fake) {
	t.Helper()
	entries, _ := os.ReadDir(f.opts.MountDir)
	if len(entries) != 0 {
		t.Errorf("mount directories left: %v", entries)
	}
}

// TestTakeUndoesOnError checks that every failure inside Take leaves nothing
// behind: exactly the steps that succeeded are undone.
func TestTakeUndoesOnError(t *testing.T) {
	tests := []struct {
		name    string
		paths   []string
		size    string
		fail    map[string]string // file → stderr
		cancel  bool
		want    []string
		errHas  []string
		errIs   error
		noMount bool
	}{
		{
			name:   "bad size policy runs nothing",
			paths:  []string{"data"},
			size:   "10",
			want:   nil,
			errHas: []string{`lvm snapshot size "10"`, "needs a unit"},
		},
		{
			name:   "lvs fails",
			paths:  []string{"data"},
			fail:   map[string]string{"lvs.fail": "  WARNING: Running as a non-root user."},
			want:   []string{lvsCmd},
			errHas: []string{"non-root", "are you root?"},
		},
		{
			name:   "not on LVM",
			paths:  []string{"data", "."},
			want:   []string{lvsCmd},
			errIs:  ErrNotLVM,
			errHas: []string{"/dev/sda1 (ext4)"},
		},
		{
			name:   "btrfs refused",
			paths:  []string{"btr"},
			want:   []string{lvsCmd},
			errHas: []string{"--snapshot btrfs"},
		},
		{
			name:   "lvcreate fails: nothing to remove",
			paths:  []string{"data"},
			fail:   map[string]string{"lvcreate.fail": "  Volume group \"vg0\" has insufficient free space (10 extents): 256 required."},
			want:   []string{lvsCmd, "lvcreate --snapshot --name $N0 --extents 10%ORIGIN vg0/data"},
			errHas: []string{"insufficient free space", "vgs"},
		},
		{
			name:  "mount fails: LV removed",
			paths: []string{"data"},
			fail:  map[string]string{"mount.fail": "mount: wrong fs type, bad option, bad superblock"},
			want: []string{
				lvsCmd,
				"lvcreate --snapshot --name $N0 --extents 10%ORIGIN vg0/data",
				"mount -t xfs -o ro,nouuid,norecovery /dev/vg0/$N0 $T/mnt/$N0",
				"lvremove -f vg0/$N0",
			},
			errHas: []string{"wrong fs type", "vg0/$N0"},
		},
		{
			name:  "mount and lvremove fail: both reported",
			paths: []string{"data"},
			fail: map[string]string{
				"mount.fail":    "mount: wrong fs type",
				"lvremove.fail": "  Logical volume vg0/x contains a filesystem in use.",
			},
			want: []string{
				lvsCmd,
				"lvcreate --snapshot --name $N0 --extents 10%ORIGIN vg0/data",
				"mount -t xfs -o ro,nouuid,norecovery /dev/vg0/$N0 $T/mnt/$N0",
				"lvremove -f vg0/$N0",
			},
			errHas: []string{"wrong fs type", "in use", "lvremove vg0/$N0"},
		},
		{
			name:   "cancelled before the first snapshot",
			paths:  []string{"data"},
			cancel: true,
			want:   nil,
			errIs:  context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			f.opts.SnapshotSize = tt.size
			for file, msg := range tt.fail {
				f.set(file, msg)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			var paths []string
			for _, p := range tt.paths {
				paths = append(paths, f.p(p))
			}
			v, err := take(ctx, paths, f.opts, f.host)
			if err == nil || v != nil {
				t.Fatalf("Take = %v, %v; want an error", v, err)
			}
			r := strings.NewReplacer("$N0", f.name(0), "$T", f.dir)
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), r.Replace(s)) {
					t.Errorf("error %q lacks %q", err, r.Replace(s))
				}
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("error %v is not %v", err, tt.errIs)
			}
			var want []string
			for _, l := range tt.want {
				want = append(want, strings.ReplaceAll(l, "$N0", f.name(0)))
			}
			if got := f.log(); !slices.Equal(got, want) {
				t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			assertNoMountDirs(t, f)
		})
	}
}

func TestTakeSecondLVFailsUndoesFirst(t *testing.T) {
	f := newFake(t)
	// A stand-in lvcreate that fails only for vg1.
	must(t, os.WriteFile(filepath.Join(f.dir, "bin", "lvcreate"), []byte(`#!/bin/sh
echo "lvcreate $*" >> "$FAKE_DIR/log"
case "$*" in *vg1/*) echo "  Volume group \"vg1\" not found" >&2; exit 5;; esac
`), 0o755))
	_, err := take(context.Background(), []string{f.p("data"), f.p("srv")}, f.opts, f.host)
	if err == nil || !strings.Contains(err.Error(), `"vg1" not found`) {
		t.Fatalf("Take error = %v", err)
	}
	n0, n1 := f.name(0), f.name(1)
	want := []string{
		lvsCmd,
		"lvcreate --snapshot --name " + n0 + " --extents 10%ORIGIN vg0/data",
		"mount -t xfs -o ro,nouuid,norecovery /dev/vg0/" + n0 + " $T/mnt/" + n0,
		"lvcreate --snapshot --name " + n1 + " --extents 10%ORIGIN vg1/srv",
		"umount $T/mnt/" + n0,
		"lvremove -f vg0/" + n0,
	}
	if got := f.log(); !slices.Equal(got, want) {
		t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	assertNoMountDirs(t, f)
}

func TestReleaseErrors(t *testing.T) {
	t.Run("umount fails: lvremove still tried, Release retries", func(t *testing.T) {
		f := newFake(t)
		v, err := take(context.Background(), []string{f.p("data")}, f.opts, f.host)
		must(t, err)
		f.log()
		f.set("umount.fail", "umount: target is busy.")
		f.set("umount-lazy.fail", "umount: permission denied")
		f.set("lvremove.fail", "  Logical volume vg0/x in use.")
		n, dir := f.name(0), "$T/mnt/"+f.name(0)
		err = v.Release(context.Background())
		if err == nil || !strings.Contains(err.Error(), "target is busy") || !strings.Contains(err.Error(), "fuser -m") || !strings.Contains(err.Error(), "vg0/"+n) {
			t.Fatalf("Release error = %v", err)
		}
		want := []string{"umount " + dir, "umount " + dir, "umount " + dir, "umount -l " + dir, "lvremove -f vg0/" + n}
		if got := f.log(); !slices.Equal(got, want) {
			t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if _, err := os.Stat(filepath.Join(f.opts.MountDir, n)); err != nil {
			t.Error("mount directory of a still-mounted snapshot was removed")
		}
		f.clear("umount.fail")
		f.clear("lvremove.fail")
		must(t, v.Release(context.Background()))
		if got, want := f.log(), []string{"umount " + dir, "lvremove -f vg0/" + n}; !slices.Equal(got, want) {
			t.Errorf("second Release ran %q, want %q", got, want)
		}
		assertNoMountDirs(t, f)
	})
	t.Run("busy umount falls back to lazy", func(t *testing.T) {
		f := newFake(t)
		v, err := take(context.Background(), []string{f.p("home")}, f.opts, f.host)
		must(t, err)
		f.log()
		f.set("umount.fail", "umount: target is busy.")
		must(t, v.Release(context.Background()))
		n, dir := f.name(0), "$T/mnt/"+f.name(0)
		want := []string{"umount " + dir, "umount " + dir, "umount " + dir, "umount -l " + dir, "lvremove -f vg0/" + n}
		if got := f.log(); !slices.Equal(got, want) {
			t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		assertNoMountDirs(t, f)
	})
	t.Run("lvremove fails: error names the LV, Release retries only that", func(t *testing.T) {
		f := newFake(t)
		v, err := take(context.Background(), []string{f.p("data")}, f.opts, f.host)
		must(t, err)
		f.log()
		f.set("lvremove.fail", "  Failed to find logical volume")
		n := f.name(0)
		err = v.Release(context.Background())
		if err == nil || !strings.Contains(err.Error(), "remove snapshot vg0/"+n) || !strings.Contains(err.Error(), "Failed to find") {
			t.Fatalf("Release error = %v", err)
		}
		f.log()
		f.clear("lvremove.fail")
		must(t, v.Release(context.Background()))
		if got, want := f.log(), []string{"lvremove -f vg0/" + n}; !slices.Equal(got, want) {
			t.Errorf("second Release ran %q, want %q", got, want)
		}
	})
	t.Run("cancelled ctx still releases", func(t *testing.T) {
		f := newFake(t)
		v, err := take(context.Background(), []string{f.p("data")}, f.opts, f.host)
		must(t, err)
		f.log()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		must(t, v.Release(ctx))
		if got := f.log(); len(got) != 2 {
			t.Errorf("Release with a cancelled ctx ran %q", got)
		}
	})
}

func TestCleanup(t *testing.T) {
	f := newFake(t)
	dead := "costor-backup-999999-1700000000"
	deadOtherTag := "costor-db-x-999998-1700000001"
	live := "costor-backup-555-1700000000"
	own := "costor-backup-4242-1700000000"
	f.set("lvs.out", lvsOutput+strings.Join([]string{
		"  vg0:" + dead + ":swi-aos---:253:9",
		"  vg1:" + deadOtherTag + ":Vwi-a-tz-k:-1:-1",
		"  vg0:" + live + ":swi-aos---:253:10",
		"  vg0:" + own + ":swi-aos---:253:11",
		"  vg0:costor-notours:-wi-a-----:253:12",
	}, "\n")+"\n")
	mnt := f.opts.MountDir
	for _, n := range []string{dead, live, own, "costor-backup-999997-1700000002"} {
		must(t, os.MkdirAll(filepath.Join(mnt, n), 0o700))
	}
	data, err := os.ReadFile(f.host.mountinfo)
	must(t, err)
	data = append(data, fmt.Sprintf("20 1 253:9 / %s/%s ro - xfs /dev/mapper/vg0-%s ro\n21 1 253:10 / %s/%s ro - xfs /dev/mapper/vg0-x ro\n",
		mnt, dead, strings.ReplaceAll(dead, "-", "--"), mnt, live)...)
	must(t, os.WriteFile(f.host.mountinfo, data, 0o644))

	removed, err := cleanup(context.Background(), f.opts, f.host)
	must(t, err)
	wantRemoved := []string{filepath.Join(mnt, dead), "vg0/" + dead, "vg1/" + deadOtherTag}
	if !slices.Equal(removed, wantRemoved) {
		t.Errorf("removed %q, want %q", removed, wantRemoved)
	}
	want := []string{lvsCmd, "umount $T/mnt/" + dead, "lvremove -f vg0/" + dead, "lvremove -f vg1/" + deadOtherTag}
	if got := f.log(); !slices.Equal(got, want) {
		t.Errorf("ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	entries, _ := os.ReadDir(mnt)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{own, live}; !slices.Equal(left, want) {
		t.Errorf("mount directories left %q, want %q", left, want)
	}

	t.Run("errors are reported and the rest still removed", func(t *testing.T) {
		f.set("lvremove.fail", "  Logical volume in use.")
		removed, err := cleanup(context.Background(), f.opts, f.host)
		if err == nil || !strings.Contains(err.Error(), "vg0/"+dead) || !strings.Contains(err.Error(), "vg1/"+deadOtherTag) {
			t.Errorf("Cleanup error = %v", err)
		}
		if !slices.Equal(removed, []string{filepath.Join(mnt, dead)}) {
			t.Errorf("removed %q", removed)
		}
	})
}

func TestSupported(t *testing.T) {
	f := newFake(t)
	for majmin, uuid := range map[string]string{"253:3": "LVM-abcdefXYZ", "253:6": "CRYPT-LUKS2-123"} {
		must(t, os.MkdirAll(filepath.Join(f.host.sysBlock, majmin, "dm"), 0o755))
		must(t, os.WriteFile(filepath.Join(f.host.sysBlock, majmin, "dm", "uuid"), []byte(uuid+"\n"), 0o644))
	}
	for rel, want := range map[string]bool{"data/db": true, "bind/x": true, "srv": false, ".": false} {
		got, err := supported(f.p(rel), f.host)
		if err != nil || got != want {
			t.Errorf("supported(%s) = %v, %v; want %v", rel, got, err, want)
		}
	}
	if _, err := supported(f.p("missing"), f.host); err == nil {
		t.Error("supported of a missing path: no error")
	}
}
