package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/storage"
)

// Errors callers can recognise.
var (
	// ErrNoRepository: there is no repository at the location.
	ErrNoRepository = errors.New("no costor repository here")
	// ErrExists: Init found a repository already.
	ErrExists = errors.New("a costor repository already exists here")
	// ErrWrongPassword: no key file opens with the given password.
	ErrWrongPassword = errors.New("wrong password")
	// ErrIndexMissing: the index directory is gone but the repository holds data.
	ErrIndexMissing = errors.New("the repository index is missing")
	// ErrReadOnly: the credentials allow reading only (a recovery key).
	ErrReadOnly = errors.New("opened read-only with a recovery key: writing needs the repository password")
	// ErrMissingBlobs: a server refused a snapshot because it lacks blobs
	// the snapshot references (Remote.Commit).
	ErrMissingBlobs = errors.New("the server lacks blobs the snapshot references")
)

// Options say where a repository lives and how to treat other processes.
type Options struct {
	Storage storage.Storage
	// IndexDir is the Badger directory; for a local repository, DIR/index.
	IndexDir string
	Logger   *slog.Logger
	// LockWait is how long Open waits for another process that holds the
	// repository; zero means 10 minutes.
	LockWait time.Duration
	// OnWait is called once if Open has to wait, with a description of the
	// holder, so a terminal can say why nothing happens.
	OnWait func(holder string)
	// Command describes this process in lock records ("backup").
	Command string
	// RebuildIndex throws the index away and rebuilds it from the packs and
	// snapshot records (`costor repair index`); it also works when the
	// index is missing or damaged.
	RebuildIndex bool
	// CacheIndex makes IndexDir a private cache of a reader (the mount),
	// kept up to date from storage by Refresh, instead of the repository's
	// own index. Such a repository never writes to storage and does not
	// hold the repository lock, so backups go on while it reads.
	CacheIndex bool
	// Remote, if set, is a site server holding the repository's blobs:
	// Storage is then the same server's object store (config, host
	// envelopes, snapshot records), IndexDir a private cache of this
	// client, and no local pack is ever written.
	Remote Remote
}

// Credentials unlock a repository. Password opens the repository key file
// (full access). Recovery, the admin's recovery private key, opens every
// host's trees and snapshots but cannot write packs: read-only.
type Credentials struct {
	Password []byte
	Recovery *crypto.PrivateKey
	// Org, the organisation key, lets a client of a site server (which
	// holds no key file) seal new data: chunk keys, the chunker
	// polynomial and envelopes to the recovery key.
	Org *crypto.OrgKey
	// Host, if set, is this machine's key pair: added as a recipient of new
	// host envelopes and usable to read its own host's snapshots.
	Host *crypto.HostKey
}

// Repository is an open repository. It is safe for concurrent use.
type Repository struct {
	st     storage.Storage
	idx    *index.Index
	cfg    *Config
	log    *slog.Logger
	keys   keyring
	lockID string
	// closeCtx carries Open's values but not its cancellation, so that
	// Close can still remove the lock record after Ctrl-C.
	closeCtx context.Context

	blobs *blobWriter
	// remote, rblobs: a site server's repository (Options.Remote).
	remote Remote
	rblobs *remoteWriter
	// cache: the index is a reader's private cache (Options.CacheIndex);
	// packKey reads pack headers to fill it.
	cache   bool
	packKey crypto.Key
	// damagedRecords: snapshot records in storage that do not match their
	// names, found by the last reconcile.
	damagedRecords []id.ID

	hostMu   sync.Mutex
	hostKeys map[string]*HostKey // by envelope name
}

// Config returns the repository's configuration.
func (r *Repository) Config() Config { return *r.cfg }

// Storage returns the storage the repository lives in.
func (r *Repository) Storage() storage.Storage { return r.st }

// Index returns the repository's index.
func (r *Repository) Index() *index.Index { return r.idx }

// InitOptions choose the keys of a new repository.
type InitOptions struct {
	// Org, if set, makes the repository use an existing organisation secret
	// and recovery key (from `costor key init`) so its chunks dedup with the
	// organisation's and the admin's recovery key reads it.
	Org      *crypto.OrgKey
	Recovery *crypto.PrivateKey
	// KDF overrides the password KDF parameters (tests use cheap ones).
	KDF *crypto.KDFParams
	// PackSize overrides the target pack size.
	PackSize int
}

