package tree

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// LeafIndex and NodeIndex are the tree math index types (RFC 9420,
// Appendix C).
type (
	LeafIndex = treemath.LeafIndex
	NodeIndex = treemath.NodeIndex
)

// MaxLeaves caps the number of leaves of a tree (a power of two). It bounds
// what a received ratchet_tree extension can make this package allocate.
const MaxLeaves = 1 << 22

// node is one node of the tree as a Diff takes and gives it: a leaf, a
// parent, or blank (both nil). enc is the encoding of leaf, set once the
// diff holds the node. The values pointed to are never modified once in a
// tree.
type node struct {
	leaf   *message.LeafNode
	parent *message.ParentNode
	enc    []byte
}

func (n node) blank() bool { return n.leaf == nil && n.parent == nil }

// packed is a node as a Tree keeps it: a parent as is, a leaf as its
// encoding (RFC 9420, Section 7.2), decoded when asked for. A decoded
// LeafNode takes about three times the memory of its encoding, which is also
// what the tree hash (Section 7.8) and the ratchet_tree extension (Section
// 12.4.3.3) are made of; its keys are read from the encoding in place.
type packed struct {
	leaf   []byte
	parent *message.ParentNode
}

func (p packed) blank() bool { return p.leaf == nil && p.parent == nil }

// encryptionKey returns the node's HPKE public key, nil if blank.
func (p packed) encryptionKey() []byte {
	switch {
	case p.leaf != nil:
		k, _ := leafKeys(p.leaf)
		return k
	case p.parent != nil:
		return p.parent.EncryptionKey
	}
	return nil
}

// signatureKey returns the leaf's signature key, nil if not a leaf.
func (p packed) signatureKey() []byte {
	if p.leaf == nil {
		return nil
	}
	_, k := leafKeys(p.leaf)
	return k
}

// decode returns the node with its leaf decoded (a new LeafNode each time).
func (p packed) decode() node {
	if p.leaf == nil {
		return node{parent: p.parent}
	}
	return node{leaf: unpackLeaf(p.leaf), enc: p.leaf}
}

// packLeaf returns the encoding of ln in an allocation of its own size,
// encoding it in *scratch.
func packLeaf(ln *message.LeafNode, scratch *[]byte) []byte { return clone(encodeLeaf(ln, scratch)) }

// encodeLeaf returns the encoding of ln, written over *scratch.
func encodeLeaf(ln *message.LeafNode, scratch *[]byte) []byte {
	e := wire.NewEncoder((*scratch)[:0])
	ln.Encode(e)
	// The encoder fails only for a vector over 2^30 bytes, which no leaf
	// can hold (decoding caps vectors far lower).
	b, _ := e.Bytes()
	*scratch = b
	return b
}

// unpackLeaf decodes a leaf packed by packLeaf. Its byte fields share the
// memory of b, which the tree never modifies. A leaf that Encode cannot
// write faithfully (an unknown leaf_node_source) decodes as far as it can:
// such a leaf fails validation before it can be in a group's tree.
func unpackLeaf(b []byte) *message.LeafNode {
	ln := new(message.LeafNode)
	ln.Decode(wire.NewAliasingDecoder(b))
	return ln
}

// leafKeys returns the encryption_key and signature_key of an encoded
// LeafNode, its first two fields (RFC 9420, Section 7.2), in place.
func leafKeys(b []byte) (enc, sig []byte) {
	enc, rest := opaquePrefix(b)
	sig, _ = opaquePrefix(rest)
	return enc, sig
}

// opaquePrefix splits an opaque<V> off the front of b, which the encoder
// wrote (a malformed header gives an empty value).
func opaquePrefix(b []byte) (v, rest []byte) {
	n, k, err := wire.ParseVarint(b)
	if err != nil || uint64(len(b)-k) < n {
		return nil, nil
	}
	end := k + int(n)
	return b[k:end:end], b[end:]
}

