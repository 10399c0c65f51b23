//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage/local"
	"github.com/costor/costor/repo/tree"
)

// viewFixture is a local repository for the tests of the commands that
// read snapshots (ls, diff, dump), filled through the public APIs.
type viewFixture struct {
	t   *testing.T
	dir string
}

const viewTestPassword = "view test password"

func newViewFixture(t *testing.T) *viewFixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), repo.Options{Storage: st, IndexDir: filepath.Join(dir, "index")},
		[]byte(viewTestPassword), repo.InitOptions{KDF: &crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The repository comes from the environment: it reaches the command's
	// context whichever way the global flags are wired.
	t.Setenv("COSTOR_REPO", dir)
	t.Setenv("COSTOR_PASSWORD", viewTestPassword)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	return &viewFixture{t: t, dir: dir}
}

// backup takes a snapshot of src and returns its ID.
func (f *viewFixture) backup(src string) string {
	f.t.Helper()
	ctx := context.Background()
	st, err := local.Open(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := repo.Open(ctx, repo.Options{Storage: st, IndexDir: filepath.Join(f.dir, "index")},
		repo.Credentials{Password: []byte(viewTestPassword)})
	if err != nil {
		f.t.Fatal(err)
	}
	defer r.Close()
	secret, err := r.OrgSecret()
	if err != nil {
		f.t.Fatal(err)
	}
	pol, err := crypto.ChunkerPolynomial(secret)
	if err != nil {
		f.t.Fatal(err)
	}
	hk, err := r.HostKeyFor(ctx, "testhost")
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := agent.Backup(ctx, r, agent.BackupOptions{
		Paths: []string{src}, Keyer: crypto.NewChunkKeyer(secret), Polynomial: pol, HostKey: hk,
		Hostname: "testhost", Method: "none", Program: "costor test",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(res.Errors) > 0 {
		f.t.Fatalf("backup errors: %v", res.Errors)
	}
	return res.SnapshotID.String()
}

// run runs the command line (without "costor") and returns its
// stdout and stderr.
func (f *viewFixture) run(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := f.runTo(&stdout, &stderr, args...)
	return stdout.String(), stderr.String(), err
}

func (f *viewFixture) runTo(stdout, stderr interface{ Write([]byte) (int, error) }, args ...string) error {
	app := NewApp()
	app.Writer, app.ErrWriter = stdout, stderr
	// permute, as Run does: flags may follow the arguments.
	return app.Run(permute(app, append([]string{"costor"}, args...)))
}

// fixedTime is the mtime of every fixture entry, with nanoseconds so that
// their loss shows.
var fixedTime = time.Date(2024, 3, 9, 14, 5, 7, 123456789, time.Local)

// makeViewTree builds a directory with one of each interesting thing and
// returns its path.
func makeViewTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	mustDo(t, os.Mkdir(src, 0o755))
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(src, rel)
		mustDo(t, os.WriteFile(p, []byte(content), mode))
		mustDo(t, os.Chmod(p, mode))
	}
	write("a.txt", "hello\n", 0o644)
	mustDo(t, os.Mkdir(filepath.Join(src, "sub"), 0o750))
	write("sub/big.bin", string(pseudoRandom(3<<20+17)), 0o600)
	write("setuid", "#!/bin/sh\n", 0o755|os.ModeSetuid)
	mustDo(t, os.Chmod(filepath.Join(src, "setuid"), 0o755|os.ModeSetuid))
	write("line\nbreak", "x", 0o644)
	write("bad\xffname", "y", 0o644)
	write("hard1", "linked", 0o644)
	mustDo(t, os.Link(filepath.Join(src, "hard1"), filepath.Join(src, "hard2")))
	mustDo(t, os.Symlink("a.txt", filepath.Join(src, "link")))
	mustDo(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o640))
	touchAll(t, src)
	return src
}

