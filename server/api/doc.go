// Package api is the wire protocol between costor clients and a site
// server: URL paths, JSON types, and the binary encodings of blob-ID
// lists, blob batches and snapshot commits.
//
// Every decoder here reads bytes from the network and is fuzzed. Decoders
// never trust a length they have not bounded: a batch or a list larger
// than its limit is an error, not an allocation.
//
// The protocol is documented for operators and reviewers in
// docs/server.md; this package is its one implementation.
package api
