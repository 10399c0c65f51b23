//go:build linux

package zfs

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
		{"costor-backup-x-17", "", 0, 0, false},
		{"costor-backup-42", "", 0, 0, false},
		{"autosnap_2024", "", 0, 0, false},
	} {
		tag, pid, unix, ok := parseName(tc.name)
		if tag != tc.tag || pid != tc.pid || unix != tc.unix || ok != tc.ok {
			t.Errorf("parseName(%q) = %q %d %d %v, want %q %d %d %v", tc.name, tag, pid, unix, ok, tc.tag, tc.pid, tc.unix, tc.ok)
		}
	}
	now := time.Unix(1700000000, 0)
	if a, b := snapshotName("t", 1, now), snapshotName("t", 1, now); a == b {
		t.Errorf("two names in one second are equal: %s", a)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "30 1 0:50 / /tank rw - zfs tank rw,xattr\n" +
		"31 30 0:51 / /tank/my\\040data rw shared:3 - zfs tank/my\\040data rw\n" +
		"32 31 0:52 / /tank/data/.zfs/snapshot/s rw - zfs tank/data@s ro\n" +
		"33 1 0:53 / /boot rw - ext4 /dev/sda1 rw\n" +
		"bad\n"
	want := []mount{{"tank", "/tank"}, {"tank/my data", "/tank/my data"}}
	if got := parseMountinfo([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseSnapshotList(t *testing.T) {
	in := "tank/a@s1\ntank@s2\n\ntank/b\n@x\ny@\nwarning: x@y@z\n"
	want := []string{"tank/a@s1", "tank@s2"}
	if got := parseSnapshotList([]byte(in)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMountOf(t *testing.T) {
	mounts := []mount{{"rpool/ROOT", "/"}, {"tank/a", "/srv"}, {"tank/b", "/srv/b"}}
	for p, want := range map[string]string{"/srv/b/x": "tank/b", "/srv/bb": "tank/a", "/etc": "rpool/ROOT", "/srv": "tank/a"} {
		if m, ok := mountOf(mounts, p); !ok || m.dataset != want {
			t.Errorf("mountOf(%s) = %+v", p, m)
		}
	}
	if pool("tank/a/b") != "tank" || pool("tank") != "tank" {
		t.Error("pool")
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("31 30 0:51 / /tank/my\\040data rw shared:3 - zfs tank/my\\040data rw\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range parseMountinfo(data) {
			if strings.Contains(m.dataset, "@") {
				t.Fatalf("snapshot mount kept: %+v", m)
			}
		}
	})
}

func FuzzParseSnapshotList(f *testing.F) {
	f.Add([]byte("tank/a@costor-backup-1-2\ntank@x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, n := range parseSnapshotList(data) {
			ds, s, ok := strings.Cut(n, "@")
			if !ok || ds == "" || s == "" {
				t.Fatalf("not a snapshot name: %q", n)
			}
		}
	})
}

func FuzzParseName(f *testing.F) {
	f.Add("costor-backup-123-1700000000")
	f.Fuzz(func(t *testing.T, name string) {
		if tag, pid, unix, ok := parseName(name); ok && (pid <= 0 || unix <= 0 || tag == "") {
			t.Fatalf("parseName(%q) = %q %d %d", name, tag, pid, unix)
		}
	})
}
