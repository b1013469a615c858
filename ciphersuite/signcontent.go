package ciphersuite

import (
	"bytes"
	"fmt"
)

// AppendSignContentPrefix appends the start of SignContent (RFC 9420,
// Section 5.1.2) for a content of n bytes: opaque label<V> and the length
// header of content<V>. A caller that appends the n bytes of content after
// it holds an encoded SignContent for VerifySignContent, and can lay out
// other structures that share the content around it (the membership tag
// of a PublicMessage is a MAC over FramedContentTBS followed by the auth
// data, Section 6.2) without copying the content again.
func AppendSignContentPrefix(b []byte, label string, n int) []byte {
	return appendLength(appendLabel(b, label), n)
}

// VerifySignContent is VerifyWithLabel over an already encoded SignContent
// (AppendSignContentPrefix then the content). It fails with
// ErrInvalidSignature unless signContent is a SignContent for label whose
// content<V> runs to its end.
func (s *Suite) VerifySignContent(pub []byte, label string, signContent, signature []byte) error {
	var a [64]byte
	p := appendLabel(a[:0], label)
	if !bytes.HasPrefix(signContent, p) {
		return fmt.Errorf("%w: SignContent without the label %q", ErrInvalidSignature, label)
	}
	rest := signContent[len(p):]
	if !validLength(rest) {
		return fmt.Errorf("%w: SignContent whose content length does not match its size", ErrInvalidSignature)
	}
	return s.verify(pub, signContent, signature)
}

// validLength reports whether b is a minimal variable-length integer
// (RFC 9420, Section 2.1.2) followed by exactly that many bytes.
func validLength(b []byte) bool {
	if len(b) == 0 || b[0]>>6 == 3 {
		return false
	}
	n := len(b) - 1<<(b[0]>>6)
	var a [4]byte
	return n >= 0 && bytes.HasPrefix(b, appendLength(a[:0], n))
}
