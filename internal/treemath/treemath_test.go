package treemath

import (
	"slices"
	"testing"
)

// The expected values below are read off the figures of RFC 9420 by hand,
// not computed. The eight-leaf tree of Appendix C ("An Eight-Member Tree
// Represented as an Array") numbers its nodes
//
//	                     7
//	         3                       11
//	   1           5           9           13
//	0     2     4     6     8     10    12    14
//
// and the tree of Section 4.1.2 ("A Complete Tree with Five Members, with
// Labels for Blank Parent Nodes") labels the same positions
//
//	                     W
//	         U                       Y
//	   T           V           X           Z
//	A     B     _     _     E     F     G     H
//
// so A=0, B=2, E=8, F=10, G=12, H=14 and T=1, U=3, V=5, W=7, X=9, Y=11,
// Z=13; the two blank leaves are nodes 4 and 6.
const (
	nA, nB, nE, nF, nG, nH     NodeIndex = 0, 2, 8, 10, 12, 14
	nT, nU, nV, nW, nX, nY, nZ NodeIndex = 1, 3, 5, 7, 9, 11, 13
	n4, n6                     NodeIndex = 4, 6
)

const eight = 8 // leaves in the figures above

func path(x ...NodeIndex) []NodeIndex { return x }

func TestEightLeafShape(t *testing.T) {
	if w := NodeWidth(eight); w != 15 {
		t.Errorf("NodeWidth(8) = %d, want 15", w)
	}
	if r := Root(eight); r != nW {
		t.Errorf("Root(8) = %d, want %d", r, nW)
	}
	levels := map[NodeIndex]uint{
		nA: 0, nB: 0, n4: 0, n6: 0, nE: 0, nF: 0, nG: 0, nH: 0,
		nT: 1, nV: 1, nX: 1, nZ: 1,
		nU: 2, nY: 2,
		nW: 3,
	}
	for x, want := range levels {
		if got := Level(x); got != want {
			t.Errorf("Level(%d) = %d, want %d", x, got, want)
		}
		if got := x.IsLeaf(); got != (want == 0) {
			t.Errorf("IsLeaf(%d) = %v", x, got)
		}
	}
}

func TestChildrenParentsSiblings(t *testing.T) {
	children := []struct{ p, l, r NodeIndex }{
		{nW, nU, nY},
		{nU, nT, nV},
		{nY, nX, nZ},
		{nT, nA, nB},
		{nV, n4, n6},
		{nX, nE, nF},
		{nZ, nG, nH},
	}
	for _, c := range children {
		if got := Left(c.p); got != c.l {
			t.Errorf("Left(%d) = %d, want %d", c.p, got, c.l)
		}
		if got := Right(c.p); got != c.r {
			t.Errorf("Right(%d) = %d, want %d", c.p, got, c.r)
		}
		if got := Parent(c.l, eight); got != c.p {
			t.Errorf("Parent(%d) = %d, want %d", c.l, got, c.p)
		}
		if got := Parent(c.r, eight); got != c.p {
			t.Errorf("Parent(%d) = %d, want %d", c.r, got, c.p)
		}
		if got := Sibling(c.l, eight); got != c.r {
			t.Errorf("Sibling(%d) = %d, want %d", c.l, got, c.r)
		}
		if got := Sibling(c.r, eight); got != c.l {
			t.Errorf("Sibling(%d) = %d, want %d", c.r, got, c.l)
		}
	}
	// Leaves have no children; Left and Right return the leaf itself.
	if Left(nE) != nE || Right(nE) != nE {
		t.Errorf("children of leaf E: %d, %d", Left(nE), Right(nE))
	}
	// The root is its own parent (documented stop condition).
	if got := Parent(nW, eight); got != nW {
		t.Errorf("Parent(root) = %d, want %d", got, nW)
	}
}

