//go:build linux

package treegen

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths of notable entries, relative to the generated root, for tests that
// want to address one of them (restore or dump a single file, diff, ...).
const (
	PathLarge           = "files/large.bin"   // 8 MiB of random bytes
	PathSmall           = "files/small-1.bin" // a few bytes to a few KiB
	PathEmpty           = "files/empty"       // 0 bytes
	PathDedupA          = "dedup/a.bin"       // 6 MiB random
	PathDedupB          = "dedup/b.bin"       // PathDedupA with 1000 bytes inserted in the middle
	PathEmptyDir        = "empty-dir"         // a directory with nothing in it
	PathDeepLeaf        = "deep/d01/d02/d03/d04/d05/d06/d07/d08/d09/d10/d11/d12/d13/d14/d15/d16/leaf.txt"
	PathSparse          = "sparse/holes.bin"     // 1 MiB data, 256 MiB hole, 4 KiB data
	PathTailHole        = "sparse/tail-hole.bin" // 4 KiB data then a 64 MiB hole to EOF
	PathHardLinkA       = "hardlinks/a"          // same inode as PathHardLinkB and PathHardLinkC
	PathHardLinkB       = "hardlinks/b"
	PathHardLinkC       = "hardlinks/sub/c"
	PathSymlinkRel      = "links/relative"      // -> ../files/small-1.bin
	PathSymlinkAbs      = "links/absolute"      // -> /etc/passwd
	PathSymlinkDangling = "links/dangling"      // -> does/not/exist
	PathSymlinkDir      = "links/to-dir"        // -> ../deep (must not be followed)
	PathSetuid          = "modes/setuid"        // 04755
	PathSetgid          = "modes/setgid"        // 02755
	PathStickyDir       = "modes/sticky-dir"    // 01777
	PathReadOnlyDir     = "modes/read-only-dir" // 0555, with a child
	PathXattr           = "xattrs/file"         // user.* attributes (when supported)
	PathFifo            = "special/fifo"
	PathCharDev         = "special/chardev"  // root only: 1,3
	PathBlockDev        = "special/blockdev" // root only: 7,200
	PathOwned           = "owner/file"       // root only: 1234:5678
	PathNewline         = "names/line\nbreak"
	PathNonUTF8         = "names/bad-\xff\xfe-name"
	PathPre1970         = "times/pre-1970" // mtime before the epoch
	PathPost2038        = "times/post-2038"
)

// OwnerUID and OwnerGID are the owner given to PathOwned and its siblings
// when generating as root.
const (
	OwnerUID = 1234
	OwnerGID = 5678
)

// Options tunes Generate. The zero value generates everything the current
// process may create: root-only entries when running as root, xattrs when
// the filesystem supports them.
type Options struct {
	Seed int64
	// Unprivileged leaves out the root-only entries (device nodes, foreign
	// owners) even when running as root.
	Unprivileged bool
	// NoSparse leaves out the sparse files (for filesystems without holes).
	NoSparse bool
}

// Privileged reports whether Generate with opts creates the root-only entries.
func (o Options) Privileged() bool { return !o.Unprivileged && os.Geteuid() == 0 }

type generator struct {
	root string
	rng  *rand.ChaCha8 // decisions (sizes)
	data io.Reader     // file contents
	opts Options
	// modes applied after all content exists, so that read-only directories
	// can still be filled and chmod happens after chown (which clears setuid).
	modes []modeSet
}

type modeSet struct {
	rel  string
	mode os.FileMode
}

// Generate creates the tree under root (created if missing; it should be
// empty). Everything is deterministic from opts.Seed.
func Generate(root string, opts Options) error {
	g := &generator{root: root, rng: newRNG(opts.Seed), data: newByteSource(opts.Seed), opts: opts}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("treegen: create root: %w", err)
	}
	steps := []func() error{
		g.files, g.dedup, g.dirs, g.links, g.hardlinks, g.modeEntries,
		g.xattrs, g.special, g.owners, g.names, g.sparse, g.times0,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("treegen: %w", err)
		}
	}
	for _, m := range g.modes {
		if err := os.Chmod(g.path(m.rel), m.mode); err != nil {
			return fmt.Errorf("treegen: chmod %q: %w", m.rel, err)
		}
	}
	if err := setTimes(root, opts.Seed); err != nil {
		return fmt.Errorf("treegen: %w", err)
	}
	return nil
}

