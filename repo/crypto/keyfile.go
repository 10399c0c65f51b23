package crypto

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// KeyFileVersion is the version written into every key file, and the only one
// the decoders accept.
const KeyFileVersion = 1

// Kinds name each key file format inside the file, so that handing costor the
// wrong file gives an error that says which file it is.
const (
	kindRepoKeys     = "costor repository keys"
	kindOrgKey       = "costor organisation key"
	kindRecoveryKey  = "costor recovery key"
	kindHostKey      = "costor host key"
	kindHostEnvelope = "costor host key envelope"
)

// RepoKeys are all keys of a local repository, kept in its one key file
// wrapped under the repository password.
type RepoKeys struct {
	Version   int
	OrgSecret Key        // chunk keys and the chunker polynomial
	PackKey   Key        // seals pack headers
	Recovery  PrivateKey // opens every host key envelope
}

// OrgKey is the organisation key file held by agents and the admin: the
// organisation secret and the public half of the admin recovery key. It is
// not wrapped; its file mode protects it.
type OrgKey struct {
	Version        int
	Secret         Key
	RecoveryPublic PublicKey
}

// RecoveryKey is the admin recovery key file, wrapped under a password.
type RecoveryKey struct {
	Version int
	Private PrivateKey
}

// HostKey is a host's key file: its name and X25519 private key. It is not
// wrapped; its file mode protects it.
type HostKey struct {
	Version int
	Host    string
	Private PrivateKey
}

// DataKey derives the host data key (NewSIVKey of it seals the host's trees
// and snapshot details) from the host private key. An agent derives its data
// key rather than reading it from its envelope in the repository, so whoever
// forges an envelope (anyone with the public keys can) cannot make the agent
// seal new data under a key of their choosing.
func (k HostKey) DataKey() Key { return deriveKey(k.Private[:], labelHostData) }

// HostEnvelope is a host data key sealed to the host's public key and the
// admin recovery public key, stored in the repository so the recovery key
// holder can read any host.
type HostEnvelope struct {
	Version    int
	Host       string
	Recipients []PublicKey // informational: whom Sealed was sealed to
	Sealed     []byte      // SealTo(dataKey || host, Recipients...)
}

type fileHeader struct {
	Kind    string `json:"kind"`
	Version int    `json:"version"`
}

type repoKeysFile struct {
	fileHeader
	OrgSecret []byte `json:"org_secret"`
	PackKey   []byte `json:"pack_key"`
	Recovery  []byte `json:"recovery_private"`
}

type orgKeyFile struct {
	fileHeader
	Secret         []byte    `json:"secret"`
	RecoveryPublic PublicKey `json:"recovery_public"`
}

type recoveryKeyFile struct {
	fileHeader
	Private []byte `json:"private"`
}

type hostKeyFile struct {
	fileHeader
	Host    string `json:"host"`
	Private []byte `json:"private"`
}

type hostEnvelopeFile struct {
	fileHeader
	Host       string      `json:"host"`
	Recipients []PublicKey `json:"recipients"`
	Sealed     []byte      `json:"sealed"`
}

// newHeader checks the version a caller put in a struct: zero means current.
func newHeader(kind string, version int) (fileHeader, error) {
	if version != 0 && version != KeyFileVersion {
		return fileHeader{}, fmt.Errorf("unsupported %s version %d (this costor writes version %d)", kind, version, KeyFileVersion)
	}
	return fileHeader{Kind: kind, Version: KeyFileVersion}, nil
}

// decodeFile unmarshals data into v after checking that it is a key file of
// the expected kind and version.
func decodeFile(kind string, data []byte, v any) error {
	var h fileHeader
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("not a %s file: %w", kind, err)
	}
	if h.Kind != kind {
		if h.Kind == "" {
			return fmt.Errorf("not a %s file", kind)
		}
		return fmt.Errorf("this is a %s file, not a %s file", h.Kind, kind)
	}
	if h.Version != KeyFileVersion {
		return fmt.Errorf("unsupported %s version %d (this costor reads version %d)", kind, h.Version, KeyFileVersion)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("malformed %s file: %w", kind, err)
	}
	return nil
}

