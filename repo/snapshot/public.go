package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/costor/costor/repo/id"
)

// publicJSON fixes the wire names so that renaming a Go field cannot
// change the format.
type publicJSON struct {
	Version int       `json:"version"`
	Host    string    `json:"host"`
	Time    time.Time `json:"time"`
	Tags    []string  `json:"tags,omitempty"`
	Parent  *id.ID    `json:"parent,omitempty"`
	HostKey string    `json:"host_key,omitempty"`
	Sealed  []byte    `json:"sealed"`
}

// EncodePublic validates p and returns its JSON encoding, the bytes stored
// in the repository and hashed to give the snapshot ID.
func EncodePublic(p *Public) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	w := publicJSON{
		Version: p.Version,
		Host:    p.Host,
		Time:    p.Time,
		Tags:    p.Tags,
		HostKey: p.HostKey,
		Sealed:  p.Sealed,
	}
	if !p.Parent.IsNull() {
		w.Parent = &p.Parent
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot record: %w", err)
	}
	return b, nil
}

// DecodePublic parses and validates a stored snapshot record. It rejects
// unknown fields and trailing data, so that a record from a newer format is
// reported by its version rather than half-read.
func DecodePublic(data []byte) (*Public, error) {
	if len(data) > MaxPublicLen {
		return nil, invalid("record is %d bytes, at most %d allowed", len(data), MaxPublicLen)
	}
	if !utf8.Valid(data) {
		// encoding/json would silently replace the bad bytes.
		return nil, invalid("record is not valid UTF-8")
	}
	var v struct {
		Version *int `json:"version"`
	}
	// Unmarshal also rejects trailing data after the object.
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, invalid("%v", err)
	}
	if v.Version == nil {
		return nil, invalid("no version")
	}
	if *v.Version != Version {
		return nil, invalid("unknown version %d (this costor reads %d)", *v.Version, Version)
	}

	var w publicJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, invalid("%v", err)
	}
	if w.Parent != nil && w.Parent.IsNull() {
		return nil, invalid("parent is the null ID; omit it instead")
	}
	p := &Public{
		Version: w.Version,
		Host:    w.Host,
		Time:    w.Time,
		Tags:    w.Tags,
		HostKey: w.HostKey,
		Sealed:  w.Sealed,
	}
	if w.Parent != nil {
		p.Parent = *w.Parent
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
