//go:build linux

package tests

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/costor/costor/tests/treegen"
)

// newPruneSandbox is a sandbox whose repository uses the cheap test KDF:
// these tests open it a hundred times.
func newPruneSandbox(t *testing.T) *sandbox {
	t.Helper()
	s := newSandbox(t)
	s.vars["COSTOR_TEST_FAST_KDF"] = "1"
	s.init()
	return s
}

// pruneJSON is what `costor --json prune` prints.
type pruneJSON struct {
	DryRun        bool  `json:"dry_run"`
	Snapshots     int   `json:"snapshots"`
	BlobsUnused   int64 `json:"blobs_unused"`
	PacksDeleted  int   `json:"packs_deleted"`
	PacksRepacked int   `json:"packs_repacked"`
	BytesFreed    int64 `json:"bytes_freed"`
}

func (s *sandbox) prune(args ...string) pruneJSON {
	s.t.Helper()
	out := s.mustCostor(append([]string{"--json", "prune"}, args...)...)
	var p pruneJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		s.t.Fatalf("prune --json: %v\n%s", err, out)
	}
	return p
}

// forget removes one snapshot by ID.
func (s *sandbox) forget(snap string) {
	s.t.Helper()
	s.mustCostor("forget", snap)
	for _, sn := range s.snapshots() {
		if sn.ID == snap || sn.ShortID == snap {
			s.t.Fatalf("costor forget %s exited 0 but the snapshot is still listed", snap)
		}
	}
}

// restoreMatches restores snap and compares what came back for src with
// want (src itself unless given).
func (s *sandbox) restoreMatches(snap, src string, opts treegen.CompareOptions) {
	s.t.Helper()
	target, err := os.MkdirTemp(s.dir, "restore-")
	if err != nil {
		s.t.Fatal(err)
	}
	defer os.RemoveAll(target)
	s.mustCostor("restore", "--target", target, snap)
	treegen.Compare(s.t, src, filepath.Join(target, src), opts)
}

