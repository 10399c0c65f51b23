package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
	"github.com/costor/costor/server/api"
)

// servedKind checks a kind of the objects API: keys and locks are client
// repository matters a server never serves.
func servedKind(kind string) (storage.Kind, error) {
	switch k := storage.Kind(kind); k {
	case storage.KindConfig, storage.KindHostKeys, storage.KindSnapshots, storage.KindPacks:
		return k, nil
	}
	return "", fmt.Errorf("unknown object kind %q: use config, hostkeys, snapshots or packs", kind)
}

// kindAllowed reports whether the token may see objects of kind at all;
// hostkeys and snapshots are further filtered by host.
func kindAllowed(who identity, k storage.Kind) bool {
	if k == storage.KindPacks {
		return who.is("admin", "peer")
	}
	return who.is("admin", "agent", "reader")
}

// objectHost returns the host a host key envelope or snapshot record
// belongs to ("" for config and packs). found is false if there is no
// such object.
func (s *server) objectHost(ctx context.Context, h storage.Handle) (host string, found bool, err error) {
	switch h.Kind {
	case storage.KindSnapshots:
		if _, err := s.st.Stat(ctx, h); errors.Is(err, fs.ErrNotExist) {
			return "", false, nil
		} else if err != nil {
			return "", false, err
		}
		// The refs record the host: no need to read the record.
		if snap, perr := id.Parse(h.Name); perr == nil {
			if host, ok, err := s.x.RefsHost(ctx, snap); err != nil || ok {
				return host, ok, err
			}
		}
		data, err := s.loadSmall(ctx, h, api.MaxRecordSize)
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		pub, err := snapshot.DecodePublic(data)
		if err != nil {
			return "", true, fmt.Errorf("snapshot record %s: %w", h.Name, err)
		}
		return pub.Host, true, nil
	case storage.KindHostKeys:
		data, err := s.loadSmall(ctx, h, api.MaxObjectSize)
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		env, err := crypto.DecodeHostEnvelope(data)
		if err != nil {
			return "", true, fmt.Errorf("host key envelope %s: %w", h.Name, err)
		}
		return env.Host, true, nil
	}
	if _, err := s.st.Stat(ctx, h); errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	return "", true, nil
}

func (s *server) loadSmall(ctx context.Context, h storage.Handle, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	err := s.st.Load(ctx, h, 0, 0, func(r io.Reader) error {
		_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
		return err
	})
	if err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("object %s is larger than %d bytes", h, limit)
	}
	return buf.Bytes(), nil
}

func (s *server) listObjects(w http.ResponseWriter, rq *request) {
	k, err := servedKind(rq.PathValue("kind"))
	if err != nil {
		s.fail(w, rq, http.StatusNotFound, err)
		return
	}
	if !kindAllowed(rq.who, k) {
		refuse(w, rq, "role %s may not list %s", rq.who.Role, k)
		return
	}
	ctx := rq.Context()
	list := []api.ObjectInfo{}
	err = s.st.List(ctx, k, func(fi storage.Info) error {
		if k == storage.KindHostKeys || k == storage.KindSnapshots {
			if !rq.who.seesAllHosts() {
				host, found, err := s.objectHost(ctx, fi.Handle)
				if err != nil {
					// One unreadable object must not hide the others; it is
					// simply not this host's.
					s.logger.Warn("unreadable object left out of a listing", "object", fi.Handle.String(), "err", err)
					return nil
				}
				if !found || !rq.who.seesHost(host) {
					return nil
				}
			} else if k == storage.KindSnapshots && !s.committed(ctx, fi.Handle.Name) {
				return nil
			}
		}
		list = append(list, api.ObjectInfo{Name: fi.Handle.Name, Size: fi.Size})
		return nil
	})
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, fmt.Errorf("list %s: %w", k, err))
		return
	}
	rq.detail = fmt.Sprintf("%d objects", len(list))
	writeJSON(w, http.StatusOK, list)
}