// TestPathsFromSection4 checks the table of RFC 9420, Section 4.1.2 ("the
// direct paths, copaths, and filtered direct paths for the leaf nodes"),
// plus the two blank leaves, leaf H and the parent nodes, worked out from
// the same figure.
func TestPathsFromSection4(t *testing.T) {
	cases := []struct {
		name         string
		x            NodeIndex
		direct, copa []NodeIndex
	}{
		{"A", nA, path(nT, nU, nW), path(nB, nV, nY)},
		{"B", nB, path(nT, nU, nW), path(nA, nV, nY)},
		{"E", nE, path(nX, nY, nW), path(nF, nZ, nU)},
		{"F", nF, path(nX, nY, nW), path(nE, nZ, nU)},
		{"G", nG, path(nZ, nY, nW), path(nH, nX, nU)},
		// Not in the RFC's table; read off the same figure.
		{"leaf 2", n4, path(nV, nU, nW), path(n6, nT, nY)},
		{"leaf 3", n6, path(nV, nU, nW), path(n4, nT, nY)},
		{"H", nH, path(nZ, nY, nW), path(nG, nX, nU)},
		{"X", nX, path(nY, nW), path(nZ, nU)},
		{"U", nU, path(nW), path(nY)},
		{"W (root)", nW, nil, nil},
	}
	for _, c := range cases {
		if got := DirectPath(c.x, eight); !slices.Equal(got, c.direct) {
			t.Errorf("DirectPath(%s=%d) = %v, want %v", c.name, c.x, got, c.direct)
		}
		if got := Copath(c.x, eight); !slices.Equal(got, c.copa) {
			t.Errorf("Copath(%s=%d) = %v, want %v", c.name, c.x, got, c.copa)
		}
	}
}

func TestCommonAncestor(t *testing.T) {
	cases := []struct{ x, y, want NodeIndex }{
		{nA, nB, nT},
		{nA, nE, nW},
		{nE, nF, nX},
		{nE, nG, nY},
		{nF, nH, nY},
		{nG, nH, nZ},
		{nB, n4, nU},
		{n6, nH, nW},
		{nA, nA, nA}, // a node is its own lowest common ancestor
		{nT, nB, nT}, // one is an ancestor of the other
		{nB, nU, nU},
		{nW, nA, nW},
		{nU, nF, nW}, // two parents
		{nX, nG, nY},
		{nV, nT, nU},
	}
	for _, c := range cases {
		if got := CommonAncestor(c.x, c.y); got != c.want {
			t.Errorf("CommonAncestor(%d, %d) = %d, want %d", c.x, c.y, got, c.want)
		}
		if got := CommonAncestor(c.y, c.x); got != c.want {
			t.Errorf("CommonAncestor(%d, %d) = %d, want %d", c.y, c.x, got, c.want)
		}
	}
}

func TestIsInSubtree(t *testing.T) {
	cases := []struct {
		a, x NodeIndex
		want bool
	}{
		{nU, nB, true},
		{nU, nV, true},
		{nU, n6, true},
		{nU, nE, false},
		{nU, nW, false}, // an ancestor is not in the subtree
		{nY, nH, true},
		{nY, nX, true},
		{nY, nA, false},
		{nT, nV, false},
		{nV, n4, true},
		{nV, nU, false},
		{nX, nX, true},
		{nA, nA, true},
		{nA, nT, false},
		{nA, nB, false},
	}
	for _, c := range cases {
		if got := IsInSubtree(c.a, c.x); got != c.want {
			t.Errorf("IsInSubtree(%d, %d) = %v, want %v", c.a, c.x, got, c.want)
		}
	}
	for x := NodeIndex(0); x < 15; x++ {
		if !IsInSubtree(nW, x) {
			t.Errorf("node %d not in the root's subtree", x)
		}
	}
}

func TestLeafNodeIndices(t *testing.T) {
	// Appendix C: "leaf nodes are even-numbered nodes, with the n-th leaf
	// at 2*n".
	for _, c := range []struct {
		leaf LeafIndex
		node NodeIndex
	}{{0, 0}, {1, 2}, {2, 4}, {7, 14}} {
		if got := c.leaf.Node(); got != c.node {
			t.Errorf("LeafIndex(%d).Node() = %d, want %d", c.leaf, got, c.node)
		}
		if got := c.node.Leaf(); got != c.leaf {
			t.Errorf("NodeIndex(%d).Leaf() = %d, want %d", c.node, got, c.leaf)
		}
	}
	if got := LeafIndex(1<<31 - 1).Node(); got != 1<<32-2 {
		t.Errorf("last leaf of a 2^31-leaf tree is node %d, want %d", got, uint32(1<<32-2))
	}
}

