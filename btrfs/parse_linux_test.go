//go:build linux

package btrfs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name string
		tag  string
		pid  int
		unix int64
		ok   bool
	}{
		{"costor-backup-123-1700000000", "backup", 123, 1700000000, true},
		{"costor-nightly-db-42-17", "nightly-db", 42, 17, true},
		{"costor--42-17", "", 0, 0, false},
		{"costor-backup-0-17", "", 0, 0, false},
		{"costor-backup-+5-17", "", 0, 0, false},
		{"costor-backup-5-+17", "", 0, 0, false},
		{"costor-backup-x-17", "", 0, 0, false},
		{"costor-backup-42", "", 0, 0, false},
		{"costor-manual", "", 0, 0, false},
		{"restic-backup-1-2", "", 0, 0, false},
		{"", "", 0, 0, false},
	} {
		tag, pid, unix, ok := parseName(tc.name)
		if tag != tc.tag || pid != tc.pid || unix != tc.unix || ok != tc.ok {
			t.Errorf("parseName(%q) = %q %d %d %v, want %q %d %d %v", tc.name, tag, pid, unix, ok, tc.tag, tc.pid, tc.unix, tc.ok)
		}
	}
}

func TestSnapshotNameUnique(t *testing.T) {
	now := time.Unix(1700000000, 0)
	a, b := snapshotName("t", 7, now), snapshotName("t", 7, now)
	if a == b {
		t.Errorf("two names in the same second are equal: %s", a)
	}
	for _, n := range []string{a, b} {
		if tag, pid, _, ok := parseName(n); !ok || tag != "t" || pid != 7 {
			t.Errorf("snapshotName made %q, which parses as %q %d %v", n, tag, pid, ok)
		}
	}
}

func TestTag(t *testing.T) {
	for tag, ok := range map[string]bool{"": true, "nightly-db_1.x": true, "a/b": false, "a b": false, "..": true, strings.Repeat("a", 65): false} {
		if _, err := (Options{Tag: tag}).tag(); (err == nil) != ok {
			t.Errorf("tag %q: err %v, want ok=%v", tag, err, ok)
		}
	}
}

