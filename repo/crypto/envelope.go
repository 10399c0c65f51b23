package crypto

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
)

// PrivateKey is an X25519 private key (a scalar, clamped when used).
type PrivateKey [32]byte

// PublicKey is an X25519 public key (a Montgomery u-coordinate).
type PublicKey [32]byte

// ErrNotRecipient reports an envelope with no stanza for the private key
// trying to open it.
var ErrNotRecipient = errors.New("not a recipient of this envelope")

// GenerateKeyPair returns a new X25519 key pair from crypto/rand.
func GenerateKeyPair() (PrivateKey, PublicKey, error) {
	return generateKeyPair(rand.Reader)
}

func generateKeyPair(random io.Reader) (PrivateKey, PublicKey, error) {
	var priv PrivateKey
	if _, err := io.ReadFull(random, priv[:]); err != nil {
		return PrivateKey{}, PublicKey{}, fmt.Errorf("read random private key: %w", err)
	}
	return priv, priv.Public(), nil
}

// Public returns the public key of priv.
func (priv PrivateKey) Public() PublicKey {
	var pub PublicKey
	curve25519.ScalarBaseMult((*[32]byte)(&pub), (*[32]byte)(&priv))
	return pub
}

// String returns the standard base64 form, as written in key files.
func (pub PublicKey) String() string { return base64.StdEncoding.EncodeToString(pub[:]) }

// MarshalText implements encoding.TextMarshaler (standard base64).
func (pub PublicKey) MarshalText() ([]byte, error) { return []byte(pub.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (standard base64).
func (pub *PublicKey) UnmarshalText(b []byte) error {
	var buf [33]byte // room to notice an over-long value
	n, err := base64.StdEncoding.Decode(buf[:], b)
	if len(b) > base64.StdEncoding.EncodedLen(len(buf)) || err != nil || n != len(pub) {
		return fmt.Errorf("invalid public key %q: want %d base64-encoded bytes", b, len(pub))
	}
	copy(pub[:], buf[:n])
	return nil
}

// Envelope format, version 1:
//
//	version  1 byte   = 1
//	count    1 byte   number of stanzas, 1..255
//	stanzas  count × 112 bytes:
//	           recipient public key  32
//	           ephemeral public key  32
//	           wrapped file key      48  AES-256-GCM(wrapKey, zero nonce, fileKey)
//	body     SealRandom(fileKey, plaintext, ad = version || count || stanzas)
//
// wrapKey = HKDF-SHA256(ikm = X25519(ephemeral, recipient),
// salt = ephemeral public || recipient public, info = "costor envelope v1").
// The zero nonce is safe because each wrapKey comes from a fresh ephemeral
// key and seals exactly one message.
const (
	envelopeVersion   = 1
	envelopeMaxStanza = 255
	stanzaSize        = 32 + 32 + KeySize + TagSize
)

// SealTo encrypts plaintext so that the private key of any one of recipients
// opens it. The envelope does not authenticate its sender: anyone who knows
// the public keys can make one.
func SealTo(plaintext []byte, recipients ...PublicKey) ([]byte, error) {
	return sealTo(rand.Reader, plaintext, recipients)
}

// sealTo reads from random, in order: the file key, one ephemeral private key
// per recipient, and the body nonce (the seam the test vectors use).
func sealTo(random io.Reader, plaintext []byte, recipients []PublicKey) ([]byte, error) {
	if len(recipients) == 0 || len(recipients) > envelopeMaxStanza {
		return nil, fmt.Errorf("seal envelope: %d recipients, want 1 to %d", len(recipients), envelopeMaxStanza)
	}
	fileKey, err := randomKey(random)
	if err != nil {
		return nil, fmt.Errorf("seal envelope: %w", err)
	}
	headerLen := 2 + len(recipients)*stanzaSize
	out := make([]byte, headerLen, headerLen+Overhead+len(plaintext))
	out[0], out[1] = envelopeVersion, byte(len(recipients))
	var zeroNonce [NonceSize]byte
	for i, recipient := range recipients {
		ephemeral, ephemeralPublic, err := generateKeyPair(random)
		if err != nil {
			return nil, fmt.Errorf("seal envelope: %w", err)
		}
		wrapKey, err := envelopeWrapKey(&ephemeral, &recipient, &ephemeralPublic, &recipient)
		if err != nil {
			return nil, fmt.Errorf("seal envelope to %s: %w", recipient, err)
		}
		stanza := out[2+i*stanzaSize : 2+(i+1)*stanzaSize]
		copy(stanza[0:32], recipient[:])
		copy(stanza[32:64], ephemeralPublic[:])
		newGCM(&wrapKey).Seal(stanza[64:64], zeroNonce[:], fileKey[:], nil)
	}
	return sealRandom(random, &fileKey, out, plaintext, out[:headerLen])
}

// envelopeWrapKey derives the key that wraps the file key for one stanza from
// the X25519 shared secret of priv and peer (the sender passes the ephemeral
// private key and the recipient, the recipient its private key and the
// ephemeral public key). The salt binds both public keys of the stanza into
// the derivation, as age does.
func envelopeWrapKey(priv *PrivateKey, peer, ephemeralPublic, recipient *PublicKey) (Key, error) {
	shared, err := curve25519.X25519(priv[:], peer[:])
	if err != nil { // a low-order point: the shared secret would be all zeros
		return Key{}, fmt.Errorf("invalid public key: %w", err)
	}
	salt := make([]byte, 0, 64)
	salt = append(append(salt, ephemeralPublic[:]...), recipient[:]...)
	var k Key
	deriveKeys(shared, salt, labelEnvelope, &k)
	return k, nil
}

// OpenWith opens an envelope made by SealTo with priv. It fails with
// ErrNotRecipient when no stanza names priv's public key and with ErrAuth
// when one does but the envelope does not authenticate.
func OpenWith(priv PrivateKey, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 {
		return nil, errors.New("open envelope: truncated header")
	}
	if sealed[0] != envelopeVersion {
		return nil, fmt.Errorf("open envelope: unsupported version %d (this costor reads version %d)", sealed[0], envelopeVersion)
	}
	count := int(sealed[1])
	headerLen := 2 + count*stanzaSize
	if count == 0 || len(sealed) < headerLen+Overhead {
		return nil, fmt.Errorf("open envelope: truncated: %d bytes for %d stanzas", len(sealed), count)
	}
	public := priv.Public()
	var zeroNonce [NonceSize]byte
	matched := false
	for i := range count {
		stanza := sealed[2+i*stanzaSize : 2+(i+1)*stanzaSize]
		if PublicKey(stanza[0:32]) != public {
			continue
		}
		matched = true
		ephemeralPublic := PublicKey(stanza[32:64])
		wrapKey, err := envelopeWrapKey(&priv, &ephemeralPublic, &ephemeralPublic, &public)
		if err != nil {
			continue
		}
		var fileKey Key
		if _, err := newGCM(&wrapKey).Open(fileKey[:0], zeroNonce[:], stanza[64:], nil); err != nil {
			continue
		}
		plaintext, err := openRandom(&fileKey, nil, sealed[headerLen:], sealed[:headerLen])
		if err != nil {
			return nil, fmt.Errorf("open envelope body: %w", err)
		}
		return plaintext, nil
	}
	if matched {
		return nil, fmt.Errorf("open envelope: stanza for %s: %w", public, ErrAuth)
	}
	return nil, fmt.Errorf("open envelope with key %s: %w", public, ErrNotRecipient)
}