// Init creates a repository in opts.Storage and opens it.
func Init(ctx context.Context, opts Options, password []byte, io InitOptions) (*Repository, error) {
	if len(password) == 0 {
		return nil, fmt.Errorf("init %s: a password is required", opts.Storage.Location())
	}
	if _, err := opts.Storage.Stat(ctx, configHandle); err == nil {
		return nil, fmt.Errorf("init %s: %w", opts.Storage.Location(), ErrExists)
	} else if !errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("init %s: %w", opts.Storage.Location(), err)
	}
	keys, err := newRepoKeys(io)
	if err != nil {
		return nil, err
	}
	params := crypto.DefaultKDFParams
	if io.KDF != nil {
		params = *io.KDF
	}
	wrapped, err := crypto.EncodeRepoKeys(keys, password, params)
	if err != nil {
		return nil, fmt.Errorf("init: wrap keys: %w", err)
	}
	keyName, err := randomName()
	if err != nil {
		return nil, err
	}
	if err := saveBytes(ctx, opts.Storage, storage.Handle{Kind: storage.KindKeys, Name: keyName}, wrapped); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	cfgID, err := randomName()
	if err != nil {
		return nil, err
	}
	packSize := io.PackSize
	if packSize == 0 {
		packSize = 16 << 20
	}
	cfg := &Config{Version: FormatVersion, ID: cfgID, Created: time.Now().UTC(), PackSize: packSize}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.IndexDir, 0o700); err != nil {
		return nil, fmt.Errorf("init: create index directory: %w", err)
	}
	// The config is written last: a repository without one does not exist,
	// so an interrupted init leaves nothing that looks usable.
	if err := saveConfig(ctx, opts.Storage, cfg); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return Open(ctx, opts, Credentials{Password: password})
}

func newRepoKeys(io InitOptions) (crypto.RepoKeys, error) {
	var k crypto.RepoKeys
	k.Version = 1
	var err error
	if k.PackKey, err = crypto.NewRandomKey(); err != nil {
		return k, err
	}
	if io.Org != nil {
		if io.Recovery == nil || io.Recovery.Public() != io.Org.RecoveryPublic {
			return k, fmt.Errorf("init: the recovery key does not belong to the organisation key (its public half differs)")
		}
		k.OrgSecret = io.Org.Secret
		k.Recovery = *io.Recovery
		return k, nil
	}
	if k.OrgSecret, err = crypto.NewRandomKey(); err != nil {
		return k, err
	}
	if k.Recovery, _, err = crypto.GenerateKeyPair(); err != nil {
		return k, err
	}
	return k, nil
}

// Open opens an existing repository.
func Open(ctx context.Context, opts Options, creds Credentials) (*Repository, error) {
	st := opts.Storage
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := loadConfig(ctx, st)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (create one with `costor init`)", st.Location(), ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", st.Location(), err)
	}
	keys, err := unlock(ctx, st, creds)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", st.Location(), err)
	}
	r := &Repository{st: st, cfg: cfg, log: log, keys: keys, hostKeys: map[string]*HostKey{}, closeCtx: context.WithoutCancel(ctx), cache: opts.CacheIndex, remote: opts.Remote}
	if opts.CacheIndex && r.remote == nil {
		r.keys.full = false // a reader: never writes to storage
		r.packKey = keys.pack
	}
	if r.remote != nil {
		// A client's index is its private cache; the server is the truth.
		opts.CacheIndex = true
		r.cache = true
		if err := os.MkdirAll(opts.IndexDir, 0o700); err != nil {
			return nil, fmt.Errorf("create cache index %s: %w", opts.IndexDir, err)
		}
	}
	if err := r.openIndex(ctx, opts); err != nil {
		return nil, err
	}
	if r.remote != nil {
		if err := r.idx.ClearStored(ctx); err != nil {
			r.idx.Close()
			return nil, err
		}
	}
	if !opts.CacheIndex {
		if err := r.writeLock(ctx, opts.Command); err != nil {
			r.idx.Close()
			return nil, err
		}
	}
	if err := r.reconcile(ctx); err != nil {
		r.Close()
		return nil, err
	}
	if r.remote != nil {
		r.rblobs = newRemoteWriter(r)
	} else {
		r.blobs = newBlobWriter(r)
	}
	return r, nil
}

