package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/storage/local"
	"github.com/costor/costor/server/api"
)

// Options configure Run.
type Options struct {
	DataDir string // created 0700 if missing
	// Listen is the TCP address to serve on, e.g. "127.0.0.1:8443"; ":0"
	// picks a free port. Empty: 127.0.0.1:8443.
	Listen string
	// CertFile and KeyFile are an operator-supplied certificate and key
	// (PEM). Both empty: DataDir/tls/{cert,key}.pem, generated on first start.
	CertFile, KeyFile string
	Logger            *slog.Logger // nil discards
	// Ready, if set, is called with the bound address once the server
	// listens (tests listen on port 0).
	Ready func(addr string)
}

// defaultListen is the address Run listens on when Options.Listen is empty.
const defaultListen = "127.0.0.1:8443"

// Server-wide bounds.
const (
	// shutdownGrace bounds how long Run waits for requests in flight once
	// its ctx is done; then they are cancelled.
	shutdownGrace = 30 * time.Second
	// uploadBudget bounds the memory request bodies together hold: each
	// upload reserves twice its size (its pack is assembled in RAM before
	// it is saved, and each blob is read into a buffer first), a commit its
	// record, a missing query twice its ID list. It must exceed twice the
	// largest batch, api.MaxBatchBytes.
	uploadBudget = 1 << 30
)

// pruneGrace is how old a pack must be before prune may delete it: an
// agent uploads blobs before it commits the snapshot that references
// them, and prune must not delete them in between. Tests set it to 0.
var pruneGrace = 6 * time.Hour

type server struct {
	dataDir string
	logger  *slog.Logger
	st      *local.Storage
	x       *index.Index
	cfg     repoConfig
	sealer  headerSealer
	tokens  *tokenStore
	audit   *auditLog
	now     func() time.Time

	uploads *semaphore.Weighted
	// gcMu lets prune run alone: the index work of uploads, commits,
	// missing queries and forgets holds it shared (never while a request
	// body is read), so no commit can count on a blob prune is deleting.
	gcMu sync.RWMutex
	// writing claims blobs an upload is storing, so that concurrent
	// uploads of the same data (20 machines starting at once) store it
	// once: the others wait for the claim instead of writing a copy.
	writing claims
	// packWriters and blobBufs keep the buffers of finished uploads for
	// the next ones (the memory budget bounds how many are in use).
	packWriters sync.Pool
	blobBufs    sync.Pool
	snapLocks   keyedMutex
	grace       time.Duration

	mu sync.Mutex
	// unreffed lists snapshot records found without refs in the index
	// (an index lost and rebuilt from packs cannot know them): prune
	// refuses to run while any exists, or it would delete their blobs.
	unreffed map[id.ID]bool
}

// Run serves the site server until ctx is done, then shuts down
// gracefully (at most shutdownGrace) and closes the index.
func Run(ctx context.Context, opts Options) error {
	if opts.DataDir == "" {
		return errors.New("server: no data directory: give --data DIR")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	listen := opts.Listen
	if listen == "" {
		listen = defaultListen
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return fmt.Errorf("server: create data directory: %w", err)
	}
	s, cert, certPath, err := open(ctx, opts.DataDir, opts.CertFile, opts.KeyFile, logger)
	if err != nil {
		return err
	}
	closeAll := func() error {
		aerr := s.audit.close()
		xerr := s.x.Close()
		return errors.Join(aerr, xerr)
	}
	fp, err := Fingerprint(certPath)
	if err != nil {
		return errors.Join(fmt.Errorf("server: %w", err), closeAll())
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return errors.Join(fmt.Errorf("server: listen on %s: %w", listen, err), closeAll())
	}
	addr := ln.Addr().String()
	logger.Info("costor server listening", "addr", addr, "cert", certPath, "fingerprint", fp, "data", opts.DataDir)

	// Requests keep running while Shutdown waits for them; reqCancel stops
	// them once the grace period is over.
	reqCtx, reqCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer reqCancel()
	srv := &http.Server{
		Handler:           s.routes(),
		TLSConfig:         tlsConfig(cert),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// Uploads are 8 MiB batches, several at once: flow-control windows
		// of the default 1 MiB would stall each stream every megabyte.
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerConnection: 32 << 20,
			MaxReceiveBufferPerStream:     16 << 20,
		},
		BaseContext: func(net.Listener) context.Context { return reqCtx },
		// TLS handshake errors (a plain-HTTP client, a port scanner) are
		// noise at Info; they go to Debug.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	if opts.Ready != nil {
		opts.Ready(addr)
	}

	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("requests still running after the shutdown grace period; cancelling them", "grace", shutdownGrace)
			reqCancel()
			_ = srv.Close()
		}
		cancel()
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if serveErr != nil {
		serveErr = fmt.Errorf("server: serve on %s: %w", addr, serveErr)
	}
	err = errors.Join(serveErr, closeAll())
	if err == nil {
		logger.Info("costor server stopped", "addr", addr)
	}
	return err
}

