package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/index"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

const (
	// refsChunk is how many IDs of a commit go to the index at once: the
	// list itself may be millions long and is never held whole.
	refsChunk = 4096
	// maxCommitMissing is how many missing blobs a 409 lists (api.Error).
	maxCommitMissing = 1000
	// maxCommitRefs bounds the ID list of one commit (4 GiB of IDs).
	maxCommitRefs = 1 << 27
	maxCommitBody = 4 + api.MaxRecordSize + maxCommitRefs*id.Size
)

// errEnoughMissing stops reading a commit's list once a 409 is certain
// and full.
var errEnoughMissing = errors.New("enough missing blobs to report")

func snapshotHandle(snap id.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindSnapshots, Name: snap.String()}
}

// commit stores a snapshot: its refs into the index (streamed, in chunks),
// a sync, then the record file, which is what makes it committed.
func (s *server) commit(w http.ResponseWriter, rq *request) {
	if !rq.who.is("admin", "agent") {
		refuse(w, rq, "role %s may not commit snapshots: only agents back up", rq.who.Role)
		return
	}
	ctx := rq.Context()
	body := bufio.NewReaderSize(http.MaxBytesReader(w, rq.Body, maxCommitBody), 64<<10)
	// The record is held in memory until it is saved: take its declared
	// size from the shared budget first, so that many commits at once
	// cannot each hold 16 MiB outside it.
	recordLen := int64(api.MaxRecordSize)
	if h, _ := body.Peek(4); len(h) == 4 {
		recordLen = min(recordLen, int64(binary.BigEndian.Uint32(h)))
	}
	release, err := s.reserve(ctx, recordLen, api.MaxRecordSize, 1)
	if err != nil {
		return // the client is gone
	}
	defer release()
	record, err := api.ReadCommitHeader(body)
	if err != nil {
		s.fail(w, rq, bodyStatus(err), bodyError("snapshot commit", err))
		return
	}
	pub, err := snapshot.DecodePublic(record)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("snapshot commit: %w", err))
		return
	}
	snap := id.Hash(record)
	rq.target, rq.host = "snapshots/"+snap.String(), pub.Host
	if !rq.who.writesHost(pub.Host) {
		refuse(w, rq, "snapshot record is for host %q; this token may only commit for host %q", pub.Host, rq.who.Host)
		return
	}
	if err := index.ValidateRefHost(pub.Host); err != nil {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("snapshot commit: %w", err))
		return
	}
	// No gcMu here: the ID list may take minutes to arrive, and a prune
	// waiting for gcMu would hold off every other upload and commit
	// meanwhile. addRefs takes it for each slice of the list it indexes;
	// once a blob has its ref, prune keeps it whatever follows.
	unlock := s.snapLocks.lock(snap)
	defer unlock()

	h := snapshotHandle(snap)
	if _, err := s.st.Stat(ctx, h); err == nil {
		n, err := s.x.CountRefs(ctx, snap)
		if err != nil {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
		// Read the rest so the client's upload of the list ends cleanly.
		if _, err := io.Copy(io.Discard, body); err != nil {
			s.fail(w, rq, bodyStatus(err), bodyError("snapshot commit", err))
			return
		}
		rq.detail = "already committed"
		writeJSON(w, http.StatusCreated, api.CommitResult{ID: snap.String(), Refs: n})
		return
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	// Refs left by an earlier attempt that did not finish would make the
	// count wrong; start from none.
	cleanup := func() {
		if err := s.x.DropRefs(context.WithoutCancel(ctx), snap); err != nil {
			s.logger.Warn("cannot drop the refs of a failed commit; they are dropped at the next start", "snapshot", snap.String(), "err", err)
		}
	}
	if _, ok, err := s.x.RefsHost(ctx, snap); err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	} else if ok {
		cleanup()
	}

	distinct, missing, status, err := s.addRefs(ctx, snap, pub.Host, body)
	if err != nil {
		cleanup()
		s.fail(w, rq, status, err)
		return
	}
	if len(missing) > 0 {
		cleanup()
		list := make([]string, len(missing))
		for i, b := range missing {
			list[i] = b.String()
		}
		msg := fmt.Sprintf("snapshot %s references %d blobs the server does not store (first: %s); upload them and commit again", snap.Short(), len(missing), missing[0])
		if len(missing) == maxCommitMissing {
			msg = fmt.Sprintf("snapshot %s references at least %d blobs the server does not store (first: %s); upload them and commit again", snap.Short(), len(missing), missing[0])
		}
		rq.detail = msg
		writeJSON(w, http.StatusConflict, api.Error{Error: msg, Missing: list})
		return
	}
	// From here on the client's hang-up must not leave refs half-committed.
	ctx = context.WithoutCancel(ctx)
	if err := s.x.Sync(); err != nil {
		cleanup()
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if err := s.st.Save(ctx, h, bytes.NewReader(record), int64(len(record))); err != nil {
		cleanup()
		s.fail(w, rq, http.StatusInternalServerError, fmt.Errorf("save snapshot record %s: %w", snap.Short(), err))
		return
	}
	if err := s.x.PutSnapshot(ctx, snap, record); err != nil {
		s.logger.Warn("snapshot committed but not cached in the index", "snapshot", snap.String(), "err", err)
	}
	rq.detail = fmt.Sprintf("%d blobs referenced", distinct)
	writeJSON(w, http.StatusCreated, api.CommitResult{ID: snap.String(), Refs: distinct})
}

// addRefs streams a commit's ID list into the index. Once a blob is found
// missing it only looks up the rest, to report up to maxCommitMissing of
// them (each once).
func (s *server) addRefs(ctx context.Context, snap id.ID, host string, body *bufio.Reader) (distinct int, missing []id.ID, status int, err error) {
	chunk := make([]id.ID, 0, refsChunk)
	seenMissing := map[id.ID]bool{}
	flush := func() error {
		var miss []id.ID
		var err error
		if len(missing) == 0 {
			// Under gcMu: the check that each blob is stored and its new
			// ref are one transaction, which prune must not split.
			var added int
			s.gcMu.RLock()
			added, miss, err = s.x.AddRefs(ctx, snap, host, chunk)
			s.gcMu.RUnlock()
			distinct += added
		} else {
			miss, err = s.x.Missing(ctx, chunk)
		}
		chunk = chunk[:0]
		if err != nil {
			return err
		}
		for _, b := range miss {
			if !seenMissing[b] && len(missing) < maxCommitMissing {
				seenMissing[b] = true
				missing = append(missing, b)
			}
		}
		if len(missing) == maxCommitMissing {
			return errEnoughMissing
		}
		return nil
	}
	var indexErr error
	err = api.ReadIDs(body, func(b id.ID) error {
		chunk = append(chunk, b)
		if len(chunk) < refsChunk {
			return nil
		}
		if err := flush(); err != nil {
			indexErr = err
			return err
		}
		return nil
	})
	if err == nil {
		if err = flush(); err != nil {
			indexErr = err
		}
	}
	switch {
	case errors.Is(err, errEnoughMissing):
		return distinct, missing, 0, nil
	case err != nil && indexErr != nil:
		return 0, nil, http.StatusInternalServerError, err
	case err != nil:
		return 0, nil, bodyStatus(err), bodyError("snapshot commit ID list", err)
	}
	return distinct, missing, 0, nil
}

// refs streams the ID list of a committed snapshot.
func (s *server) refs(w http.ResponseWriter, rq *request) {
	snap, err := id.Parse(rq.PathValue("id"))
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("snapshot ID %q: %w", rq.PathValue("id"), err))
		return
	}
	rq.target = "snapshots/" + snap.String() + "/refs"
	if !rq.who.is("admin", "agent", "reader") {
		refuse(w, rq, "role %s may not read snapshot refs", rq.who.Role)
		return
	}
	ctx := rq.Context()
	if _, err := s.st.Stat(ctx, snapshotHandle(snap)); errors.Is(err, fs.ErrNotExist) {
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("no snapshot %s", snap))
		return
	} else if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	host, ok, err := s.x.RefsHost(ctx, snap)
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if !ok {
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("snapshot %s has no ref list on this server (its index was rebuilt?); forget it and back up again", snap.Short()))
		return
	}
	rq.host = host
	if !rq.who.seesHost(host) {
		refuse(w, rq, "snapshot %s belongs to host %q, not to this token's host %q", snap.Short(), host, rq.who.Host)
		return
	}
	n, err := s.x.CountRefs(ctx, snap)
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	rq.detail = fmt.Sprintf("%d refs", n)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(int64(n)*id.Size, 10))
	bw := bufio.NewWriterSize(w, 64<<10)
	err = s.x.ForEachRef(ctx, snap, func(b id.ID) error {
		_, err := bw.Write(b[:])
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if !started(w) {
			s.fail(w, rq, http.StatusInternalServerError, err)
			return
		}
		panic(http.ErrAbortHandler) // a short list must not pass for a whole one
	}
}
