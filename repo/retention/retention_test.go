package retention

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

const idLayout = "2006-01-02T15:04Z07:00"

// calendar is a fixed history in Europe/Berlin: each ID is the snapshot's
// wall-clock time there. It covers a dense week, two snapshots in one hour,
// ISO weeks that straddle New Year (2024-12-30 is in 2025-W01, 2025-12-29 in
// 2026-W01, 2027-01-01 in 2026-W53), both DST changes of 2025 (the 02:30 of
// 2025-10-26 happens twice) and a New Year's night that UTC puts in the
// old year.
var calendar = []string{
	"2024-07-01T09:00+02:00", // listed out of order on purpose
	"2027-01-04T12:00+01:00",
	"2027-01-01T12:00+01:00",
	"2026-12-31T12:00+01:00",
	"2026-11-23T06:00+01:00",
	"2026-11-22T18:00+01:00",
	"2026-11-21T00:01+01:00",
	"2026-11-20T23:59+01:00",
	"2026-11-20T14:45+01:00",
	"2026-11-20T14:05+01:00",
	"2026-11-20T10:00+01:00",
	"2026-11-20T09:00+01:00",
	"2026-11-19T09:00+01:00",
	"2026-11-18T09:00+01:00",
	"2026-11-17T09:00+01:00",
	"2026-11-16T09:00+01:00",
	"2026-01-05T12:00+01:00",
	"2026-01-01T00:30+01:00",
	"2025-12-29T12:00+01:00",
	"2025-12-28T12:00+01:00",
	"2025-10-26T23:30+01:00",
	"2025-10-26T02:30+01:00", // the second 02:30 of the day
	"2025-10-26T02:30+02:00", // the first
	"2025-03-30T03:30+02:00", // spring forward: 02:00 CET became 03:00 CEST
	"2025-03-30T01:30+01:00",
	"2025-01-02T08:00+01:00",
	"2024-12-30T08:00+01:00",
	"2024-03-15T10:00+01:00",
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no zoneinfo: %v", err)
	}
	return loc
}

func calendarSnapshots(t *testing.T) []Snapshot {
	t.Helper()
	loc := berlin(t)
	snaps := make([]Snapshot, len(calendar))
	for i, s := range calendar {
		tm, err := time.Parse(idLayout, s)
		if err != nil {
			t.Fatal(err)
		}
		// The offsets above are Berlin's: a wrong one would test nothing.
		if got := tm.In(loc).Format(idLayout); got != s {
			t.Fatalf("fixture %s is %s in Berlin", s, got)
		}
		// Stored in UTC, as records are: only Policy.Location may decide
		// the calendar.
		snaps[i] = Snapshot{ID: s, Time: tm.UTC(), Host: "h", Paths: []string{"/p"}}
	}
	return snaps
}

// kept builds the expectation: every ID with its reasons.
type kept map[string][]string

// all keeps every calendar snapshot but the given ones, for reason.
func allBut(reason func(id string) string, removed ...string) kept {
	k := kept{}
	for _, id := range calendar {
		if !slices.Contains(removed, id) {
			k[id] = []string{reason(id)}
		}
	}
	return k
}

