// Package index is costor's local blob index, kept in a Badger directory. It
// is the only package that imports Badger.
//
// It maps each blob ID to one location (pack, offset, lengths, type),
// records which packs are fully indexed, lists each pack's blobs, and caches
// the snapshot records. The packs are the truth: everything here can be
// rebuilt from them (`costor repair index`), which is why writes are not
// synced.
//
// Invariants:
//   - A pack record exists only after every entry of that pack is written:
//     AddPack writes the pack record in the same transaction as the entries,
//     or last when a pack is too large for one transaction. RemovePack deletes
//     the pack record last. A crash therefore leaves the index claiming less,
//     never more, than the packs hold.
//   - A blob has exactly one location. The first pack indexed for it wins;
//     a later pack replaces it only if the first pack's record is gone.
//   - Memory stays bounded whatever the number of blobs: nothing is held in
//     RAM beyond Badger's fixed-size caches and memtables.
//
// See docs/index.md for the key layout.
package index
