package ciphersuite

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"slices"
)

// Framed variants of SignWithLabel, EncryptWithLabel and Seal, for a caller
// whose content is large (a GroupInfo with the ratchet tree, RFC 9420,
// Section 12.4.3): it encodes the content behind room for the label, frames
// it in place with PutLabeledPrefix, and so spares the copy into a new
// SignContent or EncryptContext.

// errFraming: a framed SignContent or EncryptContext is not the encoding of
// the struct for the label.
var errFraming = errors.New("ciphersuite: not a framed struct for the label")

// maxContentLen is the largest content an opaque<V> length written by
// appendLength can describe (RFC 9420, Section 2.1.2).
const maxContentLen = 1<<30 - 1

// LabeledPrefixRoom returns the most bytes PutLabeledPrefix writes in front
// of content for label: opaque label<V> and the length of opaque
// content<V>.
func LabeledPrefixRoom(label string) int { return 4 + len(labelPrefix) + len(label) + 4 }

// PutLabeledPrefix frames buf[at:] as the content of
//
//	struct { opaque label<V>; opaque content<V>; }
//
// (SignContent, RFC 9420, Section 5.1.2; EncryptContext, Section 5.1.3)
// by writing label<V> = "MLS 1.0 " + label and the length of content into
// the bytes right before at, and returns the framed struct, a subslice of
// buf ending where buf does. at must be at least LabeledPrefixRoom(label).
func PutLabeledPrefix(buf []byte, at int, label string) ([]byte, error) {
	n := len(buf) - at
	if at < 0 || n < 0 || n > maxContentLen {
		return nil, fmt.Errorf("%w: content of %d bytes at %d", errFraming, n, at)
	}
	var room [64]byte
	p := appendLength(appendLabel(room[:0], label), n)
	if len(p) > at {
		return nil, fmt.Errorf("%w: %d bytes of room for a prefix of %d", errFraming, at, len(p))
	}
	copy(buf[at-len(p):], p)
	return buf[at-len(p):], nil
}

// checkFramed checks that b is struct { opaque label<V>; opaque
// content<V>; } for label, as PutLabeledPrefix frames it.
func checkFramed(b []byte, label string) error {
	var room [64]byte
	p := appendLabel(room[:0], label)
	if !bytes.HasPrefix(b, p) || len(b) == len(p) {
		return errFraming
	}
	rest := b[len(p):]
	size := 1 << (rest[0] >> 6) // 1, 2 or 4 octets; 8 is not an MLS length
	if size > 4 || len(rest) < size || len(rest)-size > maxContentLen {
		return errFraming
	}
	if !bytes.Equal(appendLength(room[:0], len(rest)-size), rest[:size]) {
		return errFraming
	}
	return nil
}

// SignWithLabelFramed is SignWithLabel(signer, label, content) for a
// signContent that PutLabeledPrefix framed: the encoded SignContent
// {label, content}. A signContent framed otherwise is an error.
func (s *Suite) SignWithLabelFramed(signer crypto.Signer, label string, signContent []byte) ([]byte, error) {
	if err := checkFramed(signContent, label); err != nil {
		return nil, err
	}
	return s.sign(signer, signContent)
}

// EncryptWithLabelFramed is EncryptWithLabel(pub, label, context,
// plaintext) for an encryptContext that PutLabeledPrefix framed: the
// encoded EncryptContext {label, context}. An encryptContext framed
// otherwise is an error.
func (s *Suite) EncryptWithLabelFramed(pub []byte, label string, encryptContext, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	if err := checkFramed(encryptContext, label); err != nil {
		return nil, nil, err
	}
	return s.kem.seal(pub, encryptContext, nil, plaintext)
}

// AppendSeal is Seal that appends the ciphertext to dst, growing it at most
// once, and returns the extended slice.
func (s *Suite) AppendSeal(dst, key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.aeadFor(key, nonce)
	if err != nil {
		return nil, err
	}
	dst = slices.Grow(dst, len(plaintext)+a.Overhead())
	return a.Seal(dst, nonce, plaintext, aad), nil
}
