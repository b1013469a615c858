// Package treemath implements the array-based left-balanced binary tree
// arithmetic of RFC 9420, Appendix C (and Section 4.1 for the terms).
//
// Nodes are numbered in-order: leaves have even node indices (leaf i is node
// 2i), parents odd ones. A tree with n leaves has 2n-1 nodes; MLS trees are
// always "full" in the sense that n is a power of two (Section 7.7 extends and
// truncates trees by doubling and halving).
package treemath

// LeafIndex numbers the leaves of a tree, left to right.
type LeafIndex uint32

// NodeIndex numbers all nodes of a tree in-order.
type NodeIndex uint32

// Node returns the node index of leaf i.
func (i LeafIndex) Node() NodeIndex { return NodeIndex(2 * uint64(i)) }

// IsLeaf reports whether x is a leaf.
func (x NodeIndex) IsLeaf() bool { return x&1 == 0 }

// Leaf returns the leaf index of x, which must be a leaf.
func (x NodeIndex) Leaf() LeafIndex { return LeafIndex(x >> 1) }

// Level returns the level of x: 0 for leaves, k for a parent whose
// subtree has 2^k leaves (the number of trailing one bits).
func Level(x NodeIndex) uint {
	k := uint(0)
	for (x>>k)&1 == 1 {
		k++
	}
	return k
}

// NodeWidth returns the number of nodes of a tree with n leaves.
func NodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// log2 returns the floor of the base-2 logarithm of x (0 for 0).
func log2(x uint32) uint {
	k := uint(0)
	for x>>(k+1) != 0 {
		k++
	}
	return k
}

// Root returns the root of a tree with n leaves.
func Root(n uint32) NodeIndex {
	w := NodeWidth(n)
	return NodeIndex(1<<log2(w)) - 1
}

// Left returns the left child of the parent node x.
func Left(x NodeIndex) NodeIndex {
	k := Level(x)
	if k == 0 {
		return x
	}
	return x ^ (1 << (k - 1))
}

// Right returns the right child of the parent node x.
func Right(x NodeIndex) NodeIndex {
	k := Level(x)
	if k == 0 {
		return x
	}
	return x ^ (3 << (k - 1))
}

// Parent returns the parent of x in a tree with n leaves. The root is its
// own parent; callers stop at Root(n).
func Parent(x NodeIndex, n uint32) NodeIndex {
	if x == Root(n) {
		return x
	}
	k := Level(x)
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

// Sibling returns the other child of x's parent in a tree with n leaves.
func Sibling(x NodeIndex, n uint32) NodeIndex {
	p := Parent(x, n)
	if x < p {
		return Right(p)
	}
	return Left(p)
}

// DirectPath returns the parents of x up to and including the root, in
// order from x upwards (Section 4.1). The root's direct path is empty.
func DirectPath(x NodeIndex, n uint32) []NodeIndex {
	r := Root(n)
	if x == r {
		return nil
	}
	d := make([]NodeIndex, 0, log2(n)+1)
	for x != r {
		x = Parent(x, n)
		d = append(d, x)
	}
	return d
}

// Copath returns the siblings of x and of each node of its direct path
// except the root, from x upwards (Section 4.1).
func Copath(x NodeIndex, n uint32) []NodeIndex {
	r := Root(n)
	if x == r {
		return nil
	}
	c := make([]NodeIndex, 0, log2(n)+1)
	for x != r {
		c = append(c, Sibling(x, n))
		x = Parent(x, n)
	}
	return c
}

// CommonAncestor returns the lowest common ancestor of x and y.
func CommonAncestor(x, y NodeIndex) NodeIndex {
	lx, ly := Level(x)+1, Level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	xn, yn := x, y
	k := uint(0)
	for xn != yn {
		xn >>= 1
		yn >>= 1
		k++
	}
	return (xn << k) + (1 << (k - 1)) - 1
}

// IsInSubtree reports whether node x is in the subtree rooted at a. The
// subtree of a node at level k spans the 2^(k+1)-1 consecutive node indices
// centred on it (Appendix C), a-(2^k-1) through a+(2^k-1).
func IsInSubtree(a, x NodeIndex) bool {
	half := uint64(1)<<Level(a) - 1
	return uint64(x)+half >= uint64(a) && uint64(x) <= uint64(a)+half
}
