// Package tree encodes and decodes tree blobs: the listing of one directory.
//
// The encoding (docs/tree-format.md) is binary, versioned and canonical:
// a Tree has exactly one encoding and every byte string Decode accepts is
// the encoding of the tree it returns, so an unchanged directory always
// yields the same blob ID. Names are arbitrary bytes except that they are
// never empty, ".", "..", and never hold '/' or NUL; nodes are strictly
// sorted by name. Decode never trusts declared counts beyond what the
// remaining input could hold, so hostile input costs O(len(input)) memory.
package tree
