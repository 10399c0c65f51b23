// Package storage defines where a repository's objects live and the contract
// every backend keeps (see Storage). The repository above it never assumes
// files: a local directory, an in-memory map and (later) an S3 bucket are all
// just Storage. Backends live in sub-packages (local, mem)
// and all of them run the one conformance suite in storagetest, so the
// repository above can rely on the contract and never on a backend's quirks.
//
// Invariants every backend upholds: a saved object is either wholly visible or
// not visible at all; names are validated before any I/O (Handle.Validate), so
// no name can escape its kind's namespace.
package storage
