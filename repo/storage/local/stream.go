package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/costor/costor/repo/storage"
)

// Create starts an object in a temporary file in its kind's directory, on
// the same filesystem as its final place, so Publish is a rename. A crash
// leaves only the temporary file, which CleanTemp removes.
func (s *Storage) Create(ctx context.Context, k storage.Kind) (storage.Pending, error) {
	if err := (storage.Handle{Kind: k, Name: "x"}).Validate(); err != nil {
		return nil, fmt.Errorf("local storage: create %s object: %w", k, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local storage: create %s object: %w", k, err)
	}
	dir := filepath.Join(s.dir, string(k))
	f, err := os.CreateTemp(dir, tempPrefix+"stream-*")
	if err != nil {
		return nil, fmt.Errorf("local storage: create %s object: %w", k, err)
	}
	return &pending{s: s, kind: k, f: f}, nil
}

type pending struct {
	s    *Storage
	kind storage.Kind
	f    *os.File // nil once published or aborted
	err  error    // first write error: Publish refuses after it
}

func (p *pending) Write(b []byte) (int, error) {
	if p.f == nil {
		return 0, errors.New("local storage: write to a finished object")
	}
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.f.Write(b)
	if err != nil {
		p.err = fmt.Errorf("local storage: write %s: %w", p.f.Name(), err)
	}
	return n, p.err
}

func (p *pending) Publish(ctx context.Context, name string) error {
	if p.f == nil {
		return errors.New("local storage: publish of a finished object")
	}
	h := storage.Handle{Kind: p.kind, Name: name}
	final, err := p.s.path(h)
	if err == nil {
		err = p.err
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		p.Abort()
		return fmt.Errorf("local storage: save %s: %w", h, err)
	}
	f := p.f
	p.f = nil
	if err := p.s.install(f, final); err != nil {
		return fmt.Errorf("local storage: save %s: %w", h, err)
	}
	return nil
}

func (p *pending) Abort() {
	if p.f == nil {
		return
	}
	tmp := p.f.Name()
	_ = p.f.Close()
	_ = os.Remove(tmp)
	p.f = nil
}
