//go:build linux

package zfs

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

// This machine has no ZFS: these tests put a stand-in "zfs" first on PATH
// that records its arguments and prints canned output, and replace the
// statfs check and mount table through the package's seams.

const standIn = `#!/bin/sh
echo "$*" >> "$ZFS_LOG"
if [ "$1" = snapshot ] && [ -n "$ZFS_FAIL_SNAPSHOT" ]; then
	case "$*" in *"$ZFS_FAIL_SNAPSHOT"*)
		echo "cannot create snapshots : permission denied" >&2; exit 1;;
	esac
fi
if [ "$1" = destroy ] && [ -n "$ZFS_FAIL_DESTROY" ]; then
	case "$*" in *"$ZFS_FAIL_DESTROY"*)
		echo "cannot destroy snapshot $2: dataset is busy" >&2; exit 1;;
	esac
fi
if [ "$1" = destroy ] && [ -n "$ZFS_DESTROY_MISSING" ]; then
	echo "could not find any snapshots to destroy; check snapshot names." >&2; exit 1
fi
if [ "$1" = list ]; then cat "$ZFS_LIST"; fi
exit 0
`

type fake struct {
	t    *testing.T
	base string // a temp dir standing in for / of the fake pools
	log  string
}

// newFake installs the stand-in zfs and a mount table of dataset → path
// below a fresh temp dir, creating those directories.
func newFake(t *testing.T, datasets map[string]string) *fake {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "zfs"), []byte(standIn), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fake{t: t, base: t.TempDir(), log: filepath.Join(bin, "log")}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("ZFS_LOG", f.log)
	t.Setenv("ZFS_FAIL_SNAPSHOT", "")
	t.Setenv("ZFS_FAIL_DESTROY", "")
	t.Setenv("ZFS_DESTROY_MISSING", "")
	var mounts []mount
	for ds, dir := range datasets {
		mp := f.path(dir)
		if err := os.MkdirAll(mp, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, mount{dataset: ds, mountPoint: mp})
	}
	oldOnZFS, oldMounts := onZFS, zfsMounts
	onZFS = func(p string) (bool, error) { _, ok := mountOf(mounts, p); return ok, nil }
	zfsMounts = func() ([]mount, error) { return mounts, nil }
	t.Cleanup(func() { onZFS, zfsMounts = oldOnZFS, oldMounts })
	return f
}

func (f *fake) path(rel string) string { return filepath.Join(f.base, rel) }