// Tree is a ratchet tree (RFC 9420, Section 7) whose leaf count is a power
// of two, with its tree hashes (Section 7.8), resolution sizes (Section
// 4.1.1) and key indexes cached. Change it through a Diff. Reading a Tree
// from several goroutines is safe as long as no Diff is merged into it at
// the same time.
//
// The tree is sparse, so that its memory follows the non-blank nodes and
// not the width: a tree padded with blank nodes costs little more than the
// bytes of its encoding. idx maps every non-blank node and, below level
// hiLevel, every node whose subtree is not all blank, to its entry in the
// arena: nodes, hashes (HashSize bytes an entry) and res, indexed alike.
// The entries of the nodes dropped are reused (spare). The nodes at level
// hiLevel and above (one in 2^hiLevel) have their hash and resolution size
// in the dense arrays hi and hiRes instead. The hash of a node found in
// neither is that of an all-blank subtree of fewer than 2^(hiLevel+1)
// nodes, recomputed when asked for.
type Tree struct {
	suite   *ciphersuite.Suite
	nLeaves uint32
	idx     map[NodeIndex]int32
	nodes   []packed
	hashes  []byte
	res     []uint32
	spare   []int32  // arena entries not in use
	hi      []byte   // tree hashes of the nodes at level >= hiLevel, HashSize each
	hiRes   []uint32 // resolution sizes of those nodes
	enc     keyMap[NodeIndex]
	sig     keyMap[LeafIndex]
	caps    capIndex
	free    LeafIndex // no leaf left of free is blank
	gen     uint64    // incremented by every merge
	dup     *Error    // first duplicate key found when the tree was built
	ecOnce  sync.Once
	ec      *encCache // the nodes' encodings, built on the first export
}

// hiLevel is the lowest level whose nodes' hashes are always cached: blank
// subtrees below it are rehashed on demand, at most 2^(hiLevel+1)-1 hashes.
const hiLevel = 4

const hiMask = 1<<hiLevel - 1

// isHi reports whether x is at level hiLevel or above (its hiLevel low
// bits are all ones).
func isHi(x NodeIndex) bool { return x&hiMask == hiMask }

// width returns the number of nodes.
func (t *Tree) width() NodeIndex { return NodeIndex(treemath.NodeWidth(t.nLeaves)) }

// at returns node x as kept (blank if x is outside the tree).
func (t *Tree) at(x NodeIndex) packed {
	if p, ok := t.idx[x]; ok {
		return t.nodes[p]
	}
	return packed{}
}

// node returns node x with its leaf decoded.
func (t *Tree) node(x NodeIndex) node { return t.at(x).decode() }

// hashOf returns the tree hash of x, which must be in the tree. The result
// is shared and must not be modified. It writes nothing, so concurrent
// readers are safe.
func (t *Tree) hashOf(x NodeIndex) []byte {
	hs := t.suite.HashSize()
	if isHi(x) {
		i := int(x>>hiLevel) * hs
		return t.hi[i : i+hs : i+hs]
	}
	if p, ok := t.idx[x]; ok {
		i := int(p) * hs
		return t.hashes[i : i+hs : i+hs]
	}
	// An all-blank subtree below hiLevel.
	if x.IsLeaf() {
		return leafHash(t.suite, x.Leaf(), nil)
	}
	return parentHash(t.suite, nil, t.hashOf(treemath.Left(x)), t.hashOf(treemath.Right(x)))
}

// resOf returns the resolution size of x.
func (t *Tree) resOf(x NodeIndex) uint32 {
	if isHi(x) {
		return t.hiRes[x>>hiLevel]
	}
	if p, ok := t.idx[x]; ok {
		return t.res[p]
	}
	return 0
}

