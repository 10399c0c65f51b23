package storage

import (
	"errors"
	"fmt"
)

// ErrInvalidHandle is returned (wrapped) for a handle whose kind is unknown
// or whose name breaks the naming rule.
var ErrInvalidHandle = errors.New("invalid handle")

// MaxNameLen is the longest name a backend accepts.
const MaxNameLen = 128

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// Validate checks h against the naming rule of the Storage contract. Backends
// call it before touching anything, because a name is about to become part
// of a path or key.
func (h Handle) Validate() error {
	if !h.Kind.Valid() {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidHandle, h.Kind)
	}
	return ValidateName(h.Name)
}

// ValidateName checks a name against the naming rule of the Storage contract.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidHandle)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: name of %d bytes is longer than %d", ErrInvalidHandle, len(name), MaxNameLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: name %q begins with '.'", ErrInvalidHandle, name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: name %q has a character outside [0-9a-zA-Z._-] at byte %d", ErrInvalidHandle, name, i)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c == '.' || c == '_' || c == '-'
}