// key32 checks a decoded 32-byte secret field; all zeros means missing.
func key32(field string, b []byte) ([32]byte, error) {
	var k [32]byte
	if len(b) != len(k) {
		if len(b) == 0 {
			return k, fmt.Errorf("missing %s", field)
		}
		return k, fmt.Errorf("%s is %d bytes, want %d", field, len(b), len(k))
	}
	copy(k[:], b)
	if k == [32]byte{} {
		return k, fmt.Errorf("%s is all zeros", field)
	}
	return k, nil
}

func checkHost(host string) error {
	if host == "" || !utf8.ValidString(host) {
		return fmt.Errorf("invalid host name %q", host)
	}
	return nil
}

// EncodeRepoKeys encodes k and wraps it under password.
func EncodeRepoKeys(k RepoKeys, password []byte, params KDFParams) ([]byte, error) {
	h, err := newHeader(kindRepoKeys, k.Version)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(repoKeysFile{h, k.OrgSecret[:], k.PackKey[:], k.Recovery[:]})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kindRepoKeys, err)
	}
	defer clear(plain)
	return WrapWithPassword(password, plain, params)
}

// DecodeRepoKeys unwraps and decodes a repository key file; a wrong password
// gives ErrWrongPassword.
func DecodeRepoKeys(data, password []byte) (RepoKeys, error) {
	plain, err := UnwrapWithPassword(password, data)
	if err != nil {
		return RepoKeys{}, fmt.Errorf("open %s file: %w", kindRepoKeys, err)
	}
	defer clear(plain)
	var f repoKeysFile
	if err := decodeFile(kindRepoKeys, plain, &f); err != nil {
		return RepoKeys{}, err
	}
	k := RepoKeys{Version: f.Version}
	var errs [3]error
	k.OrgSecret, errs[0] = key32("org_secret", f.OrgSecret)
	k.PackKey, errs[1] = key32("pack_key", f.PackKey)
	k.Recovery, errs[2] = key32("recovery_private", f.Recovery)
	if err := errors.Join(errs[:]...); err != nil {
		return RepoKeys{}, fmt.Errorf("malformed %s file: %w", kindRepoKeys, err)
	}
	return k, nil
}

// EncodeOrgKey encodes an organisation key file.
func EncodeOrgKey(k OrgKey) ([]byte, error) {
	h, err := newHeader(kindOrgKey, k.Version)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(orgKeyFile{h, k.Secret[:], k.RecoveryPublic}, "", "  ")
}

// DecodeOrgKey decodes an organisation key file.
func DecodeOrgKey(data []byte) (OrgKey, error) {
	var f orgKeyFile
	if err := decodeFile(kindOrgKey, data, &f); err != nil {
		return OrgKey{}, err
	}
	secret, err := key32("secret", f.Secret)
	if err == nil && f.RecoveryPublic == (PublicKey{}) {
		err = errors.New("missing recovery_public")
	}
	if err != nil {
		return OrgKey{}, fmt.Errorf("malformed %s file: %w", kindOrgKey, err)
	}
	return OrgKey{Version: f.Version, Secret: secret, RecoveryPublic: f.RecoveryPublic}, nil
}

// EncodeRecoveryKey encodes a recovery key file wrapped under password.
func EncodeRecoveryKey(k RecoveryKey, password []byte, params KDFParams) ([]byte, error) {
	h, err := newHeader(kindRecoveryKey, k.Version)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(recoveryKeyFile{h, k.Private[:]})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kindRecoveryKey, err)
	}
	defer clear(plain)
	return WrapWithPassword(password, plain, params)
}

// DecodeRecoveryKey unwraps and decodes a recovery key file; a wrong password
// gives ErrWrongPassword.
func DecodeRecoveryKey(data, password []byte) (RecoveryKey, error) {
	plain, err := UnwrapWithPassword(password, data)
	if err != nil {
		return RecoveryKey{}, fmt.Errorf("open %s file: %w", kindRecoveryKey, err)
	}
	defer clear(plain)
	var f recoveryKeyFile
	if err := decodeFile(kindRecoveryKey, plain, &f); err != nil {
		return RecoveryKey{}, err
	}
	priv, err := key32("private", f.Private)
	if err != nil {
		return RecoveryKey{}, fmt.Errorf("malformed %s file: %w", kindRecoveryKey, err)
	}
	return RecoveryKey{Version: f.Version, Private: priv}, nil
}

