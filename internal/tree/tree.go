package tree

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
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

// node is one node of the tree: a leaf, a parent, or blank (both nil). The
// values pointed to are never modified once in a tree.
type node struct {
	leaf   *message.LeafNode
	parent *message.ParentNode
}

func (n node) blank() bool { return n.leaf == nil && n.parent == nil }

// encryptionKey returns the node's HPKE public key, nil if blank.
func (n node) encryptionKey() []byte {
	switch {
	case n.leaf != nil:
		return n.leaf.EncryptionKey
	case n.parent != nil:
		return n.parent.EncryptionKey
	}
	return nil
}

// Tree is a ratchet tree (RFC 9420, Section 7): an array of nodes indexed
// by treemath.NodeIndex whose leaf count is a power of two, with its tree
// hashes (Section 7.8), resolution sizes (Section 4.1.1) and key indexes
// cached. Change it through a Diff. Reading a Tree from several goroutines
// is safe as long as no Diff is merged into it at the same time.
type Tree struct {
	suite   *ciphersuite.Suite
	nLeaves uint32
	nodes   []node
	hashes  [][]byte // tree hash of every node
	res     []uint32 // size of every node's resolution
	enc     map[string]NodeIndex
	sig     map[string]LeafIndex
	caps    capIndex
	free    LeafIndex // no leaf left of free is blank
	gen     uint64    // incremented by every merge
	dup     *Error    // first duplicate key found when the tree was built
}

// New returns a tree with one leaf holding leaf: the tree of a new group
// (RFC 9420, Section 11).
func New(suite *ciphersuite.Suite, leaf *message.LeafNode) *Tree {
	t := &Tree{suite: suite, nLeaves: 1, nodes: []node{{leaf: leaf}}}
	t.index()
	t.rehashAll()
	return t
}

// FromRatchetTree builds a tree from the ratchet_tree extension form
// (RFC 9420, Section 12.4.3.3): the last node must be non-blank, leaves sit
// at even and parents at odd positions, and the tree is extended with blank
// nodes to the next full size. Only the shape is checked here; call
// Validate before trusting the tree. The tree keeps the nodes of rt, which
// the caller must not modify afterwards.
func FromRatchetTree(suite *ciphersuite.Suite, rt message.RatchetTree) (*Tree, error) {
	if len(rt) == 0 {
		return nil, fail(ErrMalformedTree, "12.4.3.3", noNode, "no nodes")
	}
	if rt[len(rt)-1] == nil {
		return nil, fail(ErrMalformedTree, "12.4.3.3", noNode, "last node is blank")
	}
	if len(rt) > int(treemath.NodeWidth(MaxLeaves)) {
		return nil, fail(ErrMalformedTree, "12.4.3.3", noNode, "%d nodes, more than a tree of %d leaves", len(rt), MaxLeaves)
	}
	// The smallest full tree holding len(rt) nodes: 2^d leaves with
	// 2^(d+1)-1 >= len(rt).
	n := uint32(1)
	for treemath.NodeWidth(n) < uint32(len(rt)) {
		n *= 2
	}
	t := &Tree{suite: suite, nLeaves: n, nodes: make([]node, treemath.NodeWidth(n))}
	for i, rn := range rt {
		if rn == nil {
			continue
		}
		x := NodeIndex(i)
		switch {
		case rn.Leaf != nil && rn.Parent != nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "node is both leaf and parent")
		case rn.Leaf != nil && x.IsLeaf():
			t.nodes[i].leaf = rn.Leaf
		case rn.Parent != nil && !x.IsLeaf():
			t.nodes[i].parent = rn.Parent
		case rn.Leaf != nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "leaf node at a parent position")
		case rn.Parent != nil:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "parent node at a leaf position")
		default:
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "node is neither leaf nor parent")
		}
	}
	t.index()
	t.rehashAll()
	return t, nil
}

