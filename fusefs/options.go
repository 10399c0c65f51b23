package fusefs

import "log/slog"

// Options tunes Mount. The zero value mounts every host for the calling user
// with a 32 MiB chunk cache and no logging.
type Options struct {
	Host       string // only this host's snapshots; "" for all
	AllowOther bool   // let other users in (the kernel still checks modes)
	CacheBytes int64  // decrypted chunk cache; 0 means DefaultCacheBytes
	Logger     *slog.Logger
	Debug      bool // log every FUSE request
	// OnMount, if set, is called once the filesystem is mounted and
	// serving, before Mount blocks: the moment to tell the user.
	OnMount func()
}

// DefaultCacheBytes is the chunk cache size when Options.CacheBytes is 0.
// The kernel keeps what was read in its page cache as well, so this cache
// mainly serves chunks read in several requests and read-ahead: 32 MiB
// holds read-ahead for a few files streaming at once.
const DefaultCacheBytes = 32 << 20
