package message

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/mlskit/mls/internal/wire"
)

// checkSameSparse fails unless sparse holds exactly the non-blank nodes of
// dense, at the same indexes, with the same encodings.
func checkSameSparse(t *testing.T, dense RatchetTree, sparse *SparseRatchetTree) {
	t.Helper()
	if sparse.Width != uint32(len(dense)) {
		t.Fatalf("sparse width %d, dense %d entries", sparse.Width, len(dense))
	}
	k := 0
	for i, n := range dense {
		if n == nil {
			continue
		}
		if k >= len(sparse.Nodes) || sparse.Nodes[k].Index != uint32(i) {
			t.Fatalf("dense node %d missing from the sparse tree", i)
		}
		if !bytes.Equal(MustMarshal(n), MustMarshal(sparse.Nodes[k].Node)) {
			t.Fatalf("node %d decodes differently", i)
		}
		k++
	}
	if k != len(sparse.Nodes) {
		t.Fatalf("sparse tree has %d nodes, dense %d", len(sparse.Nodes), k)
	}
}

// TestSparseRatchetTree: the sparse decoder (RFC 9420, Section 12.4.3.3)
// finds the nodes the dense one does, stops at its node limit, and rejects
// every truncation and trailing data as the dense one does.
func TestSparseRatchetTree(t *testing.T) {
	rt := sampleRatchetTree()
	raw := MustMarshal(rt)
	sp, err := UnmarshalSparseRatchetTree(raw, uint32(len(rt)))
	if err != nil {
		t.Fatal(err)
	}
	checkSameSparse(t, rt, sp)
	if sp.Width != 5 || len(sp.Nodes) != 3 || sp.Nodes[1].Index != 1 || sp.Nodes[2].Index != 4 {
		t.Fatalf("width %d, %d nodes", sp.Width, len(sp.Nodes))
	}
	if _, err := UnmarshalSparseRatchetTree(raw, uint32(len(rt)-1)); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("one node over the limit: %v, want ErrTooLarge", err)
	}
	for n := range len(raw) {
		if _, err := UnmarshalSparseRatchetTree(raw[:n], 100); err == nil {
			t.Fatalf("prefix of %d of %d bytes accepted", n, len(raw))
		}
	}
	if _, err := UnmarshalSparseRatchetTree(append(raw[:len(raw):len(raw)], 0), 100); !errors.Is(err, wire.ErrTrailingData) {
		t.Fatalf("trailing byte: %v, want ErrTrailingData", err)
	}
	// A length header claiming more than there is fails before reading.
	if _, err := UnmarshalSparseRatchetTree(append(wire.AppendVarint(nil, 1<<27), raw[1:]...), 100); !errors.Is(err, wire.ErrTruncated) {
		t.Fatalf("long header: %v, want ErrTruncated", err)
	}
	// 2^20 blank entries: no allocation per blank node.
	blank := append(wire.AppendVarint(nil, 1<<20), make([]byte, 1<<20)...)
	allocs := testing.AllocsPerRun(3, func() {
		sp, err := UnmarshalSparseRatchetTree(blank, 1<<21)
		if err != nil || sp.Width != 1<<20 || len(sp.Nodes) != 0 {
			t.Fatalf("blank tree: %v", err)
		}
	})
	if allocs > 10 {
		t.Errorf("decoding 2^20 blank nodes made %v allocations", allocs)
	}
}

// TestLeafNodeParentHash: reading the source and parent_hash of an
// encoded LeafNode in place agrees with decoding it, for every source and
// credential type, and a truncated encoding is not ok.
func TestLeafNodeParentHash(t *testing.T) {
	for _, ln := range sampleLeafVariants() {
		src, cred := ln.Source, ln.Credential
		enc := MustMarshal(&ln)
		gotSrc, ph, ok := LeafNodeParentHash(enc)
		if !ok || gotSrc != src || !bytes.Equal(ph, ln.ParentHash) || (src == LeafNodeSourceCommit) != (ph != nil) {
			t.Fatalf("source %d, credential %d: got %d, %x, %v; want %x", src, cred.Type, gotSrc, ph, ok, ln.ParentHash)
		}
		if _, _, ok := LeafNodeParentHash(enc[:len(enc)/3]); ok {
			t.Fatalf("source %d, credential %d: truncated encoding read as ok", src, cred.Type)
		}
	}
}

