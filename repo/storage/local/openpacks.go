package local

import (
	"os"
	"sync"
)

// maxOpenPacks bounds the pack files kept open between loads.
const maxOpenPacks = 64

// openPacks keeps recently read pack files open, so that loading blob after
// blob from one pack (a restore, the mount) costs one pread each instead of
// open, fstat, pread and close. A pack's name is the hash of its content, so
// a descriptor kept open still holds the bytes the name stands for; Save and
// Remove through this Storage drop the name all the same. The zero value is
// ready for use.
type openPacks struct {
	mu    sync.Mutex
	files map[string]*openPack // by path
}

type openPack struct {
	f    *os.File
	size int64
	refs int // loads using f, plus one while cached
}

// acquire returns the open file at path and its size; release it after use.
func (c *openPacks) acquire(path string) (*openPack, error) {
	c.mu.Lock()
	if p, ok := c.files[path]; ok {
		p.refs++
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &openPack{f: f, size: fi.Size(), refs: 2}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.files[path]; ok { // opened meanwhile by another load
		q.refs++
		p.refs = 1
		c.releaseLocked(p)
		return q, nil
	}
	if c.files == nil {
		c.files = make(map[string]*openPack)
	}
	for victim, q := range c.files {
		if len(c.files) < maxOpenPacks {
			break
		}
		delete(c.files, victim)
		c.releaseLocked(q)
	}
	c.files[path] = p
	return p, nil
}

func (c *openPacks) release(p *openPack) {
	c.mu.Lock()
	c.releaseLocked(p)
	c.mu.Unlock()
}

func (c *openPacks) releaseLocked(p *openPack) {
	p.refs--
	if p.refs == 0 {
		p.f.Close()
	}
}

// forget drops path from the cache (it is being replaced or removed).
func (c *openPacks) forget(path string) {
	c.mu.Lock()
	if p, ok := c.files[path]; ok {
		delete(c.files, path)
		c.releaseLocked(p)
	}
	c.mu.Unlock()
}

// closeAll drops every cached file.
func (c *openPacks) closeAll() {
	c.mu.Lock()
	for path, p := range c.files {
		delete(c.files, path)
		c.releaseLocked(p)
	}
	c.mu.Unlock()
}
