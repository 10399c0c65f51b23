//go:build linux

package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/tests/treegen"
)

// background is a costor process the test kills on purpose.
type background struct {
	cmd            *exec.Cmd
	args           []string
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

func (s *sandbox) start(args ...string) *background {
	s.t.Helper()
	b := &background{args: args, done: make(chan struct{})}
	b.cmd = exec.Command(costorBin, args...)
	b.cmd.Env = s.env()
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: s.cred}
	if err := b.cmd.Start(); err != nil {
		s.t.Fatalf("start costor %q: %v", args, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	s.t.Cleanup(func() { b.kill(s.t) })
	return b
}

func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits; it reports whether the process was killed
// (rather than having finished on its own first).
func (b *background) kill(t testing.TB) bool {
	t.Helper()
	if !b.exited() {
		_ = b.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-b.done
	checkNoPanic(t, b.args, b.stderr.String())
	ws, ok := b.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// packFiles lists REPO/packs/??/* and their sizes.
func packFiles(t testing.TB, repo string) (paths []string, total int64) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(repo, "packs", "??", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range matches {
		if info, err := os.Lstat(p); err == nil && info.Mode().IsRegular() {
			paths = append(paths, p)
			total += info.Size()
		}
	}
	return paths, total
}

// afterCrash asserts what must hold right after a costor process died: no
// stale lock in the way, and a repository that passes check.
func afterCrash(t *testing.T, s *sandbox) {
	t.Helper()
	for _, cmd := range [][]string{{"snapshots"}, {"check"}} {
		_, stderr, code := s.costor(cmd...)
		if code != 0 || strings.Contains(strings.ToLower(stderr), "locked") {
			t.Errorf("%q right after a kill -9: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

func TestKillDuringBackup(t *testing.T) {
	dir := tempDir(t)
	src := filepath.Join(dir, "src")
	if err := treegen.RandomFiles(src, 9, 50, 4<<20); err != nil { // 200 MiB
		t.Fatal(err)
	}
	total, _ := treeSize(t, src)

	t.Run("after complete packs", func(t *testing.T) {
		s := newSandbox(t)
		s.init()
		b := s.start("backup", src)
		const enough = 64 << 20
		for {
			if _, n := packFiles(t, s.repo); n >= enough {
				break
			}
			if b.exited() {
				t.Fatalf("backup of 200 MiB ended (%v) before %d MiB of packs appeared under %s/packs/??/:\n%s",
					b.cmd.ProcessState, enough>>20, s.repo, b.stderr.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		if !b.kill(t) {
			t.Fatal("backup finished before it could be killed")
		}
		afterCrash(t, s)
		sum := s.backupJSON(src)
		if added := sum.count(t, keyBytesAdded); added >= total {
			t.Errorf("rerun after kill -9 added %d bytes of %d: it re-sent data already in complete packs", added, total)
		} else {
			t.Logf("rerun added %d of %d bytes", added, total)
		}
		s.mustCostor("check", "--read-data")
		target := s.path("restore")
		s.mustCostor("restore", "--target", target, "latest")
		treegen.Compare(t, src, filepath.Join(target, src), treegen.CompareOptions{})
	})

	t.Run("random moments", func(t *testing.T) {
		s := newSandbox(t)
		s.init()
		seed := time.Now().UnixNano()
		t.Logf("kill delays seeded with %d", seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		for i := range 5 {
			delay := time.Duration(rng.Int64N(int64(2 * time.Second)))
			if i == 0 {
				delay = time.Duration(rng.Int64N(int64(100 * time.Millisecond))) // while opening, locking
			}
			b := s.start("backup", src)
			time.Sleep(delay)
			if !b.kill(t) {
				t.Logf("backup finished within %v, before the kill", delay)
				break
			}
			t.Logf("killed backup after %v", delay)
			afterCrash(t, s)
		}
		s.backup(src)
		s.mustCostor("check", "--read-data")
		target := s.path("restore")
		s.mustCostor("restore", "--target", target, "latest")
		treegen.Compare(t, src, filepath.Join(target, src), treegen.CompareOptions{})
	})
}

// TestStaleLock: a lock left by a process that died never blocks the next run.
func TestStaleLock(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	if err := treegen.RandomFiles(src, 5, 20, 4<<20); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"backup", src}, {"check", "--read-data"}} {
		b := s.start(cmd...)
		time.Sleep(150 * time.Millisecond)
		if !b.kill(t) {
			t.Logf("%q finished before the kill", cmd)
		}
		_, stderr, code := s.costor("backup", src)
		if code != 0 || strings.Contains(strings.ToLower(stderr), "locked") {
			t.Errorf("backup right after a killed %q: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

func TestCorruptPack(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	if err := treegen.RandomFiles(src, 6, 16, 6<<20); err != nil { // 96 MiB: several packs
		t.Fatal(err)
	}
	s.backup(src)
	snap := s.snapshots()[0]
	packs, _ := packFiles(t, s.repo)
	if len(packs) < 2 {
		t.Fatalf("want several pack files under %s/packs/??/ for 96 MiB, found %d", s.repo, len(packs))
	}
	sort.Slice(packs, func(i, j int) bool { return fileSize(t, packs[i]) > fileSize(t, packs[j]) })
	victim := packs[0] // the largest: file data, not trees
	flipByte(t, victim, fileSize(t, victim)/2)

	stdout, stderr, code := s.costor("check", "--read-data")
	report := stdout + stderr
	if code == 0 {
		t.Fatalf("check --read-data passed with a flipped byte in %s", victim)
	}
	packName := strings.SplitN(filepath.Base(victim), ".", 2)[0]
	if !strings.Contains(report, packName[:min(8, len(packName))]) {
		t.Errorf("check --read-data does not name the damaged pack %s:\n%s", packName, report)
	}
	if !strings.Contains(report, snap.ShortID) {
		t.Errorf("check --read-data does not name the affected snapshot %s:\n%s", snap.ShortID, report)
	}
	var affected, unaffected []string
	for i := range 16 {
		name := fmt.Sprintf("bulk-%04d.bin", i)
		if strings.Contains(report, name) {
			affected = append(affected, name)
		} else {
			unaffected = append(unaffected, name)
		}
	}
	if len(affected) == 0 {
		t.Fatalf("check --read-data names no affected file:\n%s", report)
	}
	if len(unaffected) == 0 {
		t.Fatalf("check --read-data names every file as affected by one of %d packs:\n%s", len(packs), report)
	}
	t.Logf("affected: %v", affected)

	// A damaged file must not come back silently wrong.
	_, _, code = s.costor("restore", "--target", s.path("bad"), "latest:"+filepath.Join(src, affected[0]))
	if code == 0 {
		t.Errorf("restore of %s, whose data is damaged, exited 0", affected[0])
	}
	for _, name := range unaffected {
		target := s.path("good-" + name)
		s.mustCostor("restore", "--target", target, "latest:"+filepath.Join(src, name))
		treegen.Compare(t, filepath.Join(src, name), filepath.Join(target, name), treegen.CompareOptions{})
	}
}

func TestMissingIndexAndRepair(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	generate(t, src, 11)
	want := s.path("want")
	generate(t, want, 11)
	id := s.backup(src)

	index := filepath.Join(s.repo, "index")
	if info, err := os.Stat(index); err != nil || !info.IsDir() {
		t.Fatalf("the index should be the directory %s: %v", index, err)
	}
	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"snapshots"}, {"restore", "--target", s.path("r"), "latest"}, {"backup", src}} {
		_, stderr, code := s.costor(cmd...)
		msg := oneLine(t, "missing index", stderr)
		if code == 0 || !strings.Contains(msg, "repair index") {
			t.Errorf("%q without an index: exit %d, stderr %q; want an error pointing at `costor repair index`", cmd, code, msg)
		}
	}

	s.mustCostor("repair", "index")
	snaps := s.snapshots()
	if len(snaps) != 1 || (snaps[0].ID != id && snaps[0].ShortID != id) {
		t.Fatalf("after repair index: snapshots %+v, want just %s", snaps, id)
	}
	target := s.path("restore")
	s.mustCostor("restore", "--target", target, "latest")
	treegen.Compare(t, want, filepath.Join(target, src), treegen.CompareOptions{ATime: true})
	s.mustCostor("check", "--read-data")
	// The rebuilt index knows every blob: nothing is sent again.
	if n := s.backupJSON(src).count(t, keyBytesAdded); n > 1<<20 {
		t.Errorf("backup after repair index added %d bytes", n)
	}
}

// TestUnreadableFile: a path the backup cannot read is reported, the rest
// is backed up, and the exit code says so.
func TestUnreadableFile(t *testing.T) {
	s := newSandbox(t)
	src := s.path("src")
	writeFile(t, filepath.Join(src, "readable.txt"), "fine")
	writeFile(t, filepath.Join(src, "secret.txt"), "hidden")
	writeFile(t, filepath.Join(src, "locked-dir/inner.txt"), "hidden too")
	writeFile(t, filepath.Join(src, "zzz-after.txt"), "after")
	if os.Geteuid() == 0 {
		// root reads everything: run costor as nobody instead.
		runAsNobody(t, s)
	}
	if err := os.Chmod(filepath.Join(src, "secret.txt"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "locked-dir"), 0); err != nil {
		t.Fatal(err)
	}
	s.init()
	stdout, stderr, code := s.costor("backup", src)
	if code != 3 {
		t.Errorf("backup with unreadable paths: exit %d, want 3", code)
	}
	for _, name := range []string{"secret.txt", "locked-dir"} {
		if !strings.Contains(stderr, name) {
			t.Errorf("stderr does not list the unreadable %s:\n%s", name, stderr)
		}
	}
	snaps := s.snapshots()
	if len(snaps) != 1 {
		t.Fatalf("want the snapshot written despite the errors, got %d snapshots", len(snaps))
	}
	if id := lastLine(t, stdout); id != snaps[0].ID && id != snaps[0].ShortID {
		t.Errorf("backup printed %q last, want the snapshot ID %s", id, snaps[0].ID)
	}
	if !recordsErrors(snaps[0].raw, "secret.txt", 2) {
		t.Errorf("snapshots --json records neither the unreadable paths nor their number: %s", snaps[0].raw)
	}
	target := s.path("restore")
	s.mustCostor("restore", "--target", target, "latest")
	for name, content := range map[string]string{"readable.txt": "fine", "zzz-after.txt": "after"} {
		if got := readFile(t, filepath.Join(target, src, name)); got != content {
			t.Errorf("%s restored as %q", name, got)
		}
	}
}

// recordsErrors reports whether a snapshot's JSON records its read errors:
// it names path, or has an "errors" member that is their number or list.
func recordsErrors(raw json.RawMessage, path string, n int) bool {
	if strings.Contains(string(raw), path) {
		return true
	}
	var fields struct {
		Errors json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(raw, &fields) != nil {
		return false
	}
	var count int
	if json.Unmarshal(fields.Errors, &count) == nil {
		return count == n
	}
	var list []json.RawMessage
	return json.Unmarshal(fields.Errors, &list) == nil && len(list) == n
}

// runAsNobody makes s run costor as uid/gid 65534, owning its sandbox.
func runAsNobody(t *testing.T, s *sandbox) {
	t.Helper()
	const nobody = 65534
	s.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	s.vars["TMPDIR"] = s.path("tmp")
	if err := os.MkdirAll(s.vars["TMPDIR"], 0o700); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(s.dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
	// nobody must be able to reach the sandbox through its parents.
	for d := filepath.Dir(s.dir); d != "/" && d != "."; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, info.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRestoreNeverWritesOutsideTarget: symlinks planted in the target where
// the restore will write are never followed out of it.
func TestRestoreNeverWritesOutsideTarget(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "top.txt"), "payload")
	writeFile(t, filepath.Join(src, "sub/file.txt"), "payload")
	s.backup(src)
	firstComponent := strings.Split(strings.TrimPrefix(src, "/"), "/")[0]

	for _, tc := range []struct {
		name string
		snap string // what to restore
		link string // where to plant the symlink, relative to the target
		into string // "dir": the link points at the outside directory, "file": at the victim file
		// where the restore must have put a real file with the payload, when it succeeds
		check string
	}{
		{"directory link in subtree restore", "latest:" + src, "sub", "dir", "sub/file.txt"},
		{"file link in subtree restore", "latest:" + src, "top.txt", "file", "top.txt"},
		{"file link in single-file restore", "latest:" + filepath.Join(src, "top.txt"), "top.txt", "file", "top.txt"},
		{"link on the first path component", "latest", firstComponent, "dir", filepath.Join(src, "top.txt")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := filepath.Join(tempDir(t), "outside")
			victim := filepath.Join(outside, "victim.txt")
			writeFile(t, victim, "original")
			if err := os.Chmod(victim, 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.Lstat(victim)
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(tempDir(t), "target")
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			linkTo := outside
			if tc.into == "file" {
				linkTo = victim
			}
			if err := os.Symlink(linkTo, filepath.Join(target, tc.link)); err != nil {
				t.Fatal(err)
			}

			_, _, code := s.costor("restore", "--target", target, tc.snap)

			entries, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("restore wrote outside its target: %s now holds %q", outside, names)
			}
			after, err := os.Lstat(victim)
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, victim); got != "original" || after.Mode() != before.Mode() ||
				!after.ModTime().Equal(before.ModTime()) {
				t.Errorf("restore changed %s outside its target: %q, mode %v, mtime %v",
					victim, got, after.Mode(), after.ModTime())
			}
			if code == 0 {
				p := filepath.Join(target, tc.check)
				info, err := os.Lstat(p)
				if err != nil || !info.Mode().IsRegular() || readFile(t, p) != "payload" {
					t.Errorf("restore exited 0 but %s is not the restored file (%v, %v)", p, info, err)
				}
			}
		})
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	if err := os.Chmod(path, 0o600); err != nil { // packs may be read-only
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
