package crypto

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"golang.org/x/crypto/argon2"
)

// KDFParams are the argon2id cost parameters of a password-wrapped file.
type KDFParams struct {
	Time    uint32 `json:"time"`    // passes over memory
	Memory  uint32 `json:"memory"`  // KiB
	Threads uint8  `json:"threads"` // lanes
}

// DefaultKDFParams is what new key files use: argon2id with 3 passes over
// 64 MiB in 2 lanes (RFC 9106's second recommended option, with 2 lanes for
// small machines): about half a second per unwrap on a busy 2-vCPU VM
// (docs/crypto.md §7).
var DefaultKDFParams = KDFParams{Time: 3, Memory: 64 * 1024, Threads: 2}

// TestKDFParams are cheap parameters for tests only.
var TestKDFParams = KDFParams{Time: 1, Memory: 64, Threads: 1}

// Bounds a decoder accepts, so a corrupt or hostile file cannot make
// unwrapping allocate more than 4 GiB or run for hours.
const (
	maxKDFTime   = 100
	maxKDFMemory = 4 << 20 // KiB = 4 GiB
)

// ErrWrongPassword reports that a password-wrapped file did not open. A
// corrupted file is indistinguishable from a wrong password.
var ErrWrongPassword = errors.New("wrong password")

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxKDFMemory:
		return fmt.Errorf("argon2id memory %d KiB out of range %d..%d KiB", p.Memory, 8*uint32(p.Threads), maxKDFMemory)
	}
	return nil
}

// Password-wrapped format, version 1 (the first 26 bytes are the header,
// authenticated as associated data):
//
//	version  1 byte   = 1
//	time     4 bytes  big-endian
//	memory   4 bytes  big-endian, KiB
//	threads  1 byte
//	salt     16 bytes random
//	body     SealRandom(argon2id(password, salt, params, 32 bytes), plaintext, ad = header)
const (
	wrapVersion   = 1
	saltSize      = 16
	wrapHeaderLen = 1 + 4 + 4 + 1 + saltSize
)

// WrapWithPassword seals plaintext under a key derived from password by
// argon2id with params and a random salt.
func WrapWithPassword(password, plaintext []byte, params KDFParams) ([]byte, error) {
	return wrapWithPassword(rand.Reader, password, plaintext, params)
}

// wrapWithPassword reads the salt, then the nonce, from random.
func wrapWithPassword(random io.Reader, password, plaintext []byte, params KDFParams) ([]byte, error) {
	if err := params.validate(); err != nil {
		return nil, fmt.Errorf("wrap with password: %w", err)
	}
	out := make([]byte, wrapHeaderLen, wrapHeaderLen+Overhead+len(plaintext))
	out[0] = wrapVersion
	binary.BigEndian.PutUint32(out[1:5], params.Time)
	binary.BigEndian.PutUint32(out[5:9], params.Memory)
	out[9] = params.Threads
	salt := out[10:wrapHeaderLen]
	if _, err := io.ReadFull(random, salt); err != nil {
		return nil, fmt.Errorf("wrap with password: read salt: %w", err)
	}
	key := passwordKey(password, salt, params)
	return sealRandom(random, &key, out, plaintext, out[:wrapHeaderLen])
}

func passwordKey(password, salt []byte, p KDFParams) Key {
	key := Key(argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, KeySize))
	// The KDF's memory (64 MiB) is garbage now. Left to the collector, it
	// would set the next heap goal at twice itself and stay resident, so a
	// command's peak memory would be the KDF's plus its own work's; handed
	// back now, the peak is the larger of the two.
	debug.FreeOSMemory()
	return key
}

// parseWrapped checks the header of a password-wrapped file and returns its
// parameters, salt and body without running the KDF.
func parseWrapped(wrapped []byte) (params KDFParams, salt, body []byte, err error) {
	if len(wrapped) < wrapHeaderLen+Overhead {
		return KDFParams{}, nil, nil, fmt.Errorf("truncated: %d bytes, want at least %d", len(wrapped), wrapHeaderLen+Overhead)
	}
	if wrapped[0] != wrapVersion {
		return KDFParams{}, nil, nil, fmt.Errorf("unsupported version %d (this costor reads version %d)", wrapped[0], wrapVersion)
	}
	params = KDFParams{
		Time:    binary.BigEndian.Uint32(wrapped[1:5]),
		Memory:  binary.BigEndian.Uint32(wrapped[5:9]),
		Threads: wrapped[9],
	}
	if err := params.validate(); err != nil {
		return KDFParams{}, nil, nil, err
	}
	return params, wrapped[10:wrapHeaderLen], wrapped[wrapHeaderLen:], nil
}

// UnwrapWithPassword opens the output of WrapWithPassword. It fails with
// ErrWrongPassword when the password (or the file) is wrong.
func UnwrapWithPassword(password, wrapped []byte) ([]byte, error) {
	params, salt, body, err := parseWrapped(wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap with password: %w", err)
	}
	key := passwordKey(password, salt, params)
	plaintext, err := openRandom(&key, nil, body, wrapped[:wrapHeaderLen])
	if err != nil {
		return nil, ErrWrongPassword
	}
	return plaintext, nil
}
