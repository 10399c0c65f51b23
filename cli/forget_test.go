//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/costor/costor/agent"
	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage/local"
)

// backupAt takes a snapshot of src for host at a fixed time.
func (f *viewFixture) backupAt(src, host string, at time.Time, tags ...string) string {
	f.t.Helper()
	ctx := context.Background()
	st, err := local.Open(f.dir)
	mustDo(f.t, err)
	r, err := repo.Open(ctx, repo.Options{Storage: st, IndexDir: filepath.Join(f.dir, "index")},
		repo.Credentials{Password: []byte(viewTestPassword)})
	mustDo(f.t, err)
	defer r.Close()
	secret, err := r.OrgSecret()
	mustDo(f.t, err)
	pol, err := crypto.ChunkerPolynomial(secret)
	mustDo(f.t, err)
	hk, err := r.HostKeyFor(ctx, host)
	mustDo(f.t, err)
	res, err := agent.Backup(ctx, r, agent.BackupOptions{
		Paths: []string{src}, Tags: tags, Keyer: crypto.NewChunkKeyer(secret), Polynomial: pol, HostKey: hk,
		Hostname: host, Method: "none", Program: "costor test", Now: func() time.Time { return at },
	})
	mustDo(f.t, err)
	return res.SnapshotID.String()
}

// snapshotIDs lists the repository's snapshots through the CLI.
func (f *viewFixture) snapshotIDs() []string {
	f.t.Helper()
	out, _, err := f.run("--json", "snapshots")
	mustDo(f.t, err)
	var rows []struct{ ID string }
	mustDo(f.t, json.Unmarshal([]byte(out), &rows))
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// forgetHistory is a small history on the local calendar: host alpha backs
// up src daily (twice on the 20th) and other once; host beta backs up src
// once.
type forgetHistory struct {
	src                                           string
	a18, a19, a20morning, a20afternoon, a21, beta string
	other                                         string
}

func newForgetHistory(f *viewFixture, t *testing.T) forgetHistory {
	src := filepath.Join(t.TempDir(), "src")
	mustDo(t, os.MkdirAll(src, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	other := filepath.Join(t.TempDir(), "other")
	mustDo(t, os.MkdirAll(other, 0o755))
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.Local) }
	return forgetHistory{
		src:          src,
		a18:          f.backupAt(src, "alpha", day(18, 9), "x"),
		a19:          f.backupAt(src, "alpha", day(19, 9)),
		a20morning:   f.backupAt(src, "alpha", day(20, 9), "x"),
		a20afternoon: f.backupAt(src, "alpha", day(20, 14)),
		a21:          f.backupAt(src, "alpha", day(21, 9), "x"),
		beta:         f.backupAt(src, "beta", day(20, 10)),
		other:        f.backupAt(other, "alpha", day(19, 12)),
	}
}

func (h forgetHistory) all() []string {
	return sorted(h.a18, h.a19, h.a20morning, h.a20afternoon, h.a21, h.beta, h.other)
}

type forgetJSON struct {
	ID      string    `json:"id"`
	ShortID string    `json:"short_id"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	Paths   []string  `json:"paths"`
	Tags    []string  `json:"tags"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons"`
}

func parseForget(t *testing.T, out string) map[string]forgetJSON {
	t.Helper()
	var rows []forgetJSON
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("forget --json: %v\n%s", err, out)
	}
	m := map[string]forgetJSON{}
	for _, r := range rows {
		if r.Reasons == nil || r.Tags == nil || r.Paths == nil {
			t.Errorf("forget --json: null list in %+v", r)
		}
		m[r.ID] = r
	}
	return m
}