// open prepares everything in the data directory and reconciles the index
// with the files. On error everything opened is closed again.
func open(ctx context.Context, dataDir, certFile, keyFile string, logger *slog.Logger) (s *server, cert tls.Certificate, certPath string, err error) {
	cert, certPath, err = loadTLS(dataDir, certFile, keyFile)
	if err != nil {
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	keys, err := loadOrCreateServerKeys(filepath.Join(dataDir, "server.key"))
	if err != nil {
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	s = &server{
		dataDir:  dataDir,
		logger:   logger,
		sealer:   headerSealer{keys.Pack},
		now:      time.Now,
		uploads:  semaphore.NewWeighted(uploadBudget),
		grace:    pruneGrace,
		unreffed: map[id.ID]bool{},
	}
	s.blobBufs.New = func() any { return new([]byte) }
	if s.tokens, err = openTokens(filepath.Join(dataDir, "tokens.json")); err != nil {
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	if err := s.ensureAdminToken(); err != nil {
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	if s.st, s.cfg, err = openRepo(ctx, filepath.Join(dataDir, "repo")); err != nil {
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	indexDir := filepath.Join(dataDir, "index")
	if s.x, err = index.Open(indexDir, index.Options{Logger: logger}); err != nil {
		if errors.Is(err, index.ErrLocked) {
			return nil, cert, "", fmt.Errorf("server: %w (is another costor server running on %s?)", err, dataDir)
		}
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	if s.audit, err = openAudit(filepath.Join(dataDir, "audit.log"), keys.Audit[:], logger); err != nil {
		_ = s.x.Close()
		return nil, cert, "", fmt.Errorf("server: %w", err)
	}
	if err := s.reconcile(ctx); err != nil {
		_ = s.audit.close()
		_ = s.x.Close()
		return nil, cert, "", fmt.Errorf("server: reconcile %s: %w", dataDir, err)
	}
	return s, cert, certPath, nil
}

// ensureAdminToken creates the first admin token on first start and
// writes it to admin.token, which is never overwritten. admin.token is
// written before tokens.json: if a crash comes between, the next start
// finds the token in admin.token and registers it.
func (s *server) ensureAdminToken() error {
	if s.tokens.exists() {
		return nil
	}
	path := filepath.Join(s.dataDir, "admin.token")
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		rec, ok := recordFromToken(strings.TrimSpace(string(data)), api.RoleAdmin, "admin", s.now())
		if !ok {
			return fmt.Errorf("%s does not hold a costor token and tokens.json is missing: move %s aside to create a new admin token", path, path)
		}
		if err := s.tokens.add(rec); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		tok, rec, err := newTokenSecret(api.RoleAdmin, "", "admin", s.now())
		if err != nil {
			return err
		}
		if err := writeFileOnce(path, []byte(tok+"\n"), 0o600); err != nil {
			return fmt.Errorf("create the first admin token: %w", err)
		}
		if err := s.tokens.add(rec); err != nil {
			return err
		}
	default:
		return fmt.Errorf("read admin token: %w", err)
	}
	s.logger.Info("first admin token written; keep it safe", "path", path)
	return nil
}

// keyedMutex serialises work on one snapshot (commit, forget) without
// serialising different snapshots.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[id.ID]*keyedLock
}

type keyedLock struct {
	mu    sync.Mutex
	users int
}

func (k *keyedMutex) lock(key id.ID) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[id.ID]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
