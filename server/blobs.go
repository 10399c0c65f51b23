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
	"sync"

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
	ctx := rq.Context()
	limit := int64(api.MaxIDs * id.Size)
	release, err := s.reserve(ctx, rq.ContentLength, limit, 2) // the body and its decoded IDs
	if err != nil {
		return // the client is gone
	}
	defer release()
	data, err := io.ReadAll(http.MaxBytesReader(w, rq.Body, limit))
	if err != nil {
		s.fail(w, rq, bodyStatus(err), bodyError("ID list", err))
		return
	}
	ids, err := api.DecodeIDs(data, api.MaxIDs)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	data = nil
	// Under gcMu: a blob answered as stored and marked told cannot be pruned
	// in between.
	s.gcMu.RLock()
	missing, err := s.x.Missing(ctx, ids)
	if err == nil && rq.who.is(api.RoleAdmin, api.RoleAgent) {
		err = s.markTold(ctx, ids, missing)
	}
	s.gcMu.RUnlock()
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
	// Reserve from the shared budget before reading: with many agents at
	// once, memory stays bounded and uploads queue. Twice the body: the
	// pack being assembled and the buffer each blob is read into.
	weight := int64(api.MaxBatchBytes)
	if n := rq.ContentLength; n >= 0 && n < weight {
		weight = n
	}
	release, err := s.reserve(ctx, weight, weight, 2)
	if err != nil {
		return // the client is gone
	}
	defer release()

	// The body is read without gcMu: a slow client must not hold off a
	// prune, which would hold off every other upload and commit (an
	// RWMutex lets no new reader in while a writer waits). What was
	// decided unlocked (which blobs are stored already) is checked again
	// under gcMu before the answer.
	body := &countingReader{r: bufio.NewReaderSize(http.MaxBytesReader(w, rq.Body, weight), 64<<10)}
	br := api.NewBatchReader(body)
	pw := s.packWriter()
	defer s.packWriters.Put(pw) // savePack is done with its bytes by then
	pw.Grow(int(weight))        // one copy per blob, no regrowing of an 8 MiB buffer
	seen := map[id.ID]bool{}
	claim := s.writing.newClaim()
	defer claim.release() // also on every error below: waiters then see the blob missing
	var known, others []id.ID
	var waits []<-chan struct{}
	bufp := s.blobBufs.Get().(*[]byte)
	defer s.blobBufs.Put(bufp)
	buf := (*bufp)[:0]
	total := 0
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
			known = append(known, b.ID)
			continue
		}
		if wait := claim.take(b.ID); wait != nil {
			others = append(others, b.ID) // another upload is storing it
			waits = append(waits, wait)
			continue
		}
		if _, err := pw.Add(b.Type, b.ID, b.Data, b.RawLength); err != nil {
			s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("%w; nothing of this batch was stored", err))
			return
		}
	}
	*bufp, seen = buf[:0], nil
	rq.detail = fmt.Sprintf("%d blobs, %d already stored", total, len(known))

	// Once the pack is being saved, finish even if the client hangs up: a
	// saved pack that is not indexed would only be indexed at the next start.
	ctx = context.WithoutCancel(ctx)
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	gone, err := s.x.Missing(ctx, known)
	if err == nil && len(gone) > 0 {
		s.fail(w, rq, http.StatusServiceUnavailable, fmt.Errorf("%d blobs of this batch that were stored when it arrived (first: %s) were pruned meanwhile; nothing of this batch was stored, send it again", len(gone), gone[0]))
		return
	}
	if err == nil {
		err = s.markTold(ctx, known, nil)
	}
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if pw.Count() > 0 {
		packID, err := s.savePack(ctx, pw)
		if err != nil {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
		rq.target = "packs/" + packID.String()
	}
	// Our claims go before we wait for anyone else's, so two uploads
	// waiting for each other's blobs cannot deadlock.
	claim.release()
	s.gcMu.RUnlock()
	for _, wait := range waits {
		<-wait
	}
	s.gcMu.RLock() // for the deferred RUnlock
	if len(others) > 0 {
		gone, err := s.x.Missing(ctx, others)
		if err != nil {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
		if len(gone) > 0 {
			s.fail(w, rq, http.StatusServiceUnavailable, fmt.Errorf("%d blobs of this batch (first: %s) were being stored by another upload that failed; send the batch again", len(gone), gone[0]))
			return
		}
	}
	rq.detail = fmt.Sprintf("%d blobs, %d already stored, %d stored by a concurrent upload, %d new", total, len(known), len(others), pw.Count())
	w.WriteHeader(http.StatusOK)
}

// packWriter returns an empty pack writer, reusing one whose buffer a
// finished upload left: fresh 8 MiB buffers per request cost page faults
// and zeroing on every upload.
func (s *server) packWriter() *pack.Writer {
	if pw, ok := s.packWriters.Get().(*pack.Writer); ok {
		pw.Reset()
		return pw
	}
	return pack.NewWriter(s.sealer)
}

// claims is the set of blobs uploads are storing right now.
type claims struct {
	mu sync.Mutex
	by map[id.ID]*claim
}

// claim is one upload's share of the set; done closes when it releases.
type claim struct {
	set  *claims
	ids  []id.ID
	done chan struct{}
	once sync.Once
}

func (c *claims) newClaim() *claim {
	return &claim{set: c, done: make(chan struct{})}
}

// take claims blob for this upload, or returns the channel that closes
// when the upload that already claimed it is done.
func (cl *claim) take(blob id.ID) <-chan struct{} {
	c := cl.set
	c.mu.Lock()
	defer c.mu.Unlock()
	if other, ok := c.by[blob]; ok && other != cl {
		return other.done
	}
	if c.by == nil {
		c.by = map[id.ID]*claim{}
	}
	c.by[blob] = cl
	cl.ids = append(cl.ids, blob)
	return nil
}

// release gives up every claim (after the pack is indexed, or on error).
func (cl *claim) release() {
	cl.once.Do(func() {
		c := cl.set
		c.mu.Lock()
		for _, b := range cl.ids {
			if c.by[b] == cl {
				delete(c.by, b)
			}
		}
		c.mu.Unlock()
		close(cl.done)
	})
}

// reserve takes n bytes (limit if n is unknown or larger) times factor
// from the shared memory budget of request bodies.
func (s *server) reserve(ctx context.Context, n, limit, factor int64) (release func(), err error) {
	if n < 0 || n > limit {
		n = limit
	}
	weight := n * factor
	if err := s.uploads.Acquire(ctx, weight); err != nil {
		return nil, err
	}
	return func() { s.uploads.Release(weight) }, nil
}

// markTold marks the blobs of asked that are stored (not in missing) and
// that no snapshot references, so that prune keeps them for its grace
// period: the client was just told it need not send them.
func (s *server) markTold(ctx context.Context, asked, missing []id.ID) error {
	if s.grace <= 0 || len(asked) == 0 {
		return nil
	}
	absent := make(map[id.ID]bool, len(missing))
	for _, b := range missing {
		absent[b] = true
	}
	var told []id.ID
	for _, b := range asked {
		if absent[b] {
			continue
		}
		absent[b] = true // each once
		ref, err := s.x.Referenced(ctx, b)
		if err != nil {
			return err
		}
		if !ref {
			told = append(told, b)
		}
	}
	return s.x.MarkTold(ctx, told, s.now())
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