// committed reports whether a listed record has its refs: a record saved
// by a commit always has, so one without is left over by an interrupted
// forget and is not shown.
func (s *server) committed(ctx context.Context, name string) bool {
	snap, err := id.Parse(name)
	if err != nil {
		return false
	}
	_, ok, err := s.x.RefsHost(ctx, snap)
	if err != nil {
		return false
	}
	if !ok {
		s.mu.Lock()
		ok = s.unreffed[snap] // shown: the admin must see it to deal with it
		s.mu.Unlock()
	}
	return ok
}

// parseRange reads the optional offset= and length= of an object GET.
func parseRange(rq *request) (offset, length int64, err error) {
	q := rq.URL.Query()
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"offset", &offset}, {"length", &length}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("query %s=%q is not a non-negative integer", p.name, v)
		}
		*p.dst = n
	}
	return offset, length, nil
}

func (s *server) getObject(w http.ResponseWriter, rq *request) {
	k, err := servedKind(rq.PathValue("kind"))
	if err != nil {
		s.fail(w, rq, http.StatusNotFound, err)
		return
	}
	h := storage.Handle{Kind: k, Name: rq.PathValue("name")}
	rq.target = h.String()
	if err := h.Validate(); err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	if !kindAllowed(rq.who, k) {
		refuse(w, rq, "role %s may not read %s", rq.who.Role, k)
		return
	}
	offset, length, err := parseRange(rq)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	ctx := rq.Context()
	host, found, err := s.objectHost(ctx, h)
	if err != nil && !found {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if !found {
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("no object %s", h))
		return
	}
	if host != "" {
		rq.host = host
	}
	if (k == storage.KindHostKeys || k == storage.KindSnapshots) && !rq.who.seesHost(host) {
		refuse(w, rq, "%s belongs to host %q, not to this token's host %q", h, host, rq.who.Host)
		return
	}
	fi, err := s.st.Stat(ctx, h)
	if errors.Is(err, fs.ErrNotExist) {
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("no object %s", h))
		return
	}
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	if offset > fi.Size || length > fi.Size-offset {
		s.fail(w, rq, http.StatusRequestedRangeNotSatisfiable,
			fmt.Errorf("range offset %d length %d outside %s of %d bytes", offset, length, h, fi.Size))
		return
	}
	if length == 0 {
		length = fi.Size - offset
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	err = s.st.Load(ctx, h, offset, length, func(r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	})
	if err != nil {
		// Headers are out; a short body with its Content-Length is what the
		// client sees, and the connection is dropped.
		rq.detail = err.Error()
		panic(http.ErrAbortHandler)
	}
}

