package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/costor/costor/repo"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/server/api"
)

const contentTypeBinary = "application/octet-stream"

// Missing returns those of blobs the server lacks. Lists longer than
// api.MaxIDs are asked in parts.
func (c *Client) Missing(ctx context.Context, blobs []id.ID) ([]id.ID, error) {
	var missing []id.ID
	for len(blobs) > 0 {
		part := blobs[:min(len(blobs), api.MaxIDs)]
		blobs = blobs[len(part):]
		got, err := c.missing(ctx, part)
		if err != nil {
			return nil, err
		}
		missing = append(missing, got...)
	}
	return missing, nil
}

func (c *Client) missing(ctx context.Context, blobs []id.ID) ([]id.ID, error) {
	body := api.AppendIDs(make([]byte, 0, len(blobs)*id.Size), blobs)
	r := &request{
		method: http.MethodPost, path: api.PathMissing, action: "query missing blobs",
		body: func() io.Reader { return bytes.NewReader(body) }, bodyLen: int64(len(body)),
		contentType: contentTypeBinary, retry: true,
	}
	var missing []id.ID
	err := c.call(ctx, r, func(resp *http.Response) error {
		data, err := c.readAll(resp, r.action, int64(len(body)))
		if err != nil {
			return err
		}
		missing, err = api.DecodeIDs(data, len(blobs))
		if err != nil {
			return fmt.Errorf("%s at %s: bad answer: %w", r.action, c.base, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The answer decides what is sent: it must be a subset of the question.
	asked := make(map[id.ID]struct{}, len(blobs))
	for _, b := range blobs {
		asked[b] = struct{}{}
	}
	for _, m := range missing {
		if _, ok := asked[m]; !ok {
			return nil, fmt.Errorf("%s at %s: bad answer: blob %s was not asked about", r.action, c.base, m.Short())
		}
	}
	return missing, nil
}

// Upload sends blobs in as few batches as the limits allow; when it
// returns nil, the server holds every one of them durably. Uploads are
// idempotent, so a batch is retried after a connection failure or a 5xx.
func (c *Client) Upload(ctx context.Context, blobs []repo.RemoteBlob) error {
	for len(blobs) > 0 {
		n, size := 0, int64(0)
		for n < len(blobs) && n < api.MaxBatchBlobs {
			b := &blobs[n]
			if len(b.Data) > api.MaxBlobSize {
				return fmt.Errorf("upload blob %s to %s: %d bytes, more than the %d a server accepts", b.ID.Short(), c.base, len(b.Data), api.MaxBlobSize)
			}
			next := size + int64(len(b.Data)) + api.BatchOverhead
			if n > 0 && next > api.MaxBatchBytes {
				break
			}
			size = next
			n++
		}
		if err := c.upload(ctx, blobs[:n], size); err != nil {
			return err
		}
		blobs = blobs[n:]
	}
	return nil
}

func (c *Client) upload(ctx context.Context, blobs []repo.RemoteBlob, size int64) error {
	body := make([]byte, 0, size)
	for _, b := range blobs {
		body = api.AppendBatchBlob(body, api.BatchBlob{Type: b.Type, ID: b.ID, RawLength: b.RawLength, Data: b.Data})
	}
	r := &request{
		method: http.MethodPost, path: api.PathBlobs,
		action: fmt.Sprintf("upload %d blobs (%d bytes)", len(blobs), len(body)),
		body:   func() io.Reader { return bytes.NewReader(body) }, bodyLen: int64(len(body)),
		contentType: contentTypeBinary, retry: true,
	}
	return c.call(ctx, r, nil)
}

// LoadBlob returns a blob's sealed bytes; a blob the server lacks, or
// that the token may not read, gives an error wrapping
// storage.ErrNotExist or ErrForbidden.
func (c *Client) LoadBlob(ctx context.Context, blob id.ID) ([]byte, error) {
	r := &request{
		method: http.MethodGet, path: api.PathBlob + blob.String(),
		action: "read blob " + blob.Short(), retry: true,
	}
	var data []byte
	err := c.call(ctx, r, func(resp *http.Response) error {
		var err error
		data, err = c.readAll(resp, r.action, api.MaxBlobSize)
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// Refs calls fn for every blob snap references, streaming the list. A
// failure before the first ID is retried; after it, fn has seen IDs and
// the error is returned.
func (c *Client) Refs(ctx context.Context, snap id.ID, fn func(id.ID) error) error {
	r := &request{
		method: http.MethodGet,
		path:   api.PathSnapshotRefsPrefix + snap.String() + api.PathSnapshotRefsSuffix,
		action: "read the references of snapshot " + snap.Short(), retry: true,
	}
	return c.call(ctx, r, func(resp *http.Response) error {
		called := false
		var fnErr error
		err := api.ReadIDs(resp.Body, func(b id.ID) error {
			called = true
			if err := fn(b); err != nil {
				fnErr = err
				return err
			}
			return ctx.Err()
		})
		switch {
		case err == nil:
			return nil
		case fnErr != nil:
			return fnErr
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, api.ErrMalformed):
			return fmt.Errorf("%s at %s: bad answer: %w", r.action, c.base, err)
		}
		err = fmt.Errorf("%s at %s: read answer: %w", r.action, c.base, err)
		if !called {
			return transientError{err}
		}
		return err
	})
}

// Commit sends a snapshot record and the IDs of the blobs it references,
// refsLen bytes of refs streamed after the record. A server lacking some
// of those blobs answers 409: the error then wraps repo.ErrMissingBlobs.
// Commit is not retried: refs cannot be read twice.
func (c *Client) Commit(ctx context.Context, record []byte, refs io.Reader, refsLen int64) error {
	if len(record) == 0 || len(record) > api.MaxRecordSize {
		return fmt.Errorf("commit snapshot to %s: record of %d bytes is outside 1..%d", c.base, len(record), api.MaxRecordSize)
	}
	if refsLen < 0 || refsLen%id.Size != 0 {
		return fmt.Errorf("commit snapshot to %s: %d bytes of references is not a multiple of %d", c.base, refsLen, id.Size)
	}
	snap := id.Hash(record)
	header := api.AppendCommitHeader(make([]byte, 0, 4+len(record)), record)
	used := false
	r := &request{
		method: http.MethodPost, path: api.PathSnapshots,
		action: "commit snapshot " + snap.Short(),
		body: func() io.Reader {
			if used {
				// Never reached: the request is not retried.
				return strings.NewReader("")
			}
			used = true
			return io.MultiReader(bytes.NewReader(header), io.LimitReader(refs, refsLen))
		},
		bodyLen:     int64(len(header)) + refsLen,
		contentType: contentTypeBinary,
		statusErr: func(se *StatusError) error {
			if se.Status != http.StatusConflict {
				return se
			}
			return missingBlobsError(se, snap)
		},
	}
	return c.call(ctx, r, func(resp *http.Response) error {
		data, err := c.readAll(resp, r.action, api.MaxJSONBody)
		if err != nil {
			return err
		}
		var res api.CommitResult
		if err := json.Unmarshal(data, &res); err != nil {
			return fmt.Errorf("%s at %s: bad answer: %v", r.action, c.base, err)
		}
		if res.ID != snap.String() {
			return fmt.Errorf("%s at %s: the server committed snapshot %q, not %s", r.action, c.base, res.ID, snap)
		}
		return nil
	})
}

func missingBlobsError(se *StatusError, snap id.ID) error {
	n := fmt.Sprint(len(se.Missing))
	if len(se.Missing) >= 1000 {
		n = "at least " + n
	}
	var first []string
	for _, s := range se.Missing {
		if len(first) == 3 {
			break
		}
		if b, err := id.Parse(s); err == nil {
			first = append(first, b.Short())
		}
	}
	list := ""
	if len(first) > 0 {
		list = ", first " + strings.Join(first, ", ")
	}
	return fmt.Errorf("commit snapshot %s at %s: %w: %s missing%s", snap.Short(), se.URL, repo.ErrMissingBlobs, n, list)
}