// sampleLeafVariants returns a sample leaf for each leaf_node_source and
// each kind of credential (basic, X.509, unknown).
func sampleLeafVariants() []LeafNode {
	var out []LeafNode
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		for _, cred := range []Credential{
			{Type: CredentialBasic, Identity: []byte("alice")},
			{Type: CredentialX509, Certificates: [][]byte{{1, 2}, {3}}},
			{Type: 0x0a0a, Data: []byte{7, 7, 7}},
		} {
			ln := sampleLeafNode(src)
			ln.Credential = cred
			out = append(out, ln)
		}
	}
	return out
}

// TestDecodeNodeKeepingLeaf: a leaf decodes as Node.Decode decodes it,
// with its byte fields in the one copy of its encoding returned; a parent
// decodes as usual; a damaged node fails with the error Node.Decode gives,
// at the same offset.
func TestDecodeNodeKeepingLeaf(t *testing.T) {
	var nodes []*Node
	for _, ln := range sampleLeafVariants() {
		nodes = append(nodes, &Node{Leaf: &ln})
	}
	nodes = append(nodes, &Node{Parent: &ParentNode{EncryptionKey: b(32, 5), ParentHash: []byte{}, UnmergedLeaves: []uint32{1, 3}}})
	for i, n := range nodes {
		in := append(MustMarshal(n), 0xee) // a byte after the node stays unread
		d := wire.NewDecoder(in)
		got, enc := DecodeNodeKeepingLeaf(d)
		if d.Err() != nil || d.Len() != 1 {
			t.Fatalf("node %d: %v, %d bytes left", i, d.Err(), d.Len())
		}
		if !bytes.Equal(MustMarshal(got), in[:len(in)-1]) {
			t.Fatalf("node %d: decodes differently", i)
		}
		if n.Leaf == nil {
			if enc != nil {
				t.Fatalf("node %d: a parent returned an encoding", i)
			}
			continue
		}
		if !bytes.Equal(enc, MustMarshal(n.Leaf)) || &got.Leaf.Signature[0] != &enc[len(enc)-len(got.Leaf.Signature)] || &in[len(in)-2] == &enc[len(enc)-1] {
			t.Fatalf("node %d: the leaf's bytes are not in one copy of its encoding", i)
		}
		for cut := 1; cut < len(in)-1; cut += 7 {
			bad := slices.Clone(in[:cut])
			d1, d2 := wire.NewDecoder(bad), wire.NewDecoder(bad)
			DecodeNodeKeepingLeaf(d1)
			new(Node).Decode(d2)
			if (d1.Err() == nil) != (d2.Err() == nil) || (d1.Err() != nil && d1.Err().Error() != d2.Err().Error()) {
				t.Fatalf("node %d cut at %d: %v, Node.Decode: %v", i, cut, d1.Err(), d2.Err())
			}
		}
	}
	// A duplicate extension passes the scan but not decoding: the error
	// is Node.Decode's, offset included.
	ln := sampleLeafNode(LeafNodeSourceUpdate)
	ln.Extensions = append(ln.Extensions, ln.Extensions[0])
	in := MustMarshal(&Node{Leaf: &ln})
	d1, d2 := wire.NewDecoder(in), wire.NewDecoder(in)
	DecodeNodeKeepingLeaf(d1)
	new(Node).Decode(d2)
	if d1.Err() == nil || d2.Err() == nil || d1.Err().Error() != d2.Err().Error() {
		t.Fatalf("duplicate extension: %v, Node.Decode: %v", d1.Err(), d2.Err())
	}
}
