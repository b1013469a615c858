package ciphersuite_test

import (
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// forEachSuiteB runs f as a sub-benchmark named after each suite, the
// post-quantum ones included.
func forEachSuiteB(b *testing.B, f func(b *testing.B, s *ciphersuite.Suite)) {
	for _, id := range append(ciphersuite.All(), ciphersuite.PostQuantum()...) {
		s, err := ciphersuite.Lookup(id)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.String(), func(b *testing.B) { f(b, s) })
	}
}

func BenchmarkExpandWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *ciphersuite.Suite) {
		secret := make([]byte, s.HashSize())
		ctx := make([]byte, 32)
		b.ReportAllocs()
		for b.Loop() {
			s.ExpandWithLabel(secret, "application", ctx, s.HashSize())
		}
	})
}

// A 1 KiB content, about the size of a LeafNodeTBS.
var benchContent = make([]byte, 1024)

func BenchmarkSignWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *ciphersuite.Suite) {
		k := newSigner(b, s, "bench")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.SignWithLabel(k, "LeafNodeTBS", benchContent); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *ciphersuite.Suite) {
		k := newSigner(b, s, "bench")
		pub, _ := s.SignaturePublicKey(k)
		sig, err := s.SignWithLabel(k, "LeafNodeTBS", benchContent)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.VerifyWithLabel(pub, "LeafNodeTBS", benchContent, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Path secrets are Nh bytes.
func BenchmarkEncryptWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *ciphersuite.Suite) {
		_, pub := newKeyPair(b, s, "bench")
		pt := make([]byte, s.HashSize())
		ctx := make([]byte, 100)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, pt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecryptWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *ciphersuite.Suite) {
		priv, pub := newKeyPair(b, s, "bench")
		ctx := make([]byte, 100)
		kem, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, make([]byte, s.HashSize()))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kem, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}
