// Package id defines the 32-byte content identifiers used throughout the
// repository: blob IDs, pack IDs and snapshot IDs are all SHA-256 digests of
// the bytes they name, so anyone holding the bytes can verify the name.
package id

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Size is the length of an ID in bytes.
const Size = sha256.Size

// ShortLen is the number of hex characters shown for a short ID.
const ShortLen = 8

// ID names a piece of content by the SHA-256 digest of its bytes.
type ID [Size]byte

// Hash returns the ID of data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// String returns the full lower-case hex form.
func (i ID) String() string { return hex.EncodeToString(i[:]) }

// Short returns the first ShortLen hex characters, for display.
func (i ID) Short() string { return i.String()[:ShortLen] }

// IsNull reports whether i is the zero ID, used for "no ID".
func (i ID) IsNull() bool { return i == ID{} }

// Parse decodes a full 64-character hex ID.
func Parse(s string) (ID, error) {
	var i ID
	if len(s) != 2*Size {
		return i, fmt.Errorf("invalid ID %q: want %d hex characters, got %d", s, 2*Size, len(s))
	}
	if _, err := hex.Decode(i[:], []byte(s)); err != nil {
		return i, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	return i, nil
}

// MarshalText implements encoding.TextMarshaler (hex).
func (i ID) MarshalText() ([]byte, error) { return []byte(i.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (i *ID) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*i = p
	return nil
}
