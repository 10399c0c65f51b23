package repo

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sort"

	"github.com/costor/costor/repo/crypto"
	"github.com/costor/costor/repo/storage"
)

// keyring is what the credentials unlocked.
type keyring struct {
	full     bool // the repository key file was opened: may write
	org      crypto.Key
	pack     crypto.Key
	recovery *crypto.PrivateKey
	// recoveryPublic receives every new host envelope; set whenever the
	// credentials may write.
	recoveryPublic crypto.PublicKey
	host           *crypto.HostKey
}

func unlock(ctx context.Context, st storage.Storage, creds Credentials) (keyring, error) {
	k := keyring{host: creds.Host}
	if creds.Recovery != nil {
		k.recovery = creds.Recovery
	}
	if creds.Org != nil {
		// A client of a site server: it may seal new data with the
		// organisation's secret, but holds no pack key (the server packs)
		// and no recovery private key.
		k.full = true
		k.org = creds.Org.Secret
		k.recoveryPublic = creds.Org.RecoveryPublic
		return k, nil
	}
	if creds.Recovery != nil {
		return k, nil
	}
	if len(creds.Password) == 0 {
		return k, fmt.Errorf("a password is required (--password-file, COSTOR_PASSWORD_FILE or COSTOR_PASSWORD)")
	}
	var names []string
	if err := st.List(ctx, storage.KindKeys, func(fi storage.Info) error {
		names = append(names, fi.Handle.Name)
		return nil
	}); err != nil {
		return k, fmt.Errorf("list key files: %w", err)
	}
	if len(names) == 0 {
		return k, fmt.Errorf("the repository has no key file (keys/ is empty): it cannot be opened")
	}
	sort.Strings(names)
	var lastErr error
	for _, name := range names {
		data, err := loadAll(ctx, st, storage.Handle{Kind: storage.KindKeys, Name: name})
		if err != nil {
			lastErr = err
			continue
		}
		rk, err := crypto.DecodeRepoKeys(data, creds.Password)
		if errors.Is(err, crypto.ErrWrongPassword) {
			continue
		}
		if err != nil {
			lastErr = fmt.Errorf("key file %s: %w", name, err)
			continue
		}
		rec := rk.Recovery
		return keyring{full: true, org: rk.OrgSecret, pack: rk.PackKey, recovery: &rec, recoveryPublic: rec.Public(), host: creds.Host}, nil
	}
	if lastErr != nil {
		return k, lastErr
	}
	return k, ErrWrongPassword
}

// CanWrite reports whether the credentials allow adding data.
func (r *Repository) CanWrite() bool { return r.keys.full }

// OrgSecret returns the organisation secret, which keys convergent chunk
// encryption and seeds the chunker. Only a writer has it.
func (r *Repository) OrgSecret() (crypto.Key, error) {
	if !r.keys.full {
		return crypto.Key{}, ErrReadOnly
	}
	return r.keys.org, nil
}

// HostKey is an unlocked host data key: it seals and opens that host's
// trees and snapshot details.
type HostKey struct {
	Host     string
	Envelope string // storage name of the envelope
	SIV      *crypto.SIVKey
	dataKey  crypto.Key
}

// SameDataKey reports whether k and o hold the same data key, so that what
// one of them sealed opens with the other and seals to the same bytes.
func (k *HostKey) SameDataKey(o *HostKey) bool {
	return k != nil && o != nil && subtle.ConstantTimeCompare(k.dataKey[:], o.dataKey[:]) == 1
}

