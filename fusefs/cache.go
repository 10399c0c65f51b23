//go:build linux

package fusefs

import (
	"container/list"
	"context"
	"sync"

	"github.com/costor/costor/repo/id"
)

// lru is a byte-bounded least-recently-used cache of immutable values keyed
// by content ID, with deduplicated loads: concurrent gets of one missing key
// share a single call of load. Loads run under the cache's own context, not
// the requester's, so a reader that gives up (an interrupted read) only stops
// waiting; the value still arrives for the others and for the cache.
type lru[A, V any] struct {
	base  context.Context
	load  func(ctx context.Context, arg A) (V, error)
	cost  func(V) int64
	limit int64
	// prefetchSlots bounds the background loads that no reader waits for.
	prefetchSlots chan struct{}

	mu      sync.Mutex
	used    int64
	order   *list.List // of *lruItem[V], most recent first
	items   map[id.ID]*list.Element
	loading map[id.ID]*pendingLoad[V]
}

type lruItem[V any] struct {
	key  id.ID
	val  V
	cost int64
}

type pendingLoad[V any] struct {
	done chan struct{}
	val  V
	err  error
}

func newLRU[A, V any](base context.Context, limit int64, prefetchers int,
	load func(context.Context, A) (V, error), cost func(V) int64) *lru[A, V] {
	return &lru[A, V]{
		base:          base,
		load:          load,
		cost:          cost,
		limit:         limit,
		prefetchSlots: make(chan struct{}, max(prefetchers, 1)),
		order:         list.New(),
		items:         make(map[id.ID]*list.Element),
		loading:       make(map[id.ID]*pendingLoad[V]),
	}
}

// get returns the value for key, loading it with arg when it is not cached.
// It returns ctx's error as soon as ctx is done, even while the load goes on.
func (c *lru[A, V]) get(ctx context.Context, key id.ID, arg A) (V, error) {
	c.mu.Lock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		v := e.Value.(*lruItem[V]).val
		c.mu.Unlock()
		return v, nil
	}
	p := c.startLocked(key, arg, nil)
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.val, p.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// peek returns the value for key if it is cached, without loading it or
// changing its place in the eviction order.
func (c *lru[A, V]) peek(key id.ID) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		return e.Value.(*lruItem[V]).val, true
	}
	var zero V
	return zero, false
}

// prefetch starts loading key in the background unless it is cached, already
// loading, or all prefetch slots are busy (read-ahead is a hint, never a
// queue).
func (c *lru[A, V]) prefetch(key id.ID, arg A) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	if _, ok := c.loading[key]; ok {
		return
	}
	select {
	case c.prefetchSlots <- struct{}{}:
	default:
		return
	}
	c.startLocked(key, arg, func() { <-c.prefetchSlots })
}

// startLocked joins the load of key in progress or starts one; c.mu is held.
func (c *lru[A, V]) startLocked(key id.ID, arg A, done func()) *pendingLoad[V] {
	if p, ok := c.loading[key]; ok {
		if done != nil {
			done()
		}
		return p
	}
	p := &pendingLoad[V]{done: make(chan struct{})}
	c.loading[key] = p
	go func() {
		if done != nil {
			defer done()
		}
		p.val, p.err = c.load(c.base, arg)
		c.mu.Lock()
		delete(c.loading, key)
		if p.err == nil {
			c.addLocked(key, p.val)
		}
		c.mu.Unlock()
		close(p.done)
	}()
	return p
}

// addLocked inserts a loaded value and evicts from the cold end until the
// cache fits its limit again, always keeping the newest value: a single
// value larger than the limit is still worth keeping while it is read.
func (c *lru[A, V]) addLocked(key id.ID, v V) {
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return
	}
	it := &lruItem[V]{key: key, val: v, cost: c.cost(v)}
	c.items[key] = c.order.PushFront(it)
	c.used += it.cost
	for c.used > c.limit && c.order.Len() > 1 {
		old := c.order.Back()
		oit := old.Value.(*lruItem[V])
		c.order.Remove(old)
		delete(c.items, oit.key)
		c.used -= oit.cost
	}
}

// stats reports the number of cached values and their total cost.
func (c *lru[A, V]) stats() (n int, used int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.used
}
