package message

import (
	"fmt"
	"testing"
)

// syntheticTree returns a full ratchet tree of n leaves (n a power of
// two) built from the sample nodes.
func syntheticTree(n int) RatchetTree {
	t := make(RatchetTree, 2*n-1)
	for i := range t {
		if i%2 == 0 {
			ln := sampleLeafNode(LeafNodeSourceCommit)
			t[i] = &Node{Leaf: &ln}
		} else {
			t[i] = &Node{Parent: &ParentNode{EncryptionKey: b(32, byte(i)), ParentHash: b(32, 1), UnmergedLeaves: []uint32{}}}
		}
	}
	return t
}

func BenchmarkUnmarshalRatchetTree(b *testing.B) {
	for _, n := range []int{16, 1024, 16384} {
		enc := MustMarshal(syntheticTree(n))
		b.Run(fmt.Sprintf("leaves=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := UnmarshalRatchetTree(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMarshalRatchetTree(b *testing.B) {
	for _, n := range []int{16, 1024, 16384} {
		tree := syntheticTree(n)
		b.Run(fmt.Sprintf("leaves=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tree.Marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMLSMessage decodes and re-encodes the messages of the first
// messages.json vector.
func BenchmarkMLSMessage(b *testing.B) {
	v := loadMessages(b)[0]
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"public_commit", v.PublicMessageCommit},
		{"private", v.PrivateMessage},
		{"welcome", v.MLSWelcome},
		{"key_package", v.MLSKeyPackage},
	} {
		b.Run("Unmarshal/"+f.name, func(b *testing.B) {
			b.SetBytes(int64(len(f.b)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := UnmarshalMLSMessage(f.b); err != nil {
					b.Fatal(err)
				}
			}
		})
		m, err := UnmarshalMLSMessage(f.b)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("Marshal/"+f.name, func(b *testing.B) {
			b.SetBytes(int64(len(f.b)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