// EncodeHostKey encodes a host key file.
func EncodeHostKey(k HostKey) ([]byte, error) {
	h, err := newHeader(kindHostKey, k.Version)
	if err != nil {
		return nil, err
	}
	if err := checkHost(k.Host); err != nil {
		return nil, fmt.Errorf("encode %s: %w", kindHostKey, err)
	}
	return json.MarshalIndent(hostKeyFile{h, k.Host, k.Private[:]}, "", "  ")
}

// DecodeHostKey decodes a host key file.
func DecodeHostKey(data []byte) (HostKey, error) {
	var f hostKeyFile
	if err := decodeFile(kindHostKey, data, &f); err != nil {
		return HostKey{}, err
	}
	priv, err := key32("private", f.Private)
	if err == nil {
		err = checkHost(f.Host)
	}
	if err != nil {
		return HostKey{}, fmt.Errorf("malformed %s file: %w", kindHostKey, err)
	}
	return HostKey{Version: f.Version, Host: f.Host, Private: priv}, nil
}

// NewHostEnvelope seals host's data key to recipients (the host's public key
// and the admin recovery public key) and encodes the envelope. The host name
// is sealed along with the key, so an envelope renamed to another host does
// not open.
func NewHostEnvelope(host string, dataKey Key, recipients ...PublicKey) ([]byte, error) {
	if err := checkHost(host); err != nil {
		return nil, fmt.Errorf("encode %s: %w", kindHostEnvelope, err)
	}
	plain := make([]byte, 0, KeySize+len(host))
	plain = append(append(plain, dataKey[:]...), host...)
	defer clear(plain)
	sealed, err := SealTo(plain, recipients...)
	if err != nil {
		return nil, fmt.Errorf("encode %s for %s: %w", kindHostEnvelope, host, err)
	}
	return EncodeHostEnvelope(HostEnvelope{Host: host, Recipients: recipients, Sealed: sealed})
}

// EncodeHostEnvelope encodes e as stored in the repository.
func EncodeHostEnvelope(e HostEnvelope) ([]byte, error) {
	h, err := newHeader(kindHostEnvelope, e.Version)
	if err != nil {
		return nil, err
	}
	if err := checkHost(e.Host); err != nil {
		return nil, fmt.Errorf("encode %s: %w", kindHostEnvelope, err)
	}
	return json.MarshalIndent(hostEnvelopeFile{h, e.Host, e.Recipients, e.Sealed}, "", "  ")
}

// DecodeHostEnvelope decodes a host key envelope without opening it.
func DecodeHostEnvelope(data []byte) (HostEnvelope, error) {
	var f hostEnvelopeFile
	if err := decodeFile(kindHostEnvelope, data, &f); err != nil {
		return HostEnvelope{}, err
	}
	err := checkHost(f.Host)
	if err == nil && len(f.Sealed) == 0 {
		err = errors.New("missing sealed")
	}
	if err != nil {
		return HostEnvelope{}, fmt.Errorf("malformed %s file: %w", kindHostEnvelope, err)
	}
	return HostEnvelope{Version: f.Version, Host: f.Host, Recipients: f.Recipients, Sealed: f.Sealed}, nil
}

// Open returns the host data key sealed in e, using the host's private key or
// the recovery private key. It fails with ErrNotRecipient for any other key.
func (e HostEnvelope) Open(priv PrivateKey) (Key, error) {
	plain, err := OpenWith(priv, e.Sealed)
	if err != nil {
		return Key{}, fmt.Errorf("open %s of host %q: %w", kindHostEnvelope, e.Host, err)
	}
	defer clear(plain)
	if len(plain) < KeySize {
		return Key{}, fmt.Errorf("open %s of host %q: sealed payload of %d bytes is too short", kindHostEnvelope, e.Host, len(plain))
	}
	if sealedHost := string(plain[KeySize:]); sealedHost != e.Host {
		return Key{}, fmt.Errorf("open %s of host %q: it holds the key of host %q", kindHostEnvelope, e.Host, sealedHost)
	}
	return Key(plain[:KeySize]), nil
}
