//go:build linux

package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDumpFile(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	for _, rel := range []string{"/sub/big.bin", "/a.txt", "/line\nbreak"} {
		want, err := os.ReadFile(src + rel)
		mustDo(t, err)
		out, _, err := f.run("dump", snap+":"+src+rel)
		if err != nil {
			t.Fatalf("dump %s: %v", rel, err)
		}
		if out != string(want) {
			t.Errorf("dump %q: %d bytes differ from the %d backed up", rel, len(out), len(want))
		}
	}
}

func TestDumpErrors(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dump"}, "needs one argument"},
		{[]string{"dump", snap + ":" + src + "/link"}, "is a symlink to a.txt: dump writes files and directories; see it with `costor ls"},
		{[]string{"dump", snap + ":" + src + "/fifo"}, "is a fifo, which has no content"},
		{[]string{"dump", snap + ":" + src + "/missing"}, `no "missing" in the snapshot`},
	} {
		out, _, err := f.run(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: err = %v, want one line containing %q", tc.args, err, tc.want)
		}
		if out != "" {
			t.Errorf("%q: wrote %d bytes to stdout before failing", tc.args, len(out))
		}
	}
}

// TestDumpBrokenPipe: a reader that goes away (`| head -c 10`) ends the
// dump quietly and successfully; any other write error is an error.
func TestDumpBrokenPipe(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	for _, arg := range []string{snap + ":" + src + "/sub/big.bin", snap + ":" + src} {
		var stderr bytes.Buffer
		w := &failAfter{n: 10, err: syscall.EPIPE}
		if err := f.runTo(w, &stderr, "dump", arg); err != nil {
			t.Errorf("dump %s into a closed pipe: %v, want success", arg, err)
		}
		if w.got.Len() != 10 || stderr.Len() != 0 {
			t.Errorf("dump %s into a closed pipe: %d bytes out, stderr %q", arg, w.got.Len(), stderr.String())
		}
		full := errors.New("no space left")
		if err := f.runTo(&failAfter{n: 10, err: full}, &stderr, "dump", arg); !errors.Is(err, full) {
			t.Errorf("dump %s into a failing writer: %v, want the write error", arg, err)
		}
	}
}

func TestDumpTar(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	xattrs := unix.Setxattr(filepath.Join(src, "a.txt"), "user.costor", []byte("v\x00\xff"), 0) == nil
	sock, err := net.Listen("unix", filepath.Join(src, "sock"))
	mustDo(t, err)
	defer sock.Close()
	touchAll(t, src)
	snap := f.backup(src)

	var stdout, stderr bytes.Buffer
	mustDo(t, f.runTo(&stdout, &stderr, "dump", snap+":"+src))
	if !strings.Contains(stderr.String(), "sock: a socket cannot be stored in tar, left out") {
		t.Errorf("no warning about the socket on stderr: %q", stderr.String())
	}

	type entry struct {
		typ      byte
		mode     int64
		linkname string
		content  string
	}
	want := map[string]entry{
		"a.txt":       {tar.TypeReg, 0o644, "", "hello\n"},
		"bad\xffname": {tar.TypeReg, 0o644, "", "y"},
		"fifo":        {tar.TypeFifo, 0o640, "", ""},
		"hard1":       {tar.TypeReg, 0o644, "", "linked"},
		"hard2":       {tar.TypeLink, 0o644, "hard1", ""},
		"line\nbreak": {tar.TypeReg, 0o644, "", "x"},
		"link":        {tar.TypeSymlink, 0o777, "a.txt", ""},
		"setuid":      {tar.TypeReg, 0o4755, "", "#!/bin/sh\n"},
		"sub/":        {tar.TypeDir, 0o750, "", ""},
		"sub/big.bin": {tar.TypeReg, 0o600, "", string(pseudoRandom(3<<20 + 17))},
	}
	order := []string{"a.txt", "bad\xffname", "fifo", "hard1", "hard2", "line\nbreak", "link", "setuid", "sub/", "sub/big.bin"}
	tr := tar.NewReader(&stdout)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		mustDo(t, err)
		names = append(names, hdr.Name)
		content, err := io.ReadAll(tr)
		mustDo(t, err)
		w, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected entry %q", hdr.Name)
			continue
		}
		got := entry{hdr.Typeflag, hdr.Mode, hdr.Linkname, string(content)}
		if got != w {
			t.Errorf("%q: type %c mode %o link %q, %d bytes; want type %c mode %o link %q, %d bytes",
				hdr.Name, got.typ, got.mode, got.linkname, len(got.content), w.typ, w.mode, w.linkname, len(w.content))
		}
		if hdr.Typeflag != tar.TypeSymlink && !hdr.ModTime.Equal(fixedTime) {
			t.Errorf("%q: mtime %v, want %v to the nanosecond", hdr.Name, hdr.ModTime, fixedTime)
		}
		if hdr.Uid != os.Getuid() || hdr.Gid != os.Getgid() || hdr.Format != tar.FormatPAX {
			t.Errorf("%q: uid %d gid %d format %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.Format)
		}
		if hdr.Name == "a.txt" && xattrs && hdr.PAXRecords["SCHILY.xattr.user.costor"] != "v\x00\xff" {
			t.Errorf("a.txt: xattr records %q", hdr.PAXRecords)
		}
	}
	if strings.Join(names, "|") != strings.Join(order, "|") {
		t.Errorf("entries %q, want %q", names, order)
	}
}

func TestDumpWholeSnapshot(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	out, _, err := f.run("dump", snap)
	mustDo(t, err)
	tr := tar.NewReader(strings.NewReader(out))
	var found bool
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		mustDo(t, err)
		if strings.HasPrefix(hdr.Name, "/") {
			t.Fatalf("absolute name %q in the tar stream", hdr.Name)
		}
		if hdr.Name == strings.TrimPrefix(src, "/")+"/a.txt" {
			found = true
		}
	}
	if !found {
		t.Errorf("dump of the whole snapshot lacks %s", src+"/a.txt")
	}
}

func TestDevNumbers(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint32
	}{{0, 0}, {1, 3}, {8, 17}, {259, 65536}, {4095, 255}, {1 << 20, 1 << 19}} {
		dev := unix.Mkdev(tc.major, tc.minor)
		if devMajor(dev) != int64(tc.major) || devMinor(dev) != int64(tc.minor) {
			t.Errorf("Mkdev(%d, %d) = %#x split into %d, %d", tc.major, tc.minor, dev, devMajor(dev), devMinor(dev))
		}
	}
}