func (s *server) putObject(w http.ResponseWriter, rq *request) {
	// The role first: a write attempt of a role that may write nothing is
	// a refusal in the audit log, whatever the kind.
	if !rq.who.is("admin", "agent") {
		refuse(w, rq, "role %s may not store objects", rq.who.Role)
		return
	}
	k, err := servedKind(rq.PathValue("kind"))
	if err != nil {
		s.fail(w, rq, http.StatusNotFound, err)
		return
	}
	h := storage.Handle{Kind: k, Name: rq.PathValue("name")}
	rq.target = h.String()
	if k != storage.KindHostKeys {
		w.Header().Set("Allow", "GET")
		msg := fmt.Sprintf("objects of kind %s cannot be written with PUT", k)
		if k == storage.KindSnapshots {
			msg += fmt.Sprintf(" (snapshots are committed with POST %s)", api.PathSnapshots)
		}
		s.fail(w, rq, http.StatusMethodNotAllowed, errors.New(msg))
		return
	}
	if err := h.Validate(); err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, rq.Body, api.MaxObjectSize))
	if err != nil {
		s.fail(w, rq, bodyStatus(err), bodyError("host key envelope", err))
		return
	}
	if sum := id.Hash(data).String(); sum != h.Name {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("host key envelope named %s has SHA-256 %s: name it by the hash of its bytes", h.Name, sum))
		return
	}
	env, err := crypto.DecodeHostEnvelope(data)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, err)
		return
	}
	rq.host = env.Host
	if !rq.who.writesHost(env.Host) {
		refuse(w, rq, "host key envelope is for host %q; this token is bound to host %q", env.Host, rq.who.Host)
		return
	}
	if err := s.st.Save(rq.Context(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// deleteObject forgets a snapshot (admin): the record goes first, durably,
// then its refs, so that no crash leaves a record without its refs; refs
// without a record are dropped on the next start.
func (s *server) deleteObject(w http.ResponseWriter, rq *request) {
	// The role first: an agent's delete attempt is a refusal in the audit
	// log, whatever the kind.
	if !rq.who.is("admin") {
		refuse(w, rq, "role %s may not delete anything: only an admin token may forget snapshots", rq.who.Role)
		return
	}
	k, err := servedKind(rq.PathValue("kind"))
	if err != nil {
		s.fail(w, rq, http.StatusNotFound, err)
		return
	}
	h := storage.Handle{Kind: k, Name: rq.PathValue("name")}
	rq.target = h.String()
	if k != storage.KindSnapshots {
		w.Header().Set("Allow", "GET")
		s.fail(w, rq, http.StatusMethodNotAllowed, fmt.Errorf("objects of kind %s cannot be deleted; only snapshots are forgotten", k))
		return
	}
	snap, err := id.Parse(h.Name)
	if err != nil {
		s.fail(w, rq, http.StatusBadRequest, fmt.Errorf("snapshot name %q: %w", h.Name, err))
		return
	}
	ctx := context.WithoutCancel(rq.Context()) // a forget half done by a hang-up is finished anyway
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	unlock := s.snapLocks.lock(snap)
	defer unlock()

	host, found, err := s.objectHost(ctx, h)
	if err != nil && !found {
		s.fail(w, rq, http.StatusInternalServerError, err)
		return
	}
	rq.host = host
	err = s.st.Remove(ctx, h)
	if errors.Is(err, fs.ErrNotExist) {
		if derr := s.x.DropRefs(ctx, snap); derr != nil {
			s.logger.Warn("cannot drop leftover refs", "snapshot", snap.String(), "err", derr)
		}
		s.fail(w, rq, http.StatusNotFound, fmt.Errorf("no snapshot %s", snap))
		return
	}
	if err == nil {
		// local.Remove does not sync the directory: a record that came back
		// after its refs were dropped would let prune delete its blobs.
		err = syncDir(filepath.Join(s.st.Location(), string(storage.KindSnapshots)))
	}
	if err != nil {
		s.fail(w, rq, http.StatusInternalServerError, fmt.Errorf("forget snapshot %s: %w", snap.Short(), err))
		return
	}
	// A backup may be reusing this snapshot's blobs as its parent's, told
	// they are stored: prune keeps them for its grace period.
	if err := s.markSnapshotTold(ctx, snap); err != nil {
		s.logger.Warn("cannot mark the blobs of a forgotten snapshot; a prune within the grace period may make a running backup's commit fail once", "snapshot", snap.String(), "err", err)
	}
	if err := s.x.DeleteSnapshot(ctx, snap); err != nil {
		s.logger.Warn("cannot drop cached snapshot record", "snapshot", snap.String(), "err", err)
	}
	if err := s.x.DropRefs(ctx, snap); err != nil {
		// The record is gone: the snapshot is forgotten. Its refs only keep
		// blobs alive until the next start drops them.
		s.logger.Warn("snapshot forgotten but its refs remain until the next start", "snapshot", snap.String(), "err", err)
	}
	s.mu.Lock()
	delete(s.unreffed, snap)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// markSnapshotTold marks every blob snap references with MarkTold, a page
// at a time.
func (s *server) markSnapshotTold(ctx context.Context, snap id.ID) error {
	if s.grace <= 0 {
		return nil
	}
	now := s.now()
	page := make([]id.ID, 0, 4096)
	err := s.x.ForEachRef(ctx, snap, func(b id.ID) error {
		if page = append(page, b); len(page) < cap(page) {
			return nil
		}
		err := s.x.MarkTold(ctx, page, now)
		page = page[:0]
		return err
	})
	if err != nil {
		return err
	}
	return s.x.MarkTold(ctx, page, now)
}
