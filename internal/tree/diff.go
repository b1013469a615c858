package tree

import (
	"bytes"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// Diff is a set of changes to a Tree: a copy-on-write overlay that holds
// only the nodes that changed, with their recomputed hashes and the changes
// to the key indexes. Reads fall through to the tree for everything else.
// Creating a Diff is O(1) and each change costs O(log N).
//
// A Diff is not safe for concurrent use (reads fill its hash cache), except
// a Diff with no changes, whose reads write nothing.
type Diff struct {
	base    *Tree
	gen     uint64
	nLeaves uint32
	// limit: nodes at or beyond it are not read from base (they were
	// truncated away, or added by extending the tree).
	limit  NodeIndex
	nodes  map[NodeIndex]node
	dirty  map[NodeIndex]struct{} // changed nodes and their ancestors
	hashes map[NodeIndex][]byte   // recomputed tree hashes
	res    map[NodeIndex]uint32   // recomputed resolution sizes
	enc    keyIndex[NodeIndex]
	sig    keyIndex[LeafIndex]
	caps   *capIndex // nil: unchanged from base
	free   LeafIndex
}

// keyIndex is the overlay of a key index: keys added or re-pointed, and
// keys removed (with the position they were removed from), relative to the
// base index.
type keyIndex[V ~uint32] struct {
	add map[string]V
	del map[string]V
}

func (k *keyIndex[V]) lookup(base *keyMap[V], key []byte) (V, bool) {
	if v, ok := k.add[string(key)]; ok {
		return v, true
	}
	if _, ok := k.del[string(key)]; ok {
		var zero V
		return zero, false
	}
	return base.get(key)
}

// remove drops key if it points at at (a duplicate key elsewhere keeps its
// entry).
func (k *keyIndex[V]) remove(base *keyMap[V], key []byte, at V) {
	if v, ok := k.lookup(base, key); !ok || v != at {
		return
	}
	delete(k.add, string(key))
	if v, ok := base.get(key); ok {
		if k.del == nil {
			k.del = make(map[string]V)
		}
		k.del[string(key)] = v
	}
}

func (k *keyIndex[V]) insert(key []byte, at V) {
	if k.add == nil {
		k.add = make(map[string]V)
	}
	k.add[string(key)] = at
}

// mergeInto applies the overlay to base, once the tree holds the new
// nodes.
func (k *keyIndex[V]) mergeInto(base *keyMap[V]) {
	for key, at := range k.del {
		base.del([]byte(key), at)
	}
	for key, v := range k.add {
		base.set([]byte(key), v)
	}
}

// Suite returns the tree's cipher suite.
func (d *Diff) Suite() *ciphersuite.Suite { return d.base.suite }

// NumLeaves returns the number of leaves, a power of two.
func (d *Diff) NumLeaves() uint32 { return d.nLeaves }

// Width returns the number of nodes, 2*NumLeaves()-1.
func (d *Diff) Width() uint32 { return treemath.NodeWidth(d.nLeaves) }

// NumMembers returns the number of non-blank leaves.
func (d *Diff) NumMembers() int { return d.capIdx().members }

func (d *Diff) inTree(x NodeIndex) bool { return uint64(x) < uint64(treemath.NodeWidth(d.nLeaves)) }

// node returns node x with its leaf decoded (the LeafNode given to the
// diff, for a leaf the diff set).
func (d *Diff) node(x NodeIndex) node {
	if n, ok := d.nodes[x]; ok {
		return n
	}
	if x < d.limit {
		return d.base.node(x)
	}
	return node{}
}

// at returns node x as the tree keeps it, without decoding a leaf.
func (d *Diff) at(x NodeIndex) packed {
	if n, ok := d.nodes[x]; ok {
		return packed{leaf: n.enc, parent: n.parent}
	}
	if x < d.limit {
		return d.base.at(x)
	}
	return packed{}
}

func (d *Diff) capIdx() *capIndex {
	if d.caps != nil {
		return d.caps
	}
	return &d.base.caps
}

// Leaf returns the LeafNode at leaf i, or nil if it is blank or outside the
// tree. A leaf the diff did not set is decoded from the tree on each call,
// its byte fields sharing the tree's memory. The caller must not modify
// it.
func (d *Diff) Leaf(i LeafIndex) *message.LeafNode {
	if uint64(i) >= uint64(d.nLeaves) {
		return nil
	}
	return d.node(i.Node()).leaf
}

// Parent returns the ParentNode at x, or nil if x is blank, a leaf, or
// outside the tree. The caller must not modify it.
func (d *Diff) Parent(x NodeIndex) *message.ParentNode {
	if !d.inTree(x) {
		return nil
	}
	return d.at(x).parent
}

// IsBlank reports whether node x is blank (nodes outside the tree count as
// blank).
func (d *Diff) IsBlank(x NodeIndex) bool { return !d.inTree(x) || d.at(x).blank() }

// EncryptionKey returns the HPKE public key of node x, nil if blank.
func (d *Diff) EncryptionKey(x NodeIndex) []byte {
	if !d.inTree(x) {
		return nil
	}
	return d.at(x).encryptionKey()
}

// FindEncryptionKey returns the node holding the HPKE public key k.
func (d *Diff) FindEncryptionKey(k []byte) (NodeIndex, bool) {
	return d.enc.lookup(&d.base.enc, k)
}

// FindSignatureKey returns the leaf holding the signature key k.
func (d *Diff) FindSignatureKey(k []byte) (LeafIndex, bool) {
	return d.sig.lookup(&d.base.sig, k)
}

// set replaces node x, keeping the key and capability indexes and the
// caches in step. It is the only function that changes nodes.
func (d *Diff) set(x NodeIndex, n node) {
	old := d.at(x)
	if n.leaf != nil && n.enc == nil {
		n.enc = packLeaf(n.leaf, new([]byte))
	}
	if old.parent == n.parent && (old.leaf == nil) == (n.leaf == nil) && bytes.Equal(old.leaf, n.enc) {
		return
	}
	if !old.blank() {
		d.enc.remove(&d.base.enc, old.encryptionKey(), x)
	}
	if old.leaf != nil {
		d.sig.remove(&d.base.sig, old.signatureKey(), x.Leaf())
		d.writableCaps().remove(d.node(x).leaf)
	}
	if !n.blank() {
		d.enc.insert(packed{leaf: n.enc, parent: n.parent}.encryptionKey(), x)
	}
	if n.leaf != nil {
		d.sig.insert(n.leaf.SignatureKey, x.Leaf())
		d.writableCaps().add(n.leaf)
	}
	if d.nodes == nil {
		d.nodes = make(map[NodeIndex]node)
	}
	d.nodes[x] = n
	d.touch(x)
}

func (d *Diff) writableCaps() *capIndex {
	if d.caps == nil {
		d.caps = d.base.caps.clone()
	}
	return d.caps
}

// touch invalidates the cached hash and resolution size of x and its
// ancestors.
func (d *Diff) touch(x NodeIndex) {
	if d.dirty == nil {
		d.dirty = make(map[NodeIndex]struct{})
	}
	root := treemath.Root(d.nLeaves)
	for {
		d.dirty[x] = struct{}{}
		delete(d.hashes, x)
		delete(d.res, x)
		if x == root {
			return
		}
		x = treemath.Parent(x, d.nLeaves)
	}
}

func (d *Diff) blankNode(x NodeIndex) {
	if !d.at(x).blank() {
		d.set(x, node{})
	}
}

// blankDirectPath blanks every parent on the direct path of leaf i.
func (d *Diff) blankDirectPath(i LeafIndex) {
	for _, p := range treemath.DirectPath(i.Node(), d.nLeaves) {
		d.blankNode(p)
	}
}

// extend doubles the tree (RFC 9420, Section 7.7): the old tree becomes the
// left subtree of a new blank root whose right subtree is blank.
func (d *Diff) extend() error {
	if d.nLeaves >= MaxLeaves {
		return fail(ErrMalformedTree, "7.7", noNode, "tree would exceed %d leaves", MaxLeaves)
	}
	if d.nLeaves == 0 {
		d.nLeaves = 1
		return nil
	}
	d.nLeaves *= 2
	return nil
}

// truncate halves the tree while its right subtree is all blank (RFC 9420,
// Sections 7.7 and 12.1.3). The discarded root is dropped whether blank or
// not.
func (d *Diff) truncate() {
	for d.nLeaves > 1 {
		root := treemath.Root(d.nLeaves)
		if d.resLen(treemath.Right(root)) != 0 {
			return
		}
		d.blankNode(root)
		d.nLeaves /= 2
		w := NodeIndex(treemath.NodeWidth(d.nLeaves))
		if d.limit > w {
			d.limit = w
		}
		for x := range d.nodes {
			if x >= w {
				delete(d.nodes, x)
			}
		}
		for x := range d.dirty {
			if x >= w {
				delete(d.dirty, x)
			}
		}
		for x := range d.hashes {
			if x >= w {
				delete(d.hashes, x)
			}
		}
		for x := range d.res {
			if x >= w {
				delete(d.res, x)
			}
		}
	}
	if uint32(d.free) > d.nLeaves {
		d.free = LeafIndex(d.nLeaves)
	}
}

// freeLeaf returns the leftmost blank leaf, extending the tree if there is
// none.
func (d *Diff) freeLeaf() (LeafIndex, error) {
	for i := d.free; uint32(i) < d.nLeaves; i++ {
		if d.at(i.Node()).blank() {
			d.free = i
			return i, nil
		}
	}
	d.free = LeafIndex(d.nLeaves)
	i := LeafIndex(d.nLeaves)
	if err := d.extend(); err != nil {
		return 0, err
	}
	return i, nil
}

// Add puts leaf into the leftmost blank leaf, extending the tree if it is
// full, and adds the new leaf to the unmerged_leaves of every non-blank
// parent on its direct path (RFC 9420, Section 12.1.1). It does not
// validate leaf; see ValidateLeaf.
func (d *Diff) Add(leaf *message.LeafNode) (LeafIndex, error) {
	i, err := d.freeLeaf()
	if err != nil {
		return 0, err
	}
	for _, p := range treemath.DirectPath(i.Node(), d.nLeaves) {
		pn := d.at(p).parent
		if pn == nil {
			continue
		}
		u := make([]uint32, 0, len(pn.UnmergedLeaves)+1)
		u = append(u, pn.UnmergedLeaves...)
		if k, found := slices.BinarySearch(u, uint32(i)); !found {
			u = slices.Insert(u, k, uint32(i))
		}
		d.set(p, node{parent: &message.ParentNode{EncryptionKey: pn.EncryptionKey, ParentHash: pn.ParentHash, UnmergedLeaves: u}})
	}
	d.set(i.Node(), node{leaf: leaf})
	d.free = i + 1
	return i, nil
}

// ReserveLeaf returns the leaf an external joiner takes (RFC 9420, Section
// 12.4.3.2): the leftmost blank leaf, after extending the tree if there is
// none. The leaf stays blank until an UpdatePath fills it.
func (d *Diff) ReserveLeaf() (LeafIndex, error) { return d.freeLeaf() }

// Update replaces the LeafNode at leaf i and blanks its direct path
// (RFC 9420, Section 12.1.2). It does not validate leaf; see ValidateLeaf.
func (d *Diff) Update(i LeafIndex, leaf *message.LeafNode) error {
	if uint64(i) >= uint64(d.nLeaves) || d.IsBlank(i.Node()) {
		return fail(ErrBlankLeaf, "12.1.2", i.Node(), "update of a blank leaf")
	}
	d.set(i.Node(), node{leaf: leaf})
	d.blankDirectPath(i)
	return nil
}

// Remove blanks leaf i and its direct path, then truncates the tree while
// its right half is blank (RFC 9420, Section 12.1.3).
func (d *Diff) Remove(i LeafIndex) error {
	if uint64(i) >= uint64(d.nLeaves) || d.IsBlank(i.Node()) {
		return fail(ErrBlankLeaf, "12.1.3", i.Node(), "removal of a blank leaf")
	}
	d.set(i.Node(), node{})
	d.blankDirectPath(i)
	if i < d.free {
		d.free = i
	}
	d.truncate()
	return nil
}

// Merge applies the diff to the tree it was made from, in time proportional
// to the size of the change. It fails with ErrStaleDiff if the tree changed
// since the diff was made. The diff must not be used afterwards.
func (d *Diff) Merge() error {
	t := d.base
	if d.gen != t.gen {
		return fail(ErrStaleDiff, "", noNode, "")
	}
	root := treemath.Root(d.nLeaves)
	d.hash(root) // fills d.hashes for every changed or new node
	w := int(treemath.NodeWidth(d.nLeaves))
	keep := min(int(d.limit), w)
	// The resolution size of a non-blank node does not depend on its
	// children, so the recursion from the root may skip changed nodes
	// below it: compute each changed or new node's explicitly.
	for x := range d.dirty {
		d.resLen(x)
	}
	for x := keep; x < w; x++ {
		d.resLen(NodeIndex(x))
	}
	if keep < int(t.width()) {
		// Truncated: drop what lies beyond the new width.
		for x := range t.idx {
			if int(x) >= keep {
				t.drop(x)
			}
		}
	}
	t.nLeaves = d.nLeaves
	t.resizeHi(NodeIndex(w))
	touched := make(map[NodeIndex]struct{}, len(d.hashes)+len(d.nodes))
	for x := range d.nodes {
		touched[x] = struct{}{}
	}
	for x := range d.hashes {
		touched[x] = struct{}{}
	}
	for x := range d.res {
		touched[x] = struct{}{}
	}
	for x := range touched {
		if int(x) >= w {
			continue
		}
		t.store(x, d.at(x), d.hash(x), d.resLen(x))
	}
	t.mergeEncoded(d, min(NodeIndex(keep), NodeIndex(w)))
	d.enc.mergeInto(&t.enc)
	d.sig.mergeInto(&t.sig)
	if d.caps != nil {
		t.caps = *d.caps
	}
	t.nLeaves = d.nLeaves
	t.free = d.free
	t.gen++
	d.gen = ^t.gen
	return nil
}

// resize keeps s[:keep] and extends it with zero values to length n.
func resize[T any](s []T, keep, n int) []T {
	s = s[:keep]
	if n <= keep {
		return s[:n]
	}
	if cap(s) < n {
		o := make([]T, keep, n)
		copy(o, s)
		s = o
	}
	clear(s[keep:n])
	return s[:n]
}

// RatchetTree returns the tree in the ratchet_tree extension form with the
// trailing blank nodes stripped (RFC 9420, Section 12.4.3.3). The parent
// nodes are shared with the tree and must not be modified; the leaves are
// decoded.
func (d *Diff) RatchetTree() message.RatchetTree {
	w := NodeIndex(treemath.NodeWidth(d.nLeaves))
	last := NodeIndex(0)
	found := false
	for x := w; x > 0; x-- {
		if !d.at(x - 1).blank() {
			last, found = x-1, true
			break
		}
	}
	if !found {
		return message.RatchetTree{}
	}
	out := make(message.RatchetTree, last+1)
	for x := NodeIndex(0); x <= last; x++ {
		n := d.node(x)
		switch {
		case n.leaf != nil:
			out[x] = &message.Node{Leaf: n.leaf}
		case n.parent != nil:
			out[x] = &message.Node{Parent: n.parent}
		}
	}
	return out
}

// Sparse returns the non-blank nodes of the tree in increasing order, the
// ratchet_tree extension form without its blank nodes (RFC 9420, Section
// 12.4.3.3; Width counts up to the last non-blank node). Unlike
// RatchetTree it costs memory in proportion to the non-blank nodes, not to
// the width. The parent nodes are shared with the tree and must not be
// modified; the leaves are decoded.
func (d *Diff) Sparse() *message.SparseRatchetTree {
	w := NodeIndex(treemath.NodeWidth(d.nLeaves))
	xs := make([]NodeIndex, 0, len(d.base.idx)+len(d.nodes))
	for x, p := range d.base.idx {
		if x < d.limit && x < w && !d.base.nodes[p].blank() {
			xs = append(xs, x)
		}
	}
	for x := range d.nodes {
		if x < w {
			xs = append(xs, x)
		}
	}
	slices.Sort(xs)
	xs = slices.Compact(xs)
	out := &message.SparseRatchetTree{Nodes: make([]message.IndexedNode, 0, len(xs))}
	for _, x := range xs {
		n := d.node(x)
		switch {
		case n.leaf != nil:
			out.Nodes = append(out.Nodes, message.IndexedNode{Index: uint32(x), Node: &message.Node{Leaf: n.leaf}})
		case n.parent != nil:
			out.Nodes = append(out.Nodes, message.IndexedNode{Index: uint32(x), Node: &message.Node{Parent: n.parent}})
		}
	}
	if k := len(out.Nodes); k > 0 {
		out.Width = out.Nodes[k-1].Index + 1
	}
	return out
}

// Resolution returns the resolution of x (RFC 9420, Section 4.1.1): the
// non-blank nodes covering the subtree of x, in left-to-right order, each
// non-blank node followed by its unmerged leaves. Leaves listed in exclude
// (sorted or not) are left out, as RFC 9420, Section 7.6 requires for new
// members when encrypting path secrets.
func (d *Diff) Resolution(x NodeIndex, exclude ...LeafIndex) []NodeIndex {
	if !d.inTree(x) {
		return nil
	}
	return d.appendResolution(make([]NodeIndex, 0, d.resLen(x)), x, newLeafSet(exclude))
}

// leafSet is a set of leaves: a slice when small, a map when large.
type leafSet struct {
	list []LeafIndex
	m    map[LeafIndex]struct{}
}

func newLeafSet(l []LeafIndex) leafSet {
	if len(l) <= 16 {
		return leafSet{list: l}
	}
	m := make(map[LeafIndex]struct{}, len(l))
	for _, i := range l {
		m[i] = struct{}{}
	}
	return leafSet{m: m}
}

func (s leafSet) has(i LeafIndex) bool {
	if s.m != nil {
		_, ok := s.m[i]
		return ok
	}
	return contains(s.list, i)
}

func (d *Diff) appendResolution(out []NodeIndex, x NodeIndex, exclude leafSet) []NodeIndex {
	if d.resLen(x) == 0 {
		return out
	}
	n := d.at(x)
	switch {
	case n.leaf != nil:
		if !exclude.has(x.Leaf()) {
			out = append(out, x)
		}
		return out
	case n.parent != nil:
		out = append(out, x)
		for _, u := range n.parent.UnmergedLeaves {
			if !exclude.has(LeafIndex(u)) {
				out = append(out, LeafIndex(u).Node())
			}
		}
		return out
	}
	out = d.appendResolution(out, treemath.Left(x), exclude)
	return d.appendResolution(out, treemath.Right(x), exclude)
}

// FilteredDirectPath returns the filtered direct path of leaf i (RFC 9420,
// Section 4.1.2): its direct path without the nodes whose child on the
// copath has an empty resolution.
func (d *Diff) FilteredDirectPath(i LeafIndex) []NodeIndex {
	if uint64(i) >= uint64(d.nLeaves) {
		return nil
	}
	x := i.Node()
	var out []NodeIndex
	root := treemath.Root(d.nLeaves)
	for x != root {
		p := treemath.Parent(x, d.nLeaves)
		if d.resLen(treemath.Sibling(x, d.nLeaves)) != 0 {
			out = append(out, p)
		}
		x = p
	}
	return out
}

// filteredPath returns the filtered direct path of leaf i together with
// the copath child of each of its nodes.
func (d *Diff) filteredPath(i LeafIndex) (path, copath []NodeIndex) {
	x := i.Node()
	root := treemath.Root(d.nLeaves)
	for x != root {
		p := treemath.Parent(x, d.nLeaves)
		s := treemath.Sibling(x, d.nLeaves)
		if d.resLen(s) != 0 {
			path = append(path, p)
			copath = append(copath, s)
		}
		x = p
	}
	return path, copath
}
