package crypto

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strconv"

	"github.com/restic/chunker"
	"golang.org/x/crypto/hkdf"
)

// ChunkerPolynomial derives the content-defined chunking polynomial from the
// organisation secret. It is secret (chunk boundaries must not leak file
// contents to someone who sees only blob sizes) yet shared by every machine
// of the organisation, as cross-machine dedup needs equal boundaries.
func ChunkerPolynomial(orgSecret Key) (chunker.Pol, error) {
	pol, err := chunker.DerivePolynomial(&hkdfStream{secret: orgSecret[:], label: labelPolynomial})
	if err != nil {
		return 0, fmt.Errorf("derive chunker polynomial: %w", err)
	}
	return pol, nil
}

// hkdfBlockSize is what one HKDF-SHA256 expansion can yield (255 * 32).
const hkdfBlockSize = 255 * sha256.Size

// hkdfStream is an endless deterministic byte stream: HKDF-SHA256 under
// label, then, should a reader ever need more than one expansion holds, under
// "label/1", "label/2", and so on. DerivePolynomial needs about 53 tries of 8
// bytes on average; one block covers 1020 tries.
type hkdfStream struct {
	secret []byte
	label  string
	block  int
	r      io.Reader
	left   int
}

func (s *hkdfStream) Read(p []byte) (int, error) {
	if s.left == 0 {
		info := s.label
		if s.block > 0 {
			info += "/" + strconv.Itoa(s.block)
		}
		s.r = hkdf.New(sha256.New, s.secret, nil, []byte(info))
		s.left = hkdfBlockSize
		s.block++
	}
	if len(p) > s.left {
		p = p[:s.left]
	}
	n, err := io.ReadFull(s.r, p)
	s.left -= n
	return n, err
}