func (f *fake) mkdir(rel string) string {
	p := f.path(rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// calls returns and forgets the recorded zfs command lines.
func (f *fake) calls() []string {
	data, err := os.ReadFile(f.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	os.Remove(f.log)
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func TestTakeRelease(t *testing.T) {
	f := newFake(t, map[string]string{
		"tank/data":       "data",
		"tank/data/child": "data/child",
		"other/x":         "other",
		"tank/else":       "else", // not below a backup path: not snapshotted
	})
	data, deep := f.path("data"), f.mkdir("other/deep/dir")
	v, err := Take(t.Context(), []string{data, deep}, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	n := v.name
	if tag, pid, _, ok := parseName(n); !ok || tag != "backup" || pid != os.Getpid() {
		t.Fatalf("snapshot name %q", n)
	}
	want := []string{
		"snapshot other/x@" + n,
		"snapshot tank/data@" + n + " tank/data/child@" + n, // one atomic command per pool
	}
	if got := f.calls(); !slices.Equal(got, want) {
		t.Errorf("Take ran\n%q\nwant\n%q", got, want)
	}
	for in, out := range map[string]string{
		"data":                 "data/.zfs/snapshot/" + n,
		"data/f.txt":           "data/.zfs/snapshot/" + n + "/f.txt",
		"data/child/g":         "data/child/.zfs/snapshot/" + n + "/g",
		"data/children/g":      "data/.zfs/snapshot/" + n + "/children/g",
		"other/deep/dir/a/b/h": "other/.zfs/snapshot/" + n + "/deep/dir/a/b/h",
	} {
		got, err := v.Path(f.path(in))
		if err != nil || got != f.path(out) {
			t.Errorf("Path(%s) = %s, %v; want %s", in, got, err, f.path(out))
		}
	}
	for _, bad := range []string{f.path("else/x"), f.path("other/deep"), "relative"} {
		if p, err := v.Path(bad); err == nil {
			t.Errorf("Path(%s) = %s, want an error", bad, p)
		}
	}

	if err := v.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	want = []string{"destroy other/x@" + n, "destroy tank/data/child@" + n, "destroy tank/data@" + n}
	if got := sorted(f.calls()); !slices.Equal(got, want) {
		t.Errorf("Release ran\n%q\nwant\n%q", got, want)
	}
	if err := v.Release(t.Context()); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if got := f.calls(); got != nil {
		t.Errorf("second Release ran %q", got)
	}
	if _, err := v.Path(data); err == nil {
		t.Error("Path after Release succeeded")
	}
}

func TestTakeSymlinkAndTag(t *testing.T) {
	f := newFake(t, map[string]string{"tank/home": "home"})
	link := filepath.Join(t.TempDir(), "h")
	if err := os.Symlink(f.path("home"), link); err != nil {
		t.Fatal(err)
	}
	v, err := Take(t.Context(), []string{link}, Options{Tag: "nightly-db"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release(t.Context())
	if !strings.HasPrefix(v.name, "costor-nightly-db-") {
		t.Errorf("name %s does not carry the tag", v.name)
	}
	if got, _ := v.Path(link + "/u/f"); got != f.path("home/.zfs/snapshot/"+v.name+"/u/f") {
		t.Errorf("Path through a symlink = %s", got)
	}
	if _, err := Take(t.Context(), []string{link}, Options{Tag: "a@b"}); err == nil {
		t.Error("a tag holding '@' was accepted")
	}
}

// A failing zfs snapshot gives an error naming the command and its stderr,
// and destroys what the other pools' commands already made.
func TestTakeSnapshotFails(t *testing.T) {
	f := newFake(t, map[string]string{"alpha/a": "a", "tank/b": "b"})
	t.Setenv("ZFS_FAIL_SNAPSHOT", "tank/")
	_, err := Take(t.Context(), []string{f.path("a"), f.path("b")}, Options{})
	if err == nil {
		t.Fatal("Take succeeded")
	}
	for _, want := range []string{"zfs snapshot tank/b@costor-backup-", "permission denied", f.path("b"), "zfs allow"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	calls := f.calls()
	if len(calls) != 3 || !strings.HasPrefix(calls[0], "snapshot alpha/a@") || !strings.HasPrefix(calls[1], "snapshot tank/b@") ||
		calls[2] != "destroy "+strings.TrimPrefix(calls[0], "snapshot ") {
		t.Errorf("calls %q: want snapshot alpha, failing snapshot tank, destroy alpha", calls)
	}

	// Failing on the only pool: nothing was made, nothing to destroy.
	_, err = Take(t.Context(), []string{f.path("b")}, Options{})
	if err == nil {
		t.Fatal("Take succeeded")
	}
	if calls := f.calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], "snapshot tank/b@") {
		t.Errorf("calls %q", calls)
	}
}

func TestReleaseDestroyFails(t *testing.T) {
	f := newFake(t, map[string]string{"tank/a": "a", "tank/b": "b"})
	v, err := Take(t.Context(), []string{f.path("a"), f.path("b")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.calls()
	t.Setenv("ZFS_FAIL_DESTROY", "tank/b@")
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // Release must still work after Ctrl-C
	err = v.Release(ctx)
	if err == nil || !strings.Contains(err.Error(), "zfs destroy tank/b@"+v.name) || !strings.Contains(err.Error(), "dataset is busy") {
		t.Fatalf("Release: %v, want the failing destroy and its stderr", err)
	}
	if got := sorted(f.calls()); !slices.Equal(got, []string{"destroy tank/a@" + v.name, "destroy tank/b@" + v.name}) {
		t.Errorf("calls %q", got)
	}
	t.Setenv("ZFS_FAIL_DESTROY", "")
	if err := v.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := f.calls(); !slices.Equal(got, []string{"destroy tank/b@" + v.name}) {
		t.Errorf("second Release ran %q, want only the failed destroy again", got)
	}
}

func TestTakeUnsupported(t *testing.T) {
	f := newFake(t, map[string]string{"tank/a": "a"})
	plain := t.TempDir()
	_, err := Take(t.Context(), []string{f.path("a"), plain}, Options{})
	if !errors.Is(err, ErrNotZFS) || !strings.Contains(err.Error(), plain) {
		t.Errorf("Take of a non-ZFS path: %v", err)
	}
	if ok, _ := Supported(plain); ok {
		t.Error("Supported(plain dir) = true")
	}
	if _, err := Take(t.Context(), nil, Options{}); err == nil {
		t.Error("Take of no paths succeeded")
	}
	if _, err := Take(t.Context(), []string{"rel"}, Options{}); err == nil {
		t.Error("Take of a relative path succeeded")
	}
	if calls := f.calls(); calls != nil {
		t.Errorf("zfs ran: %q", calls)
	}

	t.Setenv("PATH", t.TempDir()) // no zfs at all
	_, err = Take(t.Context(), []string{f.path("a")}, Options{})
	if err == nil || !strings.Contains(err.Error(), "zfs snapshot tank/a@") {
		t.Errorf("Take without zfs installed: %v", err)
	}
}

func TestRealSupported(t *testing.T) {
	// The real statfs check: nothing on this machine is ZFS.
	if ok, err := Supported(t.TempDir()); ok || err != nil {
		t.Errorf("Supported = %v, %v", ok, err)
	}
	if _, err := Supported(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Supported of a missing path gave no error")
	}
}

func TestCleanup(t *testing.T) {
	f := newFake(t, nil)
	now := time.Now().Unix()
	me := os.Getpid()
	dead := fmt.Sprintf("tank/a@costor-backup-999999-%d", now)
	reused := fmt.Sprintf("tank/c@costor-nightly-db-%d-1000", me)
	list := strings.Join([]string{
		dead,
		fmt.Sprintf("tank/b@costor-backup-%d-%d", me, now), // ours, alive
		reused,
		"tank/d@manual-2024",
		"tank/e@costor-x",
		"tank/f", // a dataset, never destroyed
	}, "\n") + "\n"
	listFile := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(listFile, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ZFS_LIST", listFile)

	removed, err := Cleanup(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{dead, reused}) {
		t.Errorf("removed %q, want %q", removed, []string{dead, reused})
	}
	want := []string{"list -H -t snapshot -o name", "destroy " + dead, "destroy " + reused}
	if got := f.calls(); !slices.Equal(got, want) {
		t.Errorf("Cleanup ran\n%q\nwant\n%q", got, want)
	}

	t.Setenv("ZFS_FAIL_DESTROY", "tank/a@")
	removed, err = Cleanup(t.Context(), Options{})
	if err == nil || !strings.Contains(err.Error(), "dataset is busy") || !slices.Equal(removed, []string{reused}) {
		t.Errorf("Cleanup with a failing destroy: %q, %v", removed, err)
	}
}

func TestDestroyRefusesDatasets(t *testing.T) {
	f := newFake(t, nil)
	for _, name := range []string{"tank/data", "@x", "tank@", ""} {
		if err := destroy(t.Context(), Options{}, name); err == nil {
			t.Errorf("destroy(%q) succeeded", name)
		}
	}
	if calls := f.calls(); calls != nil {
		t.Errorf("zfs ran: %q", calls)
	}
}

func TestProcessAlive(t *testing.T) {
	now := time.Now().Unix()
	for _, tc := range []struct {
		pid  int
		t    int64
		want bool
	}{
		{os.Getpid(), now, true},
		{os.Getpid(), 1000, false},
		{999999, now, false},
	} {
		if got := processAlive(tc.pid, tc.t); got != tc.want {
			t.Errorf("processAlive(%d, %d) = %v, want %v", tc.pid, tc.t, got, tc.want)
		}
	}
}

// A snapshot command killed by Ctrl-C may still have made its snapshots:
// Take tries to destroy them, and a snapshot that is not there is no error.
func TestTakeInterrupted(t *testing.T) {
	f := newFake(t, map[string]string{"tank/a": "a"})
	ctx, cancel := context.WithCancel(t.Context())
	run := func(_ context.Context, name string, args ...string) ([]byte, error) {
		if args[0] == "snapshot" {
			cancel() // Ctrl-C arrives while zfs snapshot runs
			return []byte("signal: interrupt"), errors.New("signal: interrupt")
		}
		f.t.Logf("%s %s", name, strings.Join(args, " "))
		out, err := Options{}.run(t.Context(), name, args...)
		return out, err
	}
	t.Setenv("ZFS_DESTROY_MISSING", "1")
	_, err := Take(ctx, []string{f.path("a")}, Options{Run: run})
	if err == nil || !strings.Contains(err.Error(), "zfs snapshot tank/a@") || strings.Contains(err.Error(), "already made") {
		t.Fatalf("Take: %v", err)
	}
	calls := f.calls()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "destroy tank/a@costor-backup-") {
		t.Errorf("calls %q, want one destroy", calls)
	}
	if _, err := Take(ctx, []string{f.path("a")}, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Take with a cancelled context: %v", err)
	}
}
