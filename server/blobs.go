package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

func packHandle(p id.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindPacks, Name: p.String()}
}

// hideOtherHosts adds to missing every asked blob that no snapshot of the
// reader's host references.
func (s *server) hideOtherHosts(rq *request, asked, missing []id.ID) ([]id.ID, error) {
	gone := make(map[id.ID]bool, len(missing))
	for _, m := range missing {
		gone[m] = true
	}
	for _, b := range asked {
		if gone[b] {
			continue
		}
		ok, err := s.x.HostReferences(rq.Context(), b, rq.who.Host)
		if err != nil {
			return nil, err
		}
		if !ok {
			gone[b] = true
			missing = append(missing, b)
		}
	}
	return missing, nil
}

func (s *server) missing(w http.ResponseWriter, rq *request) {
	// Agents back up; readers check (costor check asks which chunks are
	// gone). A reader bound to a host learns nothing about other hosts:
	// a blob no snapshot of its host references is "missing" to it.
	if !rq.who.is(api.RoleAdmin, api.RoleAgent, api.RoleReader) {
		refuse(w, rq, "role %s may not query missing blobs: only agents back up and readers check", rq.who.Role)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, rq.Body, api.MaxIDs*id.Size))
	if err != nil {
		s.fail(w, rq, bodyStatus(err), bodyError("ID list", err))
		return
	}
	ids, err := api.DecodeIDs(data, api.MaxIDs)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	missing, err := s.x.Missing(rq.Context(), ids)
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if rq.who.Role == api.RoleReader && rq.who.Host != "" {
		if missing, err = s.hideOtherHosts(rq, ids, missing); err != nil {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
	}
	rq.detail = fmt.Sprintf("%d asked, %d missing", len(ids), len(missing))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(missing)*id.Size))
	_, _ = w.Write(api.AppendIDs(nil, missing))
}

// upload verifies every blob of a batch, writes the new ones into one pack,
// saves it durably and indexes it, and only then answers 200.
func (s *server) upload(w http.ResponseWriter, rq *request) {
	if !rq.who.is("admin", "agent") {
		refuse(w, rq, "role %s may not upload blobs: only agents back up", rq.who.Role)
		return
	}
	ctx := rq.Context()
	// Reserve the request's size from the shared budget before reading it:
	// with many agents at once, memory stays bounded and uploads queue.
	weight := int64(api.MaxBatchBytes)
	if n := rq.ContentLength; n >= 0 && n < weight {
		weight = n
	}
	if err := s.uploads.Acquire(ctx, weight); err != nil {
		return // the client is gone
	}
	defer s.uploads.Release(weight)
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()

	body := &countingReader{r: bufio.NewReaderSize(http.MaxBytesReader(w, rq.Body, weight), 64<<10)}
	br := api.NewBatchReader(body)
	pw := pack.NewWriter(s.sealer)
	seen := map[id.ID]bool{}
	var buf []byte
	total, known := 0, 0
	for {
		// BatchReader allocates a blob's declared length before reading
		// it; a declared length beyond what the request can still hold is
		// refused first, so a tiny body cannot make the server allocate
		// 256 MiB outside the budget reserved for it.
		if err := body.checkNext(weight); err != nil {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("blob batch entry %d: %w; nothing of this batch was stored", total+1, err))
			return
		}
		b, err := br.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			s.fail(w, rq, bodyStatus(err), fmt.Errorf("%w; nothing of this batch was stored", bodyError("blob batch", err)))
			return
		}
		buf = b.Data[:0]
		total++
		if got := id.Hash(b.Data); got != b.ID {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("blob %s (batch entry %d): SHA-256 of its %d bytes is %s; the client sealed or sent it wrongly, nothing of this batch was stored",
				b.ID, total, len(b.Data), got))
			return
		}
		if len(b.Data) == 0 {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("blob %s (batch entry %d) is empty; nothing of this batch was stored", b.ID, total))
			return
		}
		if seen[b.ID] {
			continue
		}
		seen[b.ID] = true
		has, err := s.x.Has(ctx, b.ID)
		if err != nil {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
		if has {
			known++
			continue
		}
		if _, err := pw.Add(b.Type, b.ID, b.Data, b.RawLength); err != nil {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("%w; nothing of this batch was stored", err))
			return
		}
	}
	rq.detail = fmt.Sprintf("%d blobs, %d already stored", total, known)
	if pw.Count() == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	// Once the pack is being saved, finish even if the client hangs up: a
	// saved pack that is not indexed would only be indexed at the next start.
	packID, err := s.savePack(context.WithoutCancel(ctx), pw)
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	rq.target = "packs/" + packID.String()
	rq.detail = fmt.Sprintf("%d blobs, %d already stored, %d new", total, known, pw.Count())
	w.WriteHeader(http.StatusOK)
}