// removeEveryOther deletes bulk-0000.bin, bulk-0002.bin, … in dir, so that
// the packs that held dir's files become half garbage once the snapshot
// that had them all is forgotten.
func removeEveryOther(t testing.TB, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i += 2 {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("bulk-%04d.bin", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgetPruneFreesSpace: forget one snapshot and prune; the space its
// data alone took is freed (as reported), a dry run changes nothing, and
// every other snapshot restores byte for byte.
func TestForgetPruneFreesSpace(t *testing.T) {
	s := newPruneSandbox(t)
	src := s.path("src")
	if err := treegen.RandomFiles(src, 21, 12, 2<<20); err != nil {
		t.Fatal(err)
	}
	old := s.backup(src)
	removeEveryOther(t, src, 12)
	if err := treegen.RandomFiles(filepath.Join(src, "new"), 22, 4, 2<<20); err != nil {
		t.Fatal(err)
	}
	kept := s.backup(src)
	other := s.path("other")
	generate(t, other, 23) // every file type and metadata case
	keptOther := s.backup(other)

	_, before := packFiles(t, s.repo)
	dry := s.prune("--dry-run")
	if _, after := packFiles(t, s.repo); after != before || dry.PacksDeleted != 0 || dry.BlobsUnused != 0 {
		t.Errorf("dry run with nothing forgotten: packs %d → %d bytes, report %+v", before, after, dry)
	}

	s.forget(old)
	dry = s.prune("--dry-run")
	if _, after := packFiles(t, s.repo); after != before {
		t.Errorf("prune --dry-run changed the packs: %d → %d bytes", before, after)
	}
	if !dry.DryRun || dry.BlobsUnused == 0 || dry.PacksRepacked+dry.PacksDeleted == 0 {
		t.Errorf("dry run after forget plans nothing: %+v", dry)
	}
	rep := s.prune()
	_, after := packFiles(t, s.repo)
	t.Logf("packs %d → %d bytes; prune reported %+v", before, after, rep)
	if rep.BytesFreed <= 0 || before-after != rep.BytesFreed {
		t.Errorf("prune reported %d bytes freed; the packs shrank by %d", rep.BytesFreed, before-after)
	}
	// Six of twelve 2 MiB files were only in the forgotten snapshot.
	if want := int64(6<<20) * 3 / 2; rep.BytesFreed < want {
		t.Errorf("prune freed %d bytes, want at least %d of the 12 MiB only the forgotten snapshot had", rep.BytesFreed, want)
	}
	if snaps := s.snapshots(); len(snaps) != 2 {
		t.Errorf("%d snapshots after forgetting one of 3", len(snaps))
	}
	s.mustCostor("check", "--read-data")
	s.restoreMatches(kept, src, treegen.CompareOptions{})
	s.restoreMatches(keptOther, other, treegen.CompareOptions{})
	if again := s.prune(); again.BytesFreed != 0 || again.PacksDeleted != 0 {
		t.Errorf("a second prune still frees: %+v", again)
	}
}

// churn makes garbage for a prune: it backs up dir (a fresh set of n random
// files) with the rest of src, removes every other file, backs up again and
// forgets the first backup. It returns the second snapshot.
func churn(s *sandbox, src, dir string, seed int64, n int) string {
	s.t.Helper()
	if err := treegen.RandomFiles(dir, seed, n, 2<<20); err != nil {
		s.t.Fatal(err)
	}
	first := s.backup(src)
	removeEveryOther(s.t, dir, n)
	second := s.backup(src)
	s.forget(first)
	return second
}

// TestKillDuringPrune kills a real prune with SIGKILL at random moments;
// after each kill check --read-data passes and the kept snapshots restore.
func TestKillDuringPrune(t *testing.T) {
	s := newPruneSandbox(t)
	src := s.path("src")
	if err := treegen.RandomFiles(filepath.Join(src, "base"), 30, 8, 2<<20); err != nil {
		t.Fatal(err)
	}
	seed := time.Now().UnixNano()
	t.Logf("kill delays seeded with %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))

	// A first prune, run to the end, says how long one takes.
	const files = 24 // 48 MiB per round, half of it garbage afterwards
	kept := []string{churn(s, src, filepath.Join(src, "c00"), 100, files)}
	start := time.Now()
	s.prune()
	full := time.Since(start)
	t.Logf("an uninterrupted prune took %v", full)

	// Kill at random moments, and at the two that matter most: while new
	// packs are being written, and once old packs are being deleted.
	killed := 0
	const rounds = 8
	for i := 1; i <= rounds; i++ {
		kept = append(kept, churn(s, src, filepath.Join(src, fmt.Sprintf("c%02d", i)), int64(100+i), files))
		packsBefore, _ := packFiles(t, s.repo)
		b := s.start("prune")
		began := time.Now()
		var when string
		switch i % 4 {
		case 1: // random; in round 1 while opening
			delay := time.Duration(rng.Int64N(int64(full)))
			if i == 1 {
				delay = time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
			}
			time.Sleep(delay)
			when = "at random"
		case 2: // a random time into the rest of the prune
			time.Sleep(time.Duration(rng.Int64N(int64(full))))
			when = "at random"
		case 3: // as soon as a repacked pack appears
			waitPacks(b, s.repo, func(now []string) bool { return hasNew(now, packsBefore) })
			when = "after the first repacked pack was written"
		case 0: // as soon as an old pack is gone
			waitPacks(b, s.repo, func(now []string) bool { return lacksOld(now, packsBefore) })
			when = "after the first old pack was deleted"
		}
		if b.kill(t) {
			killed++
			packsAfter, _ := packFiles(t, s.repo)
			t.Logf("round %d: killed prune %s, %v in: %d packs before, %d new and %d deleted at the kill",
				i, when, time.Since(began).Round(time.Millisecond), len(packsBefore),
				countMissing(packsAfter, packsBefore), countMissing(packsBefore, packsAfter))
		} else {
			t.Logf("round %d: prune finished before the kill (%s)", i, when)
		}
		s.mustCostor("check", "--read-data")
		s.restoreMatches(kept[len(kept)-1], src, treegen.CompareOptions{})
		// Finish the job, so the next round's prune has one round of work:
		// as much as the calibration run.
		s.prune()
	}
	if killed < rounds/2 {
		t.Errorf("only %d of %d prunes were killed before they finished: the test proves little", killed, rounds)
	}
	// Every kept snapshot is listed, and a full prune still works after all
	// the kills; then each kept snapshot restores exactly what it held.
	ids := map[string]bool{}
	for _, sn := range s.snapshots() {
		ids[sn.ID], ids[sn.ShortID] = true, true
	}
	for _, k := range kept {
		if !ids[k] {
			t.Errorf("kept snapshot %s lost", k)
		}
	}
	s.prune()
	s.mustCostor("check", "--read-data")
	// check --read-data has verified every blob of every kept snapshot;
	// the newest restored after each kill; the oldest must too.
	s.restoreMatches(kept[0], src, treegen.CompareOptions{IgnoreRootMeta: true, Skip: func(rel string) bool {
		return rel != "." && rel != "base" && rel != "c00" && !strings.HasPrefix(rel, "base/") && !strings.HasPrefix(rel, "c00/")
	}})
}

// waitPacks polls the pack files until done holds for them or b exits.
func waitPacks(b *background, repo string, done func(now []string) bool) {
	for !b.exited() {
		matches, _ := filepath.Glob(filepath.Join(repo, "packs", "??", "*"))
		if done(matches) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// countMissing counts the entries of a that b lacks.
func countMissing(a, b []string) int {
	in := make(map[string]bool, len(b))
	for _, p := range b {
		in[p] = true
	}
	n := 0
	for _, p := range a {
		if !in[p] {
			n++
		}
	}
	return n
}

func hasNew(now, before []string) bool   { return countMissing(now, before) > 0 }
func lacksOld(now, before []string) bool { return countMissing(before, now) > 0 }

// TestPruneBesideBackup starts backup, prune and forget at the same time,
// several times: all finish (one waits for another's lock), and the
// repository stays whole. Each backup writes new data, drops old data and
// brings back a file that only old snapshots, perhaps only the one being
// forgotten, still hold: the blobs a prune is about to delete.
func TestPruneBesideBackup(t *testing.T) {
	s := newPruneSandbox(t)
	src := s.path("src")
	removed := s.path("removed")
	if err := treegen.RandomFiles(filepath.Join(src, "base"), 40, 6, 2<<20); err != nil {
		t.Fatal(err)
	}
	s.backup(src)
	writeFile(t, filepath.Join(src, "note.txt"), "second")
	s.backup(src)
	waits := 0
	for round := range 5 {
		dir := filepath.Join(src, fmt.Sprintf("r%d", round))
		if err := treegen.RandomFiles(dir, int64(50+round), 6, 1<<20); err != nil {
			t.Fatal(err)
		}
		if round > 0 {
			prev := fmt.Sprintf("r%d", round-1)
			if err := treegen.RandomFiles(filepath.Join(removed, prev), int64(50+round-1), 6, 1<<20); err != nil {
				t.Fatal(err) // the same bytes, kept outside src
			}
			removeEveryOther(t, filepath.Join(src, prev), 6)
		}
		if round > 1 {
			back := fmt.Sprintf("r%d", round-2)
			data := readFile(t, filepath.Join(removed, back, "bulk-0000.bin"))
			writeFile(t, filepath.Join(src, "revived", back+".bin"), data)
		}
		oldest := s.snapshots()[0].ID

		var wg sync.WaitGroup
		procs := make([]*background, 3)
		for i, args := range [][]string{{"backup", src}, {"prune"}, {"forget", oldest}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				procs[i] = s.start(args...)
			}()
		}
		wg.Wait()
		for _, p := range procs {
			<-p.done
			checkNoPanic(t, p.args, p.stderr.String())
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("round %d: costor %q beside the others: exit %d\nstderr:\n%s", round, p.args, code, p.stderr.String())
			}
			if strings.Contains(p.stderr.String(), "waiting for the repository") {
				waits++
			}
		}
		s.mustCostor("check", "--read-data")
		s.restoreMatches("latest", src, treegen.CompareOptions{})
	}
	t.Logf("%d processes waited for another's lock", waits)
	if waits == 0 {
		t.Error("no process ever waited for the lock: the three did not overlap")
	}
	s.prune()
	s.mustCostor("check", "--read-data")
	s.restoreMatches("latest", src, treegen.CompareOptions{})
}