// HostKeyFor returns the data key that seals new trees and snapshots of
// host, creating the host's envelope (sealed to the recovery key and, if
// known, the host's own key pair) when there is none yet.
//
// With the host's key pair at hand the data key is derived from its private
// key, never read back from storage: anyone can seal an envelope to our
// public key, so trusting a stored one would let whoever writes the storage
// (a server) choose the key our new data is sealed under. Without it (a
// local repository backing up under another --host) the first envelope of
// the host that our keys open is used; several may exist after a race, and
// the one with the lowest name wins so that trees keep deduplicating.
func (r *Repository) HostKeyFor(ctx context.Context, host string) (*HostKey, error) {
	var names []string
	if err := r.st.List(ctx, storage.KindHostKeys, func(fi storage.Info) error {
		names = append(names, fi.Handle.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list host keys: %w", err)
	}
	sort.Strings(names)
	var own *crypto.Key
	if r.keys.host != nil && r.keys.host.Host == host {
		k := r.keys.host.DataKey()
		own = &k
	}
	for _, name := range names {
		env, err := r.loadEnvelope(ctx, name)
		if err != nil {
			// One unreadable file must not stop every host's backups.
			r.log.Warn("skipping an unreadable host key envelope", "name", name, "err", err)
			continue
		}
		if env.Host != host {
			continue
		}
		hk, err := r.HostKeyByName(ctx, name)
		if err != nil {
			continue // sealed to keys we do not hold
		}
		if own == nil || hk.dataKey == *own {
			return hk, nil
		}
	}
	if !r.keys.full {
		return nil, fmt.Errorf("host %q has no key in this repository: %w", host, ErrReadOnly)
	}
	if r.remote != nil && own == nil {
		// A data key only the recovery key could open would leave this
		// client unable to read its own backups back.
		return nil, fmt.Errorf("backing up host %q to a server needs that host's key pair (--host-key)", host)
	}
	var dataKey crypto.Key
	if own != nil {
		dataKey = *own
	} else {
		var err error
		if dataKey, err = crypto.NewRandomKey(); err != nil {
			return nil, err
		}
	}
	recipients := []crypto.PublicKey{r.keys.recoveryPublic}
	if own != nil {
		recipients = append(recipients, r.keys.host.Private.Public())
	}
	data, err := crypto.NewHostEnvelope(host, dataKey, recipients...)
	if err != nil {
		return nil, fmt.Errorf("seal key of host %q: %w", host, err)
	}
	name := hashName(data)
	if err := saveBytes(ctx, r.st, storage.Handle{Kind: storage.KindHostKeys, Name: name}, data); err != nil {
		return nil, fmt.Errorf("save key of host %q: %w", host, err)
	}
	hk := &HostKey{Host: host, Envelope: name, SIV: crypto.NewSIVKey(dataKey), dataKey: dataKey}
	r.hostMu.Lock()
	r.hostKeys[name] = hk
	r.hostMu.Unlock()
	return hk, nil
}

// HostKeyByName unlocks the host envelope with the given storage name.
func (r *Repository) HostKeyByName(ctx context.Context, name string) (*HostKey, error) {
	r.hostMu.Lock()
	hk, ok := r.hostKeys[name]
	r.hostMu.Unlock()
	if ok {
		return hk, nil
	}
	env, err := r.loadEnvelope(ctx, name)
	if err != nil {
		return nil, err
	}
	var dataKey crypto.Key
	opened := false
	for _, priv := range r.privateKeys() {
		dataKey, err = env.Open(priv)
		if err == nil {
			opened = true
			break
		}
		if !errors.Is(err, crypto.ErrNotRecipient) {
			return nil, fmt.Errorf("open key of host %q: %w", env.Host, err)
		}
	}
	if !opened {
		return nil, fmt.Errorf("no key given can read host %q's backups (it needs that host's key or the recovery key)", env.Host)
	}
	// Anyone who can write storage can seal an envelope to our public
	// keys. For our own host we know the one true data key: an envelope
	// holding another is planted, and what it seals is not ours.
	if h := r.keys.host; h != nil && h.Host == env.Host && dataKey != h.DataKey() {
		return nil, fmt.Errorf("host key %s of host %q does not hold this host's data key: refusing it (was it planted in the storage?)", name, env.Host)
	}
	hk = &HostKey{Host: env.Host, Envelope: name, SIV: crypto.NewSIVKey(dataKey), dataKey: dataKey}
	r.hostMu.Lock()
	r.hostKeys[name] = hk
	r.hostMu.Unlock()
	return hk, nil
}

func (r *Repository) privateKeys() []crypto.PrivateKey {
	var keys []crypto.PrivateKey
	if r.keys.host != nil {
		keys = append(keys, r.keys.host.Private)
	}
	if r.keys.recovery != nil {
		keys = append(keys, *r.keys.recovery)
	}
	return keys
}

func (r *Repository) loadEnvelope(ctx context.Context, name string) (crypto.HostEnvelope, error) {
	data, err := loadAll(ctx, r.st, storage.Handle{Kind: storage.KindHostKeys, Name: name})
	if err != nil {
		return crypto.HostEnvelope{}, err
	}
	env, err := crypto.DecodeHostEnvelope(data)
	if err != nil {
		return env, fmt.Errorf("host key %s: %w", name, err)
	}
	return env, nil
}

func saveBytes(ctx context.Context, st storage.Storage, h storage.Handle, data []byte) error {
	if err := st.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	return nil
}