// savePack finishes pw, saves the pack durably and indexes it.
func (s *server) savePack(ctx context.Context, pw *pack.Writer) (id.ID, error) {
	data, entries, packID, err := pw.Finish()
	if err != nil {
		return packID, err
	}
	if err := s.st.Save(ctx, packHandle(packID), bytes.NewReader(data), int64(len(data))); err != nil {
		return packID, fmt.Errorf("save pack %s: %w", packID.Short(), err)
	}
	if err := s.x.AddPack(ctx, packID, int64(len(data)), entries); err != nil {
		return packID, fmt.Errorf("index pack %s: %w", packID.Short(), err)
	}
	return packID, nil
}

func (s *server) getBlob(w http.ResponseWriter, rq *request) {
	blob, err := id.Parse(rq.PathValue("id"))
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("blob ID %q: %w", rq.PathValue("id"), err))
		return
	}
	rq.target = "blobs/" + blob.String()
	if !rq.who.is("admin", "agent", "reader") {
		refuse(w, rq, "role %s may not read blobs", rq.who.Role)
		return
	}
	ctx := rq.Context()
	// Authorisation before existence: a refused token learns nothing about
	// whether the blob is stored.
	if !rq.who.seesAllHosts() {
		ok, err := s.x.HostReferences(ctx, blob, rq.who.Host)
		if err != nil {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
		if !ok {
			refuse(w, rq, "blob %s is not referenced by any snapshot of host %q", blob.Short(), rq.who.Host)
			return
		}
	}
	loc, found, err := s.x.Lookup(ctx, blob)
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if !found {
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("blob %s is not stored", blob))
		return
	}
	w.Header().Set(api.BlobTypeHeader, loc.Type.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(uint64(loc.Length), 10))
	err = s.st.Load(ctx, packHandle(loc.Pack), int64(loc.Offset), int64(loc.Length), func(r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	})
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return
		}
		if !started(w) {
			s.fail(w, rq, http.StatusInternalServerError, fmt.Errorf("read blob %s from pack %s: %w", blob.Short(), loc.Pack.Short(), err))
			return
		}
		s.logger.Error("cannot read blob", "blob", blob.String(), "pack", loc.Pack.String(), "err", err)
		panic(http.ErrAbortHandler) // headers are out: drop the connection so the client sees a failure
	}
}

// countingReader counts what a batch decoder consumed and peeks at the
// next blob header.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// checkNext refuses a next blob whose declared length exceeds what is
// left of limit. A short or missing header is left to the decoder.
func (c *countingReader) checkNext(limit int64) error {
	h, _ := c.r.Peek(api.BatchOverhead)
	if len(h) < api.BatchOverhead {
		return nil
	}
	length := int64(binary.BigEndian.Uint32(h[api.BatchOverhead-4:]))
	if left := limit - c.n - api.BatchOverhead; length > left {
		return fmt.Errorf("declares %d bytes but the request holds at most %d more", length, max(left, 0))
	}
	return nil
}
