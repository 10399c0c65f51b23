//go:build linux

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// costorBin is the binary under test, built once by TestMain.
var costorBin string

// runTimeout bounds a single command; a hang is a failure, not a stuck suite.
const runTimeout = 10 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// Source trees need user xattrs; /tmp may be a tmpfs without them.
	if !treegen.XattrsSupported(os.TempDir()) {
		scratch := filepath.Join(root, "tests", "tmp")
		if err := os.MkdirAll(scratch, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(scratch)
		os.Setenv("TMPDIR", scratch)
	}
	binDir, err := os.MkdirTemp("", "costor-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// Other users (TestUnreadableFile runs costor as nobody) must reach it.
	if err := os.Chmod(binDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	costorBin = filepath.Join(binDir, "costor")
	buildArgs := []string{"build", "-o", costorBin}
	if os.Getenv("COSTOR_E2E_RACE") != "" {
		buildArgs = append(buildArgs, "-race") // the binary itself under the race detector
	}
	build := exec.Command("go", append(buildArgs, "./cmd/costor")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/costor: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the costor module")
	}
	return filepath.Dir(gomod), nil
}

// requireRoot skips a test that needs root, except under CI, where a
// skipped root test would hide a gap, so it fails instead.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root and CI is set: run the suite as root (sudo ./scripts/test.sh)")
	}
	t.Skip("needs root")
}

// tempDir is t.TempDir that can also be removed when a test left read-only
// directories in it and we are not root.
func tempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { treegen.MakeWritable(dir) })
	return dir
}

// runOptions are the less common knobs of a costor run.
type runOptions struct {
	env   []string
	args  []string
	stdin io.Reader
	cred  *syscall.Credential // run as another user
}

// run runs costor with exactly env (nothing inherited) and args, and returns
// what it printed and its exit code. It fails the test if costor panicked,
// hung, or could not be started.
func run(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runWith(t, runOptions{env: env, args: args})
}

func runWith(t testing.TB, o runOptions) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, costorBin, o.args...)
	cmd.Env = o.env
	cmd.Stdin = o.stdin
	// No controlling terminal: a password prompt must fail, not hang.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: o.cred}
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	start := time.Now()
	err := cmd.Run()
	stdout, stderr = outBuf.String(), errBuf.String()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("costor %q did not finish within %v\nstderr:\n%s", o.args, runTimeout, stderr)
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("costor %q: %v", o.args, err)
	}
	t.Logf("costor %q → exit %d in %v%s", o.args, code, time.Since(start).Round(time.Millisecond), indent(stderr))
	checkNoPanic(t, o.args, stderr)
	return stdout, stderr, code
}

func checkNoPanic(t testing.TB, args []string, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("costor %q panicked:\n%s", args, stderr)
	}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	if len(s) > 4000 {
		s = s[:4000] + "…"
	}
	return "\n\t| " + strings.ReplaceAll(s, "\n", "\n\t| ")
}

// sandbox is one test's world: its own repository, password, HOME and XDG
// directories, all under one temp dir.
type sandbox struct {
	t    testing.TB
	dir  string
	repo string
	vars map[string]string
	cred *syscall.Credential
}

const testPassword = "correct horse battery staple"

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	dir := tempDir(t)
	s := &sandbox{t: t, dir: dir, repo: filepath.Join(dir, "repo")}
	s.vars = map[string]string{
		"PATH":            os.Getenv("PATH"),
		"HOME":            filepath.Join(dir, "home"),
		"XDG_DATA_HOME":   filepath.Join(dir, "xdg-data"),
		"XDG_CONFIG_HOME": filepath.Join(dir, "xdg-config"),
		"XDG_CACHE_HOME":  filepath.Join(dir, "xdg-cache"),
		"TMPDIR":          os.TempDir(),
		"COSTOR_REPO":     s.repo,
		"COSTOR_PASSWORD": testPassword,
	}
	if err := os.MkdirAll(s.vars["HOME"], 0o700); err != nil {
		t.Fatal(err)
	}
	return s
}

// env returns the child environment: the sandbox's variables with changes
// applied, "NAME=VALUE" to set and "NAME" alone to unset.
func (s *sandbox) env(changes ...string) []string {
	vars := make(map[string]string, len(s.vars))
	for k, v := range s.vars {
		vars[k] = v
	}
	for _, c := range changes {
		k, v, ok := strings.Cut(c, "=")
		if ok {
			vars[k] = v
		} else {
			delete(vars, k)
		}
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// costor runs costor in the sandbox.
func (s *sandbox) costor(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	return runWith(s.t, runOptions{env: s.env(), args: args, cred: s.cred})
}

// mustCostor runs costor and fails the test unless it exits 0.
func (s *sandbox) mustCostor(args ...string) string {
	s.t.Helper()
	stdout, stderr, code := s.costor(args...)
	if code != 0 {
		s.t.Fatalf("costor %q: exit %d\nstderr:\n%s", args, code, stderr)
	}
	return stdout
}

func (s *sandbox) init() {
	s.t.Helper()
	s.mustCostor("init")
}

// backup runs a plain backup and returns the snapshot ID it printed last.
func (s *sandbox) backup(args ...string) string {
	s.t.Helper()
	return lastLine(s.t, s.mustCostor(append([]string{"backup"}, args...)...))
}

// backupJSON runs `costor --json backup ARGS` and returns its summary.
func (s *sandbox) backupJSON(args ...string) backupSummary {
	s.t.Helper()
	out := s.mustCostor(append([]string{"--json", "backup"}, args...)...)
	return parseBackupJSON(s.t, out)
}

func (s *sandbox) snapshots(args ...string) []snapshotJSON {
	s.t.Helper()
	out := s.mustCostor(append([]string{"--json", "snapshots"}, args...)...)
	return parseSnapshots(s.t, out)
}

func (s *sandbox) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// lastLine is the last non-empty line of out, trimmed.
func lastLine(t testing.TB, out string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		t.Fatalf("expected output on stdout, got none")
	}
	return last
}

// oneLine fails unless msg is exactly one non-empty line.
func oneLine(t testing.TB, what, msg string) string {
	t.Helper()
	msg = strings.TrimSpace(msg)
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("%s: want a one-line message on stderr, got %q", what, msg)
	}
	return msg
}

