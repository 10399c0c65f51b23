// Package snapshot encodes and decodes snapshot records (docs/snapshot-format.md).
//
// A record has two layers. Public is JSON that servers read to list,
// retain and prune: host, time, tags, parent, and the sealed Details. The
// record's ID is the SHA-256 of its stored bytes, computed by the caller.
// Details is a canonical, versioned binary encoding because its paths,
// excludes and error messages are arbitrary bytes that JSON would mangle;
// the caller seals it to the host before it goes into Public.Sealed.
//
// Both decoders validate everything the encoders would refuse, so a record
// that decodes is one this package could have written.
package snapshot
