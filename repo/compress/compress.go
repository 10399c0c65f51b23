package compress

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/costor/costor/internal/cpus"
)

// Flag values; part of the on-disk format.
const (
	flagRaw  byte = 0
	flagZstd byte = 1
)

// ErrCorrupt is returned (wrapped) for undecodable framed data.
var ErrCorrupt = errors.New("corrupt compressed data")

// The level depends on the input's size, so the same bytes always compress
// to the same frame (a chunk's blob ID is the hash of its sealed, compressed
// form, so dedup needs that). On this corpus, one core:
//   - source-like text in 1 MiB pieces: SpeedDefault (zstd level 3,
//     restic's "auto") 151 MB/s for 3.22x, SpeedFastest 186 MB/s for 2.98x;
//   - small files (64 B-16 KiB): SpeedDefault 137 MB/s for 1.66x,
//     SpeedFastest 186 MB/s for 1.62x.
//
// So large inputs get level 3 (8 % smaller for 19 % more time) and small
// ones level 1 (2 % smaller was not worth 36 % more). Incompressible input
// costs the same at either level.
const (
	smallInput = 64 << 10 // below it: SpeedFastest
	smallLevel = zstd.SpeedFastest
	largeLevel = zstd.SpeedDefault
)

const windowSize = 1 << 20

func levelFor(n int) zstd.EncoderLevel {
	if n < smallInput {
		return smallLevel
	}
	return largeLevel
}

var (
	smallEncoder = lazyEncoder(smallLevel)
	largeEncoder = lazyEncoder(largeLevel)
	decoderOnce  sync.Once
	decoder      *zstd.Decoder
)

// The shared encoders and decoder are safe for concurrent EncodeAll/DecodeAll.
// An encoder holds one encoding state per CPU: EncodeAll takes a state for
// the whole call, so with fewer states than CPUs the backup's workers would
// queue behind one another for compression (with one, compression ran on a
// single core however many sealers there were). A state is a few hundred
// KiB, so memory stays flat however many workers compress at once. The
// number of states does not change the output: each EncodeAll is encoded
// by one state from scratch.
func lazyEncoder(level zstd.EncoderLevel) func() *zstd.Encoder {
	return sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(level),
			zstd.WithEncoderConcurrency(cpus.N),
			// A 1 MiB window (the default is 8 MiB) keeps each state's
			// history at a few MiB instead of 16: chunks average 1 MiB,
			// so matches further back are rare.
			zstd.WithWindowSize(windowSize),
			zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false)) // the AEAD tag already authenticates every byte
		if err != nil {
			panic(fmt.Sprintf("zstd encoder with constant options: %v", err))
		}
		return e
	})
}

func enc(n int) *zstd.Encoder {
	if n < smallInput {
		return smallEncoder()
	}
	return largeEncoder()
}

func dec() *zstd.Decoder {
	decoderOnce.Do(func() {
		var err error
		decoder, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			panic(fmt.Sprintf("zstd decoder with constant options: %v", err))
		}
	})
	return decoder
}

// Encode appends the framed form of src to dst. It stores src raw when zstd
// would not save at least 1/32 of it: decompressing costs time on every read,
// so a marginal saving isn't worth it.
func Encode(dst, src []byte) []byte { return encode(enc(len(src)), dst, src) }

// EncodeTree is Encode for an encoded directory tree: level 3 whatever its
// size. Trees are a small share of a backup's bytes (a 50-entry directory
// is about 6 KiB), so the slower level costs little time, and they are
// rewritten whenever a file in them changes: at level 3 the blobs a backup
// of the benchmark corpus added after touching 1 % of its files came to
// 7.17 MB instead of 7.52 MB.
func EncodeTree(dst, src []byte) []byte { return encode(largeEncoder(), dst, src) }

func encode(e *zstd.Encoder, dst, src []byte) []byte {
	start := len(dst)
	dst = append(dst, flagZstd)
	dst = e.EncodeAll(src, dst)
	if len(dst)-start-1 < len(src)-len(src)/32 {
		return dst
	}
	dst = append(dst[:start], flagRaw)
	return append(dst, src...)
}

// DecodeOwned is Decode for a src the caller gives up: when dst is empty
// and has no room for it, a stored (incompressible) frame's bytes are
// returned in place, sharing src's memory, instead of copied.
func DecodeOwned(dst, src []byte, maxLen int) ([]byte, error) {
	if len(src) > 0 && src[0] == flagRaw && len(dst) == 0 && cap(dst) < len(src)-1 {
		if len(src)-1 > maxLen {
			return nil, fmt.Errorf("%w: raw length %d exceeds %d", ErrCorrupt, len(src)-1, maxLen)
		}
		return src[1:], nil
	}
	return Decode(dst, src, maxLen)
}

// Decode appends the plaintext of framed src to dst. maxLen bounds the
// decoded size (the caller knows the plaintext length from the index or the
// tree); anything longer is corrupt.
func Decode(dst, src []byte, maxLen int) ([]byte, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	switch src[0] {
	case flagRaw:
		if len(src)-1 > maxLen {
			return nil, fmt.Errorf("%w: raw length %d exceeds %d", ErrCorrupt, len(src)-1, maxLen)
		}
		return append(dst, src[1:]...), nil
	case flagZstd:
		start := len(dst)
		// Reserve what the frame will likely need, not the whole limit: a
		// caller that knows no exact length passes a large one (1 GiB for
		// trees), and reserving it would cost that much per call.
		want := maxLen
		if guess := 16*len(src) + 64<<10; guess < want {
			want = guess
		}
		if cap(dst)-start < want {
			grown := make([]byte, start, start+want)
			copy(grown, dst)
			dst = grown
		}
		out, err := dec().DecodeAll(src[1:], dst[:start])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if len(out)-start > maxLen {
			return nil, fmt.Errorf("%w: decoded length exceeds %d", ErrCorrupt, maxLen)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown flag %d", ErrCorrupt, src[0])
	}
}
