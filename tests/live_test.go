//go:build linux

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The proof that a live database is backed up consistently: PostgreSQL under
// pgbench load on a real btrfs volume, backed up through a btrfs snapshot,
// restored elsewhere, recovered, and checked. The same live data backed up
// without a snapshot is reported beside it, never asserted on.

// pgBinDir is where Debian's postgresql-15 package puts its programs.
const pgBinDir = "/usr/lib/postgresql/15/bin"

// extTimeout bounds one external program (mkfs, psql, pg_ctl, …).
const extTimeout = 2 * time.Minute

// requirePostgres skips when the PostgreSQL programs are missing, except
// under CI, where a skipped proof would hide a gap.
func requirePostgres(t testing.TB) {
	t.Helper()
	for _, prog := range []string{"initdb", "pg_ctl", "postgres", "pg_isready", "psql", "pg_dump", "pgbench", "pg_amcheck"} {
		if _, err := os.Stat(filepath.Join(pgBinDir, prog)); err != nil {
			msg := fmt.Sprintf("PostgreSQL 15 is not installed (%s missing): apt-get install postgresql-15 postgresql-client-15, or run ./scripts/test.sh", prog)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// execOptions are the less common knobs of an external program's run.
type execOptions struct {
	cred  *syscall.Credential // run as another user
	stdin io.Reader
	dir   string
}

// execProg runs an external program and returns its stdout; a failure's
// error carries its stderr.
func execProg(t testing.TB, o execOptions, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), extTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = o.stdin
	cmd.Dir = o.dir
	if o.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.cred}
		if cmd.Dir == "" {
			cmd.Dir = "/" // our working directory may be closed to that user
		}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/", "LC_ALL=C"}
	}
	// pg_ctl start leaves the server running; it must not hold our pipes open.
	cmd.WaitDelay = 5 * time.Second
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err := cmd.Run()
	if ctx.Err() != nil {
		return outBuf.String(), fmt.Errorf("%s %q: did not finish within %v", filepath.Base(name), args, extTimeout)
	}
	if err != nil {
		return outBuf.String(), fmt.Errorf("%s %q: %v: %s", filepath.Base(name), args, err, strings.TrimSpace(errBuf.String()))
	}
	return outBuf.String(), nil
}

