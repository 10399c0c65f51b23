//go:build linux

package fusefs

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/costor/costor/repo/id"
)

// TimeFormat names a snapshot directory: its time, in local time.
const TimeFormat = "2006-01-02_15-04-05"

// refreshInterval is the least time between two calls of Source.Refresh.
const refreshInterval = time.Second

// catalog is the mount's current list of snapshots, refreshed at most once
// per refreshInterval when a listing that shows new snapshots is used.
type catalog struct {
	src  Source
	host string // only this host, "" for all
	now  func() time.Time

	mu      sync.Mutex // serialises refreshes
	checked time.Time  // when the Source was last asked
	view    *view
}

func newCatalog(src Source, host string, now func() time.Time) *catalog {
	return &catalog{src: src, host: host, now: now}
}

// current returns the view, refreshing it first when it is older than
// refreshInterval. A failed refresh keeps the previous view (the caller sees
// slightly old data rather than an error) unless there is none.
func (c *catalog) current(ctx context.Context) (*view, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.view != nil && now.Sub(c.checked) < refreshInterval && !now.Before(c.checked) {
		return c.view, nil
	}
	v, err := c.refreshLocked(ctx)
	if err != nil && c.view != nil {
		return c.view, nil
	}
	return v, err
}

// load forces a refresh, for the first view at mount time.
func (c *catalog) load(ctx context.Context) (*view, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx)
}

func (c *catalog) refreshLocked(ctx context.Context) (*view, error) {
	c.checked = c.now()
	if err := c.src.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("refresh snapshot list: %w", err)
	}
	snaps, err := c.src.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	if c.view != nil && c.view.same(snaps, c.host) {
		return c.view, nil
	}
	gen := uint64(1)
	if c.view != nil {
		gen = c.view.gen + 1
	}
	c.view = buildView(snaps, c.host, time.Local, gen)
	return c.view, nil
}

// view is one immutable state of the snapshot list, as the top-level
// directories show it.
type view struct {
	gen    uint64      // increases with every change
	ids    []id.ID     // every snapshot shown, sorted, to detect changes
	hosts  []*hostView // sorted by dir name
	byID   []namedSnap // ids/ entries, sorted by name
	dirOf  map[id.ID]string
	newest time.Time
}

// hostView is one host's snapshots.
type hostView struct {
	name   string      // directory name under hosts/ and history/
	host   string      // Snapshot.Host
	snaps  []namedSnap // oldest first
	byName []namedSnap // the same, sorted by name for lookups
}

// namedSnap is a snapshot under the name of its directory.
type namedSnap struct {
	name string
	snap *Snapshot
}

