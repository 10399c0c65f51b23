package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

// Storage returns the server's objects as a storage.Storage: config,
// host key envelopes and snapshot records (packs for a peer token), as
// the token's role lets it see them. Save is a PUT (the server accepts
// host envelopes), Remove a DELETE (the server lets an admin forget
// snapshots); the server refuses the rest. Closing it does nothing:
// Client.Close releases the connections.
func (c *Client) Storage() storage.Storage { return objectStorage{c} }

// objectStorage is the storage.Storage view of a Client.
type objectStorage struct{ c *Client }

func objectPath(h storage.Handle) string {
	return api.PathObjects + url.PathEscape(string(h.Kind)) + "/" + url.PathEscape(h.Name)
}

// objectErr makes a 404 and a 409 on an object the storage sentinels.
func objectErr(h storage.Handle) func(*StatusError) error {
	return func(se *StatusError) error {
		if se.Status == http.StatusConflict {
			return fmt.Errorf("%w: %w", storage.ErrExist, se)
		}
		return se // a 404 unwraps to storage.ErrNotExist
	}
}

func (s objectStorage) Save(ctx context.Context, h storage.Handle, data io.ReaderAt, size int64) error {
	if err := h.Validate(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("save %s to %s: negative size %d", h, s.c.base, size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{
		method: http.MethodPut, path: objectPath(h), action: "save " + h.String(),
		body:    func() io.Reader { return io.NewSectionReader(data, 0, size) },
		bodyLen: size, contentType: contentTypeBinary, retry: true,
		statusErr: objectErr(h),
	}
	return s.c.call(ctx, r, nil)
}

func (s objectStorage) Load(ctx context.Context, h storage.Handle, offset, length int64, fn func(io.Reader) error) error {
	if err := h.Validate(); err != nil {
		return err
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("load %s from %s: negative range %d+%d", h, s.c.base, offset, length)
	}
	path := objectPath(h)
	if offset > 0 || length > 0 {
		path += "?offset=" + strconv.FormatInt(offset, 10) + "&length=" + strconv.FormatInt(length, 10)
	}
	r := &request{
		method: http.MethodGet, path: path, action: "read " + h.String(), retry: true,
		statusErr: objectErr(h),
	}
	return s.c.call(ctx, r, func(resp *http.Response) error {
		if length > 0 && resp.ContentLength >= 0 && resp.ContentLength != length {
			return fmt.Errorf("%s at %s: the server sent %d bytes for a range of %d", r.action, s.c.base, resp.ContentLength, length)
		}
		er := &exactReader{r: resp.Body, want: length}
		if length == 0 {
			er.want = -1
		}
		if err := fn(er); err != nil {
			return err // unchanged, as the contract asks
		}
		return nil
	})
}

// exactReader fails a read that ends before want bytes: a range is never
// presented short.
type exactReader struct {
	r    io.Reader
	want int64 // -1: whatever the body holds
	got  int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.want >= 0 && int64(len(p)) > e.want-e.got {
		p = p[:e.want-e.got]
		if len(p) == 0 {
			return 0, io.EOF
		}
	}
	n, err := e.r.Read(p)
	e.got += int64(n)
	if err == io.EOF && e.want >= 0 && e.got < e.want {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (s objectStorage) Stat(ctx context.Context, h storage.Handle) (storage.Info, error) {
	if err := h.Validate(); err != nil {
		return storage.Info{}, err
	}
	size := int64(-1)
	if !s.c.noHead.Load() {
		r := &request{
			method: http.MethodHead, path: objectPath(h), action: "look up " + h.String(), retry: true,
			statusErr: objectErr(h),
		}
		err := s.c.call(ctx, r, func(resp *http.Response) error {
			size = resp.ContentLength
			return nil
		})
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusMethodNotAllowed {
			s.c.noHead.Store(true) // the server serves objects by GET only
		} else if err != nil {
			return storage.Info{}, err
		}
	}
	if size < 0 {
		// The length of a GET's answer, without reading it when the server
		// announces it.
		r := &request{
			method: http.MethodGet, path: objectPath(h), action: "look up " + h.String(), retry: true,
			statusErr: objectErr(h),
		}
		err := s.c.call(ctx, r, func(resp *http.Response) error {
			if resp.ContentLength >= 0 {
				size = resp.ContentLength
				return nil
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil {
				return transientError{fmt.Errorf("%s at %s: read answer: %w", r.action, s.c.base, err)}
			}
			size = n
			return nil
		})
		if err != nil {
			return storage.Info{}, err
		}
	}
	return storage.Info{Handle: h, Size: size}, nil
}

func (s objectStorage) Remove(ctx context.Context, h storage.Handle) error {
	if err := h.Validate(); err != nil {
		return err
	}
	// Not retried: a second DELETE after a lost answer would report a
	// removed object as missing.
	r := &request{method: http.MethodDelete, path: objectPath(h), action: "remove " + h.String(), statusErr: objectErr(h)}
	return s.c.call(ctx, r, nil)
}

func (s objectStorage) List(ctx context.Context, k storage.Kind, fn func(storage.Info) error) error {
	if !k.Valid() {
		return fmt.Errorf("%w: unknown kind %q", storage.ErrInvalidHandle, k)
	}
	r := &request{
		method: http.MethodGet, path: api.PathObjects + url.PathEscape(string(k)),
		action: "list " + string(k), retry: true,
	}
	var list []api.ObjectInfo
	err := s.c.getJSONInto(ctx, r, maxListBody, &list)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		// A kind the server does not serve (keys, locks) holds no
		// objects there.
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	// The whole listing is read first, so fn may take its time and call
	// other methods without holding a response open.
	for _, o := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := storage.Handle{Kind: k, Name: o.Name}
		if err := h.Validate(); err != nil || o.Size < 0 {
			return fmt.Errorf("%s at %s: bad answer: entry %q of %d bytes", r.action, s.c.base, o.Name, o.Size)
		}
		if err := fn(storage.Info{Handle: h, Size: o.Size}); err != nil {
			return err
		}
	}
	return nil
}

func (s objectStorage) Location() string { return s.c.base }

func (s objectStorage) Close() error { return nil }

// getJSONInto performs r and decodes its JSON answer, of at most limit
// bytes, into out.
func (c *Client) getJSONInto(ctx context.Context, r *request, limit int64, out any) error {
	return c.call(ctx, r, func(resp *http.Response) error {
		data, err := c.readAll(resp, r.action, limit)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s at %s: bad answer: %v", r.action, c.base, err)
		}
		return nil
	})
}
