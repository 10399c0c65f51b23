// Package local stores a repository in a directory on a local filesystem.
//
// Layout: one subdirectory per storage.Kind; packs are fanned out by the
// first two characters of their name (packs/ab/abcd…) so no directory grows
// past a few thousand entries. Create makes all of it with mode 0700.
//
// Invariants: Save writes a temporary file named ".tmp-…" in the object's own
// directory, fsyncs it, renames it into place and fsyncs the directory, so an
// object is either absent or whole, also after a crash. Valid object names
// never begin with '.', so List can skip temporary files by name, and
// CleanTemp can remove those left behind by killed processes.
package local
