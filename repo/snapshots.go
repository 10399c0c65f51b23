package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/snapshot"
	"github.com/costor/costor/repo/storage"
)

// ErrSnapshotNotFound is returned (wrapped) when no snapshot matches.
var ErrSnapshotNotFound = errors.New("no such snapshot")

// Snapshot is a snapshot record with its ID.
type Snapshot struct {
	ID id.ID
	*snapshot.Public
}

func snapshotHandle(s id.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindSnapshots, Name: s.String()}
}

// SaveSnapshot makes every pending blob durable, then seals det under the
// host key and writes the record. Only then does the snapshot exist.
func (r *Repository) SaveSnapshot(ctx context.Context, hk *HostKey, pub snapshot.Public, det *snapshot.Details) (id.ID, error) {
	if err := r.Flush(ctx); err != nil {
		return id.ID{}, err
	}
	plain, err := snapshot.EncodeDetails(det)
	if err != nil {
		return id.ID{}, fmt.Errorf("encode snapshot details: %w", err)
	}
	pub.Version = 1
	pub.Host = hk.Host
	pub.HostKey = hk.Envelope
	pub.Sealed = hk.SIV.Seal(nil, plain)
	data, err := snapshot.EncodePublic(&pub)
	if err != nil {
		return id.ID{}, fmt.Errorf("encode snapshot: %w", err)
	}
	snapID := id.Hash(data)
	if r.remote != nil {
		if err := r.commitRemote(ctx, data); err != nil {
			return id.ID{}, fmt.Errorf("commit snapshot %s: %w", snapID.Short(), err)
		}
	} else if err := saveBytes(ctx, r.st, snapshotHandle(snapID), data); err != nil {
		return id.ID{}, err
	}
	if err := r.idx.PutSnapshot(ctx, snapID, data); err != nil {
		return id.ID{}, fmt.Errorf("index snapshot %s: %w", snapID.Short(), err)
	}
	// The version history is an index like the rest: if recording it fails,
	// the snapshot stands and the next open records it.
	if err := r.indexVersions(ctx, Snapshot{ID: snapID, Public: &pub}); err != nil {
		r.log.Warn("version history of the new snapshot not recorded yet", "snapshot", snapID.Short(), "err", err)
	}
	return snapID, nil
}

// Snapshots lists every snapshot, oldest first.
func (r *Repository) Snapshots(ctx context.Context) ([]Snapshot, error) {
	var list []Snapshot
	err := r.idx.ForEachSnapshot(ctx, func(snapID id.ID, record []byte) error {
		pub, err := snapshot.DecodePublic(record)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", snapID.Short(), err)
		}
		list = append(list, Snapshot{ID: snapID, Public: pub})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool {
		if !list[i].Time.Equal(list[j].Time) {
			return list[i].Time.Before(list[j].Time)
		}
		return list[i].ID.String() < list[j].ID.String()
	})
	return list, nil
}

// FindSnapshot resolves "latest" (the newest of host), a full ID or a
// unique ID prefix.
func (r *Repository) FindSnapshot(ctx context.Context, spec, host string) (Snapshot, error) {
	list, err := r.Snapshots(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	if spec == "latest" {
		for i := len(list) - 1; i >= 0; i-- {
			if host == "" || list[i].Host == host {
				return list[i], nil
			}
		}
		return Snapshot{}, fmt.Errorf("latest snapshot of host %q: %w", host, ErrSnapshotNotFound)
	}
	spec = strings.ToLower(spec)
	var found []Snapshot
	for _, s := range list {
		if strings.HasPrefix(s.ID.String(), spec) {
			found = append(found, s)
		}
	}
	switch {
	case spec == "" || len(found) == 0:
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", spec, ErrSnapshotNotFound)
	case len(found) > 1:
		return Snapshot{}, fmt.Errorf("snapshot prefix %q matches %d snapshots: give more characters", spec, len(found))
	}
	return found[0], nil
}

// Details unseals a snapshot's private part and returns it with the host key
// that opens its trees.
func (r *Repository) Details(ctx context.Context, s Snapshot) (*snapshot.Details, *HostKey, error) {
	hk, err := r.HostKeyByName(ctx, s.HostKey)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	plain, err := hk.SIV.Open(nil, s.Sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: decrypt details: %w", s.ID.Short(), err)
	}
	det, err := snapshot.DecodeDetails(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	return det, hk, nil
}

// ForgetSnapshot deletes a snapshot record. The data it alone referenced
// stays until a prune removes it.
func (r *Repository) ForgetSnapshot(ctx context.Context, snapID id.ID) error {
	// A server decides by the caller's token, not by its keys.
	if !r.keys.full && r.remote == nil {
		return ErrReadOnly
	}
	if err := r.st.Remove(ctx, snapshotHandle(snapID)); err != nil && !errors.Is(err, storage.ErrNotExist) {
		return fmt.Errorf("forget snapshot %s: %w", snapID.Short(), err)
	}
	record, ok, err := r.idx.Snapshot(ctx, snapID)
	if err != nil {
		return fmt.Errorf("forget snapshot %s: %w", snapID.Short(), err)
	}
	if err := r.idx.DeleteSnapshot(ctx, snapID); err != nil {
		return fmt.Errorf("forget snapshot %s: %w", snapID.Short(), err)
	}
	if ok {
		// Versions may be named after the forgotten snapshot: rebuild the
		// host's history on the next open.
		if pub, err := snapshot.DecodePublic(record); err == nil {
			if err := r.forgetVersions(pub.Host); err != nil {
				return err
			}
		}
	}
	return nil
}
