package tree

import (
	"cmp"
	"slices"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// Changes describes what a Diff changes in the tree it was made from, in a
// form that can be stored and replayed on a copy of that tree (a pending
// commit that must survive a restart), or used to write only the changed
// nodes of a merged commit to storage.
type Changes struct {
	// NumLeaves is the diff's leaf count.
	NumLeaves uint32
	// Limit: nodes at or beyond Limit are not taken from the base tree
	// (the tree was truncated to that width, RFC 9420, Section 7.7, or
	// extended beyond it). Nodes from Limit on that are not in Nodes are
	// blank. Limit is at most the width of the base tree and of the
	// diff's tree.
	Limit NodeIndex
	// Nodes are the nodes the diff set, in increasing index order, all
	// within the diff's width. A nil Node is a node made blank.
	Nodes []NodeChange
}

// NodeChange is one changed node: its index and new value (nil: blank).
type NodeChange struct {
	X    NodeIndex
	Node *message.Node
}

// Changes returns what d changes in its tree. It reads the diff's own
// bookkeeping, which Merge leaves in place, so it gives the same answer
// before and after d is merged. The nodes are shared with the tree and
// must not be modified.
func (d *Diff) Changes() *Changes {
	w := NodeIndex(treemath.NodeWidth(d.nLeaves))
	c := &Changes{NumLeaves: d.nLeaves, Limit: min(d.limit, w), Nodes: make([]NodeChange, 0, len(d.nodes))}
	for x, n := range d.nodes {
		if x >= w {
			continue
		}
		var mn *message.Node
		switch {
		case n.leaf != nil:
			mn = &message.Node{Leaf: n.leaf}
		case n.parent != nil:
			mn = &message.Node{Parent: n.parent}
		}
		c.Nodes = append(c.Nodes, NodeChange{X: x, Node: mn})
	}
	slices.SortFunc(c.Nodes, func(a, b NodeChange) int { return cmp.Compare(a.X, b.X) })
	return c
}

// MergedInto reports whether d has been merged into t (and t has not
// changed since).
func (d *Diff) MergedInto(t *Tree) bool { return d.base == t && d.gen == ^t.gen }

// ApplyChanges replays c, taken from a diff of a tree equal to t, as a new
// diff of t. The result has the same nodes, tree hashes and key indexes as
// the original diff and can be merged. Only the shape of c is checked
// (leaf count, limits, node positions); whether the replayed tree is the
// expected one is for the caller to check, for example against a tree
// hash. Errors wrap ErrMalformedTree.
func (t *Tree) ApplyChanges(c *Changes) (*Diff, error) {
	if c.NumLeaves == 0 || c.NumLeaves > MaxLeaves || c.NumLeaves&(c.NumLeaves-1) != 0 {
		return nil, fail(ErrMalformedTree, "7.7", noNode, "changes for %d leaves, not a power of two up to %d", c.NumLeaves, MaxLeaves)
	}
	w := NodeIndex(treemath.NodeWidth(c.NumLeaves))
	if c.Limit > t.width() || c.Limit > w || (c.Limit+1)&c.Limit != 0 {
		// Limits are tree widths (2^k - 1): the nodes below one form a
		// complete subtree, so their cached hashes stay valid.
		return nil, fail(ErrMalformedTree, "7.7", noNode, "changes limit %d is not a tree width up to the tree's %d nodes and the new width %d", c.Limit, t.width(), w)
	}
	// A diff extends the tree only when every leaf is taken (RFC 9420,
	// Section 7.7), so it has at most twice as many leaves as the base
	// tree's leaves and the new leaves together. This bounds the work of
	// replaying changes that were damaged.
	newLeaves := 0
	for _, ch := range c.Nodes {
		if ch.Node != nil && ch.Node.Leaf != nil {
			newLeaves++
		}
	}
	if uint64(c.NumLeaves) > 2*(uint64(t.nLeaves)+uint64(newLeaves)) {
		return nil, fail(ErrMalformedTree, "7.7", noNode, "changes for %d leaves, more than twice the %d leaves of the tree and the %d set", c.NumLeaves, t.nLeaves, newLeaves)
	}
	prev := int64(-1)
	for _, ch := range c.Nodes {
		x := ch.X
		switch {
		case int64(x) <= prev:
			return nil, fail(ErrMalformedTree, "7.7", x, "changed nodes out of order")
		case x >= w:
			return nil, fail(ErrMalformedTree, "7.7", x, "changed node outside a tree of %d nodes", w)
		case ch.Node != nil && (ch.Node.Leaf == nil) == (ch.Node.Parent == nil):
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "node is not exactly one of leaf and parent")
		case ch.Node != nil && ch.Node.Leaf != nil && !x.IsLeaf():
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "leaf node at a parent position")
		case ch.Node != nil && ch.Node.Parent != nil && x.IsLeaf():
			return nil, fail(ErrMalformedTree, "12.4.3.3", x, "parent node at a leaf position")
		}
		prev = int64(x)
	}
	d := t.Diff()
	if c.Limit < d.limit {
		// As truncate does: the nodes from Limit on leave the key and
		// capability indexes.
		for x := c.Limit; x < d.limit; x++ {
			n := t.at(x)
			if n.blank() {
				continue
			}
			d.enc.remove(&t.enc, n.encryptionKey(), x)
			if n.leaf != nil {
				d.sig.remove(&t.sig, n.signatureKey(), x.Leaf())
				d.writableCaps().remove(unpackLeaf(n.leaf))
			}
		}
		d.limit = c.Limit
	}
	d.nLeaves = c.NumLeaves
	// free is a lower bound on the leftmost blank leaf: leaves made blank
	// and the leaves beyond Limit may be free.
	free := min(t.free, LeafIndex((uint32(c.Limit)+1)/2))
	for _, ch := range c.Nodes {
		var n node
		if ch.Node != nil {
			n = node{leaf: ch.Node.Leaf, parent: ch.Node.Parent}
		} else if ch.X.IsLeaf() {
			free = min(free, ch.X.Leaf())
		}
		d.set(ch.X, n)
	}
	d.free = min(free, LeafIndex(c.NumLeaves))
	return d, nil
}