// touchAll sets every mtime under dir to fixedTime (symlinks excepted).
// The atime is now: then listing a directory does not move it (relatime),
// which would change the directory's node and every tree above it.
func touchAll(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, time.Now(), fixedTime)
	})
	mustDo(t, err)
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestLs(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	stamp := fixedTime.Format("2006-01-02 15:04:05")

	out, _, err := f.run("ls", snap+":"+src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	// Tree order is bytewise: "bad\xffname" < "fifo" < … < "line\nbreak" < "link".
	wantSuffixes := []string{
		"/a.txt", "/bad\xffname", "/fifo", "/hard1", "/hard2", `/line\nbreak"`, "/link -> a.txt", "/setuid", "/sub",
	}
	if len(lines) != len(wantSuffixes) {
		t.Fatalf("ls printed %d lines, want %d:\n%s", len(lines), len(wantSuffixes), out)
	}
	for i, suffix := range wantSuffixes {
		if !strings.HasSuffix(lines[i], suffix) {
			t.Errorf("line %d = %q, want it to end in %q", i, lines[i], suffix)
		}
		if !strings.Contains(lines[i], stamp) && !strings.Contains(lines[i], " -> ") {
			t.Errorf("line %d = %q, want mtime %s", i, lines[i], stamp)
		}
	}
	wantModes := []string{"-rw-r--r--", "-rw-r--r--", "prw-r-----", "-rw-r--r--", "-rw-r--r--", "-rw-r--r--", "lrwxrwxrwx", "-rwsr-xr-x", "drwxr-x---"}
	for i, m := range wantModes {
		if !strings.HasPrefix(lines[i], m+" ") {
			t.Errorf("line %d = %q, want mode %s", i, lines[i], m)
		}
	}
	if want := `"` + src + `/line\nbreak"`; !strings.HasSuffix(lines[5], " "+want) {
		t.Errorf("a name with a newline: %q, want the whole path quoted: %s", lines[5], want)
	}
	if fields := strings.Fields(lines[0]); fields[3] != "6" {
		t.Errorf("size of a.txt: %q in %q", fields[3], lines[0])
	}

	t.Run("recursive", func(t *testing.T) {
		out, _, err := f.run("ls", "--recursive", snap+":"+src)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 10 || !strings.HasSuffix(lines[8], src+"/sub") || !strings.HasSuffix(lines[9], src+"/sub/big.bin") {
			t.Errorf("recursive listing, want sub followed by its file:\n%s", out)
		}
	})
	t.Run("root", func(t *testing.T) {
		out, _, err := f.run("ls", snap)
		if err != nil {
			t.Fatal(err)
		}
		first := "/" + strings.Split(strings.TrimPrefix(src, "/"), "/")[0]
		if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, " "+first+"\n") {
			t.Errorf("ls SNAP = %q, want the one top-level directory %s", out, first)
		}
	})
	t.Run("file", func(t *testing.T) {
		out, _, err := f.run("ls", snap+":"+src+"/sub/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, " 3145745 ") {
			t.Errorf("ls of a file = %q, want one line with its size", out)
		}
	})
	t.Run("flags after the argument", func(t *testing.T) {
		out, _, err := f.run("ls", snap+":"+src, "--recursive", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var entries []lsEntry
		if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 10 {
			t.Errorf("ls SNAP --recursive --json: %d entries, %v:\n%s", len(entries), err, out)
		}
	})
}

func TestLsJSON(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	for _, args := range [][]string{
		{"--json", "ls", "--recursive", snap + ":" + src},
		{"ls", "--json", "-R", snap + ":" + src},
	} {
		out, _, err := f.run(args...)
		if err != nil {
			t.Fatal(err)
		}
		var entries []map[string]any
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		byPath := map[string]map[string]any{}
		for _, e := range entries {
			p := e["path"].(string)
			if b, ok := e["path_base64"].(string); ok {
				raw, err := base64.StdEncoding.DecodeString(b)
				if err != nil {
					t.Fatal(err)
				}
				p = string(raw)
			}
			byPath[p] = e
		}
		if len(byPath) != 10 {
			t.Fatalf("%v: %d distinct entries, want 10:\n%s", args, len(byPath), out)
		}
		check := func(rel, key string, want any) {
			t.Helper()
			e, ok := byPath[src+rel]
			if !ok {
				t.Errorf("%v: no entry for %q", args, rel)
				return
			}
			if e[key] != want {
				t.Errorf("%v: %s %s = %v (%T), want %v", args, rel, key, e[key], e[key], want)
			}
		}
		check("/a.txt", "type", "file")
		check("/a.txt", "size", float64(6))
		check("/a.txt", "mode", float64(0o644))
		check("/a.txt", "content_chunks", float64(1))
		check("/a.txt", "mtime", fixedTime.Format(time.RFC3339Nano))
		check("/a.txt", "name", "a.txt")
		check("/setuid", "mode", float64(0o4755))
		check("/link", "link_target", "a.txt")
		check("/link", "type", "symlink")
		check("/sub", "type", "dir")
		check("/hard1", "links", float64(2))
		check("/fifo", "type", "fifo")
		check("/line\nbreak", "path", src+"/line\nbreak")
		if _, ok := byPath[src+"/a.txt"]["path_base64"]; ok {
			t.Errorf("path_base64 on a UTF-8 path")
		}
		if e := byPath[src+"/sub/big.bin"]; e == nil || e["content_chunks"].(float64) < 2 {
			t.Errorf("big.bin: want several chunks, got %v", e)
		}
	}
}

func TestLsErrors(t *testing.T) {
	f := newViewFixture(t)
	src := makeViewTree(t)
	snap := f.backup(src)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ls"}, "needs one argument"},
		{[]string{"ls", snap, snap}, "needs one argument"},
		{[]string{"ls", snap + ":" + src + "/nope"}, `no "nope" in the snapshot`},
		{[]string{"ls", snap + ":" + src + "/a.txt/x"}, "not a directory"},
		{[]string{"ls", "ffffffff"}, "no such snapshot"},
	} {
		_, _, err := f.run(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want one line containing %q", tc.args, err, tc.want)
		}
		if ExitCode(err) != ExitError {
			t.Errorf("%v: exit code %d", tc.args, ExitCode(err))
		}
	}
}

