package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/costor/costor/repo/storage"
)

// FormatVersion is the repository format this code writes and reads.
const FormatVersion = 1

var configHandle = storage.Handle{Kind: storage.KindConfig, Name: "config"}

// Config is the plaintext description of a repository. It holds no secret.
type Config struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// PackSize is the target size of pack files in bytes.
	PackSize int `json:"pack_size"`
}

func (c *Config) validate() error {
	if c.Version != FormatVersion {
		return fmt.Errorf("repository format version %d is not supported by this costor (it reads version %d): upgrade costor", c.Version, FormatVersion)
	}
	if c.ID == "" {
		return fmt.Errorf("repository config has no id")
	}
	if c.PackSize < 1<<20 || c.PackSize > 128<<20 {
		return fmt.Errorf("repository config: pack size %d outside 1 MiB..128 MiB", c.PackSize)
	}
	return nil
}

func saveConfig(ctx context.Context, st storage.Storage, c *Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return st.Save(ctx, configHandle, bytes.NewReader(data), int64(len(data)))
}

func loadConfig(ctx context.Context, st storage.Storage) (*Config, error) {
	data, err := loadAll(ctx, st, configHandle)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode repository config: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// maxObjectSize bounds what loadAll reads into memory: config, key files,
// snapshot records and host envelopes are all small.
const maxObjectSize = 64 << 20

func loadAll(ctx context.Context, st storage.Storage, h storage.Handle) ([]byte, error) {
	var buf bytes.Buffer
	err := st.Load(ctx, h, 0, 0, func(r io.Reader) error {
		_, err := buf.ReadFrom(io.LimitReader(r, maxObjectSize+1))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	if buf.Len() > maxObjectSize {
		return nil, fmt.Errorf("load %s: larger than %d bytes", h, maxObjectSize)
	}
	return buf.Bytes(), nil
}
