//go:build linux

package tests

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/costor/costor/tests/treegen"
	"golang.org/x/sys/unix"
)

// mountTimeFormat names snapshot directories under hosts/ (local time).
const mountTimeFormat = "2006-01-02_15-04-05"

// mountProc is a running `costor mount`.
type mountProc struct {
	*background
	dir string
}

// startMount runs `costor mount DIR ARGS…` in the background and waits until
// DIR/hosts appears. Cleanup stops it and makes sure nothing stays mounted,
// even when the test failed half-way.
func (s *sandbox) startMount(t *testing.T, args ...string) *mountProc {
	t.Helper()
	dir := s.path(fmt.Sprintf("mnt-%d", time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &mountProc{background: s.start(append([]string{"mount", dir}, args...)...), dir: dir}
	// Registered after start's SIGKILL cleanup, so it runs first.
	t.Cleanup(func() {
		if !m.exited() {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(10 * time.Second):
			}
		}
		if mountedAt(t, dir) {
			t.Errorf("%s still mounted after the test; detaching it", dir)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "hosts")); err == nil {
			return m
		}
		if m.exited() {
			t.Fatalf("costor mount exited before mounting:\n%s", m.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/hosts did not appear within 10s:\n%s", dir, m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopWith ends the mount with stop and checks the exit: status 0 within a
// few seconds, and a plain empty directory left behind.
func (m *mountProc) stopWith(t *testing.T, stop func() error) {
	t.Helper()
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("stopping the mount: %v", err)
	}
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("costor mount still running 10s after being told to stop:\n%s", m.stderr.String())
	}
	t.Logf("costor mount exited %v after the stop request%s", time.Since(start).Round(time.Millisecond), indent(m.stderr.String()))
	checkNoPanic(t, m.args, m.stderr.String())
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("costor mount exited with %d, want 0:\n%s", code, m.stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("costor mount took %v to exit", d)
	}
	if mountedAt(t, m.dir) {
		t.Errorf("%s is still in /proc/mounts", m.dir)
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		t.Errorf("mount point after exit: %v (a stale mount?)", err)
	} else if len(entries) != 0 {
		t.Errorf("mount point after exit holds %d entries, want none", len(entries))
	}
}

func (m *mountProc) signal(sig os.Signal) func() error {
	return func() error { return m.cmd.Process.Signal(sig) }
}

// umount is the external `umount DIR`, retried while the mount is busy for
// a moment (the kernel may still hold a dentry of the last access).
func (m *mountProc) umount() error {
	var err error
	for range 50 {
		if err = unix.Unmount(m.dir, 0); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func mountedAt(t testing.TB, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// snapshotDirNames maps snapshot IDs to their directory names under
// hosts/<host>/, by the documented rule: the local time, and _2, _3… for
// later snapshots of one host in the same second.
func snapshotDirNames(snaps []snapshotJSON) map[string]string {
	sorted := slices.Clone(snaps)
	sort.SliceStable(sorted, func(i, j int) bool {
		if !sorted[i].Time.Equal(sorted[j].Time) {
			return sorted[i].Time.Before(sorted[j].Time)
		}
		return sorted[i].ID < sorted[j].ID
	})
	names := map[string]string{}
	used := map[string]int{}
	for _, s := range sorted {
		base := s.Time.Local().Format(mountTimeFormat)
		used[s.Host+"/"+base]++
		if n := used[s.Host+"/"+base]; n > 1 {
			base += "_" + strconv.Itoa(n)
		}
		names[s.ID] = base
	}
	return names
}

func sha256File(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return [32]byte(h.Sum(nil))
}

func listNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// TestMount looks at a repository through `costor mount`: the latest
// snapshot against its source, a file's versions, read-only-ness, parallel
// readers, copying out, a snapshot arriving while mounted, and SIGINT.
func TestMount(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	generate(t, src, 42)
	want := s.path("want") // untouched twin
	generate(t, want, 42)
	const host = "mnt-host"
	s.backup("--host", host, src)

	// Three versions of one file on another host: A, B, then A again.
	hist := s.path("hist")
	config := filepath.Join(hist, "app.conf")
	for _, content := range []string{"version A\n", "version B, longer\n", "version A\n"} {
		writeFile(t, config, content)
		s.backup("--host", "hist-host", hist)
	}
	names := snapshotDirNames(s.snapshots())
	var histSnaps []snapshotJSON
	for _, sn := range s.snapshots() {
		if sn.Host == "hist-host" {
			histSnaps = append(histSnaps, sn)
		}
	}
	sort.Slice(histSnaps, func(i, j int) bool { return histSnaps[i].Time.Before(histSnaps[j].Time) })

	m := s.startMount(t)
	latest := filepath.Join(m.dir, "hosts", host, "latest")
	mounted := filepath.Join(latest, src)

	t.Run("tree", func(t *testing.T) {
		// A mount has no holes to show: sparse files are compared by content.
		treegen.Compare(t, want, mounted, treegen.CompareOptions{
			Skip: func(rel string) bool { return rel == "sparse" },
		})
		for _, rel := range []string{treegen.PathSparse, treegen.PathTailHole} {
			if sha256File(t, filepath.Join(mounted, rel)) != sha256File(t, filepath.Join(want, rel)) {
				t.Errorf("%s: content differs through the mount", rel)
			}
		}
	})
	t.Run("layout", func(t *testing.T) {
		if got := listNames(t, m.dir); !slices.Equal(got, []string{"history", "hosts", "ids"}) {
			t.Errorf("mount root lists %q", got)
		}
		if got := listNames(t, filepath.Join(m.dir, "hosts")); !slices.Equal(got, []string{"hist-host", host}) {
			t.Errorf("hosts/ lists %q", got)
		}
		snaps := s.snapshots()
		var hostSnap snapshotJSON
		for _, sn := range snaps {
			if sn.Host == host {
				hostSnap = sn
			}
		}
		if target, err := os.Readlink(latest); err != nil || target != names[hostSnap.ID] {
			t.Errorf("latest -> %q, %v; want %q", target, err, names[hostSnap.ID])
		}
		byID := filepath.Join(m.dir, "ids", hostSnap.ShortID, src, treegen.PathLarge)
		if sha256File(t, byID) != sha256File(t, filepath.Join(want, treegen.PathLarge)) {
			t.Errorf("ids/%s: content differs", hostSnap.ShortID)
		}
		if got := listNames(t, filepath.Join(m.dir, "ids")); len(got) != len(snaps) {
			t.Errorf("ids/ lists %d entries for %d snapshots", len(got), len(snaps))
		}
	})
	t.Run("history", func(t *testing.T) {
		if len(histSnaps) != 3 {
			t.Fatalf("%d snapshots of hist-host, want 3", len(histSnaps))
		}
		dir := filepath.Join(m.dir, "history", "hist-host", config)
		got := listNames(t, dir)
		wantNames := []string{names[histSnaps[0].ID] + "_app.conf", names[histSnaps[1].ID] + "_app.conf"}
		slices.Sort(wantNames)
		if !slices.Equal(got, wantNames) {
			t.Fatalf("versions of %s: %q, want %q", config, got, wantNames)
		}
		for i, content := range []string{"version A\n", "version B, longer\n"} {
			p := filepath.Join(dir, names[histSnaps[i].ID]+"_app.conf")
			if got := readFile(t, p); got != content {
				t.Errorf("%s = %q, want %q", filepath.Base(p), got, content)
			}
		}
		if st, err := os.Stat(filepath.Join(m.dir, "history", host, src, "files")); err != nil || !st.IsDir() {
			t.Errorf("history of a directory: %v", err)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		file := filepath.Join(mounted, treegen.PathSmall)
		dir := filepath.Join(mounted, "files")
		for name, op := range map[string]func() error{
			"write":  func() error { return os.WriteFile(file, []byte("x"), 0o644) },
			"create": func() error { return os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644) },
			"mkdir":  func() error { return os.Mkdir(filepath.Join(dir, "newdir"), 0o755) },
			"unlink": func() error { return unix.Unlink(file) },
			"rename": func() error { return os.Rename(file, file+".2") },
			"chmod":  func() error { return os.Chmod(file, 0o600) },
			"mkdir in hosts": func() error {
				return os.Mkdir(filepath.Join(m.dir, "hosts", "new"), 0o755)
			},
		} {
			if err := op(); !errors.Is(err, unix.EROFS) {
				t.Errorf("%s: %v, want EROFS", name, err)
			}
		}
	})
	t.Run("concurrent readers", func(t *testing.T) {
		p := filepath.Join(mounted, treegen.PathLarge)
		wantSum := sha256File(t, filepath.Join(want, treegen.PathLarge))
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				f, err := os.Open(p)
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				h := sha256.New()
				if _, err := io.Copy(h, f); err != nil {
					t.Errorf("reader %d: %v", i, err)
				} else if [32]byte(h.Sum(nil)) != wantSum {
					t.Errorf("reader %d: content differs", i)
				}
			})
		}
		wg.Wait()
	})
	t.Run("cp -a", func(t *testing.T) {
		out := s.path("copied")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{treegen.PathLarge, treegen.PathXattr, treegen.PathPre1970} {
			dst := filepath.Join(out, filepath.Base(rel))
			if b, err := exec.Command("cp", "-a", filepath.Join(mounted, rel), dst).CombinedOutput(); err != nil {
				t.Fatalf("cp -a %s: %v\n%s", rel, err, b)
			}
			treegen.Compare(t, filepath.Join(want, rel), dst, treegen.CompareOptions{})
		}
	})
	t.Run("new snapshot appears", func(t *testing.T) {
		before := listNames(t, filepath.Join(m.dir, "hosts", host))
		writeFile(t, filepath.Join(src, "added-while-mounted"), "new\n")
		s.backup("--host", host, src)
		deadline := time.Now().Add(5 * time.Second)
		for {
			after := listNames(t, filepath.Join(m.dir, "hosts", host))
			if len(after) > len(before) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hosts/%s still lists %q 5s after a backup", host, after)
			}
			time.Sleep(200 * time.Millisecond)
		}
		deadline = time.Now().Add(5 * time.Second)
		for !exists(filepath.Join(latest, src, "added-while-mounted")) {
			if time.Now().After(deadline) {
				t.Fatal("latest does not show the new snapshot")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	m.stopWith(t, m.signal(syscall.SIGINT))
}

// TestMountStops checks every way a mount ends: each leaves no mount behind
// and exits 0.
func TestMountStops(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "file"), "content\n")
	s.backup("--host", "h", src)
	tests := []struct {
		name string
		busy bool // a file stays open in the mount while it is stopped
		stop func(m *mountProc) func() error
	}{
		{"SIGINT", false, func(m *mountProc) func() error { return m.signal(syscall.SIGINT) }},
		{"SIGTERM", false, func(m *mountProc) func() error { return m.signal(syscall.SIGTERM) }},
		{"umount", false, func(m *mountProc) func() error { return m.umount }},
		{"SIGTERM while busy", true, func(m *mountProc) func() error { return m.signal(syscall.SIGTERM) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := s.startMount(t)
			p := filepath.Join(m.dir, "hosts", "h", "latest", src, "file")
			if got := readFile(t, p); got != "content\n" {
				t.Fatalf("%s = %q", p, got)
			}
			if tt.busy {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
			}
			m.stopWith(t, tt.stop(m))
		})
	}
}

// TestMountFailsCleanly checks the errors a user can cause.
func TestMountFailsCleanly(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	s.init()
	for name, args := range map[string][]string{
		"missing mount point": {"mount", s.path("does-not-exist")},
		"no mount point":      {"mount"},
	} {
		t.Run(name, func(t *testing.T) {
			_, stderr, code := s.costor(args...)
			if code == 0 {
				t.Fatalf("costor %q succeeded", args)
			}
			oneLine(t, name, stderr)
		})
	}
}
