//go:build linux

package tests

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func snapshotIDSet(snaps []snapshotJSON) []string {
	var ids []string
	for _, sn := range snaps {
		ids = append(ids, sn.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestForget(t *testing.T) {
	s := newSandbox(t)
	s.init()
	src := s.path("src")
	var ids []string
	for i, content := range []string{"one", "two", "three", "four"} {
		writeFile(t, filepath.Join(src, "f.txt"), content)
		ids = append(ids, s.backup(src))
		if i == 1 {
			ids = append(ids, s.backup("--host", "other", src))
		}
	}
	// ids: 0 1 other 2 3, oldest first; the newest two of this host are 2 and 3.
	mine, other := slices.Concat(ids[:2], ids[3:]), ids[2]
	all := snapshotIDSet(s.snapshots())
	if len(all) != 5 {
		t.Fatalf("want 5 snapshots, got %d", len(all))
	}

	t.Run("dry run removes nothing and says so", func(t *testing.T) {
		out, stderr, code := s.costor("forget", "--keep-last", "2", "--dry-run")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(out, "would remove 2 snapshots:") || !strings.Contains(out, "last snapshot") {
			t.Errorf("dry run output:\n%s", out)
		}
		for _, id := range mine[:2] {
			if !strings.Contains(out, id[:8]) {
				t.Errorf("dry run does not name %s:\n%s", id[:8], out)
			}
		}
		if !strings.Contains(stderr, "dry run") {
			t.Errorf("dry run does not say so on stderr: %q", stderr)
		}
		if got := snapshotIDSet(s.snapshots()); !slices.Equal(got, all) {
			t.Errorf("dry run removed snapshots: %d left", len(got))
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"forget"}, "--keep-"},
			{[]string{"forget", "--keep-daily", "-2"}, "--keep-daily -2"},
			{[]string{"forget", "0000000000"}, "no such snapshot"},
			{[]string{"forget", mine[0], "--keep-last", "1"}, "not both"},
		} {
			out, stderr, code := s.costor(tc.args...)
			msg := oneLine(t, strings.Join(tc.args, " "), stderr)
			if code != 1 || !strings.Contains(msg, tc.want) || out != "" {
				t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 1 and %q", tc.args, code, msg, out, tc.want)
			}
		}
		if got := snapshotIDSet(s.snapshots()); !slices.Equal(got, all) {
			t.Errorf("failed forgets removed snapshots: %d left", len(got))
		}
	})

	t.Run("policy", func(t *testing.T) {
		out := s.mustCostor("--json", "forget", "--keep-last", "2")
		var rows []struct {
			ID      string   `json:"id"`
			Keep    bool     `json:"keep"`
			Reasons []string `json:"reasons"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 5 {
			t.Fatalf("forget --json: %d rows, %v\n%s", len(rows), err, out)
		}
		for _, r := range rows {
			wantKeep := r.ID != mine[0] && r.ID != mine[1]
			if r.Keep != wantKeep || (r.Keep && !slices.Equal(r.Reasons, []string{"last snapshot"})) {
				t.Errorf("%s: keep=%v reasons %q, want keep=%v", r.ID[:8], r.Keep, r.Reasons, wantKeep)
			}
		}
		want := []string{mine[2], mine[3], other}
		slices.Sort(want)
		if got := snapshotIDSet(s.snapshots()); !slices.Equal(got, want) {
			t.Errorf("after forget --keep-last 2: %v, want %v", got, want)
		}
	})

	t.Run("by ID", func(t *testing.T) {
		out := s.mustCostor("forget", mine[2][:10])
		if !strings.Contains(out, "removed 1 snapshot:") || !strings.Contains(out, mine[2][:8]) {
			t.Errorf("forget ID output:\n%s", out)
		}
		want := []string{mine[3], other}
		slices.Sort(want)
		if got := snapshotIDSet(s.snapshots()); !slices.Equal(got, want) {
			t.Errorf("after forget ID: %v, want %v", got, want)
		}
		// Forgotten is gone: naming it again is an error.
		_, stderr, code := s.costor("forget", mine[2])
		if msg := oneLine(t, "forget a forgotten snapshot", stderr); code != 1 || !strings.Contains(msg, "no such snapshot") {
			t.Errorf("forget a forgotten snapshot: exit %d, %q", code, msg)
		}
		// The data stays until a prune: the kept snapshot still restores.
		s.mustCostor("restore", mine[3], "--target", s.path("restored"))
		if got := readFile(t, s.path("restored")+filepath.Join(src, "f.txt")); got != "four" {
			t.Errorf("restored %q after forget", got)
		}
	})
}