func TestSmallTrees(t *testing.T) {
	// One leaf: the leaf is the root and has an empty direct path.
	if NodeWidth(1) != 1 || Root(1) != 0 {
		t.Errorf("one leaf: width %d, root %d", NodeWidth(1), Root(1))
	}
	if d := DirectPath(0, 1); len(d) != 0 {
		t.Errorf("one leaf: direct path %v", d)
	}
	if c := Copath(0, 1); len(c) != 0 {
		t.Errorf("one leaf: copath %v", c)
	}
	if NodeWidth(0) != 0 {
		t.Errorf("NodeWidth(0) = %d", NodeWidth(0))
	}
	// Two leaves: 0 - 1 - 2.
	if Root(2) != 1 || !slices.Equal(DirectPath(2, 2), path(1)) || !slices.Equal(Copath(2, 2), path(0)) {
		t.Errorf("two leaves: root %d, path %v, copath %v", Root(2), DirectPath(2, 2), Copath(2, 2))
	}
	// Four leaves: the left half of the eight-leaf figure.
	if Root(4) != nU || !slices.Equal(DirectPath(nB, 4), path(nT, nU)) || !slices.Equal(Copath(nB, 4), path(nA, nV)) {
		t.Errorf("four leaves: root %d, path %v, copath %v", Root(4), DirectPath(nB, 4), Copath(nB, 4))
	}
}

func TestLargeTree(t *testing.T) {
	// In a tree of 2^k leaves the root is node 2^k - 1 and the ancestors of
	// leaf 0 are nodes 2^j - 1 for j = 1..k.
	const k = 20
	n := uint32(1) << k
	if r := Root(n); r != 1<<k-1 {
		t.Fatalf("Root(2^20) = %d", r)
	}
	want := make([]NodeIndex, 0, k)
	for j := 1; j <= k; j++ {
		want = append(want, NodeIndex(1)<<j-1)
	}
	if got := DirectPath(0, n); !slices.Equal(got, want) {
		t.Fatalf("DirectPath(0, 2^20) = %v", got)
	}
	if got := Level(1<<k - 1); got != k {
		t.Fatalf("Level(2^20-1) = %d", got)
	}
	// The largest tree NodeIndex can hold: 2^31 leaves, 2^32-1 nodes.
	if w := NodeWidth(1 << 31); w != 1<<32-1 {
		t.Fatalf("NodeWidth(2^31) = %d", w)
	}
	if r := Root(1 << 31); r != 1<<31-1 {
		t.Fatalf("Root(2^31) = %d", r)
	}
}

func BenchmarkDirectPath(b *testing.B) {
	const n = 1 << 17
	for i := 0; b.Loop(); i++ {
		_ = DirectPath(NodeIndex(2*(i%n)), n)
	}
}

// TestSubtreeAgreesWithDirectPath checks, for every pair of nodes of a
// 16-leaf tree, the definitions of Section 4.1: x is in the subtree of a
// exactly when a is x or on x's direct path, and the lowest common ancestor
// is the first node the two direct paths (each starting with the node
// itself) share.
func TestSubtreeAgreesWithDirectPath(t *testing.T) {
	const n = 16
	w := NodeIndex(NodeWidth(n))
	for x := NodeIndex(0); x < w; x++ {
		up := append(path(x), DirectPath(x, n)...)
		for a := NodeIndex(0); a < w; a++ {
			if got, want := IsInSubtree(a, x), slices.Contains(up, a); got != want {
				t.Errorf("IsInSubtree(%d, %d) = %v, but %d on the path %v is %v", a, x, got, a, up, want)
			}
			upA := append(path(a), DirectPath(a, n)...)
			var lca NodeIndex
			for _, p := range up {
				if slices.Contains(upA, p) {
					lca = p
					break
				}
			}
			if got := CommonAncestor(x, a); got != lca {
				t.Errorf("CommonAncestor(%d, %d) = %d, paths %v and %v meet at %d", x, a, got, up, upA, lca)
			}
		}
	}
}
