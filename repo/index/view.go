package index

import (
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// Point lookups (is this blob stored, where) run by the hundred thousand
// from many goroutines at once. Each badger.DB.View takes Badger's oracle
// lock and hands two marks to one watermark goroutine; with a dozen
// goroutines on two cores that goroutine falls behind, its channel fills
// and every lookup queues behind the lock (a trace of a backup of 100,000
// small files had goroutines spend 10 times the wall time waiting there).
// So lookups reuse read transactions from a small free list instead. A
// transaction only sees writes committed before it began, so each write
// bumps a generation and a transaction from an older generation is
// discarded rather than reused: a lookup never misses a write that
// finished before the lookup started.

// viewPoolSize bounds the idle read transactions kept; more than the
// goroutines that look up at once would only pin old versions longer.
const viewPoolSize = 32

type views struct {
	gen  atomic.Uint64
	free chan *pooledView
}

type pooledView struct {
	txn *badger.Txn
	gen uint64
}

func newViews() *views { return &views{free: make(chan *pooledView, viewPoolSize)} }

// view runs fn in a read transaction that reflects every write that had
// returned when view was called. fn must not keep the transaction or the
// values it read.
func (x *Index) view(fn func(txn *badger.Txn) error) error {
	if x.db.IsClosed() {
		return badger.ErrDBClosed // as db.View says
	}
	gen := x.views.gen.Load() // before the transaction starts: see wrote
	var v *pooledView
	select {
	case v = <-x.views.free:
		if v.gen != gen {
			v.txn.Discard()
			v = nil
		}
	default:
	}
	if v == nil {
		v = &pooledView{txn: x.db.NewTransaction(false), gen: gen}
	}
	err := fn(v.txn)
	select {
	case x.views.free <- v:
	default:
		v.txn.Discard()
	}
	return err
}

// wrote retires the pooled read transactions. Every write calls it after
// its commit and before it returns.
func (x *Index) wrote() { x.views.gen.Add(1) }

// closeViews discards the idle read transactions.
func (x *Index) closeViews() {
	for {
		select {
		case v := <-x.views.free:
			v.txn.Discard()
		default:
			return
		}
	}
}

// batch is a badger.WriteBatch whose Flush retires the pooled views.
type batch struct {
	*badger.WriteBatch
	x *Index
}

func (x *Index) newBatch() batch { return batch{x.db.NewWriteBatch(), x} }

func (b batch) Flush() error {
	defer b.x.wrote()
	return b.WriteBatch.Flush()
}

// Cancel discards what the batch has not committed; a WriteBatch commits
// as it fills, so part of it may be written already.
func (b batch) Cancel() {
	defer b.x.wrote()
	b.WriteBatch.Cancel()
}

// update is badger.DB.Update for one small write.
func (x *Index) update(fn func(txn *badger.Txn) error) error {
	defer x.wrote()
	return x.db.Update(fn)
}

// dropPrefix is badger.DB.DropPrefix.
func (x *Index) dropPrefix(prefix []byte) error {
	defer x.wrote()
	return x.db.DropPrefix(prefix)
}