// entry returns the arena entry of x, taking one if x has none.
func (t *Tree) entry(x NodeIndex) int32 {
	if p, ok := t.idx[x]; ok {
		return p
	}
	var p int32
	if k := len(t.spare); k > 0 {
		p, t.spare = t.spare[k-1], t.spare[:k-1]
	} else {
		p = int32(len(t.nodes))
		if len(t.nodes) == cap(t.nodes) {
			// Grown by an eighth rather than append's quarter: the arena
			// of a loaded tree is sized to its nodes, and the first
			// member added should not cost a quarter of it.
			more := len(t.nodes)/8 + 64
			t.nodes = growBy(t.nodes, more)
			t.hashes = growBy(t.hashes, more*t.suite.HashSize())
			t.res = growBy(t.res, more)
		}
		t.nodes = append(t.nodes, packed{})
		t.hashes = append(t.hashes, make([]byte, t.suite.HashSize())...)
		t.res = append(t.res, 0)
	}
	t.idx[x] = p
	return p
}

// growBy returns s with room for n more elements, and no more.
func growBy[T any](s []T, n int) []T {
	o := make([]T, len(s), len(s)+n)
	copy(o, s)
	return o
}

// drop releases the arena entry of x, if any.
func (t *Tree) drop(x NodeIndex) {
	if p, ok := t.idx[x]; ok {
		delete(t.idx, x)
		t.nodes[p] = packed{}
		t.spare = append(t.spare, p)
	}
}

// store records node x with its tree hash and resolution size, dropping
// what the sparse representation does not keep.
func (t *Tree) store(x NodeIndex, n packed, h []byte, res uint32) {
	hs := t.suite.HashSize()
	if isHi(x) {
		copy(t.hi[int(x>>hiLevel)*hs:], h)
		t.hiRes[x>>hiLevel] = res
		if n.blank() {
			t.drop(x)
		} else {
			t.nodes[t.entry(x)] = n
		}
		return
	}
	if res == 0 && n.blank() {
		t.drop(x)
		return
	}
	p := t.entry(x)
	t.nodes[p] = n
	copy(t.hashes[int(p)*hs:int(p+1)*hs], h)
	t.res[p] = res
}

// resizeHi sizes the dense arrays for a tree of w nodes, keeping the
// entries below w.
func (t *Tree) resizeHi(w NodeIndex) {
	n := 0
	if w > 0 {
		n = int((w-1)>>hiLevel) + 1
	}
	hs := t.suite.HashSize()
	t.hi = resize(t.hi, min(len(t.hi), n*hs), n*hs)
	t.hiRes = resize(t.hiRes, min(len(t.hiRes), n), n)
}

// New returns a tree with one leaf holding leaf: the tree of a new group
// (RFC 9420, Section 11).
func New(suite *ciphersuite.Suite, leaf *message.LeafNode) *Tree {
	t := &Tree{suite: suite, nLeaves: 1, idx: map[NodeIndex]int32{}}
	var scratch []byte
	t.nodes[t.entry(0)] = packed{leaf: packLeaf(leaf, &scratch)}
	t.caps.add(leaf)
	t.index([]NodeIndex{0})
	t.rehashAll()
	return t
}

// FromRatchetTree builds a tree from the ratchet_tree extension form
// (RFC 9420, Section 12.4.3.3); see FromSparse.
func FromRatchetTree(suite *ciphersuite.Suite, rt message.RatchetTree) (*Tree, error) {
	return FromSparse(suite, rt.Sparse(), MaxLeaves)
}

// LeavesFor returns the leaf count of the smallest full tree holding
// width nodes: 2^d leaves with 2^(d+1)-1 >= width.
func LeavesFor(width uint32) uint64 {
	n := uint64(1)
	for 2*n-1 < uint64(width) {
		n *= 2
	}
	return n
}

