package secrettree

import (
	"testing"

	"github.com/mlskit/mls/ciphersuite"
)

// BenchmarkRatchetNext measures one sender key derivation (key, nonce and
// the next ratchet secret).
func BenchmarkRatchetNext(b *testing.B) {
	for _, id := range ciphersuite.All() {
		b.Run(id.String(), func(b *testing.B) {
			tr := newTree(b, suite(b, id), 2, Config{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Next(0, Application); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReceive measures the receiver's in-order path, Get then Consume.
func BenchmarkReceive(b *testing.B) {
	for _, id := range []ciphersuite.ID{1, 5} {
		b.Run(id.String(), func(b *testing.B) {
			tr := newTree(b, suite(b, id), 2, Config{})
			b.ReportAllocs()
			g := uint32(0)
			for b.Loop() {
				if _, err := tr.Get(1, Application, g); err != nil {
					b.Fatal(err)
				}
				if err := tr.Consume(1, Application, g); err != nil {
					b.Fatal(err)
				}
				g++
			}
		})
	}
}

// BenchmarkGetFarAhead measures Get of a generation MaxForwardDistance
// (1000) ahead of an initialised ratchet: 1000 ratchet steps.
func BenchmarkGetFarAhead(b *testing.B) {
	for _, id := range []ciphersuite.ID{1, 5} {
		b.Run(id.String(), func(b *testing.B) {
			tr := newTree(b, suite(b, id), 2, Config{})
			if err := tr.Consume(1, Application, 0); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Get(1, Application, 1001); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFirstUse measures initialising a leaf in a tree of 2^17 leaves
// (17 levels of node derivation plus both ratchets).
func BenchmarkFirstUse(b *testing.B) {
	s := suite(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		tr := newTree(b, s, 1<<17, Config{})
		b.StartTimer()
		if _, err := tr.Next(12345, Application); err != nil {
			b.Fatal(err)
		}
	}
}