func newRNG(seed int64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], uint64(seed))
	copy(s[8:], "costor-treegen")
	return rand.NewChaCha8(s)
}

// byteSource is a deterministic stream of random-looking bytes: AES-CTR
// keyed by the seed. AES runs in assembly, so it stays fast under -race,
// where a Go PRNG filling hundreds of MiB would crawl.
type byteSource struct{ stream cipher.Stream }

func newByteSource(seed int64) *byteSource {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(seed))
	copy(key[8:], "costor-treegen-content")
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // unreachable: the key length is fixed
	}
	return &byteSource{stream: cipher.NewCTR(block, make([]byte, aes.BlockSize))}
}

func (b *byteSource) Read(p []byte) (int, error) {
	clear(p)
	b.stream.XORKeyStream(p, p)
	return len(p), nil
}

func (g *generator) path(rel string) string { return filepath.Join(g.root, rel) }

func (g *generator) mkdir(rel string) error {
	if err := os.MkdirAll(g.path(rel), 0o755); err != nil {
		return err
	}
	g.chmod(rel, 0o755)
	return nil
}

// chmod records the final mode of rel; the last record for a path wins.
func (g *generator) chmod(rel string, mode os.FileMode) {
	g.modes = append(g.modes, modeSet{rel, mode})
}

func (g *generator) randomBytes(n int64) []byte {
	b := make([]byte, n)
	_, _ = g.data.Read(b)
	return b
}

func (g *generator) writeFile(rel string, data []byte, mode os.FileMode) error {
	if err := g.mkdir(filepath.Dir(rel)); err != nil {
		return err
	}
	if err := os.WriteFile(g.path(rel), data, 0o600); err != nil {
		return err
	}
	g.chmod(rel, mode)
	return nil
}

// writeRandomFile streams size random bytes, so large files never sit in memory.
func (g *generator) writeRandomFile(rel string, size int64, mode os.FileMode) error {
	if err := g.mkdir(filepath.Dir(rel)); err != nil {
		return err
	}
	if err := writeRandom(g.path(rel), g.data, size); err != nil {
		return err
	}
	g.chmod(rel, mode)
	return nil
}

func writeRandom(path string, rng io.Reader, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rng, size); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func (g *generator) files() error {
	sizes := []int64{1, 4095, 4096, 4097, 65536, 1<<20 - 1, 1<<20 + 13}
	for i := 0; i < 6; i++ {
		sizes = append(sizes, int64(g.rng.Uint64()%(2<<20)))
	}
	if err := g.writeFile(PathEmpty, nil, 0o644); err != nil {
		return err
	}
	if err := g.writeFile(PathSmall, g.randomBytes(3000), 0o644); err != nil {
		return err
	}
	for i, size := range sizes {
		if err := g.writeRandomFile(fmt.Sprintf("files/random-%02d.bin", i), size, 0o640); err != nil {
			return err
		}
	}
	if err := g.writeRandomFile(PathLarge, 8<<20, 0o644); err != nil {
		return err
	}
	// Compressible, and all zeros: a restore may make it sparse, which is fine.
	if err := g.writeFile("files/zeros.bin", make([]byte, 3<<20), 0o644); err != nil {
		return err
	}
	text := strings.Repeat("costor keeps every byte.\n", 4000)
	return g.writeFile("files/text.txt", []byte(text), 0o600)
}

func (g *generator) dedup() error {
	a := g.randomBytes(6 << 20)
	if err := g.writeFile(PathDedupA, a, 0o644); err != nil {
		return err
	}
	b := make([]byte, 0, len(a)+1000)
	b = append(b, a[:3<<20]...)
	b = append(b, g.randomBytes(1000)...)
	b = append(b, a[3<<20:]...)
	return g.writeFile(PathDedupB, b, 0o644)
}

