package lvm

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name string
		tag  string
		pid  int
		ok   bool
	}{
		{"costor-backup-123-1700000000", "backup", 123, true},
		{"costor-db-nightly-9-1700000000", "db-nightly", 9, true},
		{"costor-backup-0-1700000000", "", 0, false},
		{"costor-backup-x-1700000000", "", 0, false},
		{"costor-backup-12-", "", 0, false},
		{"costor--12-1700000000", "", 0, false},
		{"costor-12-1700000000", "", 0, false},
		{"home", "", 0, false},
		{"costor-backup-123-1700000000_rimage", "", 0, false},
		{"xcostor-backup-123-1700000000", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag, pid, ok := parseName(tt.name)
			if tag != tt.tag || pid != tt.pid || ok != tt.ok {
				t.Errorf("parseName(%q) = %q, %d, %v; want %q, %d, %v", tt.name, tag, pid, ok, tt.tag, tt.pid, tt.ok)
			}
		})
	}
}

func TestSnapshotNameUniqueAndParsable(t *testing.T) {
	now := time.Unix(1_600_000_000, 0)
	a, b := snapshotName("backup", 77, now), snapshotName("backup", 77, now)
	if a == b {
		t.Fatalf("two names in one second are equal: %s", a)
	}
	for _, n := range []string{a, b} {
		if tag, pid, ok := parseName(n); !ok || tag != "backup" || pid != 77 {
			t.Errorf("parseName(%q) = %q, %d, %v", n, tag, pid, ok)
		}
	}
}

func TestTag(t *testing.T) {
	for tag, ok := range map[string]bool{"": true, "db_1.x+y-z": true, "a b": false, "a/b": false, "ä": false, strings.Repeat("a", 65): false} {
		if _, err := (Options{Tag: tag}).tag(); (err == nil) != ok {
			t.Errorf("tag %q: err = %v, want ok=%v", tag, err, ok)
		}
	}
}

func TestSizeArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: an error
	}{
		{"", []string{"--extents", "10%ORIGIN"}},
		{"10%ORIGIN", []string{"--extents", "10%ORIGIN"}},
		{"25%origin", []string{"--extents", "25%ORIGIN"}},
		{"100%FREE", []string{"--extents", "100%FREE"}},
		{"5%VG", []string{"--extents", "5%VG"}},
		{"2G", []string{"--size", "2G"}},
		{"512m", []string{"--size", "512m"}},
		{"1.5T", []string{"--size", "1.5T"}},
		{"0%ORIGIN", nil},
		{"101%ORIGIN", nil},
		{"-5%ORIGIN", nil},
		{"10%DISK", nil},
		{"10%", nil},
		{"%ORIGIN", nil},
		{"2", nil},
		{"0G", nil},
		{"-1G", nil},
		{"1e3G", nil},
		{"G", nil},
		{"two G", nil},
		{"NaNG", nil},
		{"InfG", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := sizeArgs(tt.in)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("sizeArgs(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("sizeArgs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestMountOptions(t *testing.T) {
	for fstype, want := range map[string]string{"xfs": "ro,nouuid,norecovery", "ext4": "ro,noload", "ext3": "ro,noload", "ext2": "ro", "vfat": "ro", "btrfs": ""} {
		got, err := mountOptions(fstype)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("mountOptions(%q) = %q, %v; want %q", fstype, got, err, want)
		}
	}
}

const sampleMountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
36 22 253:3 / /srv/my\040data rw,noatime shared:2 master:1 - xfs /dev/mapper/vg0-data rw,attr2
37 22 253:3 /exports /export rw - xfs /dev/mapper/vg0-data rw
38 22 0:45 / /srv rw - tmpfs tmpfs rw
39 38 253:4 / /srv rw - ext4 /dev/mapper/vg0-srv rw
`

func TestParseMountinfo(t *testing.T) {
	entries, err := parseMountinfo([]byte(sampleMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Fatalf("got %d entries", len(entries))
	}
	want := mountEntry{major: 253, minor: 3, root: "/", mountPoint: "/srv/my data", fstype: "xfs", source: "/dev/mapper/vg0-data"}
	if entries[1] != want {
		t.Errorf("entry 1 = %+v, want %+v", entries[1], want)
	}
	find := []struct{ path, mountPoint, root string }{
		{"/etc/passwd", "/", "/"},
		{"/srv/my data/x", "/srv/my data", "/"},
		{"/srv/my datax", "/srv", "/"},
		{"/srv", "/srv", "/"},
		{"/export/a", "/export", "/exports"},
		{"/exportx", "/", "/"},
	}
	for _, f := range find {
		m, ok := findMount(entries, f.path)
		if !ok || m.mountPoint != f.mountPoint || m.root != f.root {
			t.Errorf("findMount(%q) = %+v, %v; want mount point %q root %q", f.path, m, ok, f.mountPoint, f.root)
		}
	}
	// Of two mounts on /srv the later one hides the earlier.
	if m, _ := findMount(entries, "/srv/a"); m.fstype != "ext4" {
		t.Errorf("overmounted /srv: got %+v", m)
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	for _, bad := range []string{
		"22 1 8:1 / / rw",
		"22 1 8:1 / / rw - ext4",
		"22 1 8-1 / / rw - ext4 /dev/sda1 rw",
		"22 1 8:x / / rw - ext4 /dev/sda1 rw",
		"22 1 -8:1 / / rw - ext4 /dev/sda1 rw",
	} {
		if _, err := parseMountinfo([]byte(bad)); err == nil {
			t.Errorf("parseMountinfo(%q): no error", bad)
		}
	}
}

func TestParseLVs(t *testing.T) {
	lvs, err := parseLVs([]byte("  vg0:data:-wi-ao----:253:3\n  vg0:pool:twi-aotz--:-1:-1\n  vg0:thin1:Vwi-aotz--:253:5\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []lvInfo{
		{vg: "vg0", name: "data", attr: "-wi-ao----", major: 253, minor: 3},
		{vg: "vg0", name: "pool", attr: "twi-aotz--", major: -1, minor: -1},
		{vg: "vg0", name: "thin1", attr: "Vwi-aotz--", major: 253, minor: 5},
	}
	if !slices.Equal(lvs, want) {
		t.Fatalf("parseLVs = %+v", lvs)
	}
	if lvs[0].thin() || !lvs[2].thin() {
		t.Error("thin() wrong")
	}
	for _, bad := range []string{"vg0:data", "vg0:data:attr:x:1", ":data:a:1:1"} {
		if _, err := parseLVs([]byte(bad)); err == nil {
			t.Errorf("parseLVs(%q): no error", bad)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte(sampleMountinfo))
	f.Add([]byte(`1 2 3:4 /a\134b /c\04 rw - x y z`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseMountinfo(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.major < 0 || e.minor < 0 {
				t.Fatalf("negative device number in %+v", e)
			}
			findMount(entries, e.mountPoint)
		}
	})
}

func FuzzParseLVs(f *testing.F) {
	f.Add([]byte("  vg0:data:-wi-ao----:253:3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lvs, err := parseLVs(data)
		if err != nil {
			return
		}
		for _, l := range lvs {
			if l.vg == "" || l.name == "" {
				t.Fatalf("empty name in %+v", l)
			}
		}
	})
}