// FromSparse builds a tree from the non-blank nodes of a ratchet_tree
// (RFC 9420, Section 12.4.3.3): the last node must be non-blank, leaves sit
// at even and parents at odd positions, and the tree is extended with blank
// nodes to the next full size, which may have at most maxLeaves leaves (and
// never more than MaxLeaves). The shape and the leaf count are checked
// before anything is hashed or allocated beyond the non-blank nodes; call
// Validate before trusting the tree. The tree keeps the parent nodes of
// rt and the leaves' LeafEncoding (or encodes the leaf), which the caller
// must not modify afterwards.
func FromSparse(suite *ciphersuite.Suite, rt *message.SparseRatchetTree, maxLeaves uint32) (*Tree, error) {
	if rt.Width == 0 {
		return nil, fail(ErrMalformedTree, "12.4.3.3", noNode, "no nodes")
	}
	if len(rt.Nodes) == 0 || rt.Nodes[len(rt.Nodes)-1].Index != rt.Width-1 {
		return nil, fail(ErrMalformedTree, "12.4.3.3", noNode, "last node is blank")
	}
	maxLeaves = min(maxLeaves, MaxLeaves)
	n := LeavesFor(rt.Width)
	if n > uint64(maxLeaves) {
		return nil, fail(ErrTooManyLeaves, "12.4.3.3", noNode, "%d nodes make a tree of %d leaves, more than the limit of %d", rt.Width, n, maxLeaves)
	}
	// Every non-blank node takes an arena entry, in order; the blank
	// parents above non-blank nodes take more as the tree is hashed.
	k := len(rt.Nodes)
	t := &Tree{suite: suite, nLeaves: uint32(n), idx: make(map[NodeIndex]int32, k),
		nodes: make([]packed, 0, k), hashes: make([]byte, 0, k*suite.HashSize()), res: make([]uint32, 0, k)}
	order := make([]NodeIndex, 0, k)
	var scratch []byte
	prev := int64(-1)
	for _, in := range rt.Nodes {
		rn := in.Node
		x := NodeIndex(in.Index)
		if int64(x) <= prev || x >= NodeIndex(rt.Width) {
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "node out of order")
		}
		prev = int64(x)
		switch {
		case rn == nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "blank node listed as non-blank")
		case rn.Leaf != nil && rn.Parent != nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "node is both leaf and parent")
		case rn.Leaf != nil && x.IsLeaf():
			enc := in.LeafEncoding
			if enc == nil {
				enc = packLeaf(rn.Leaf, &scratch)
			}
			t.nodes[t.entry(x)] = packed{leaf: enc}
			t.caps.add(rn.Leaf)
		case rn.Parent != nil && !x.IsLeaf():
			t.nodes[t.entry(x)] = packed{parent: rn.Parent}
		case rn.Leaf != nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "leaf node at a parent position")
		case rn.Parent != nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "parent node at a leaf position")
		default:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "node is neither leaf nor parent")
		}
		order = append(order, x)
	}
	t.index(order)
	t.rehashAll()
	return t, nil
}

// index builds the key indexes from the non-blank nodes, given in
// increasing order, remembering the first duplicate key for Validate. The
// capability index is built with the nodes.
func (t *Tree) index(order []NodeIndex) {
	t.enc = newKeyMap(len(order), func(x NodeIndex) []byte { return t.at(x).encryptionKey() })
	t.sig = newKeyMap(len(order)/2+1, func(l LeafIndex) []byte { return t.at(l.Node()).signatureKey() })
	// free: the first blank leaf, so that adding a member does not scan the
	// leaves from the left (O(N) map reads on a full tree).
	t.free = 0
	for _, x := range order {
		if x.IsLeaf() && x.Leaf() == t.free {
			t.free++
		}
		n := t.at(x)
		k := n.encryptionKey()
		if y, dup := t.enc.add(k, x); dup && t.dup == nil {
			t.dup = fail(ErrDuplicateEncryptionKey, "12.4.3.1", x, "same encryption key as %s", nodeName(y))
		}
		if n.leaf != nil {
			if l, dup := t.sig.add(n.signatureKey(), x.Leaf()); dup && t.dup == nil {
				t.dup = fail(ErrDuplicateSignatureKey, "7.3", x, "same signature key as leaf %d", l)
			}
		}
	}
}

