package retention

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snapshot is what a policy looks at.
type Snapshot struct {
	ID    string
	Time  time.Time
	Host  string
	Paths []string
	Tags  []string
}

// Policy says how many snapshots each rule keeps. Counts below one turn a
// rule off.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	// Location is the calendar the hour/day/week/month/year buckets follow;
	// nil means time.Local.
	Location *time.Location
}

// Empty reports whether no rule is on: such a policy keeps everything.
func (p Policy) Empty() bool {
	return p.Last <= 0 && p.Hourly <= 0 && p.Daily <= 0 && p.Weekly <= 0 && p.Monthly <= 0 && p.Yearly <= 0
}

// Decision is a policy's verdict on one snapshot. Reasons name every rule
// that kept it ("daily snapshot (2026-11-20)"); a removed snapshot has none.
type Decision struct {
	Snapshot
	Keep    bool
	Reasons []string
}

// rule is one keep-N rule: bucket maps a wall-clock time to its bucket's
// label, which is also what tells two buckets apart.
type rule struct {
	count  int
	name   string
	bucket func(t time.Time) string
}

func hourBucket(t time.Time) string { return t.Format("2006-01-02 15h") }
func dayBucket(t time.Time) string  { return t.Format("2006-01-02") }
func monthBucket(t time.Time) string {
	return t.Format("2006-01")
}
func yearBucket(t time.Time) string { return t.Format("2006") }

// weekBucket uses the ISO week, whose year differs from the calendar year
// around New Year (2026-12-31 is in 2026-W53, 2027-01-01 too).
func weekBucket(t time.Time) string {
	y, w := t.ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}

// Apply decides on the snapshots of one group (see Group) and returns one
// Decision per snapshot, newest first; equal times are ordered by ID.
// snaps is not modified.
func Apply(snaps []Snapshot, p Policy) []Decision {
	out := make([]Decision, len(snaps))
	for i, s := range snaps {
		out[i] = Decision{Snapshot: s}
	}
	slices.SortStableFunc(out, func(a, b Decision) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if p.Empty() {
		for i := range out {
			out[i].Keep = true
			out[i].Reasons = []string{"no policy"}
		}
		return out
	}
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	rules := []rule{
		{p.Last, "last snapshot", nil},
		{p.Hourly, "hourly snapshot", hourBucket},
		{p.Daily, "daily snapshot", dayBucket},
		{p.Weekly, "weekly snapshot", weekBucket},
		{p.Monthly, "monthly snapshot", monthBucket},
		{p.Yearly, "yearly snapshot", yearBucket},
	}
	last := make([]string, len(rules))
	oldest := len(out) - 1
	for i := range out {
		d := &out[i]
		wall := d.Time.In(loc)
		for r := range rules {
			ru := &rules[r]
			if ru.count <= 0 {
				continue
			}
			if ru.bucket == nil { // Last: every snapshot is its own bucket
				ru.count--
				d.Reasons = append(d.Reasons, ru.name)
				continue
			}
			b := ru.bucket(wall)
			switch {
			case b != last[r]: // "" before the first: no label is empty
				d.Reasons = append(d.Reasons, ru.name+" ("+b+")")
			case i == oldest:
				// The rule has counts left but no older bucket to spend
				// them on: keep the oldest so the history reaches back
				// as far as it can.
				d.Reasons = append(d.Reasons, "oldest "+ru.name+" ("+b+")")
			default:
				continue
			}
			last[r] = b
			ru.count--
		}
		d.Keep = len(d.Reasons) > 0
	}
	return out
}

// Group is the snapshots of one host with one set of paths, the unit a
// policy applies to.
type Group struct {
	Host      string
	Paths     []string // sorted, without duplicates
	Snapshots []Snapshot
}

// Groups splits snaps by host and the sorted set of paths. Groups are
// ordered by host, then paths; each keeps its snapshots in input order.
func Groups(snaps []Snapshot) []Group {
	var groups []Group
	index := map[string]int{}
	for _, s := range snaps {
		paths := slices.Compact(slices.Sorted(slices.Values(s.Paths)))
		key := groupKey(s.Host, paths)
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, Group{Host: s.Host, Paths: paths})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, s)
	}
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), slices.Compare(a.Paths, b.Paths))
	})
	return groups
}

// groupKey is unambiguous whatever bytes host and paths hold: every part
// is length-prefixed.
func groupKey(host string, paths []string) string {
	var b strings.Builder
	for _, part := range append([]string{host}, paths...) {
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return b.String()
}
