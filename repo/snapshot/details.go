package snapshot

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/costor/costor/repo/id"
)

// DetailsVersion is the first byte of every encoded Details.
const DetailsVersion = 1

// EncodeDetails validates d and returns its canonical binary encoding
// (docs/snapshot-format.md), ready to be sealed into Public.Sealed.
func EncodeDetails(d *Details) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b := []byte{DetailsVersion}
	b = appendStrings(b, d.Paths)
	b = append(b, d.Tree[:]...)
	b = appendString(b, d.Hostname)
	b = appendString(b, d.Username)
	b = appendStrings(b, d.Excludes)
	b = appendString(b, d.Method)
	b = appendString(b, d.Program)
	for _, v := range statsFields(&d.Stats) {
		b = binary.AppendUvarint(b, *v)
	}
	b = binary.AppendUvarint(b, uint64(d.Stats.Duration))
	b = appendStrings(b, d.Errors)
	if len(b) > MaxDetailsLen {
		return nil, invalid("details encode to %d bytes, at most %d allowed (too many errors?)", len(b), MaxDetailsLen)
	}
	return b, nil
}

// statsFields lists the counters in their order on disk.
func statsFields(s *Stats) []*uint64 {
	return []*uint64{&s.Files, &s.Dirs, &s.Bytes, &s.FilesNew, &s.FilesChanged,
		&s.FilesSame, &s.BlobsAdded, &s.BytesAdded}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, list []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		b = appendString(b, s)
	}
	return b
}

// DecodeDetails parses and validates encoded Details (after unsealing).
// Only the canonical encoding is accepted: whatever decodes re-encodes to
// the same bytes.
func DecodeDetails(data []byte) (*Details, error) {
	if len(data) > MaxDetailsLen {
		return nil, invalid("details are %d bytes, at most %d allowed", len(data), MaxDetailsLen)
	}
	if len(data) == 0 {
		return nil, invalid("details are empty")
	}
	if data[0] != DetailsVersion {
		return nil, invalid("unknown details version %d (this costor reads %d)", data[0], DetailsVersion)
	}
	r := reader{buf: data, str: string(data), pos: 1}
	d := &Details{}
	d.Paths = r.strings("path")
	d.Tree = r.id("tree")
	d.Hostname = r.string("hostname")
	d.Username = r.string("username")
	d.Excludes = r.strings("exclude")
	d.Method = r.string("method")
	d.Program = r.string("program")
	for _, v := range statsFields(&d.Stats) {
		*v = r.uvarint("stats")
	}
	if ns := r.uvarint("duration"); ns > 1<<63-1 {
		r.fail("duration", "overflows")
	} else {
		d.Stats.Duration = time.Duration(ns)
	}
	d.Errors = r.strings("error")
	if r.err == nil && r.pos != len(data) {
		r.err = invalid("%d trailing bytes", len(data)-r.pos)
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// reader has a sticky error so that DecodeDetails reads straight through.
type reader struct {
	buf []byte
	str string // string(buf): decoded strings share it
	pos int
	err error
}

func (r *reader) fail(field, reason string) {
	if r.err == nil {
		r.err = invalid("details %s: %s", field, reason)
	}
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf[r.pos:])
	switch {
	case n == 0:
		r.fail(field, "truncated")
		return 0
	case n < 0:
		r.fail(field, "varint overflows 64 bits")
		return 0
	case n > 1 && r.buf[r.pos+n-1] == 0:
		r.fail(field, "non-minimal varint")
		return 0
	}
	r.pos += n
	return v
}

func (r *reader) string(field string) string {
	l := r.uvarint(field)
	if l > uint64(len(r.buf)-r.pos) {
		r.fail(field, "truncated")
		return ""
	}
	s := r.str[r.pos : r.pos+int(l)]
	r.pos += int(l)
	return s
}

func (r *reader) strings(field string) []string {
	count := r.uvarint(field)
	if rest := uint64(len(r.buf) - r.pos); count > rest {
		r.fail(field, fmt.Sprintf("declares %d entries, more than the remaining %d bytes can hold", count, rest))
		return nil
	}
	if count == 0 {
		return nil
	}
	// Grow as entries actually arrive rather than trusting count, and
	// refuse empty entries at once, so memory stays O(len(input)).
	list := make([]string, 0, min(count, 1024))
	for i := range count {
		s := r.string(field)
		if s == "" && r.err == nil {
			r.err = invalid("%s %d is empty", field, i)
		}
		if r.err != nil {
			return nil
		}
		list = append(list, s)
	}
	return list
}

func (r *reader) id(field string) id.ID {
	var v id.ID
	if r.err != nil {
		return v
	}
	if len(r.buf)-r.pos < len(v) {
		r.fail(field, "truncated")
		return v
	}
	r.pos += copy(v[:], r.buf[r.pos:])
	return v
}