func TestApplyCalendar(t *testing.T) {
	loc := berlin(t)
	day := func(id string) string { return "daily snapshot (" + id[:10] + ")" }
	hour := func(id string) string { return "hourly snapshot (" + id[:10] + " " + id[11:13] + "h)" }
	for _, tc := range []struct {
		name string
		p    Policy
		want kept
	}{
		{"last 3", Policy{Last: 3}, kept{
			"2027-01-04T12:00+01:00": {"last snapshot"},
			"2027-01-01T12:00+01:00": {"last snapshot"},
			"2026-12-31T12:00+01:00": {"last snapshot"},
		}},
		{"last more than there are", Policy{Last: 100}, allBut(func(string) string { return "last snapshot" })},
		{"daily 4 across New Year", Policy{Daily: 4}, kept{
			"2027-01-04T12:00+01:00": {"daily snapshot (2027-01-04)"},
			"2027-01-01T12:00+01:00": {"daily snapshot (2027-01-01)"},
			"2026-12-31T12:00+01:00": {"daily snapshot (2026-12-31)"},
			"2026-11-23T06:00+01:00": {"daily snapshot (2026-11-23)"},
		}},
		{"daily 8 takes the newest of each day", Policy{Daily: 8}, kept{
			"2027-01-04T12:00+01:00": {"daily snapshot (2027-01-04)"},
			"2027-01-01T12:00+01:00": {"daily snapshot (2027-01-01)"},
			"2026-12-31T12:00+01:00": {"daily snapshot (2026-12-31)"},
			"2026-11-23T06:00+01:00": {"daily snapshot (2026-11-23)"},
			"2026-11-22T18:00+01:00": {"daily snapshot (2026-11-22)"},
			"2026-11-21T00:01+01:00": {"daily snapshot (2026-11-21)"},
			"2026-11-20T23:59+01:00": {"daily snapshot (2026-11-20)"},
			"2026-11-19T09:00+01:00": {"daily snapshot (2026-11-19)"},
		}},
		{"daily all: both DST days are one day each", Policy{Daily: 100}, allBut(day,
			"2026-11-20T14:45+01:00", "2026-11-20T14:05+01:00", "2026-11-20T10:00+01:00", "2026-11-20T09:00+01:00",
			"2025-10-26T02:30+01:00", "2025-10-26T02:30+02:00", "2025-03-30T01:30+01:00")},
		{"hourly 10: two snapshots in one hour", Policy{Hourly: 10}, kept{
			"2027-01-04T12:00+01:00": {"hourly snapshot (2027-01-04 12h)"},
			"2027-01-01T12:00+01:00": {"hourly snapshot (2027-01-01 12h)"},
			"2026-12-31T12:00+01:00": {"hourly snapshot (2026-12-31 12h)"},
			"2026-11-23T06:00+01:00": {"hourly snapshot (2026-11-23 06h)"},
			"2026-11-22T18:00+01:00": {"hourly snapshot (2026-11-22 18h)"},
			"2026-11-21T00:01+01:00": {"hourly snapshot (2026-11-21 00h)"},
			"2026-11-20T23:59+01:00": {"hourly snapshot (2026-11-20 23h)"},
			"2026-11-20T14:45+01:00": {"hourly snapshot (2026-11-20 14h)"},
			"2026-11-20T10:00+01:00": {"hourly snapshot (2026-11-20 10h)"},
			"2026-11-20T09:00+01:00": {"hourly snapshot (2026-11-20 09h)"},
		}},
		// The repeated 02:00-03:00 of a fall-back day is one wall-clock
		// hour: its two snapshots share a bucket.
		{"hourly all: the repeated hour is one bucket", Policy{Hourly: 100}, allBut(hour,
			"2026-11-20T14:05+01:00", "2025-10-26T02:30+02:00")},
		{"weekly 4: ISO week 53", Policy{Weekly: 4}, kept{
			"2027-01-04T12:00+01:00": {"weekly snapshot (2027-W01)"},
			"2027-01-01T12:00+01:00": {"weekly snapshot (2026-W53)"},
			"2026-11-23T06:00+01:00": {"weekly snapshot (2026-W48)"},
			"2026-11-22T18:00+01:00": {"weekly snapshot (2026-W47)"},
		}},
		{"weekly all: weeks across New Year", Policy{Weekly: 30}, kept{
			"2027-01-04T12:00+01:00": {"weekly snapshot (2027-W01)"},
			"2027-01-01T12:00+01:00": {"weekly snapshot (2026-W53)"},
			"2026-11-23T06:00+01:00": {"weekly snapshot (2026-W48)"},
			"2026-11-22T18:00+01:00": {"weekly snapshot (2026-W47)"},
			"2026-01-05T12:00+01:00": {"weekly snapshot (2026-W02)"},
			"2026-01-01T00:30+01:00": {"weekly snapshot (2026-W01)"}, // 2025-12-29 is in it too
			"2025-12-28T12:00+01:00": {"weekly snapshot (2025-W52)"},
			"2025-10-26T23:30+01:00": {"weekly snapshot (2025-W43)"},
			"2025-03-30T03:30+02:00": {"weekly snapshot (2025-W13)"},
			"2025-01-02T08:00+01:00": {"weekly snapshot (2025-W01)"}, // 2024-12-30 is in it too
			"2024-07-01T09:00+02:00": {"weekly snapshot (2024-W27)"},
			"2024-03-15T10:00+01:00": {"weekly snapshot (2024-W11)"},
		}},
		{"monthly 3", Policy{Monthly: 3}, kept{
			"2027-01-04T12:00+01:00": {"monthly snapshot (2027-01)"},
			"2026-12-31T12:00+01:00": {"monthly snapshot (2026-12)"},
			"2026-11-23T06:00+01:00": {"monthly snapshot (2026-11)"},
		}},
		{"yearly 3: no counts left for the oldest", Policy{Yearly: 3}, kept{
			"2027-01-04T12:00+01:00": {"yearly snapshot (2027)"},
			"2026-12-31T12:00+01:00": {"yearly snapshot (2026)"},
			"2025-12-29T12:00+01:00": {"yearly snapshot (2025)"}, // 2026-01-01T00:30 is 2026 in Berlin
		}},
		{"yearly 10: counts left keep the oldest too", Policy{Yearly: 10}, kept{
			"2027-01-04T12:00+01:00": {"yearly snapshot (2027)"},
			"2026-12-31T12:00+01:00": {"yearly snapshot (2026)"},
			"2025-12-29T12:00+01:00": {"yearly snapshot (2025)"},
			"2024-12-30T08:00+01:00": {"yearly snapshot (2024)"},
			"2024-03-15T10:00+01:00": {"oldest yearly snapshot (2024)"},
		}},
		{"every rule: a snapshot kept by several says so", Policy{Last: 2, Daily: 3, Weekly: 2, Monthly: 2, Yearly: 1}, kept{
			"2027-01-04T12:00+01:00": {"last snapshot", "daily snapshot (2027-01-04)", "weekly snapshot (2027-W01)", "monthly snapshot (2027-01)", "yearly snapshot (2027)"},
			"2027-01-01T12:00+01:00": {"last snapshot", "daily snapshot (2027-01-01)", "weekly snapshot (2026-W53)"},
			"2026-12-31T12:00+01:00": {"daily snapshot (2026-12-31)", "monthly snapshot (2026-12)"},
		}},
		{"rules reach different depths", Policy{Last: 1, Hourly: 2, Monthly: 4}, kept{
			"2027-01-04T12:00+01:00": {"last snapshot", "hourly snapshot (2027-01-04 12h)", "monthly snapshot (2027-01)"},
			"2027-01-01T12:00+01:00": {"hourly snapshot (2027-01-01 12h)"},
			"2026-12-31T12:00+01:00": {"monthly snapshot (2026-12)"},
			"2026-11-23T06:00+01:00": {"monthly snapshot (2026-11)"},
			"2026-01-05T12:00+01:00": {"monthly snapshot (2026-01)"},
		}},
		{"negative counts are off", Policy{Last: -1, Daily: 1}, kept{
			"2027-01-04T12:00+01:00": {"daily snapshot (2027-01-04)"},
		}},
		{"empty policy keeps everything", Policy{}, allBut(func(string) string { return "no policy" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Location = loc
			checkDecisions(t, Apply(calendarSnapshots(t), tc.p), tc.want)
		})
	}
}

// TestApplyLocation: the same history under another calendar falls into
// other buckets.
func TestApplyLocation(t *testing.T) {
	snaps := calendarSnapshots(t)
	// In UTC 2026-11-21T00:01+01:00 is still 2026-11-20: the day's newest.
	utcDaily := Apply(snaps, Policy{Daily: 7, Location: time.UTC})
	checkDecisions(t, utcDaily, kept{
		"2027-01-04T12:00+01:00": {"daily snapshot (2027-01-04)"},
		"2027-01-01T12:00+01:00": {"daily snapshot (2027-01-01)"},
		"2026-12-31T12:00+01:00": {"daily snapshot (2026-12-31)"},
		"2026-11-23T06:00+01:00": {"daily snapshot (2026-11-23)"},
		"2026-11-22T18:00+01:00": {"daily snapshot (2026-11-22)"},
		"2026-11-21T00:01+01:00": {"daily snapshot (2026-11-20)"},
		"2026-11-19T09:00+01:00": {"daily snapshot (2026-11-19)"},
	})
	// In UTC New Year's night 00:30 belongs to 2025.
	checkDecisions(t, Apply(snaps, Policy{Yearly: 3, Location: time.UTC}), kept{
		"2027-01-04T12:00+01:00": {"yearly snapshot (2027)"},
		"2026-12-31T12:00+01:00": {"yearly snapshot (2026)"},
		"2026-01-01T00:30+01:00": {"yearly snapshot (2025)"},
	})
	// UTC has no repeated hour.
	for _, d := range Apply(snaps, Policy{Hourly: 100, Location: time.UTC}) {
		if d.Keep == (d.ID == "2026-11-20T14:05+01:00") {
			t.Errorf("UTC hourly: %s keep=%v", d.ID, d.Keep)
		}
	}
}

func TestApplyOrderAndTies(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	snaps := []Snapshot{
		{ID: "b", Time: at}, {ID: "old", Time: at.Add(-time.Minute)}, {ID: "a", Time: at},
	}
	input := slices.Clone(snaps)
	got := Apply(snaps, Policy{Daily: 5, Location: time.UTC})
	if !slices.EqualFunc(snaps, input, func(x, y Snapshot) bool { return x.ID == y.ID }) {
		t.Errorf("Apply reordered its input: %v", snaps)
	}
	var ids []string
	for _, d := range got {
		ids = append(ids, d.ID)
	}
	// Equal times: by ID. One day: its newest, and the oldest while the
	// rule has counts left; the one in between goes.
	if want := []string{"a", "b", "old"}; !slices.Equal(ids, want) {
		t.Fatalf("order %v, want %v", ids, want)
	}
	checkDecisions(t, got, kept{
		"a":   {"daily snapshot (2026-05-01)"},
		"old": {"oldest daily snapshot (2026-05-01)"},
	})
	if len(Apply(nil, Policy{Last: 1})) != 0 {
		t.Errorf("decisions for no snapshots")
	}
	one := Apply([]Snapshot{{ID: "x", Time: at}}, Policy{Weekly: 3, Location: time.UTC})
	checkDecisions(t, one, kept{"x": {"weekly snapshot (2026-W18)"}})
}

// TestApplyInvariants checks what must hold for any policy.
func TestApplyInvariants(t *testing.T) {
	snaps := calendarSnapshots(t)
	loc := berlin(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		p := Policy{Last: rng.IntN(5), Hourly: rng.IntN(5), Daily: rng.IntN(5), Weekly: rng.IntN(5),
			Monthly: rng.IntN(5), Yearly: rng.IntN(5), Location: loc}
		ds := Apply(snaps, p)
		if len(ds) != len(snaps) {
			t.Fatalf("%+v: %d decisions for %d snapshots", p, len(ds), len(snaps))
		}
		nKept := 0
		for i, d := range ds {
			if d.Keep != (len(d.Reasons) > 0) {
				t.Fatalf("%+v: %s keep=%v reasons %q", p, d.ID, d.Keep, d.Reasons)
			}
			if d.Keep {
				nKept++
			}
			if i < p.Last && !slices.Contains(d.Reasons, "last snapshot") {
				t.Fatalf("%+v: %s is among the %d newest but not kept as such", p, d.ID, p.Last)
			}
		}
		// Each rule keeps at most its count.
		limit := p.Last + p.Hourly + p.Daily + p.Weekly + p.Monthly + p.Yearly
		if nKept > limit {
			t.Fatalf("%+v: kept %d, more than the rules allow (%d)", p, nKept, limit)
		}
		if !p.Empty() && nKept == 0 {
			t.Fatalf("%+v: kept nothing", p)
		}
		// Adding to a rule never removes a snapshot that was kept.
		more := p
		more.Daily++
		for i, d := range Apply(snaps, more) {
			if ds[i].Keep && !d.Keep {
				t.Fatalf("%+v kept %s, one more daily does not", p, d.ID)
			}
		}
	}
}

func checkDecisions(t *testing.T, got []Decision, want kept) {
	t.Helper()
	seen := 0
	for _, d := range got {
		reasons, ok := want[d.ID]
		switch {
		case ok && !d.Keep:
			t.Errorf("%s removed, want kept for %q", d.ID, reasons)
		case !ok && d.Keep:
			t.Errorf("%s kept for %q, want removed", d.ID, d.Reasons)
		case ok && !slices.Equal(d.Reasons, reasons):
			t.Errorf("%s kept for %q, want %q", d.ID, d.Reasons, reasons)
		case !ok && d.Reasons != nil:
			t.Errorf("%s removed with reasons %q", d.ID, d.Reasons)
		}
		if ok {
			seen++
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d expected snapshots were decided on", seen, len(want))
	}
}

func TestGroups(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	snaps := []Snapshot{
		{ID: "1", Host: "b", Paths: []string{"/x", "/a"}, Time: at},
		{ID: "2", Host: "a", Paths: []string{"/x"}, Time: at},
		{ID: "3", Host: "b", Paths: []string{"/a", "/x", "/a"}, Time: at},
		{ID: "4", Host: "b", Paths: []string{"/a"}, Time: at},
		{ID: "5", Host: "a", Paths: []string{"/x"}, Tags: []string{"t"}, Time: at},
		{ID: "6", Host: "a\x00/x", Time: at}, // no key collision with host a, paths /x
		{ID: "7", Host: "a", Paths: []string{"/x", ""}, Time: at},
	}
	var got []string
	for _, g := range Groups(snaps) {
		var ids []string
		for _, s := range g.Snapshots {
			ids = append(ids, s.ID)
		}
		got = append(got, g.Host+" "+strings.Join(g.Paths, ",")+": "+strings.Join(ids, ","))
	}
	want := []string{"a ,/x: 7", "a /x: 2,5", "a\x00/x : 6", "b /a: 4", "b /a,/x: 1,3"}
	if !slices.Equal(got, want) {
		t.Errorf("groups:\n%q\nwant\n%q", got, want)
	}
	if snaps[0].Paths[0] != "/x" {
		t.Errorf("Groups sorted a snapshot's own paths: %q", snaps[0].Paths)
	}
}