// openIndex opens the Badger index, waiting while another process holds it.
func (r *Repository) openIndex(ctx context.Context, opts Options) error {
	if opts.RebuildIndex {
		return r.rebuildIndex(ctx, opts)
	}
	if _, err := os.Stat(opts.IndexDir); errors.Is(err, fs.ErrNotExist) && !opts.CacheIndex {
		empty, err := r.isEmpty(ctx)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w at %s: run `costor repair index` to rebuild it from the packs", ErrIndexMissing, opts.IndexDir)
		}
	}
	wait := opts.LockWait
	if wait == 0 {
		wait = 10 * time.Minute
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		idx, err := index.Open(opts.IndexDir, index.Options{Logger: r.log})
		if err == nil {
			r.idx = idx
			return nil
		}
		if !errors.Is(err, index.ErrLocked) {
			return fmt.Errorf("open %s: %w", r.st.Location(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("repository %s is in use by %s: gave up after %s; try again when it has finished", r.st.Location(), r.lockHolders(ctx), wait)
		}
		if !told && opts.OnWait != nil {
			opts.OnWait(r.lockHolders(ctx))
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// rebuildIndex empties the index, or replaces it when it cannot be opened;
// reconcile then reads every pack and snapshot back in.
func (r *Repository) rebuildIndex(ctx context.Context, opts Options) error {
	idx, err := index.Open(opts.IndexDir, index.Options{Logger: r.log})
	switch {
	case err == nil:
		if err := idx.DropAll(ctx); err != nil {
			idx.Close()
			return fmt.Errorf("empty index %s: %w", opts.IndexDir, err)
		}
		r.idx = idx
		return nil
	case errors.Is(err, index.ErrLocked):
		return fmt.Errorf("repository %s is in use by %s: run the repair when it has finished", r.st.Location(), r.lockHolders(ctx))
	}
	r.log.Warn("index cannot be opened; replacing it", "dir", opts.IndexDir, "err", err)
	if err := os.RemoveAll(opts.IndexDir); err != nil {
		return fmt.Errorf("remove damaged index %s: %w", opts.IndexDir, err)
	}
	idx, err = index.Open(opts.IndexDir, index.Options{Logger: r.log})
	if err != nil {
		return fmt.Errorf("create index %s: %w", opts.IndexDir, err)
	}
	r.idx = idx
	return nil
}

// isEmpty reports whether the repository holds no pack and no snapshot.
func (r *Repository) isEmpty(ctx context.Context) (bool, error) {
	errFound := errors.New("found")
	for _, k := range []storage.Kind{storage.KindPacks, storage.KindSnapshots} {
		err := r.st.List(ctx, k, func(storage.Info) error { return errFound })
		if errors.Is(err, errFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("list %s: %w", k, err)
		}
	}
	return true, nil
}

// LoadConfig reads a repository's plaintext config (to find its ID, say)
// without opening it.
func LoadConfig(ctx context.Context, st storage.Storage) (*Config, error) {
	cfg, err := loadConfig(ctx, st)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", st.Location(), ErrNoRepository)
	}
	return cfg, err
}

// Refresh brings a cache index up to date with storage: new packs and
// snapshots are read in, gone ones dropped, new versions recorded.
func (r *Repository) Refresh(ctx context.Context) error {
	return r.reconcile(ctx)
}

// Close flushes nothing (callers Flush explicitly so that errors are seen)
// and releases the index and the lock record.
func (r *Repository) Close() error {
	var errs []error
	if r.blobs != nil {
		errs = append(errs, r.blobs.close())
	}
	if r.rblobs != nil {
		errs = append(errs, r.rblobs.close())
	}
	if c, ok := r.remote.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	if r.lockID != "" {
		errs = append(errs, r.st.Remove(r.closeCtx, storage.Handle{Kind: storage.KindLocks, Name: r.lockID}))
	}
	if r.idx != nil {
		errs = append(errs, r.idx.Close())
	}
	return errors.Join(errs...)
}

func randomName() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