// rehashAll computes every tree hash and resolution size (one hash per
// node, RFC 9420, Section 7.8), splitting the top of the tree over the
// available cores. The goroutines write the hashes and resolution sizes
// of the nodes that have an arena entry (each its own) and of the nodes at
// level hiLevel and above, and read nothing else that is written; the
// blank nodes below hiLevel that need an entry are collected and stored
// afterwards.
func (t *Tree) rehashAll() {
	t.hi, t.hiRes = nil, nil
	t.resizeHi(t.width())
	spawn := 0
	for 1<<spawn < 4*runtime.GOMAXPROCS(0) && spawn < 10 {
		spawn++
	}
	root := treemath.Root(t.nLeaves)
	// The spawned subtrees must be at level hiLevel or above.
	if lvl := int(treemath.Level(root)); t.nLeaves < 1024 || lvl-spawn < hiLevel {
		spawn = 0
	}
	t.fill(newHasher(t.suite), root, spawn, nil)
}

// lowEntry is the hash and resolution size of a blank node below hiLevel
// computed by a goroutine of rehashAll.
type lowEntry struct {
	x   NodeIndex
	h   digest
	res uint32
}

// fill computes the hash and resolution size of x and its subtree. With
// out nil it stores them; otherwise it writes those of the nodes that have
// an entry (and those at level hiLevel and above, in the dense arrays),
// where no other goroutine writes, and appends the others to *out.
func (t *Tree) fill(hs *hasher, x NodeIndex, spawn int, out *[]lowEntry) (digest, uint32) {
	p, ok := t.idx[x]
	var n packed
	if ok {
		n = t.nodes[p]
	}
	var h digest
	var res uint32
	if x.IsLeaf() {
		h = hs.leaf(x.Leaf(), n.leaf)
		if n.leaf != nil {
			res = 1
		}
	} else {
		l, r := treemath.Left(x), treemath.Right(x)
		var lh, rh digest
		var lr, rr uint32
		if spawn > 0 {
			lh, lr, rh, rr = t.fillBoth(hs, l, r, spawn-1, out)
		} else {
			lh, lr = t.fill(hs, l, 0, out)
			rh, rr = t.fill(hs, r, 0, out)
		}
		h = hs.parent(n.parent, lh.bytes(), rh.bytes())
		if n.parent != nil {
			res = 1 + uint32(len(n.parent.UnmergedLeaves))
		} else {
			res = lr + rr
		}
	}
	hsz := t.suite.HashSize()
	switch {
	case isHi(x):
		// The entry of a non-blank node is already there.
		copy(t.hi[int(x>>hiLevel)*hsz:], h.bytes())
		t.hiRes[x>>hiLevel] = res
	case res == 0:
		// An all-blank subtree below hiLevel: rehashed when needed.
	case ok:
		copy(t.hashes[int(p)*hsz:int(p+1)*hsz], h.bytes())
		t.res[p] = res
	case out == nil:
		t.store(x, n, h.bytes(), res)
	default:
		*out = append(*out, lowEntry{x, h, res})
	}
	return h, res
}

// fillBoth fills the subtrees l and r at once, l on a new goroutine.
func (t *Tree) fillBoth(hs *hasher, l, r NodeIndex, spawn int, out *[]lowEntry) (lh digest, lr uint32, rh digest, rr uint32) {
	var wg sync.WaitGroup
	var lo, ro []lowEntry
	wg.Go(func() { lh, lr = t.fill(newHasher(t.suite), l, spawn, &lo) })
	rh, rr = t.fill(hs, r, spawn, &ro)
	wg.Wait()
	for _, lst := range [][]lowEntry{lo, ro} {
		if out != nil {
			*out = append(*out, lst...)
			continue
		}
		for _, e := range lst {
			t.store(e.x, t.at(e.x), e.h.bytes(), e.res)
		}
	}
	return lh, lr, rh, rr
}

// Suite returns the tree's cipher suite.
func (t *Tree) Suite() *ciphersuite.Suite { return t.suite }

// NumLeaves returns the number of leaves, a power of two.
func (t *Tree) NumLeaves() uint32 { return t.nLeaves }

// TreeHash returns the tree hash of the root (RFC 9420, Section 7.8).
func (t *Tree) TreeHash() []byte {
	return clone(t.hashOf(treemath.Root(t.nLeaves)))
}