func TestParseSubvolumeList(t *testing.T) {
	out := "ID 256 gen 7 top level 5 path sub\n" +
		"WARNING: something\n" +
		"ID 258 gen 8 top level 256 path sub/with path in name\n" +
		"ID 259 gen 9 top level 5 path <FS_TREE>/x\n" +
		"ID x gen 9 top level 5 path bad\n" +
		"ID 260 gen 9 top level 5 path \n"
	want := []subvolume{{256, 5, "sub"}, {258, 256, "sub/with path in name"}, {259, 5, "x"}}
	if got := parseSubvolumeList([]byte(out)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseShow(t *testing.T) {
	for _, tc := range []struct {
		out  string
		path string
		ro   bool
	}{
		{"/\n\tName: \t\t\t<FS_TREE>\n\tFlags: \t\t\t-\n", "", false},
		{"sub/inner\n\tName: \t\t\tinner\n\tFlags: \t\t\treadonly\n", "sub/inner", true},
		{"", "", false},
	} {
		if path, ro := parseShow([]byte(tc.out)); path != tc.path || ro != tc.ro {
			t.Errorf("parseShow(%q) = %q %v, want %q %v", tc.out, path, ro, tc.path, tc.ro)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "44 27 0:40 / /tmp/bt/mnt rw,relatime - btrfs /dev/loop0 rw,subvolid=5,subvol=/\n" +
		"45 27 0:40 /sub /mnt/with\\040space rw,relatime shared:1 master:2 - btrfs /dev/loop0 rw\n" +
		"garbage line\n" +
		"46 27 0:41 / /x rw - tmpfs\n"
	want := []mount{
		{"0:40", "/", "/tmp/bt/mnt", "btrfs", "/dev/loop0"},
		{"0:40", "/sub", "/mnt/with space", "btrfs", "/dev/loop0"},
	}
	if got := parseMountinfo([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := unescapeMountinfo(`a\134b\777\04`); got != `a\b\777\04` {
		t.Errorf("unescape: %q", got)
	}
}

func TestMountOfAndReachable(t *testing.T) {
	mounts := []mount{
		{mountPoint: "/", root: "/"},
		{mountPoint: "/data", root: "/"},
		{mountPoint: "/data/sub", root: "/sub"},
		{mountPoint: "/data", root: "/@data"}, // mounted over the first /data
	}
	for p, want := range map[string]string{"/data/x": "/@data", "/data": "/@data", "/datax": "/", "/data/sub/y": "/sub"} {
		if m, ok := mountOf(mounts, p); !ok || m.root != want {
			t.Errorf("mountOf(%s) = %+v, want root %s", p, m, want)
		}
	}
	for _, tc := range []struct {
		m       mount
		top     string
		want    string
		visible bool
	}{
		{mount{mountPoint: "/mnt", root: "/"}, "a/.costor-snapshots/x", "/mnt/a/.costor-snapshots/x", true},
		{mount{mountPoint: "/mnt", root: "/a"}, "a/.costor-snapshots/x", "/mnt/.costor-snapshots/x", true},
		{mount{mountPoint: "/mnt", root: "/b"}, "a/.costor-snapshots/x", "", false},
		{mount{mountPoint: "/mnt", root: "/a"}, "ab/.costor-snapshots/x", "", false},
	} {
		if got, ok := reachable(tc.m, tc.top); got != tc.want || ok != tc.visible {
			t.Errorf("reachable(%+v, %s) = %s %v, want %s %v", tc.m, tc.top, got, ok, tc.want, tc.visible)
		}
	}
}

func TestViewPath(t *testing.T) {
	v := &View{
		roots: []root{{"/data", "/data"}, {"/link/home", "/srv/home"}, {"/", "/"}},
		snaps: []*snap{
			{subvol: "/srv/home/vol", dir: "/srv/home/vol/.costor-snapshots/s"},
			{subvol: "/srv", dir: "/srv/.costor-snapshots/s"},
			{subvol: "/", dir: "/.costor-snapshots/s"},
		},
	}
	for in, want := range map[string]string{
		"/data":                 "/.costor-snapshots/s/data",
		"/data/a/../b":          "/.costor-snapshots/s/data/b",
		"/link/home/u/f":        "/srv/.costor-snapshots/s/home/u/f",
		"/link/home/vol/f":      "/srv/home/vol/.costor-snapshots/s/f",
		"/link/home/volume/f":   "/srv/.costor-snapshots/s/home/volume/f",
		"/srv/home/vol":         "/srv/home/vol/.costor-snapshots/s",
		"/":                     "/.costor-snapshots/s",
		"/etc/passwd":           "/.costor-snapshots/s/etc/passwd",
		"relative/path":         "",
		"":                      "",
		"/link/home/../../etc/": "/.costor-snapshots/s/etc",
	} {
		got, err := v.Path(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("Path(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	v.roots = v.roots[:2]
	if _, err := v.Path("/etc"); err == nil {
		t.Error("Path outside every root succeeded")
	}
}

func FuzzParseSubvolumeList(f *testing.F) {
	f.Add([]byte("ID 256 gen 7 top level 5 path sub\nID 257 gen 7 top level 256 path sub/.costor-snapshots/costor-backup-1-2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range parseSubvolumeList(data) {
			if s.path == "" || strings.Contains(s.path, "\n") {
				t.Fatalf("bad entry %+v", s)
			}
		}
	})
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("45 27 0:40 /sub /mnt/with\\040space rw,relatime shared:1 - btrfs /dev/loop0 rw\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range parseMountinfo(data) {
			_, _ = mountOf([]mount{m}, m.mountPoint)
		}
		parseShow(data)
	})
}

func FuzzParseName(f *testing.F) {
	f.Add("costor-backup-123-1700000000")
	f.Fuzz(func(t *testing.T, name string) {
		tag, pid, unix, ok := parseName(name)
		if !ok {
			return
		}
		if pid <= 0 || unix <= 0 || tag == "" {
			t.Fatalf("parseName(%q) = %q %d %d", name, tag, pid, unix)
		}
	})
}