func (g *generator) dirs() error {
	if err := g.mkdir(PathEmptyDir); err != nil {
		return err
	}
	if err := g.writeFile(PathDeepLeaf, []byte("at the bottom\n"), 0o644); err != nil {
		return err
	}
	for d := filepath.Dir(PathDeepLeaf); d != "."; d = filepath.Dir(d) {
		g.chmod(d, 0o755)
	}
	return nil
}

func (g *generator) links() error {
	if err := g.mkdir("links"); err != nil {
		return err
	}
	for rel, target := range map[string]string{
		PathSymlinkRel:      "../" + PathSmall,
		PathSymlinkAbs:      "/etc/passwd",
		PathSymlinkDangling: "does/not/exist",
		PathSymlinkDir:      "../deep",
	} {
		if err := os.Symlink(target, g.path(rel)); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) hardlinks() error {
	if err := g.writeFile(PathHardLinkA, g.randomBytes(20000), 0o644); err != nil {
		return err
	}
	if err := g.mkdir(filepath.Dir(PathHardLinkC)); err != nil {
		return err
	}
	for _, rel := range []string{PathHardLinkB, PathHardLinkC} {
		if err := os.Link(g.path(PathHardLinkA), g.path(rel)); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) modeEntries() error {
	if err := g.writeFile(PathSetuid, []byte("#!/bin/sh\n"), 0o755|os.ModeSetuid); err != nil {
		return err
	}
	if err := g.writeFile(PathSetgid, []byte("#!/bin/sh\n"), 0o755|os.ModeSetgid); err != nil {
		return err
	}
	if err := g.writeFile("modes/private", []byte("secret\n"), 0o600); err != nil {
		return err
	}
	if err := g.writeFile("modes/read-only", []byte("ro\n"), 0o444); err != nil {
		return err
	}
	if err := g.writeFile(PathStickyDir+"/inside", []byte("x"), 0o666); err != nil {
		return err
	}
	g.chmod(PathStickyDir, 0o777|os.ModeSticky)
	if err := g.writeFile("modes/setgid-dir/inside", []byte("y"), 0o644); err != nil {
		return err
	}
	g.chmod("modes/setgid-dir", 0o775|os.ModeSetgid)
	if err := g.writeFile(PathReadOnlyDir+"/child", []byte("z"), 0o644); err != nil {
		return err
	}
	g.chmod(PathReadOnlyDir, 0o555)
	return nil
}

func (g *generator) xattrs() error {
	if err := g.writeFile(PathXattr, []byte("has attributes\n"), 0o644); err != nil {
		return err
	}
	if err := g.mkdir("xattrs/dir"); err != nil {
		return err
	}
	if !XattrsSupported(g.root) {
		return nil
	}
	attrs := []struct {
		rel, name string
		value     []byte
	}{
		{PathXattr, "user.costor.text", []byte("hello")},
		{PathXattr, "user.costor.empty", nil},
		{PathXattr, "user.costor.binary", g.randomBytes(300)},
		{"xattrs/dir", "user.costor.dir", []byte("on a directory")},
	}
	for _, a := range attrs {
		if err := unix.Lsetxattr(g.path(a.rel), a.name, a.value, 0); err != nil {
			return fmt.Errorf("setxattr %s on %q: %w", a.name, a.rel, err)
		}
	}
	return nil
}

func (g *generator) special() error {
	if err := g.mkdir("special"); err != nil {
		return err
	}
	if err := unix.Mkfifo(g.path(PathFifo), 0o600); err != nil {
		return fmt.Errorf("mkfifo: %w", err)
	}
	g.chmod(PathFifo, 0o640)
	if !g.opts.Privileged() {
		return nil
	}
	if err := unix.Mknod(g.path(PathCharDev), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	g.chmod(PathCharDev, 0o620)
	if err := unix.Mknod(g.path(PathBlockDev), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	g.chmod(PathBlockDev, 0o660)
	return nil
}

func (g *generator) owners() error {
	if !g.opts.Privileged() {
		return nil
	}
	if err := g.writeFile(PathOwned, []byte("not mine\n"), 0o750|os.ModeSetuid); err != nil {
		return err
	}
	if err := os.Symlink("file", g.path("owner/link")); err != nil {
		return err
	}
	if err := g.mkdir("owner/dir"); err != nil {
		return err
	}
	for _, rel := range []string{PathOwned, "owner/link", "owner/dir", "owner"} {
		if err := os.Lchown(g.path(rel), OwnerUID, OwnerGID); err != nil {
			return err
		}
	}
	return nil
}

func (g *generator) names() error {
	for _, rel := range []string{
		PathNewline, PathNonUTF8, "names/space name", "names/unicode-é-ß-日本",
		"names/-leading-dash", "names/back\\slash", "names/tab\there", "names/.hidden",
		"names/dir-\xc3\x28-bad/inside", "names/" + strings.Repeat("long", 60),
	} {
		if err := g.writeFile(rel, []byte(rel), 0o644); err != nil {
			return err
		}
	}
	g.chmod("names/dir-\xc3\x28-bad", 0o750)
	return nil
}

func (g *generator) sparse() error {
	if g.opts.NoSparse {
		return nil
	}
	if err := g.mkdir("sparse"); err != nil {
		return err
	}
	f, err := os.OpenFile(g.path(PathSparse), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(g.randomBytes(1 << 20)); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt(g.randomBytes(4096), 1<<20+256<<20); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	g.chmod(PathSparse, 0o644)
	if err := g.writeFile(PathTailHole, g.randomBytes(4096), 0o644); err != nil {
		return err
	}
	return os.Truncate(g.path(PathTailHole), 4096+64<<20)
}

// times0 creates the files whose timestamps setTimes gives special values.
func (g *generator) times0() error {
	for _, rel := range []string{PathPre1970, PathPost2038, "times/plain"} {
		if err := g.writeFile(rel, []byte(rel), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// setTimes gives every entry, directories and symlinks included, distinct
// nanosecond atime and mtime. All paths are listed first: reading a
// directory after its times are set could move its atime.
func setTimes(root string, seed int64) error {
	var rels []string
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		rels = append(rels, rel)
		return err
	})
	if err != nil {
		return fmt.Errorf("list tree: %w", err)
	}
	sort.Strings(rels)
	base := int64(1_000_000_000) + seed%1_000_000 // 2001-09-09
	for i, rel := range rels {
		n := int64(i)
		mtime := unix.NsecToTimespec((base+n*86_413)*1e9 + (n*123_456_791+7)%1e9)
		atime := unix.NsecToTimespec((base+n*86_413+3_600)*1e9 + (n*987_654_323+11)%1e9)
		switch rel {
		case PathPre1970:
			mtime = unix.Timespec{Sec: -14_182_940, Nsec: 123_456_789} // 1969-07-20
		case PathPost2038:
			mtime = unix.Timespec{Sec: 4_102_444_800 + 17, Nsec: 999_999_999} // 2100
		}
		ts := []unix.Timespec{atime, mtime}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, rel), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set times of %q: %w", rel, err)
		}
	}
	return nil
}

// XattrsSupported reports whether the filesystem holding dir accepts user.*
// extended attributes on regular files. It creates and removes a probe file
// in dir, which moves dir's mtime.
func XattrsSupported(dir string) bool {
	f, err := os.CreateTemp(dir, ".xattr-probe-*")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	f.Close()
	err = unix.Lsetxattr(f.Name(), "user.costor.probe", []byte("1"), 0)
	return err == nil
}

// RandomFiles writes n files of size random bytes each (deterministic from
// seed) into dir, named bulk-0000.bin, ... It is for tests that need volume.
func RandomFiles(dir string, seed int64, n int, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("treegen: %w", err)
	}
	data := newByteSource(seed)
	for i := 0; i < n; i++ {
		if err := writeRandom(filepath.Join(dir, fmt.Sprintf("bulk-%04d.bin", i)), data, size); err != nil {
			return fmt.Errorf("treegen: %w", err)
		}
	}
	return nil
}

// MakeWritable adds owner write and search permission to every directory
// under root, so that a test's cleanup can remove a tree holding read-only
// directories when not running as root. Errors are ignored: it is best effort.
func MakeWritable(root string) {
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if info, err := d.Info(); err == nil {
				_ = os.Chmod(p, info.Mode().Perm()|0o700)
			}
		}
		return nil
	})
}
