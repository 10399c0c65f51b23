package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/costor/costor/repo/storage"
)

var _ storage.Streamer = (*Storage)(nil)

// Create starts an object that Publish saves; the bytes wait in memory.
func (s *Storage) Create(ctx context.Context, k storage.Kind) (storage.Pending, error) {
	if err := (storage.Handle{Kind: k, Name: "x"}).Validate(); err != nil {
		return nil, fmt.Errorf("mem storage: create %s object: %w", k, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mem storage: create %s object: %w", k, err)
	}
	return &pending{s: s, kind: k}, nil
}

type pending struct {
	s    *Storage
	kind storage.Kind
	buf  bytes.Buffer
	done bool
}

func (p *pending) Write(b []byte) (int, error) {
	if p.done {
		return 0, errors.New("mem storage: write to a finished object")
	}
	return p.buf.Write(b)
}

func (p *pending) Publish(ctx context.Context, name string) error {
	if p.done {
		return errors.New("mem storage: publish of a finished object")
	}
	p.done = true
	data := p.buf.Bytes()
	err := p.s.Save(ctx, storage.Handle{Kind: p.kind, Name: name}, bytes.NewReader(data), int64(len(data)))
	p.buf = bytes.Buffer{}
	return err
}

func (p *pending) Abort() {
	p.done = true
	p.buf = bytes.Buffer{}
}
