package tree

import (
	"hash"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// Node types of TreeHashInput (RFC 9420, Section 7.8).
const (
	nodeTypeLeaf   = uint8(message.NodeTypeLeaf)
	nodeTypeParent = uint8(message.NodeTypeParent)
)

// leafHash is the tree hash of leaf i (RFC 9420, Section 7.8):
//
//	struct { uint32 leaf_index; optional<LeafNode> leaf_node; } LeafNodeHashInput;
func leafHash(s *ciphersuite.Suite, i LeafIndex, ln *message.LeafNode) []byte {
	var enc []byte
	if ln != nil {
		enc = packLeaf(ln, new([]byte))
	}
	return packedLeafHash(s, i, enc)
}

// packedLeafHash is leafHash for the encoded leaf enc (nil: blank).
func packedLeafHash(s *ciphersuite.Suite, i LeafIndex, enc []byte) []byte {
	return s.Hash(appendLeafInput(make([]byte, 0, 6+len(enc)), i, enc))
}

// appendLeafInput appends LeafNodeHashInput for the encoded leaf enc (nil:
// blank).
func appendLeafInput(b []byte, i LeafIndex, enc []byte) []byte {
	b = append(b, nodeTypeLeaf, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
	if enc == nil {
		return append(b, 0)
	}
	return append(append(b, 1), enc...)
}

// parentHash is the tree hash of a parent node (RFC 9420, Section 7.8):
//
//	struct {
//	    optional<ParentNode> parent_node;
//	    opaque left_hash<V>;
//	    opaque right_hash<V>;
//	} ParentNodeHashInput;
func parentHash(s *ciphersuite.Suite, p *message.ParentNode, left, right []byte) []byte {
	return s.Hash(parentInput(p, left, right))
}

func parentInput(p *message.ParentNode, left, right []byte) []byte {
	e := wire.NewEncoder(make([]byte, 0, 256))
	e.U8(nodeTypeParent)
	e.Optional(p != nil)
	if p != nil {
		p.Encode(e)
	}
	e.Opaque(left)
	e.Opaque(right)
	b, _ := e.Bytes()
	return b
}

// hasher computes tree hashes with one reusable hash state and encoding
// buffer, so that hashing a node allocates nothing: building a tree costs
// one hash per node (RFC 9420, Section 7.8) but memory only for the hashes
// kept. A hasher is not safe for concurrent use.
type hasher struct {
	h   hash.Hash
	buf []byte
	out [64]byte
}

func newHasher(s *ciphersuite.Suite) *hasher {
	return &hasher{h: s.NewHash(), buf: make([]byte, 0, 256)}
}

// digest is a tree hash held by value.
type digest struct {
	b [64]byte
	n uint8
}

func (d *digest) bytes() []byte { return d.b[:d.n] }

func (hs *hasher) sum(in []byte) digest {
	hs.h.Reset()
	hs.h.Write(in)
	var d digest
	d.n = uint8(copy(d.b[:], hs.h.Sum(hs.out[:0])))
	return d
}

// leaf returns the tree hash of leaf i holding the encoded leaf enc (nil:
// blank) without allocating.
func (hs *hasher) leaf(i LeafIndex, enc []byte) digest {
	b := appendLeafInput(hs.buf[:0], i, enc)
	hs.buf = b[:0]
	return hs.sum(b)
}

// parent returns parentHash(p, left, right); for a blank node without
// allocating.
func (hs *hasher) parent(p *message.ParentNode, left, right []byte) digest {
	if p == nil {
		b := append(hs.buf[:0], nodeTypeParent, 0)
		b = wire.AppendVarint(b, uint64(len(left)))
		b = append(b, left...)
		b = wire.AppendVarint(b, uint64(len(right)))
		b = append(b, right...)
		hs.buf = b[:0]
		return hs.sum(b)
	}
	return hs.sum(parentInput(p, left, right))
}

// parentHashOf is the parent hash of P with the given original sibling
// tree hash (RFC 9420, Section 7.9):
//
//	struct {
//	    HPKEPublicKey encryption_key;
//	    opaque parent_hash<V>;
//	    opaque original_sibling_tree_hash<V>;
//	} ParentHashInput;
func parentHashOf(s *ciphersuite.Suite, p *message.ParentNode, siblingHash []byte) []byte {
	e := wire.NewEncoder(make([]byte, 0, 4+len(p.EncryptionKey)+len(p.ParentHash)+len(siblingHash)+12))
	e.Opaque(p.EncryptionKey)
	e.Opaque(p.ParentHash)
	e.Opaque(siblingHash)
	b, _ := e.Bytes()
	return s.Hash(b)
}

// hash returns the tree hash of x, recomputing it (and, recursively, the
// hashes below it) if x changed in the diff.
func (d *Diff) hash(x NodeIndex) []byte {
	if h, ok := d.hashes[x]; ok {
		return h
	}
	if _, dirty := d.dirty[x]; !dirty && x < d.limit {
		return d.base.hashOf(x)
	}
	n := d.at(x)
	var h []byte
	if x.IsLeaf() {
		h = packedLeafHash(d.base.suite, x.Leaf(), n.leaf)
	} else {
		l := d.hash(treemath.Left(x))
		r := d.hash(treemath.Right(x))
		h = parentHash(d.base.suite, n.parent, l, r)
	}
	if d.hashes == nil {
		d.hashes = make(map[NodeIndex][]byte)
	}
	d.hashes[x] = h
	return h
}

// resLen returns the size of the resolution of x (RFC 9420, Section 4.1.1),
// cached like the tree hash.
func (d *Diff) resLen(x NodeIndex) uint32 {
	if v, ok := d.res[x]; ok {
		return v
	}
	if _, dirty := d.dirty[x]; !dirty && x < d.limit {
		return d.base.resOf(x)
	}
	n := d.at(x)
	var v uint32
	switch {
	case n.leaf != nil:
		v = 1
	case n.parent != nil:
		v = 1 + uint32(len(n.parent.UnmergedLeaves))
	case !x.IsLeaf():
		v = d.resLen(treemath.Left(x)) + d.resLen(treemath.Right(x))
	}
	if d.res == nil {
		d.res = make(map[NodeIndex]uint32)
	}
	d.res[x] = v
	return v
}

// TreeHash returns the tree hash of the root (RFC 9420, Section 7.8).
// Only the nodes that changed in the diff and their ancestors are hashed
// again.
func (d *Diff) TreeHash() []byte { return clone(d.hash(treemath.Root(d.nLeaves))) }

// NodeHash returns the tree hash of node x, which must be in the tree.
func (d *Diff) NodeHash(x NodeIndex) []byte {
	if !d.inTree(x) {
		return nil
	}
	return clone(d.hash(x))
}

// originalSiblingHash returns the tree hash of s with the leaves in
// excluded blanked and removed from every unmerged_leaves list (the
// original_sibling_tree_hash of RFC 9420, Section 7.9). excluded lists leaf
// indices; those outside the subtree of s are ignored. Subtrees without an
// excluded leaf use the cached hash, so the cost is O(len(excluded) * log N).
func (d *Diff) originalSiblingHash(s NodeIndex, excluded []uint32) []byte {
	first, count := leafRange(s)
	var in []uint32
	for _, u := range excluded {
		if u >= first && u-first < count {
			in = append(in, u)
		}
	}
	return d.hashWithout(s, in)
}

func (d *Diff) hashWithout(x NodeIndex, excl []uint32) []byte {
	if len(excl) == 0 {
		return d.hash(x)
	}
	if x.IsLeaf() {
		return leafHash(d.base.suite, x.Leaf(), nil)
	}
	p := d.at(x).parent
	if p != nil {
		kept := make([]uint32, 0, len(p.UnmergedLeaves))
		for _, u := range p.UnmergedLeaves {
			if !contains(excl, u) {
				kept = append(kept, u)
			}
		}
		p = &message.ParentNode{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash, UnmergedLeaves: kept}
	}
	first, count := leafRange(x)
	mid := first + count/2
	var left, right []uint32
	for _, u := range excl {
		if u < mid {
			left = append(left, u)
		} else {
			right = append(right, u)
		}
	}
	return parentHash(d.base.suite, p, d.hashWithout(treemath.Left(x), left), d.hashWithout(treemath.Right(x), right))
}
