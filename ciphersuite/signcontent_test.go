package ciphersuite_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// TestAppendSignContentPrefix: the prefix followed by the content is
// SignContent (RFC 9420, Section 5.1.2) for every length header size.
func TestAppendSignContentPrefix(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 16383, 16384, 1 << 20} {
		content := bytes.Repeat([]byte{0x5a}, n)
		got := append(ciphersuite.AppendSignContentPrefix([]byte("keep"), "FramedContentTBS", n), content...)
		want := append([]byte("keep"), signContent("FramedContentTBS", content)...)
		if !bytes.Equal(got, want) {
			t.Fatalf("content of %d bytes: prefix %x, want %x", n, got[:len(got)-n], want[:len(want)-n])
		}
	}
}

// TestVerifySignContent: VerifySignContent accepts what VerifyWithLabel
// accepts and refuses anything that is not a SignContent with the label
// and a length header that matches its size.
func TestVerifySignContent(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *ciphersuite.Suite, _ suiteInfo) {
		k := newSigner(t, s, "sign")
		pub, err := s.SignaturePublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 100, 20000} {
			content := bytes.Repeat([]byte{byte(n)}, n)
			sig, err := s.SignWithLabel(k, "FramedContentTBS", content)
			if err != nil {
				t.Fatal(err)
			}
			sc := signContent("FramedContentTBS", content)
			if err := s.VerifySignContent(pub, "FramedContentTBS", sc, sig); err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			other := signContent("FramedContentTBs", content)
			label := opaque([]byte("MLS 1.0 FramedContentTBS"))
			bad := map[string][]byte{
				"other label":   other,
				"extra byte":    append(slices.Clone(sc), 0),
				"truncated":     sc[:len(sc)-1],
				"label only":    label,
				"empty":         nil,
				"reserved bits": cat(label, []byte{0xff}),
			}
			if n < 1<<14 {
				// Not minimal (Section 2.1.2).
				bad["long header"] = cat(label, []byte{0x80, 0, byte(n >> 8), byte(n)}, content)
			}
			for name, b := range bad {
				if err := s.VerifySignContent(pub, "FramedContentTBS", b, sig); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
					t.Errorf("%d bytes, %s: got %v, want ErrInvalidSignature", n, name, err)
				}
			}
			if err := s.VerifySignContent(pub, "FramedContentTBs", other, sig); !errors.Is(err, ciphersuite.ErrInvalidSignature) {
				t.Errorf("%d bytes, signed under another label: got %v", n, err)
			}
		}
	})
}