// mustExec runs an external program as root and fails the test if it fails.
func mustExec(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := execProg(t, execOptions{}, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pgOwnerCred is the user PostgreSQL runs as, since it refuses root:
// Debian's postgres, or nobody where the package did not create it.
func pgOwnerCred(t testing.TB) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			t.Fatalf("no postgres or nobody user to run PostgreSQL as: %v", err)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("user %s: uid %q gid %q", u.Username, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// openAncestors lets other users traverse every parent of path: t.TempDir
// makes its directories 0700, and PostgreSQL runs as another user.
func openAncestors(t testing.TB, path string) {
	t.Helper()
	for d := filepath.Dir(path); d != "/" && d != "."; d = filepath.Dir(d) {
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

// chownTree gives every file under root to cred's user.
func chownTree(t testing.TB, root string, cred *syscall.Credential) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pgCluster is one PostgreSQL server reachable only through a unix socket
// in its own directory, with trust authentication for the role postgres.
type pgCluster struct {
	t       testing.TB
	name    string // for messages
	data    string
	sockDir string
	port    int
	owner   *syscall.Credential
	logFile string
	stopped bool
}

// newPGCluster prepares a cluster on data (created by initdb, or already
// there) and stops it, whatever happened, when the test ends.
func newPGCluster(t testing.TB, name, data string, port int) *pgCluster {
	t.Helper()
	scratch := tempDir(t)
	c := &pgCluster{
		t: t, name: name, data: data, port: port, owner: pgOwnerCred(t),
		sockDir: filepath.Join(scratch, "sock"), logFile: filepath.Join(scratch, "postgres.log"),
	}
	if err := os.Mkdir(c.sockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.logFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.sockDir, c.logFile} {
		if err := os.Chown(p, int(c.owner.Uid), int(c.owner.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	openAncestors(t, c.sockDir)
	openAncestors(t, c.data)
	t.Cleanup(func() {
		// Immediate: a test that failed half way must not wait on checkpoints.
		if err := c.stop("immediate"); err != nil {
			t.Logf("%s: %v", c.name, err)
		}
	})
	return c
}

func (c *pgCluster) asOwner(prog string, args ...string) (string, error) {
	c.t.Helper()
	return execProg(c.t, execOptions{cred: c.owner}, filepath.Join(pgBinDir, prog), args...)
}

func (c *pgCluster) initdb() {
	c.t.Helper()
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chown(c.data, int(c.owner.Uid), int(c.owner.Gid)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.asOwner("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
}

// start starts the server and waits until it accepts connections, crash
// recovery included.
func (c *pgCluster) start() error {
	c.t.Helper()
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -p %d", c.sockDir, c.port)
	if _, err := c.asOwner("pg_ctl", "start", "-w", "-t", "60", "-D", c.data, "-l", c.logFile, "-o", opts); err != nil {
		return fmt.Errorf("%s: %w\nserver log:\n%s", c.name, err, c.logTail())
	}
	c.stopped = false
	if _, err := execProg(c.t, execOptions{}, filepath.Join(pgBinDir, "pg_isready"), "-h", c.sockDir, "-p", strconv.Itoa(c.port), "-t", "30"); err != nil {
		return fmt.Errorf("%s: started but not ready: %w", c.name, err)
	}
	return nil
}

func (c *pgCluster) mustStart() {
	c.t.Helper()
	if err := c.start(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *pgCluster) stop(mode string) error {
	if c.stopped {
		return nil
	}
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err != nil {
		return nil // never started, or already down
	}
	c.stopped = true
	if _, err := c.asOwner("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", c.data); err != nil {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	return nil
}

// connArgs are the connection flags of every client program.
func (c *pgCluster) connArgs() []string {
	return []string{"-h", c.sockDir, "-p", strconv.Itoa(c.port), "-U", "postgres"}
}

func (c *pgCluster) clientArgs(db string) []string {
	return append(c.connArgs(), "-d", db)
}

// amcheck runs pg_amcheck on every database, indexes against their heaps.
func (c *pgCluster) amcheck() error {
	c.t.Helper()
	out, err := execProg(c.t, execOptions{}, filepath.Join(pgBinDir, "pg_amcheck"), append(c.connArgs(), "--all", "--heapallindexed")...)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// psql runs sql in db and returns the unaligned, tuples-only result.
func (c *pgCluster) psql(db, sql string) (string, error) {
	c.t.Helper()
	args := append([]string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"}, c.clientArgs(db)...)
	out, err := execProg(c.t, execOptions{}, filepath.Join(pgBinDir, "psql"), append(args, "-c", sql)...)
	return strings.TrimSpace(out), err
}

func (c *pgCluster) mustPSQL(db, sql string) string {
	c.t.Helper()
	out, err := c.psql(db, sql)
	if err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	return out
}

func (c *pgCluster) pgDump(db string) (string, error) {
	c.t.Helper()
	return execProg(c.t, execOptions{}, filepath.Join(pgBinDir, "pg_dump"), c.clientArgs(db)...)
}

func (c *pgCluster) logTail() string {
	b, _ := os.ReadFile(c.logFile)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// pgbenchState is what pgbench's transactions keep consistent: each adds
// the same delta to one account, one teller and one branch, and inserts one
// history row with that delta, all in one transaction.
type pgbenchState struct {
	accounts, history                    int64
	sumAccounts, sumTellers, sumBranches int64
	sumHistory                           int64
}

func (c *pgCluster) pgbenchState(db string) (pgbenchState, error) {
	c.t.Helper()
	out, err := c.psql(db, `SELECT (SELECT count(*) FROM pgbench_accounts),
		(SELECT count(*) FROM pgbench_history),
		(SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts),
		(SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),
		(SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches),
		(SELECT coalesce(sum(delta), 0) FROM pgbench_history)`)
	if err != nil {
		return pgbenchState{}, err
	}
	var st pgbenchState
	fields := strings.Split(out, "|")
	dst := []*int64{&st.accounts, &st.history, &st.sumAccounts, &st.sumTellers, &st.sumBranches, &st.sumHistory}
	if len(fields) != len(dst) {
		return pgbenchState{}, fmt.Errorf("pgbench state: unexpected psql output %q", out)
	}
	for i, f := range fields {
		if *dst[i], err = strconv.ParseInt(f, 10, 64); err != nil {
			return pgbenchState{}, fmt.Errorf("pgbench state: %q: %w", out, err)
		}
	}
	return st, nil
}

func (st pgbenchState) String() string {
	return fmt.Sprintf("accounts=%d history=%d sum(abalance)=%d sum(tbalance)=%d sum(bbalance)=%d sum(delta)=%d",
		st.accounts, st.history, st.sumAccounts, st.sumTellers, st.sumBranches, st.sumHistory)
}

// existedBetween says why st is not a state the database passed through
// while the history count went from lo to hi, or "" when it is.
func (st pgbenchState) existedBetween(accounts, lo, hi int64) string {
	switch {
	case st.accounts != accounts:
		return fmt.Sprintf("%d accounts, want %d", st.accounts, accounts)
	case st.sumAccounts != st.sumTellers || st.sumTellers != st.sumBranches || st.sumBranches != st.sumHistory:
		return "balances disagree: " + st.String()
	case st.history < lo || st.history > hi:
		return fmt.Sprintf("%d history rows, outside [%d, %d] committed around the backup", st.history, lo, hi)
	}
	return ""
}

// btrfsVolume makes a 2 GiB btrfs filesystem on a loop device and mounts
// it; it is unmounted and detached when the test ends.
func btrfsVolume(t *testing.T) string {
	t.Helper()
	dir := tempDir(t)
	img := filepath.Join(dir, "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, "mkfs.btrfs", "-q", "-f", img)
	dev := strings.TrimSpace(mustExec(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() {
		if _, err := execProg(t, execOptions{}, "losetup", "-d", dev); err != nil {
			t.Errorf("detach %s: %v", dev, err)
		}
	})
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mustExec(t, "mount", "-t", "btrfs", dev, mnt)
	t.Cleanup(func() {
		if _, err := execProg(t, execOptions{}, "umount", mnt); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
			_, _ = execProg(t, execOptions{}, "umount", "-l", mnt)
		}
	})
	return mnt
}

// btrfsSubvolumes lists the subvolumes of the filesystem mounted at mnt by
// path.
func btrfsSubvolumes(t testing.TB, mnt string) ([]string, error) {
	t.Helper()
	out, err := execProg(t, execOptions{}, "btrfs", "subvolume", "list", mnt)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if _, path, ok := strings.Cut(line, " path "); ok {
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// bgProcess is an external program running beside the test.
type bgProcess struct {
	cmd    *exec.Cmd
	output bytes.Buffer
	err    error
	done   chan struct{}
}

func startBackground(t testing.TB, name string, args ...string) *bgProcess {
	t.Helper()
	p := &bgProcess{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.output, &p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *bgProcess) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *bgProcess) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", p.cmd.Path, timeout)
	}
}

// snapshotMethod is the "method" a snapshot record says it was taken with.
func snapshotMethod(t testing.TB, snaps []snapshotJSON, id string) string {
	t.Helper()
	for _, s := range snaps {
		if s.ID != id && s.ShortID != id {
			continue
		}
		var fields struct {
			Method *string `json:"method"`
		}
		if err := json.Unmarshal(s.raw, &fields); err != nil || fields.Method == nil {
			t.Fatalf("snapshots --json: no method in %s", s.raw)
		}
		return *fields.Method
	}
	t.Fatalf("snapshots --json does not list %s", id)
	return ""
}

const pgbenchScale = 5 // 500 000 accounts, about 80 MB

// TestLivePostgresBtrfs: a btrfs-snapshot backup of PostgreSQL under write
// load restores to a cluster that recovers, passes pg_amcheck, and holds a
// state the database really passed through.
func TestLivePostgresBtrfs(t *testing.T) {
	requireRoot(t)
	requirePostgres(t)
	for _, prog := range []string{"mkfs.btrfs", "btrfs", "losetup"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s not found: install btrfs-progs and util-linux (./scripts/test.sh does)", prog)
		}
	}
	mnt := btrfsVolume(t)
	// Whatever happens, costor must leave no snapshot subvolume behind.
	t.Cleanup(func() {
		subvols, err := btrfsSubvolumes(t, mnt)
		if err != nil {
			t.Errorf("btrfs subvolume list: %v", err)
			return
		}
		for _, p := range subvols {
			if p != "pgdata-vol" {
				t.Errorf("subvolume %q left on the volume after the run (want only pgdata-vol)", p)
			}
		}
	})
	mustExec(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "pgdata-vol"))
	data := filepath.Join(mnt, "pgdata-vol", "data")

	live := newPGCluster(t, "live cluster", data, 54311)
	live.initdb()
	live.mustStart()
	live.mustPSQL("postgres", "CREATE DATABASE bench")
	for _, db := range []string{"postgres", "bench"} {
		live.mustPSQL(db, "CREATE EXTENSION amcheck")
	}
	pgbench := filepath.Join(pgBinDir, "pgbench")
	benchConn := live.connArgs()
	mustExec(t, pgbench, append(benchConn, "-i", "-q", "-s", strconv.Itoa(pgbenchScale), "bench")...)
	const accounts = pgbenchScale * 100000

	load := startBackground(t, pgbench, append(benchConn, "-n", "-T", "20", "-c", "4", "-j", "2", "bench")...)
	time.Sleep(3 * time.Second)
	historyCount := func() int64 {
		t.Helper()
		n, err := strconv.ParseInt(live.mustPSQL("bench", "SELECT count(*) FROM pgbench_history"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); historyCount() == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) || !load.running() {
			t.Fatalf("pgbench wrote nothing:\n%s", load.output.String())
		}
	}

	s := newSandbox(t)
	s.init()
	// Every transaction counted before the backup began was committed, so
	// it is in the snapshot; none committed after the backup ended can be.
	btrfsLo := historyCount()
	btrfsSnap := s.backup("--snapshot", "btrfs", data)
	btrfsHi := historyCount()
	underLoad := load.running()
	noneLo := historyCount()
	stdout, _, noneCode := s.costor("--json", "backup", "--snapshot", "none", data)
	noneHi := historyCount()
	noneUnderLoad := load.running()
	noneSnap, noneChanged := "", 0
	if noneCode == 0 || noneCode == 3 {
		sum := parseBackupJSON(t, stdout)
		noneSnap = sum.snapshotID(t)
		if changed, ok := sum.fields["changed_while_read"].([]any); ok {
			noneChanged = len(changed)
		}
	}

	if err := load.wait(t, time.Minute); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, load.output.String())
	}
	if !underLoad {
		t.Fatalf("pgbench ended before the btrfs-snapshot backup did: no load to prove anything under\n%s", load.output.String())
	}
	final, err := live.pgbenchState("bench")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pgbench: %s; final %s", lastTPS(load.output.String()), final)
	t.Logf("history rows committed: %d..%d during the btrfs backup, %d..%d during the none backup (pgbench still running: %v)",
		btrfsLo, btrfsHi, noneLo, noneHi, noneUnderLoad)
	if err := live.stop("fast"); err != nil {
		t.Fatal(err)
	}

	// The snapshot backup: this one must be right.
	restored := restorePGData(t, s, btrfsSnap, data)
	fromSnapshot := newPGCluster(t, "cluster restored from --snapshot btrfs", restored, 54312)
	fromSnapshot.mustStart()
	if strings.Contains(fromSnapshot.logTail(), "automatic recovery in progress") {
		t.Logf("restored cluster ran crash recovery, as after a power cut")
	}
	if err := fromSnapshot.amcheck(); err != nil {
		t.Errorf("pg_amcheck on the cluster restored from the btrfs snapshot: %v", err)
	}
	got, err := fromSnapshot.pgbenchState("bench")
	if err != nil {
		t.Fatal(err)
	}
	if why := got.existedBetween(accounts, btrfsLo, btrfsHi); why != "" {
		t.Errorf("restored from the btrfs snapshot: not a state that existed: %s", why)
	} else {
		t.Logf("restored from the btrfs snapshot: %s", got)
	}
	if err := fromSnapshot.stop("immediate"); err != nil {
		t.Error(err)
	}

	snaps := s.snapshots()
	if m := snapshotMethod(t, snaps, btrfsSnap); m != "btrfs" {
		t.Errorf("snapshot %s records method %q, want btrfs", btrfsSnap, m)
	}

	if noneSnap != "" {
		if m := snapshotMethod(t, snaps, noneSnap); m != "none" {
			t.Errorf("snapshot %s records method %q, want none", noneSnap, m)
		}
	}

	// The risky path: reported, never asserted on, as its outcome is luck.
	if noneSnap == "" {
		t.Logf("snapshot none: backup exited %d, no snapshot to restore", noneCode)
		return
	}
	t.Logf("snapshot none: exit %d, %d file(s) changed while read; %s",
		noneCode, noneChanged, noneOutcome(t, s, noneSnap, data, accounts, noneLo, noneHi))
}

// restorePGData restores snap's copy of data into a fresh directory off the
// btrfs volume and makes it a data directory PostgreSQL accepts.
func restorePGData(t *testing.T, s *sandbox, snap, data string) string {
	t.Helper()
	target := tempDir(t)
	s.mustCostor("restore", "--target", target, snap)
	restored := filepath.Join(target, data)
	if _, err := os.Stat(filepath.Join(restored, "PG_VERSION")); err != nil {
		t.Fatalf("restore of %s: no data directory at %s: %v", snap, restored, err)
	}
	// It names the live server, whose PID may still be running: PostgreSQL
	// would refuse to start, and pg_basebackup leaves it out for that reason.
	if err := os.Remove(filepath.Join(restored, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	chownTree(t, restored, pgOwnerCred(t))
	if err := os.Chmod(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	return restored
}

// noneOutcome starts a cluster on the --snapshot none backup and says how
// it fared.
func noneOutcome(t *testing.T, s *sandbox, snap, data string, accounts, lo, hi int64) string {
	t.Helper()
	restored := restorePGData(t, s, snap, data)
	c := newPGCluster(t, "cluster restored from --snapshot none", restored, 54313)
	defer c.stop("immediate")
	if err := c.start(); err != nil {
		return fmt.Sprintf("postgres started=false (%v)", firstLines(err.Error(), 12))
	}
	amcheck := "passed"
	if err := c.amcheck(); err != nil {
		amcheck = fmt.Sprintf("FAILED (%s)", firstLines(err.Error(), 6))
	}
	invariant := "held"
	if st, err := c.pgbenchState("bench"); err != nil {
		invariant = fmt.Sprintf("unreadable (%v)", firstLines(err.Error(), 3))
	} else if why := st.existedBetween(accounts, lo, hi); why != "" {
		invariant = "BROKEN: " + why
	} else {
		invariant = "held: " + st.String()
	}
	return fmt.Sprintf("postgres started=true, amcheck=%s, invariant=%s", amcheck, invariant)
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, " / ")
}

// lastTPS is pgbench's throughput line.
func lastTPS(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "tps = ") {
			return strings.TrimSpace(line)
		}
	}
	return "no tps line"
}

// streamSchema is a small database with what a dump must carry exactly:
// unicode, NULLs, escapes, arrays, JSON, numerics, references.
const streamSchema = `
CREATE TABLE authors (
	id serial PRIMARY KEY,
	name text NOT NULL,
	bio text
);
CREATE TABLE books (
	id integer PRIMARY KEY,
	author_id integer NOT NULL REFERENCES authors (id),
	title text NOT NULL,
	price numeric(10, 2),
	published date,
	tags text[],
	meta jsonb
);
CREATE TABLE notes (
	id bigserial PRIMARY KEY,
	book_id integer REFERENCES books (id),
	body text,
	created timestamptz NOT NULL
);
CREATE INDEX notes_book ON notes (book_id);
CREATE VIEW expensive AS SELECT id, title FROM books WHERE price > 50;
INSERT INTO authors (name, bio)
	SELECT 'Autor ' || i || ' Zoë Ñúñez 東京 🚀',
		CASE WHEN i % 7 = 0 THEN NULL ELSE repeat('bio ünïcödé, tab	and \ backslash ', i % 5) END
	FROM generate_series(1, 500) AS i;
INSERT INTO books
	SELECT i, 1 + i % 500, 'Título nº ' || i || E' — line one\nline two',
		CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 7 % 10000) / 100.0 END,
		CASE WHEN i % 13 = 0 THEN NULL ELSE date '2000-01-01' + i END,
		CASE WHEN i % 3 = 0 THEN NULL ELSE ARRAY['τag' || i % 10, 'Ω"quoted"'] END,
		jsonb_build_object('n', i, 'π', 3.14159, 'null', NULL, 'emoji', '👍')
	FROM generate_series(1, 3000) AS i;
INSERT INTO notes (book_id, body, created)
	SELECT 1 + i % 3000, CASE WHEN i % 5 = 0 THEN NULL ELSE md5(i::text) || ' ∑ ' END,
		timestamptz '2024-02-29 12:00:00+00' + i * interval '1 minute'
	FROM generate_series(1, 4000) AS i;
`

// normalizeDump drops what differs between two dumps of the same content:
// the random \restrict key of newer pg_dump releases, and version lines.
func normalizeDump(dump string) string {
	var keep []string
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, `\restrict `) || strings.HasPrefix(line, `\unrestrict `) ||
			strings.HasPrefix(line, "-- Dumped from") || strings.HasPrefix(line, "-- Dumped by") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// TestStreamPgDump: a pg_dump streamed into costor comes back byte for
// byte, restores into a database with the same content, a failing command
// writes no snapshot, and a repeated stream is deduplicated.
func TestStreamPgDump(t *testing.T) {
	requireRoot(t)
	requirePostgres(t)
	pg := newPGCluster(t, "dump cluster", filepath.Join(tempDir(t), "data"), 54321)
	pg.initdb()
	pg.mustStart()
	pg.mustPSQL("postgres", "CREATE DATABASE src")
	pg.mustPSQL("src", streamSchema)
	if n := pg.mustPSQL("src", "SELECT count(*) FROM notes WHERE body IS NULL"); n != "800" {
		t.Fatalf("test data: %s NULL notes, want 800", n)
	}
	direct, err := pg.pgDump("src")
	if err != nil {
		t.Fatal(err)
	}

	s := newSandbox(t)
	s.init()
	pgDump := append([]string{filepath.Join(pgBinDir, "pg_dump")}, pg.clientArgs("src")...)
	sum := s.backupJSON(append([]string{"--stdin-from-command", "--stdin-filename", "db.sql", "--"}, pgDump...)...)
	snap := sum.snapshotID(t)
	dumped := s.mustCostor("dump", snap+":/db.sql")
	if normalizeDump(dumped) != normalizeDump(direct) {
		t.Fatalf("costor dump of the streamed pg_dump (%d bytes) differs from pg_dump run directly (%d bytes)", len(dumped), len(direct))
	}
	target := tempDir(t)
	s.mustCostor("restore", "--target", target, snap+":/db.sql")
	if got := readFile(t, filepath.Join(target, "db.sql")); got != dumped {
		t.Errorf("restore SNAP:/db.sql (%d bytes) differs from dump SNAP:/db.sql (%d bytes)", len(got), len(dumped))
	}

	pg.mustPSQL("postgres", "CREATE DATABASE dst")
	psqlArgs := append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1"}, pg.clientArgs("dst")...)
	if out, err := execProg(t, execOptions{stdin: strings.NewReader(dumped)}, filepath.Join(pgBinDir, "psql"), psqlArgs...); err != nil {
		t.Fatalf("psql < restored dump: %v\n%s", err, out)
	}
	again, err := pg.pgDump("dst")
	if err != nil {
		t.Fatal(err)
	}
	if normalizeDump(again) != normalizeDump(direct) {
		t.Errorf("pg_dump of the database restored from costor differs from the original's (%d vs %d bytes)", len(again), len(direct))
	}
	if got := pg.mustPSQL("dst", "SELECT count(*), count(bio), max(name) FROM authors"); got != "500|429|Autor 99 Zoë Ñúñez 東京 🚀" {
		t.Errorf("restored authors: %q", got)
	}

	t.Run("failing command", func(t *testing.T) {
		before := len(s.snapshots())
		for _, cmd := range [][]string{
			{"false"},
			append(append([]string{}, pgDump[:len(pgDump)-1]...), "no_such_database"),
		} {
			_, stderr, code := s.costor(append([]string{"backup", "--stdin-from-command", "--stdin-filename", "bad.sql", "--"}, cmd...)...)
			if code == 0 {
				t.Errorf("backup --stdin-from-command -- %s exited 0", strings.Join(cmd, " "))
			}
			if strings.TrimSpace(stderr) == "" {
				t.Errorf("backup --stdin-from-command -- %s failed without a word on stderr", strings.Join(cmd, " "))
			}
		}
		if after := len(s.snapshots()); after != before {
			t.Errorf("failing commands left %d new snapshot(s)", after-before)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		// 17 MiB of random data then 1 MiB of text: chunks are at most
		// 8 MiB, so a chunked stream is at least three chunks whatever
		// the repository's chunker polynomial (with 5 MiB of random data
		// about one repository in a hundred found no boundary in it).
		stream := make([]byte, 18<<20)
		rng := rand.NewChaCha8([32]byte{'c', 'o', 's', 't', 'o', 'r'})
		_, _ = rng.Read(stream[:17<<20])
		copy(stream[17<<20:], bytes.Repeat([]byte("a line of a text dump, repeated\n"), 1<<15))
		backupStdin := func() backupSummary {
			stdout, stderr, code := runWith(t, runOptions{env: s.env(), stdin: bytes.NewReader(stream),
				args: []string{"--json", "backup", "--stdin", "--stdin-filename", "blob.bin"}})
			if code != 0 {
				t.Fatalf("backup --stdin: exit %d\n%s", code, stderr)
			}
			return parseBackupJSON(t, stdout)
		}
		first := backupStdin()
		if got := s.mustCostor("dump", first.snapshotID(t)+":/blob.bin"); got != string(stream) {
			t.Fatalf("dump of the --stdin stream: %d bytes, want the %d bytes sent", len(got), len(stream))
		}
		if added := first.count(t, keyBytesAdded); added < 17<<20 {
			t.Errorf("first --stdin stream added %d bytes, want at least its 17 MiB of random data", added)
		}
		if blobs := first.count(t, []string{"blobs_added"}); blobs < 4 {
			t.Errorf("an 18 MiB stream was stored as %d blobs (the tree included): not chunked", blobs)
		}
		second := backupStdin()
		added := second.count(t, keyBytesAdded)
		t.Logf("identical second stream added %d bytes", added)
		if added > 64<<10 {
			t.Errorf("an identical second stream added %d bytes, want (almost) none", added)
		}
	})
}

// TestHooks: the pre hook runs before the backup, the post hook after it,
// always, with the outcome in COSTOR_BACKUP_STATUS.
func TestHooks(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	writeFile(t, filepath.Join(src, "file.txt"), "content")
	logFile := s.path("hooks.log")
	pre := fmt.Sprintf(`echo "$COSTOR_HOOK" >> %s`, logFile)
	post := fmt.Sprintf(`echo "$COSTOR_HOOK:$COSTOR_BACKUP_STATUS" >> %s`, logFile)

	check := func(t *testing.T, args []string, wantOK bool, wantLog string) {
		t.Helper()
		if err := os.WriteFile(logFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(s.snapshots())
		_, stderr, code := s.costor(append([]string{"backup"}, args...)...)
		if wantOK && code != 0 {
			t.Errorf("exit %d, want 0\n%s", code, stderr)
		}
		if !wantOK && code == 0 {
			t.Errorf("exit 0, want a failure")
		}
		if got := readFile(t, logFile); got != wantLog {
			t.Errorf("hooks wrote %q, want %q", got, wantLog)
		}
		wantSnaps := before
		if wantOK {
			wantSnaps++
		}
		if after := len(s.snapshots()); after != wantSnaps {
			t.Errorf("%d snapshots after the backup, want %d", after, wantSnaps)
		}
	}

	t.Run("ok", func(t *testing.T) {
		check(t, []string{"--pre-hook", pre, "--post-hook", post, src}, true, "pre\npost:ok\n")
	})
	t.Run("failing pre hook", func(t *testing.T) {
		check(t, []string{"--pre-hook", pre + "; exit 7", "--post-hook", post, src}, false, "pre\npost:failed\n")
	})
	t.Run("failing backup", func(t *testing.T) {
		// The pre hook breaks the repository under the running backup: its
		// packs directory becomes a file, so storing the data must fail.
		packs := filepath.Join(s.repo, "packs")
		breakRepo := fmt.Sprintf("%s; mv %s %s.aside && : > %s", pre, packs, packs, packs)
		t.Cleanup(func() {
			if exists(packs + ".aside") {
				_ = os.Remove(packs)
				_ = os.Rename(packs+".aside", packs)
			}
		})
		writeFile(t, filepath.Join(src, "new.txt"), "new data the backup must store")
		if err := os.WriteFile(logFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(s.snapshots())
		_, _, code := s.costor("backup", "--pre-hook", breakRepo, "--post-hook", post, src)
		if err := os.Remove(packs); err != nil {
			t.Fatalf("the pre hook did not run: %v", err)
		}
		if err := os.Rename(packs+".aside", packs); err != nil {
			t.Fatal(err)
		}
		if code == 0 {
			t.Errorf("backup into a repository without a packs directory exited 0")
		}
		if got := readFile(t, logFile); got != "pre\npost:failed\n" {
			t.Errorf("hooks wrote %q, want %q", got, "pre\npost:failed\n")
		}
		if after := len(s.snapshots()); after != before {
			t.Errorf("the failed backup left %d new snapshot(s)", after-before)
		}
	})
	t.Run("stream", func(t *testing.T) {
		// The command's output is the backup: it must start after the pre
		// hook and end before the post hook.
		cmd := fmt.Sprintf(`echo cmd >> %s; echo data`, logFile)
		check(t, []string{"--pre-hook", pre, "--post-hook", post, "--stdin-from-command", "--stdin-filename", "s", "--", "sh", "-c", cmd},
			true, "pre\ncmd\npost:ok\n")
	})
	t.Run("failing stream command", func(t *testing.T) {
		cmd := fmt.Sprintf(`echo cmd >> %s; echo partial; exit 3`, logFile)
		check(t, []string{"--pre-hook", pre, "--post-hook", post, "--stdin-from-command", "--stdin-filename", "s", "--", "sh", "-c", cmd},
			false, "pre\ncmd\npost:failed\n")
	})
}
