package index

import (
	"encoding/binary"
	"fmt"

	"github.com/costor/costor/repo/id"
	"github.com/costor/costor/repo/pack"
)

// Key prefixes. One byte each, so that a key is its prefix plus fixed-size
// binary IDs. The values are part of the on-disk format (docs/index.md).
const (
	prefixBlob     byte = 'b' // b + blobID → location
	prefixPack     byte = 'p' // p + packID → pack record
	prefixPackBlob byte = 'P' // P + packID + blobID → entry within that pack
	prefixSnapshot byte = 's' // s + snapshotID → opaque snapshot record
	prefixVersion  byte = 'v' // reserved for the per-path version history
	prefixMeta     byte = 'm' // m + name → metadata
)

// formatVersion is stored under metaFormatKey; an index written with another
// version is rebuilt rather than read.
const formatVersion uint32 = 1

var metaFormatKey = []byte{prefixMeta, 'f', 'o', 'r', 'm', 'a', 't'}

const (
	idKeyLen       = 1 + id.Size
	packBlobKeyLen = 1 + 2*id.Size
	locationLen    = id.Size + 4 + 4 + 4 + 1 // pack|offset|length|rawLength|type
	packRecordLen  = 8 + 4                   // size|blobCount
	packEntryLen   = 1 + 4 + 4 + 4           // type|offset|length|rawLength
)

func idKey(prefix byte, i id.ID) [idKeyLen]byte {
	var k [idKeyLen]byte
	k[0] = prefix
	copy(k[1:], i[:])
	return k
}

func packBlobKey(packID, blob id.ID) [packBlobKeyLen]byte {
	var k [packBlobKeyLen]byte
	k[0] = prefixPackBlob
	copy(k[1:], packID[:])
	copy(k[1+id.Size:], blob[:])
	return k
}

// keyID extracts the ID that follows a one-byte prefix (and skip more bytes).
func keyID(key []byte, skip int) (id.ID, error) {
	var i id.ID
	if len(key) != skip+1+id.Size {
		return i, fmt.Errorf("key of %d bytes, want %d", len(key), skip+1+id.Size)
	}
	copy(i[:], key[1+skip:])
	return i, nil
}

func validType(t pack.BlobType) bool { return t == pack.DataBlob || t == pack.TreeBlob }

func appendLocation(dst []byte, loc Location) []byte {
	dst = append(dst, loc.Pack[:]...)
	dst = binary.BigEndian.AppendUint32(dst, loc.Offset)
	dst = binary.BigEndian.AppendUint32(dst, loc.Length)
	dst = binary.BigEndian.AppendUint32(dst, loc.RawLength)
	return append(dst, byte(loc.Type))
}

func decodeLocation(b []byte) (Location, error) {
	var loc Location
	if len(b) != locationLen {
		return loc, fmt.Errorf("location of %d bytes, want %d", len(b), locationLen)
	}
	copy(loc.Pack[:], b)
	b = b[id.Size:]
	loc.Offset = binary.BigEndian.Uint32(b)
	loc.Length = binary.BigEndian.Uint32(b[4:])
	loc.RawLength = binary.BigEndian.Uint32(b[8:])
	loc.Type = pack.BlobType(b[12])
	if !validType(loc.Type) {
		return loc, fmt.Errorf("invalid blob type %d", b[12])
	}
	return loc, nil
}

func appendPackRecord(dst []byte, size int64, blobs int) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(size))
	return binary.BigEndian.AppendUint32(dst, uint32(blobs))
}

func decodePackRecord(b []byte) (size int64, blobs int, err error) {
	if len(b) != packRecordLen {
		return 0, 0, fmt.Errorf("pack record of %d bytes, want %d", len(b), packRecordLen)
	}
	s := binary.BigEndian.Uint64(b)
	if s > 1<<62 {
		return 0, 0, fmt.Errorf("pack size %d out of range", s)
	}
	return int64(s), int(binary.BigEndian.Uint32(b[8:])), nil
}

func appendPackEntry(dst []byte, e pack.Entry) []byte {
	dst = append(dst, byte(e.Type))
	dst = binary.BigEndian.AppendUint32(dst, e.Offset)
	dst = binary.BigEndian.AppendUint32(dst, e.Length)
	return binary.BigEndian.AppendUint32(dst, e.RawLength)
}

// decodePackEntry fills every field of e but its ID, which lives in the key.
func decodePackEntry(b []byte, e *pack.Entry) error {
	if len(b) != packEntryLen {
		return fmt.Errorf("pack entry of %d bytes, want %d", len(b), packEntryLen)
	}
	e.Type = pack.BlobType(b[0])
	if !validType(e.Type) {
		return fmt.Errorf("invalid blob type %d", b[0])
	}
	e.Offset = binary.BigEndian.Uint32(b[1:])
	e.Length = binary.BigEndian.Uint32(b[5:])
	e.RawLength = binary.BigEndian.Uint32(b[9:])
	return nil
}

// appendKey appends prefix and ids to buf and returns the new buf and the
// key, capped so that later appends to buf never write into it.
func appendKey(buf []byte, prefix byte, ids ...id.ID) (newBuf, key []byte) {
	start := len(buf)
	buf = append(buf, prefix)
	for i := range ids {
		buf = append(buf, ids[i][:]...)
	}
	return buf, buf[start:len(buf):len(buf)]
}

// appendValue is appendKey for an encoder.
func appendValue(buf []byte, enc func([]byte) []byte) (newBuf, val []byte) {
	start := len(buf)
	buf = enc(buf)
	return buf, buf[start:len(buf):len(buf)]
}
