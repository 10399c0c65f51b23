// Package pack reads and writes pack files: many sealed blobs back to back,
// then a sealed header listing them, then a fixed trailer. The byte-level
// format is documented in docs/pack-format.md and pinned by a golden file.
//
// Invariants: a blob's ID is the SHA-256 of exactly its stored bytes (the
// writer trusts its caller for that; VerifyBlob checks it); a pack's ID is the
// SHA-256 of the whole pack; ReadHeader accepts only headers whose entries
// tile the blob region exactly, in offset order, and never allocates more
// than the pack's size justifies, because pack bytes come from untrusted
// storage and peers. Sealing goes through HeaderSealer so this package does
// not depend on the crypto package.
package pack