// View returns a Diff with no changes, for reading the tree through the
// Diff methods. Reads of an unchanged Diff do not write to it, so a view
// may be shared between goroutines while nothing changes it.
func (t *Tree) View() *Diff { return t.Diff() }

// Diff starts a set of changes to the tree. The tree is unaffected until
// Merge.
func (t *Tree) Diff() *Diff {
	return &Diff{base: t, gen: t.gen, nLeaves: t.nLeaves, limit: t.width(), free: t.free}
}

// Leaf returns the LeafNode at leaf i, or nil if it is blank or outside the
// tree. It is decoded on each call; its byte fields share the tree's
// memory and must not be modified.
func (t *Tree) Leaf(i LeafIndex) *message.LeafNode {
	if uint64(i) >= uint64(t.nLeaves) {
		return nil
	}
	if b := t.at(i.Node()).leaf; b != nil {
		return unpackLeaf(b)
	}
	return nil
}

// RatchetTree returns the tree in the ratchet_tree extension form with the
// trailing blank nodes stripped (RFC 9420, Section 12.4.3.3). The nodes are
// shared with the tree and must not be modified.
func (t *Tree) RatchetTree() message.RatchetTree { return t.View().RatchetTree() }

// Sparse returns the non-blank nodes of the tree; see Diff.Sparse.
func (t *Tree) Sparse() *message.SparseRatchetTree { return t.View().Sparse() }

// nodeName names a node in errors.
func nodeName(x NodeIndex) string {
	if x.IsLeaf() {
		return fmt.Sprintf("leaf %d", x.Leaf())
	}
	return fmt.Sprintf("node %d", x)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// leafRange returns the first leaf and the number of leaves under x.
func leafRange(x NodeIndex) (first uint32, count uint32) {
	k := treemath.Level(x)
	return uint32(x>>(k+1)) << k, 1 << k
}

// capIndex counts, over the members, which credential types are in use and
// which are supported, so that the checks of RFC 9420, Section 7.3 on
// credential types cost O(number of types) rather than O(members).
type capIndex struct {
	members   int
	used      map[message.CredentialType]int
	supported map[message.CredentialType]int
}

func (c *capIndex) clone() *capIndex {
	o := &capIndex{members: c.members, used: make(map[message.CredentialType]int, len(c.used)),
		supported: make(map[message.CredentialType]int, len(c.supported))}
	for k, v := range c.used {
		o.used[k] = v
	}
	for k, v := range c.supported {
		o.supported[k] = v
	}
	return o
}

func (c *capIndex) add(ln *message.LeafNode)    { c.update(ln, 1) }
func (c *capIndex) remove(ln *message.LeafNode) { c.update(ln, -1) }

func (c *capIndex) update(ln *message.LeafNode, delta int) {
	if c.used == nil {
		c.used = make(map[message.CredentialType]int)
		c.supported = make(map[message.CredentialType]int)
	}
	c.members += delta
	c.used[ln.Credential.Type] += delta
	if c.used[ln.Credential.Type] == 0 {
		delete(c.used, ln.Credential.Type)
	}
	creds := ln.Capabilities.Credentials
	for i, t := range creds {
		if containsBefore(creds, i, t) {
			continue
		}
		c.supported[t] += delta
		if c.supported[t] == 0 {
			delete(c.supported, t)
		}
	}
}

// containsBefore reports whether v occurs in s[:i] (a duplicate entry in a
// capabilities list counts once).
func containsBefore[T comparable](s []T, i int, v T) bool {
	for _, w := range s[:i] {
		if w == v {
			return true
		}
	}
	return false
}

func contains[T comparable](s []T, v T) bool {
	for _, w := range s {
		if w == v {
			return true
		}
	}
	return false
}

// EncodeRatchetTree returns the encoded tree in the ratchet_tree extension
// form; see Diff.EncodeRatchetTree.
func (t *Tree) EncodeRatchetTree() ([]byte, error) { return t.View().EncodeRatchetTree() }