func TestForgetPolicy(t *testing.T) {
	f := newViewFixture(t)
	h := newForgetHistory(f, t)

	for _, tc := range []struct {
		name string
		args []string
		// reasons of the kept snapshots; every other listed one is removed
		keep   map[string][]string
		remove []string
	}{
		{"daily per group", []string{"--keep-daily", "2"}, map[string][]string{
			h.a21:          {"daily snapshot (2026-11-21)"},
			h.a20afternoon: {"daily snapshot (2026-11-20)"},
			h.beta:         {"daily snapshot (2026-11-20)"},
			h.other:        {"daily snapshot (2026-11-19)"},
		}, []string{h.a20morning, h.a19, h.a18}},
		{"last and daily", []string{"--keep-last", "1", "--keep-daily", "3"}, map[string][]string{
			h.a21:          {"last snapshot", "daily snapshot (2026-11-21)"},
			h.a20afternoon: {"daily snapshot (2026-11-20)"},
			h.a19:          {"daily snapshot (2026-11-19)"},
			h.beta:         {"last snapshot", "daily snapshot (2026-11-20)"},
			h.other:        {"last snapshot", "daily snapshot (2026-11-19)"},
		}, []string{h.a20morning, h.a18}},
		{"host filter, counts left keep the oldest", []string{"--host", "alpha", "--keep-weekly", "5"}, map[string][]string{
			h.a21:   {"weekly snapshot (2026-W47)"},
			h.a18:   {"oldest weekly snapshot (2026-W47)"},
			h.other: {"weekly snapshot (2026-W47)"},
		}, []string{h.a20afternoon, h.a20morning, h.a19}},
		{"tag filter", []string{"--tag", "x", "--keep-last", "1"}, map[string][]string{
			h.a21: {"last snapshot"},
		}, []string{h.a20morning, h.a18}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := f.run(append([]string{"forget", "--dry-run", "--json"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			rows := parseForget(t, out)
			if len(rows) != len(tc.keep)+len(tc.remove) {
				t.Errorf("%d decisions, want %d", len(rows), len(tc.keep)+len(tc.remove))
			}
			for id, reasons := range tc.keep {
				if r := rows[id]; !r.Keep || !slices.Equal(r.Reasons, reasons) {
					t.Errorf("%s: keep=%v %q, want kept for %q", id[:8], r.Keep, r.Reasons, reasons)
				}
			}
			for _, id := range tc.remove {
				if r, ok := rows[id]; !ok || r.Keep || len(r.Reasons) != 0 {
					t.Errorf("%s: %+v, want removed", id[:8], r)
				}
			}
			if !strings.Contains(stderr, "would be removed") {
				t.Errorf("dry run does not say so on stderr: %q", stderr)
			}
			if got := f.snapshotIDs(); !slices.Equal(got, h.all()) {
				t.Errorf("dry run removed snapshots: %d left", len(got))
			}
		})
	}

	t.Run("dry run table", func(t *testing.T) {
		out, _, err := f.run("forget", "--keep-daily", "2", "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"host alpha, paths " + h.src + ":", "keep 2 snapshots:", "would remove 3 snapshots:",
			h.a21[:8], "daily snapshot (2026-11-21)", "host beta, paths " + h.src + ":", "keep 1 snapshot:",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("real run", func(t *testing.T) {
		out, _, err := f.run("forget", "--keep-daily", "2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "removed 3 snapshots:") || strings.Contains(out, "would") {
			t.Errorf("output:\n%s", out)
		}
		if got, want := f.snapshotIDs(), sorted(h.a21, h.a20afternoon, h.beta, h.other); !slices.Equal(got, want) {
			t.Errorf("left %v, want %v", got, want)
		}
		// The same policy again finds nothing more to remove.
		out, _, err = f.run("--json", "forget", "--keep-daily", "2")
		if err != nil {
			t.Fatal(err)
		}
		for id, r := range parseForget(t, out) {
			if !r.Keep {
				t.Errorf("second run removes %s", id[:8])
			}
		}
	})
}

func TestForgetIDs(t *testing.T) {
	f := newViewFixture(t)
	h := newForgetHistory(f, t)

	// An unknown one among them: nothing is removed.
	_, _, err := f.run("forget", h.a18, "ffffffffff")
	if err == nil || !strings.Contains(err.Error(), "no such snapshot") {
		t.Fatalf("forget with an unknown ID: %v", err)
	}
	if got := f.snapshotIDs(); len(got) != 7 {
		t.Fatalf("a failed forget removed snapshots: %d left", len(got))
	}

	out, _, err := f.run("forget", "--dry-run", h.a18[:10], "latest", "--host", "beta")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "would remove 2 snapshots:") || !strings.Contains(out, h.a18[:8]) || !strings.Contains(out, h.beta[:8]) {
		t.Errorf("dry run output:\n%s", out)
	}
	if got := f.snapshotIDs(); len(got) != 7 {
		t.Fatalf("dry run removed snapshots: %d left", len(got))
	}

	// A prefix, a full ID, latest of --host, and one named twice.
	out, _, err = f.run("--json", "forget", h.a18[:10], h.a19, h.a19[:12], "latest", "--host", "beta")
	if err != nil {
		t.Fatal(err)
	}
	rows := parseForget(t, out)
	if len(rows) != 3 || rows[h.beta].Keep || rows[h.a19].Host != "alpha" || !slices.Equal(rows[h.a18].Paths, []string{h.src}) {
		t.Errorf("forget --json: %+v", rows)
	}
	if got, want := f.snapshotIDs(), sorted(h.a20morning, h.a20afternoon, h.a21, h.other); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

func TestForgetErrors(t *testing.T) {
	f := newViewFixture(t)
	h := newForgetHistory(f, t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"forget"}, "give snapshot IDs or at least one --keep-* option"},
		{[]string{"forget", "--host", "alpha", "--dry-run"}, "give snapshot IDs or at least one --keep-* option"},
		{[]string{"forget", "--keep-daily", "0"}, "give snapshot IDs or at least one --keep-* option"},
		{[]string{"forget", "--keep-daily", "-1"}, "--keep-daily -1: give a count of 0 or more"},
		{[]string{"forget", "--keep-last", "2", "--keep-yearly", "-3"}, "--keep-yearly -3"},
		{[]string{"forget", h.a18, "--keep-last", "1"}, "not both"},
		{[]string{"forget", "abcdefabcdef"}, `snapshot "abcdefabcdef": no such snapshot`},
		{[]string{"forget", "latest", "--host", "gamma"}, `latest snapshot of host "gamma"`},
		{[]string{"forget", "--keep-last", "x"}, "invalid value"},
	} {
		_, _, err := f.run(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want one line containing %q", tc.args, err, tc.want)
		}
		if ExitCode(err) != ExitError {
			t.Errorf("%v: exit code %d", tc.args, ExitCode(err))
		}
	}
	if got := f.snapshotIDs(); !slices.Equal(got, h.all()) {
		t.Errorf("failed forgets removed snapshots: %d left", len(got))
	}
}

func TestForgetPrune(t *testing.T) {
	f := newViewFixture(t)
	h := newForgetHistory(f, t)
	calls := 0
	var pruneErr error
	saved := pruneAfterForget
	t.Cleanup(func() { pruneAfterForget = saved })
	pruneAfterForget = func(c *ucli.Context, e *env, r *repo.Repository) error {
		calls++
		return pruneErr
	}

	for _, tc := range []struct {
		args  []string
		calls int
	}{
		{[]string{"forget", "--prune", "--dry-run", "--keep-last", "1"}, 0}, // nothing removed for real
		{[]string{"forget", "--keep-last", "100", "--prune"}, 0},            // nothing to remove
		{[]string{"forget", "--keep-last", "1"}, 0},                         // no --prune
		{[]string{"forget", h.a18, "--prune"}, 0},                           // removed by the previous run already
	} {
		calls = 0
		_, _, err := f.run(tc.args...)
		if tc.args[1] == h.a18 {
			if err == nil {
				t.Errorf("%v: forgetting a forgotten snapshot succeeded", tc.args)
			}
		} else if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if calls != tc.calls {
			t.Errorf("%v: prune ran %d times, want %d", tc.args, calls, tc.calls)
		}
	}

	h2 := f.backupAt(h.src, "alpha", time.Date(2026, 11, 22, 9, 0, 0, 0, time.Local))
	pruneErr = errors.New("prune failed")
	calls = 0
	_, _, err := f.run("forget", "--prune", "--keep-last", "1", "--host", "alpha")
	if calls != 1 || !errors.Is(err, pruneErr) {
		t.Errorf("forget --prune after removing: prune ran %d times, err %v", calls, err)
	}
	if got := f.snapshotIDs(); !slices.Equal(got, sorted(h2, h.beta, h.other)) {
		t.Errorf("left %v", got)
	}
}
