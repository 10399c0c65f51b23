//go:build linux

package fusefs

import (
	"bytes"
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/tree"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

func snapAt(host string, t time.Time, idHex string) Snapshot {
	var sid id.ID
	b := []byte(idHex)
	for len(b) < 64 {
		b = append(b, '0')
	}
	parsed, err := id.Parse(string(b))
	if err != nil {
		panic(err)
	}
	sid = parsed
	return Snapshot{ID: sid, Host: host, Time: t}
}

func TestBuildViewNames(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	snaps := []Snapshot{
		snapAt("b", t0.Add(2*time.Hour), "bb"),
		snapAt("a", t0.Add(500*time.Millisecond), "a2"), // same second as a1, later
		snapAt("a", t0, "a1"),
		snapAt("a", t0.Add(900*time.Millisecond), "a0"), // same second, latest
		snapAt("a", t0.Add(time.Hour), "a3"),
		snapAt("a/x", t0, "cc"),
		snapAt("..", t0, "dd"),
	}
	v := buildView(snaps, "", time.UTC, 1)
	var hosts []string
	for _, h := range v.hosts {
		hosts = append(hosts, h.name+"="+h.host)
	}
	if want := []string{"_..=..", "a=a", "a_x=a/x", "b=b"}; !slices.Equal(hosts, want) {
		t.Errorf("hosts = %q, want %q", hosts, want)
	}
	a := v.host("a")
	var names []string
	for _, s := range a.snaps {
		names = append(names, s.name+"="+s.snap.ID.String()[:2])
	}
	want := []string{
		"2024-03-01_10-00-00=a1",
		"2024-03-01_10-00-00_2=a2",
		"2024-03-01_10-00-00_3=a0",
		"2024-03-01_11-00-00=a3",
	}
	if !slices.Equal(names, want) {
		t.Errorf("snapshots of a = %q, want %q", names, want)
	}
	if got := a.latest().name; got != "2024-03-01_11-00-00" {
		t.Errorf("latest = %q", got)
	}
	if s := a.snapshot("2024-03-01_10-00-00_2"); s == nil || s.ID.String()[:2] != "a2" {
		t.Errorf("lookup of _2 found %v", s)
	}
	if v.dirOf[snaps[1].ID] != "2024-03-01_10-00-00_2" {
		t.Errorf("dirOf = %q", v.dirOf[snaps[1].ID])
	}
	// Names do not depend on the order the Source listed snapshots in.
	rev := slices.Clone(snaps)
	slices.Reverse(rev)
	v2 := buildView(rev, "", time.UTC, 1)
	for sid, name := range v.dirOf {
		if v2.dirOf[sid] != name {
			t.Errorf("%s: %q in one order, %q in the other", sid.Short(), name, v2.dirOf[sid])
		}
	}
}

func TestBuildViewHostFilter(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	v := buildView([]Snapshot{snapAt("a", t0, "a1"), snapAt("b", t0, "b1")}, "b", time.UTC, 1)
	if len(v.hosts) != 1 || v.hosts[0].host != "b" || len(v.byID) != 1 {
		t.Errorf("filter b: hosts %v, ids %d", v.hosts, len(v.byID))
	}
}

func TestBuildViewShortIDs(t *testing.T) {
	t0 := time.Now()
	snaps := []Snapshot{
		snapAt("h", t0, "12345678aa"),
		snapAt("h", t0, "12345678ab"), // shares 9 digits with the one above
		snapAt("h", t0, "12345679"),
		snapAt("h", t0, "ffffffff"),
		snapAt("h", t0, "ffffffff"), // the same snapshot listed twice
	}
	v := buildView(snaps, "", time.UTC, 1)
	var names []string
	for _, s := range v.byID {
		names = append(names, s.name)
	}
	want := []string{"12345678aa", "12345678ab", "12345679", "ffffffff"}
	if !slices.Equal(names, want) {
		t.Errorf("ids = %q, want %q", names, want)
	}
	for _, n := range want {
		if v.snapshotByName(n) == nil {
			t.Errorf("lookup %q failed", n)
		}
	}
	if v.snapshotByName("12345678") != nil {
		t.Error("an ambiguous prefix resolved")
	}
}

// fakeSource counts calls; only the snapshot list matters here.
type fakeSource struct {
	Source
	snaps     []Snapshot
	refreshes int
}

func (f *fakeSource) Refresh(context.Context) error { f.refreshes++; return nil }
func (f *fakeSource) Snapshots(context.Context) ([]Snapshot, error) {
	return slices.Clone(f.snaps), nil
}

func TestCatalogRefreshIsRateLimited(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{snaps: []Snapshot{snapAt("h", now, "01")}}
	c := newCatalog(src, "", func() time.Time { return now })
	ctx := context.Background()
	v1, err := c.load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.current(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if src.refreshes != 1 {
		t.Errorf("%d refreshes within one second, want 1", src.refreshes)
	}
	now = now.Add(refreshInterval)
	v2, _ := c.current(ctx)
	if src.refreshes != 2 || v2 != v1 {
		t.Errorf("after a second: %d refreshes (want 2); view replaced although unchanged: %v", src.refreshes, v2 != v1)
	}
	src.snaps = append(src.snaps, snapAt("h", now, "02"))
	now = now.Add(refreshInterval)
	v3, _ := c.current(ctx)
	if v3.gen != v1.gen+1 || len(v3.byID) != 2 {
		t.Errorf("new snapshot: gen %d (want %d), %d ids", v3.gen, v1.gen+1, len(v3.byID))
	}
}

func TestFillAttr(t *testing.T) {
	n := tree.Node{
		Type: tree.CharDev, Mode: 0o4755, UID: 1234, GID: 5678, Size: 1000,
		MTime: -1_500_000_000, ATime: 1_700_000_000_123_456_789, CTime: 5,
		Links: 3, Rdev: unix.Mkdev(259, 70000),
	}
	var a fuse.Attr
	fillAttr(&a, &n, 42)
	var st unix.Stat_t
	st.Mode = a.Mode
	if a.Mode != syscall.S_IFCHR|0o4755 || a.Uid != 1234 || a.Gid != 5678 || a.Nlink != 3 || a.Ino != 42 {
		t.Errorf("attr = %+v", a)
	}
	if a.Blocks != 2 {
		t.Errorf("blocks = %d, want 2", a.Blocks)
	}
	if int64(a.Mtime) != -2 || a.Mtimensec != 500_000_000 {
		t.Errorf("pre-1970 mtime = %d.%09d, want -2.500000000", int64(a.Mtime), a.Mtimensec)
	}
	if a.Atime != 1_700_000_000 || a.Atimensec != 123_456_789 {
		t.Errorf("atime = %d.%09d", a.Atime, a.Atimensec)
	}
	// The kernel's new_decode_dev.
	major := (a.Rdev & 0xfff00) >> 8
	minor := (a.Rdev & 0xff) | ((a.Rdev >> 12) & 0xfff00)
	if major != 259 || minor != 70000 {
		t.Errorf("rdev decodes to %d:%d, want 259:70000", major, minor)
	}
	link := tree.Node{Type: tree.Symlink, LinkTarget: "../x"}
	fillAttr(&a, &link, 1)
	if a.Size != 4 || a.Mode&syscall.S_IFMT != syscall.S_IFLNK || a.Nlink != 1 || a.Rdev != 0 {
		t.Errorf("symlink attr = %+v", a)
	}
}

func TestXattrs(t *testing.T) {
	x := []tree.Xattr{{Name: "user.a", Value: []byte("1")}, {Name: "user.bb", Value: []byte("22")}}
	size, errno := listxattr(x, nil)
	if errno != syscall.ERANGE || size != 15 {
		t.Errorf("listxattr size query = %d, %v", size, errno)
	}
	buf := make([]byte, 15)
	if n, errno := listxattr(x, buf); errno != 0 || !bytes.Equal(buf[:n], []byte("user.a\x00user.bb\x00")) {
		t.Errorf("listxattr = %q, %v", buf[:n], errno)
	}
	if n, errno := getxattr(x, "user.bb", make([]byte, 1)); errno != syscall.ERANGE || n != 2 {
		t.Errorf("getxattr small buffer = %d, %v", n, errno)
	}
	if n, errno := getxattr(x, "user.bb", buf); errno != 0 || string(buf[:n]) != "22" {
		t.Errorf("getxattr = %q, %v", buf[:n], errno)
	}
	if _, errno := getxattr(x, "user.c", buf); errno != syscall.ENODATA {
		t.Errorf("missing xattr: %v", errno)
	}
	if n, errno := listxattr(nil, nil); n != 0 || errno != 0 {
		t.Errorf("no xattrs: %d, %v", n, errno)
	}
}

func TestChildInoHardLinks(t *testing.T) {
	var snap id.ID
	a := tree.Node{Name: "a", Type: tree.File, Links: 2, Device: 7, Inode: 99}
	b := a
	b.Name = "b"
	c := tree.Node{Name: "c", Type: tree.File, Links: 1, Device: 7, Inode: 100}
	if childIno(snap, 5, &a) != childIno(snap, 6, &b) {
		t.Error("hard links in different directories got different inodes")
	}
	if childIno(snap, 5, &c) == childIno(snap, 6, &c) {
		t.Error("same name in different directories shares an inode")
	}
	other := snap
	other[0] = 1
	if childIno(snap, 5, &a) == childIno(other, 5, &a) {
		t.Error("hard link inode does not depend on the snapshot")
	}
	dir := tree.Node{Name: "d", Type: tree.Dir, Links: 5, Device: 7, Inode: 99}
	if childIno(snap, 5, &dir) == childIno(snap, 5, &a) {
		t.Error("a directory was numbered as a hard link")
	}
}

func TestListStreamSeek(t *testing.T) {
	items := []string{"a", "..", "b", "c"}
	s := newListStream(items, func(n *string) (fuse.DirEntry, bool) {
		return fuse.DirEntry{Name: *n}, *n != ".."
	})
	var got []string
	var offs []uint64
	for s.HasNext() {
		e, errno := s.Next()
		if errno != 0 {
			t.Fatal(errno)
		}
		got = append(got, e.Name)
		offs = append(offs, e.Off)
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("entries %q", got)
	}
	if errno := s.Seekdir(context.Background(), offs[0]); errno != 0 {
		t.Fatal(errno)
	}
	if e, _ := s.Next(); e.Name != "b" {
		t.Errorf("after seek to the first entry's offset: %q, want b", e.Name)
	}
	if errno := s.Seekdir(context.Background(), 99); errno != syscall.EINVAL {
		t.Errorf("seek past end: %v", errno)
	}
}