// buildView names every snapshot: per host by local time, with _2, _3 for
// snapshots in the same second in (time, ID) order; under ids/ by the
// shortest prefix of at least id.ShortLen hex digits that no other snapshot
// shares.
func buildView(snaps []Snapshot, host string, loc *time.Location, gen uint64) *view {
	v := &view{gen: gen, dirOf: make(map[id.ID]string)}
	shown := make([]*Snapshot, 0, len(snaps))
	seen := make(map[id.ID]bool, len(snaps))
	for i := range snaps {
		s := &snaps[i]
		if (host != "" && s.Host != host) || seen[s.ID] {
			continue
		}
		seen[s.ID] = true
		shown = append(shown, s)
	}
	slices.SortStableFunc(shown, func(a, b *Snapshot) int {
		return cmp.Or(a.Time.Compare(b.Time), bytes.Compare(a.ID[:], b.ID[:]))
	})
	byHost := map[string]*hostView{}
	used := map[string]int{} // host + "/" + base name → snapshots named so far
	for _, s := range shown {
		hv := byHost[s.Host]
		if hv == nil {
			hv = &hostView{name: dirName(s.Host), host: s.Host}
			byHost[s.Host] = hv
			v.hosts = append(v.hosts, hv)
		}
		// Local times can repeat (a DST change, two snapshots in one
		// second): later ones get _2, _3 in (time, ID) order.
		name := s.Time.In(loc).Format(TimeFormat)
		key := s.Host + "/" + name
		used[key]++
		if n := used[key]; n > 1 {
			name += "_" + strconv.Itoa(n)
		}
		hv.snaps = append(hv.snaps, namedSnap{name: name, snap: s})
		v.dirOf[s.ID] = name
		if s.Time.After(v.newest) {
			v.newest = s.Time
		}
	}
	for _, hv := range v.hosts {
		hv.byName = slices.Clone(hv.snaps)
		slices.SortFunc(hv.byName, func(a, b namedSnap) int { return cmp.Compare(a.name, b.name) })
	}
	slices.SortFunc(v.hosts, func(a, b *hostView) int { return cmp.Compare(a.name, b.name) })
	v.hosts = uniqueHostNames(v.hosts)

	v.ids = make([]id.ID, len(shown))
	for i, s := range shown {
		v.ids[i] = s.ID
	}
	slices.SortFunc(v.ids, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	bySnap := make(map[id.ID]*Snapshot, len(shown))
	for _, s := range shown {
		bySnap[s.ID] = s
	}
	v.byID = make([]namedSnap, len(v.ids))
	for i, sid := range v.ids {
		l := id.ShortLen
		if i > 0 {
			l = max(l, commonHexPrefix(v.ids[i-1], sid)+1)
		}
		if i+1 < len(v.ids) {
			l = max(l, commonHexPrefix(sid, v.ids[i+1])+1)
		}
		v.byID[i] = namedSnap{name: sid.String()[:min(l, 2*id.Size)], snap: bySnap[sid]}
	}
	return v
}

// commonHexPrefix is the number of hex digits a and b share at the start.
func commonHexPrefix(a, b id.ID) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i]>>4 == b[i]>>4 {
				return 2*i + 1
			}
			return 2 * i
		}
	}
	return 2 * len(a)
}

// dirName makes a host name usable as a directory name: '/' and NUL cannot
// appear in one, and "", "." and ".." mean something else.
func dirName(host string) string {
	switch host {
	case "":
		return "_"
	case ".", "..":
		return "_" + host
	}
	if strings.ContainsAny(host, "/\x00") {
		return strings.NewReplacer("/", "_", "\x00", "_").Replace(host)
	}
	return host
}

// uniqueHostNames keeps the first of hosts whose directory names collide
// after dirName; the others stay reachable under ids/.
func uniqueHostNames(hosts []*hostView) []*hostView {
	return slices.CompactFunc(hosts, func(a, b *hostView) bool { return a.name == b.name })
}

// same reports whether snaps, filtered to host, are the snapshots v shows.
func (v *view) same(snaps []Snapshot, host string) bool {
	n := 0
	for i := range snaps {
		if host != "" && snaps[i].Host != host {
			continue
		}
		if _, ok := slices.BinarySearchFunc(v.ids, snaps[i].ID, func(a, b id.ID) int {
			return bytes.Compare(a[:], b[:])
		}); !ok {
			return false
		}
		n++
	}
	return n == len(v.ids)
}

func (v *view) host(name string) *hostView {
	i, ok := slices.BinarySearchFunc(v.hosts, name, func(h *hostView, name string) int {
		return cmp.Compare(h.name, name)
	})
	if !ok {
		return nil
	}
	return v.hosts[i]
}

func (v *view) snapshotByName(name string) *Snapshot {
	return findNamed(v.byID, name)
}

func (h *hostView) snapshot(name string) *Snapshot {
	return findNamed(h.byName, name)
}

// latest is the name of the newest snapshot of h.
func (h *hostView) latest() namedSnap {
	return h.snaps[len(h.snaps)-1]
}

func findNamed(list []namedSnap, name string) *Snapshot {
	i, ok := slices.BinarySearchFunc(list, name, func(s namedSnap, name string) int {
		return cmp.Compare(s.name, name)
	})
	if !ok {
		return nil
	}
	return list[i].snap
}
