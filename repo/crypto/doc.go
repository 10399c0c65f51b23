// Package crypto holds every cryptographic construction costor uses: the
// deterministic (SIV-style) sealing of chunks (under convergent chunk keys)
// and of a host's trees and snapshot details (under the host data key), the
// secret chunker polynomial, the random-nonce AEAD of pack headers, X25519
// envelopes to several recipients, password wrapping with argon2id, and the
// key file formats built on them.
//
// Invariants:
//   - Every key is 32 bytes; subkeys are derived by HKDF-SHA256 with a
//     distinct, versioned label, so no key is ever used by two constructions.
//   - A nonce is never chosen by a caller: it is either synthetic (HMAC of the
//     plaintext, so a content-derived key that meets two different byte
//     strings still gets two different nonces) or random.
//   - Decoders of bytes from disk reject unknown versions, never panic, and
//     report authentication failures as ErrAuth (ErrWrongPassword,
//     ErrNotRecipient where more precise).
//
// docs/crypto.md describes the design and the byte formats for a reviewer;
// testdata/vectors.json pins them.
package crypto