// index builds the key and capability indexes, remembering the first
// duplicate key for Validate.
func (t *Tree) index() {
	t.enc = make(map[string]NodeIndex)
	t.sig = make(map[string]LeafIndex)
	t.caps = capIndex{}
	for i, n := range t.nodes {
		if n.blank() {
			continue
		}
		x := NodeIndex(i)
		k := string(n.encryptionKey())
		if y, ok := t.enc[k]; ok {
			if t.dup == nil {
				t.dup = fail(ErrDuplicateEncryptionKey, "12.4.3.1", x, "same encryption key as %s", nodeName(y))
			}
		} else {
			t.enc[k] = x
		}
		if n.leaf != nil {
			k := string(n.leaf.SignatureKey)
			if l, ok := t.sig[k]; ok {
				if t.dup == nil {
					t.dup = fail(ErrDuplicateSignatureKey, "7.3", x, "same signature key as leaf %d", l)
				}
			} else {
				t.sig[k] = x.Leaf()
			}
			t.caps.add(n.leaf)
		}
	}
}

// rehashAll computes every tree hash and resolution size, splitting the
// top of the tree over the available cores.
func (t *Tree) rehashAll() {
	w := len(t.nodes)
	t.hashes = make([][]byte, w)
	t.res = make([]uint32, w)
	spawn := 0
	for 1<<spawn < 4*runtime.GOMAXPROCS(0) && spawn < 10 {
		spawn++
	}
	if t.nLeaves < 1024 {
		spawn = 0
	}
	t.fill(treemath.Root(t.nLeaves), spawn)
}

func (t *Tree) fill(x NodeIndex, spawn int) {
	n := t.nodes[x]
	if x.IsLeaf() {
		t.hashes[x] = leafHash(t.suite, x.Leaf(), n.leaf)
		if n.leaf != nil {
			t.res[x] = 1
		}
		return
	}
	l, r := treemath.Left(x), treemath.Right(x)
	if spawn > 0 {
		var wg sync.WaitGroup
		wg.Go(func() { t.fill(l, spawn-1) })
		t.fill(r, spawn-1)
		wg.Wait()
	} else {
		t.fill(l, 0)
		t.fill(r, 0)
	}
	t.hashes[x] = parentHash(t.suite, n.parent, t.hashes[l], t.hashes[r])
	if n.parent != nil {
		t.res[x] = 1 + uint32(len(n.parent.UnmergedLeaves))
	} else {
		t.res[x] = t.res[l] + t.res[r]
	}
}

// Suite returns the tree's cipher suite.
func (t *Tree) Suite() *ciphersuite.Suite { return t.suite }

// NumLeaves returns the number of leaves, a power of two.
func (t *Tree) NumLeaves() uint32 { return t.nLeaves }

// TreeHash returns the tree hash of the root (RFC 9420, Section 7.8).
func (t *Tree) TreeHash() []byte {
	return clone(t.hashes[treemath.Root(t.nLeaves)])
}

// View returns a Diff with no changes, for reading the tree through the
// Diff methods. Reads of an unchanged Diff do not write to it, so a view
// may be shared between goroutines while nothing changes it.
func (t *Tree) View() *Diff { return t.Diff() }

// Diff starts a set of changes to the tree. The tree is unaffected until
// Merge.
func (t *Tree) Diff() *Diff {
	return &Diff{base: t, gen: t.gen, nLeaves: t.nLeaves, limit: NodeIndex(len(t.nodes)), free: t.free}
}

// Leaf returns the LeafNode at leaf i, or nil if it is blank or outside the
// tree. The caller must not modify it.
func (t *Tree) Leaf(i LeafIndex) *message.LeafNode {
	if uint64(i) >= uint64(t.nLeaves) {
		return nil
	}
	return t.nodes[i.Node()].leaf
}

// RatchetTree returns the tree in the ratchet_tree extension form with the
// trailing blank nodes stripped (RFC 9420, Section 12.4.3.3). The nodes are
// shared with the tree and must not be modified.
func (t *Tree) RatchetTree() message.RatchetTree { return t.View().RatchetTree() }

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