// snapshotJSON is one element of `costor --json snapshots`.
type snapshotJSON struct {
	ID      string          `json:"id"`
	ShortID string          `json:"short_id"`
	Time    time.Time       `json:"time"`
	Host    string          `json:"host"`
	Paths   []string        `json:"paths"`
	Tags    []string        `json:"tags"`
	Parent  json.RawMessage `json:"parent"`
	Tree    string          `json:"tree"`
	raw     json.RawMessage
}

// parentID is "" when the snapshot has no parent (null, "" or absent).
func (s snapshotJSON) parentID() string {
	var p *string
	if err := json.Unmarshal(s.Parent, &p); err != nil || p == nil {
		return ""
	}
	return *p
}

func parseSnapshots(t testing.TB, out string) []snapshotJSON {
	t.Helper()
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(out), &raws); err != nil {
		t.Fatalf("snapshots --json: not a JSON array: %v\n%s", err, out)
	}
	snaps := make([]snapshotJSON, 0, len(raws))
	for _, raw := range raws {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatalf("snapshots --json: element not an object: %s", raw)
		}
		for _, key := range []string{"id", "short_id", "time", "host", "paths", "tags", "parent", "tree"} {
			if _, ok := fields[key]; !ok {
				t.Errorf("snapshots --json: element lacks %q: %s", key, raw)
			}
		}
		var s snapshotJSON
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("snapshots --json: %v: %s", err, raw)
		}
		s.raw = raw
		snaps = append(snaps, s)
	}
	return snaps
}

// backupSummary is the object `costor --json backup` prints.
type backupSummary struct {
	fields map[string]any
	raw    string
}

// parseBackupJSON takes the last JSON object on stdout that has a
// snapshot_id: progress lines before it are allowed.
func parseBackupJSON(t testing.TB, out string) backupSummary {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var found backupSummary
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("backup --json: bad JSON: %v\n%s", err, out)
		}
		if obj, ok := v.(map[string]any); ok {
			if _, ok := obj["snapshot_id"]; ok {
				raw, _ := json.Marshal(obj)
				found = backupSummary{fields: obj, raw: string(raw)}
			}
		}
	}
	if found.fields == nil {
		t.Fatalf("backup --json: no object with snapshot_id on stdout:\n%s", out)
	}
	return found
}

func (b backupSummary) snapshotID(t testing.TB) string {
	t.Helper()
	id, ok := b.fields["snapshot_id"].(string)
	if !ok || id == "" {
		t.Fatalf("backup --json: snapshot_id is not a non-empty string: %s", b.raw)
	}
	return id
}

// Names the backup summary's counts may go by; the first is the one the
// suite expects (snake_case of snapshot.Stats), the others are accepted
// spellings. A count found under none of them fails the test.
var (
	keyFilesNew     = []string{"files_new", "new_files"}
	keyFilesChanged = []string{"files_changed", "changed_files", "files_modified"}
	keyFilesSame    = []string{"files_same", "files_unmodified", "unchanged_files"}
	keyBytesAdded   = []string{"bytes_added", "data_added", "added_bytes"}
	keyBytesTotal   = []string{"bytes", "total_bytes", "bytes_total", "total_bytes_processed"}
)

// count returns the number stored under one of names, at the top level or
// one object down (a "stats" member, say).
func (b backupSummary) count(t testing.TB, names []string) uint64 {
	t.Helper()
	objs := []map[string]any{b.fields}
	for _, v := range b.fields {
		if obj, ok := v.(map[string]any); ok {
			objs = append(objs, obj)
		}
	}
	for _, obj := range objs {
		for _, name := range names {
			v, ok := obj[name]
			if !ok {
				continue
			}
			n, ok := v.(json.Number)
			if !ok {
				t.Fatalf("backup --json: %s is not a number: %s", name, b.raw)
			}
			u, err := n.Int64()
			if err != nil || u < 0 {
				t.Fatalf("backup --json: %s is not a count: %s", name, b.raw)
			}
			return uint64(u)
		}
	}
	t.Fatalf("backup --json: no %q count in %s", names[0], b.raw)
	return 0
}

// treeSize is the sum of the sizes of the regular files under root and
// their number.
func treeSize(t testing.TB, root string) (bytes uint64, files int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		bytes += uint64(info.Size())
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bytes, files
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func generate(t testing.TB, dir string, seed int64) {
	t.Helper()
	if err := treegen.Generate(dir, treegen.Options{Seed: seed}); err != nil {
		t.Fatal(err)
	}
}
