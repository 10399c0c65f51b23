package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/repo/storage/local"
)

// writeFileAtomic replaces path with data so that a crash leaves either
// the old file or the new one, never a mix: temp file, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// writeFileOnce creates path with data, failing with fs.ErrExist if it is
// there already: used for admin.token, which must never be overwritten.
func writeFileOnce(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// link fails if path exists: no window in which another writer's file is replaced.
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// serverKeyVersion is the format of server.key this code writes and reads.
const serverKeyVersion = 1

// serverKeys are the server's own secrets. Neither decrypts client data:
// the pack key seals the headers of the packs the server writes, the audit
// key chains the audit log.
type serverKeys struct {
	Pack  crypto.Key
	Audit crypto.Key
}

type serverKeyFile struct {
	Version  int    `json:"version"`
	PackKey  []byte `json:"pack_key"`
	AuditKey []byte `json:"audit_key"`
}

func encodeServerKeys(k serverKeys) ([]byte, error) {
	return json.MarshalIndent(serverKeyFile{Version: serverKeyVersion, PackKey: k.Pack[:], AuditKey: k.Audit[:]}, "", "  ")
}

// decodeServerKeys parses server.key; it never accepts a short or zero key.
func decodeServerKeys(data []byte) (serverKeys, error) {
	var f serverKeyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return serverKeys{}, fmt.Errorf("malformed server key file: %w", err)
	}
	if dec.More() {
		return serverKeys{}, errors.New("malformed server key file: data after the JSON object")
	}
	if f.Version != serverKeyVersion {
		return serverKeys{}, fmt.Errorf("server key file version %d is not supported (this costor reads %d): upgrade costor", f.Version, serverKeyVersion)
	}
	var k serverKeys
	for _, c := range []struct {
		name string
		src  []byte
		dst  *crypto.Key
	}{{"pack_key", f.PackKey, &k.Pack}, {"audit_key", f.AuditKey, &k.Audit}} {
		if len(c.src) != crypto.KeySize {
			return serverKeys{}, fmt.Errorf("malformed server key file: %s is %d bytes, want %d", c.name, len(c.src), crypto.KeySize)
		}
		copy(c.dst[:], c.src)
		if *c.dst == (crypto.Key{}) {
			return serverKeys{}, fmt.Errorf("malformed server key file: %s is all zero", c.name)
		}
	}
	return k, nil
}

// loadOrCreateServerKeys reads DataDir/server.key, creating it with fresh
// random keys on first start. Losing it makes the server's packs unreadable
// to a reindex (their headers are sealed under it) and the audit log
// unverifiable, so it is never replaced.
func loadOrCreateServerKeys(path string) (serverKeys, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := decodeServerKeys(data)
		if err != nil {
			return k, fmt.Errorf("%s: %w; restore it from a backup of the data directory", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return serverKeys{}, fmt.Errorf("read server key: %w", err)
	}
	var k serverKeys
	if k.Pack, err = crypto.NewRandomKey(); err != nil {
		return k, err
	}
	if k.Audit, err = crypto.NewRandomKey(); err != nil {
		return k, err
	}
	enc, err := encodeServerKeys(k)
	if err != nil {
		return k, err
	}
	if err := writeFileOnce(path, enc, 0o600); err != nil {
		return k, fmt.Errorf("create server key: %w", err)
	}
	return k, nil
}

// headerSealer seals the headers of the server's packs: AES-256-GCM with a
// random nonce under the server's pack key, the construction repo uses for
// its own pack headers (docs/crypto.md).
type headerSealer struct{ key crypto.Key }

func (h headerSealer) Seal(plaintext []byte) ([]byte, error) {
	return crypto.SealRandom(h.key, nil, plaintext, nil)
}

func (h headerSealer) Open(sealed []byte) ([]byte, error) {
	return crypto.OpenRandom(h.key, nil, sealed, nil)
}

// repoConfig mirrors repo.Config's JSON (repo/config.go): clients read the
// server's repository ID from it and key their caches by it.
type repoConfig struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	PackSize int       `json:"pack_size"`
}

var configHandle = storage.Handle{Kind: storage.KindConfig, Name: "config"}

// serverPackSize is written into the config for clients that read it; the
// server itself makes one pack per upload request.
const serverPackSize = 16 << 20

// openRepo opens DataDir/repo, creating the layout and its config on first
// start; a crash between the two is finished on the next start.
func openRepo(ctx context.Context, dir string) (*local.Storage, repoConfig, error) {
	st, err := local.Open(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, local.ErrNotRepository) {
		// First start, or a first start interrupted while creating the layout
		// (Create refuses a directory that holds anything else).
		st, err = local.Create(dir)
	}
	if err != nil {
		return nil, repoConfig{}, fmt.Errorf("open repository in %s: %w", dir, err)
	}
	var cfg repoConfig
	err = st.Load(ctx, configHandle, 0, 0, func(r io.Reader) error {
		data, err := io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &cfg)
	})
	if err == nil {
		if cfg.Version != 1 || cfg.ID == "" {
			return nil, repoConfig{}, fmt.Errorf("repository config in %s: version %d, id %q: not a server repository this costor reads", dir, cfg.Version, cfg.ID)
		}
		return st, cfg, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, repoConfig{}, fmt.Errorf("read repository config in %s: %w", dir, err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, repoConfig{}, err
	}
	cfg = repoConfig{Version: 1, ID: hex.EncodeToString(raw[:]), Created: time.Now().UTC(), PackSize: serverPackSize}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, repoConfig{}, err
	}
	if err := st.Save(ctx, configHandle, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, repoConfig{}, fmt.Errorf("write repository config: %w", err)
	}
	return st, cfg, nil
}