func TestModeString(t *testing.T) {
	for _, tc := range []struct {
		typ  tree.NodeType
		mode uint32
		want string
	}{
		{tree.File, 0o644, "-rw-r--r--"},
		{tree.Dir, 0o755, "drwxr-xr-x"},
		{tree.Dir, 0o1777, "drwxrwxrwt"},
		{tree.Dir, 0o1776, "drwxrwxrwT"},
		{tree.File, 0o4755, "-rwsr-xr-x"},
		{tree.File, 0o4644, "-rwSr--r--"},
		{tree.File, 0o2755, "-rwxr-sr-x"},
		{tree.File, 0o2745, "-rwxr-Sr-x"},
		{tree.File, 0o7000, "---S--S--T"},
		{tree.Symlink, 0o777, "lrwxrwxrwx"},
		{tree.Fifo, 0o600, "prw-------"},
		{tree.CharDev, 0o666, "crw-rw-rw-"},
		{tree.BlockDev, 0o660, "brw-rw----"},
		{tree.Socket, 0o755, "srwxr-xr-x"},
		{tree.NodeType(99), 0, "?---------"},
	} {
		if got := modeString(&tree.Node{Type: tc.typ, Mode: tc.mode}); got != tc.want {
			t.Errorf("modeString(%v, %o) = %s, want %s", tc.typ, tc.mode, got, tc.want)
		}
	}
}

func TestDisplayPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/a/b c", "/a/b c"},
		{"/ünïcödé/日本", "/ünïcödé/日本"},
		{"/bad\xffbyte", "/bad\xffbyte"}, // raw: not a control byte
		{"/new\nline", `"/new\nline"`},
		{"/tab\there", `"/tab\there"`},
		{"/esc\x1b[31m", `"/esc\x1b[31m"`},
		{"/del\x7f", `"/del\x7f"`},
		{"/c1\u0085", `"/c1\u0085"`},
		{"/cr\r", `"/cr\r"`},
	} {
		if got := displayPath(tc.in); got != tc.want {
			t.Errorf("displayPath(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// failAfter accepts n bytes, then fails every write with err.
type failAfter struct {
	n   int
	err error
	got bytes.Buffer
}

func (w *failAfter) Write(p []byte) (int, error) {
	if w.got.Len()+len(p) > w.n {
		k := w.n - w.got.Len()
		w.got.Write(p[:k])
		return k, w.err
	}
	return w.got.Write(p)
}

func TestLsWriteError(t *testing.T) {
	f := newViewFixture(t)
	snap := f.backup(makeViewTree(t))
	disk := errors.New("disk full")
	err := f.runTo(&failAfter{n: 10, err: disk}, &bytes.Buffer{}, "ls", "-R", snap)
	if !errors.Is(err, disk) {
		t.Errorf("ls to a failing writer: %v, want the write error", err)
	}
}

// FuzzDisplayPath: whatever a name holds, the shown path is one line
// without control bytes, and a quoted one unquotes to the name.
func FuzzDisplayPath(f *testing.F) {
	for _, s := range []string{"/a", "/new\nline", "/\x1b[2J", "/bad\xff", "/\u0085", `/"q"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := displayPath(s)
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] == 0x7f {
				t.Fatalf("displayPath(%q) = %q holds control byte %#x", s, got, got[i])
			}
		}
		if got != s {
			back, err := strconv.Unquote(got)
			if err != nil || back != s {
				t.Fatalf("displayPath(%q) = %s does not unquote to the input: %q, %v", s, got, back, err)
			}
		}
	})
}
