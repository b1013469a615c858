package tree

import (
	"bytes"
	"crypto"
	"fmt"
	"sync"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// fullTree is a tree of n members in which every member has committed
// (BuildFull).
type fullTree struct {
	s       *ciphersuite.Suite
	n       uint32
	t       *Tree
	rt      message.RatchetTree
	groupID []byte
	f       *Full
}

var (
	fullTreesMu sync.Mutex
	fullTrees   = map[uint32]*fullTree{}
)

// getFullTree builds the full tree of n members once per process.
func getFullTree(tb testing.TB, n uint32) *fullTree {
	fullTreesMu.Lock()
	defer fullTreesMu.Unlock()
	if ft, ok := fullTrees[n]; ok {
		return ft
	}
	s := mustSuite(tb, suite1)
	f, err := BuildFull(s, []byte("benchmark group"), n, 1)
	if err != nil {
		tb.Fatal(err)
	}
	ft := &fullTree{s: s, n: n, t: f.Tree(), rt: f.Tree().RatchetTree(), groupID: f.GroupID(), f: f}
	fullTrees[n] = ft
	return ft
}

func (ft *fullTree) signer(i LeafIndex) crypto.Signer { return ft.f.Signer(i) }

// hasMembers reports whether the subtree of x holds a member.
func (ft *fullTree) hasMembers(x NodeIndex) bool { return ft.f.hasMembers(x) }

// privateState returns the private state of leaf i: its leaf key and the
// keys of the non-blank nodes on its direct path.
func (ft *fullTree) privateState(tb testing.TB, i LeafIndex) *PrivateState {
	p, err := ft.f.PrivateState(i)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func (ft *fullTree) opts() *PathOptions {
	return &PathOptions{Options: Options{GroupID: ft.groupID}}
}

// TestFullTreeBuilder checks the benchmark trees: valid, full, and usable
// by every member.
func TestFullTreeBuilder(t *testing.T) {
	for _, n := range []uint32{2, 3, 10, 33} {
		ft := getFullTree(t, n)
		if err := ft.t.Validate(ft.t.TreeHash(), &Options{GroupID: ft.groupID}); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		v := ft.t.View()
		if leafCount(v) != int(n) {
			t.Fatalf("n=%d: %d members", n, leafCount(v))
		}
		for x := NodeIndex(1); uint32(x) < v.Width(); x += 2 {
			if v.IsBlank(x) == (ft.hasMembers(treemath.Left(x)) && ft.hasMembers(treemath.Right(x))) {
				t.Fatalf("n=%d: node %d blank=%v", n, x, v.IsBlank(x))
			}
		}
		d := ft.t.Diff()
		c, err := d.CreatePath(0, ft.t.Leaf(0), ft.signer(0), ft.opts())
		if err != nil {
			t.Fatal(err)
		}
		gc := testGroupContext(d.TreeHash())
		up, err := c.Encrypt(gc)
		if err != nil {
			t.Fatal(err)
		}
		for j := LeafIndex(1); uint32(j) < n; j++ {
			p := ft.privateState(t, j)
			if err := p.Check(ft.t.View()); err != nil {
				t.Fatal(err)
			}
			a, err := ft.t.Diff().ApplyPath(0, up, ft.opts())
			if err != nil {
				t.Fatal(err)
			}
			r, err := a.Decrypt(p, gc)
			if err != nil {
				t.Fatalf("n=%d, leaf %d: %v", n, j, err)
			}
			if !bytes.Equal(r.CommitSecret(), c.CommitSecret()) {
				t.Fatalf("n=%d, leaf %d: commit secret differs", n, j)
			}
		}
	}
}

var benchSizes = []uint32{10, 100, 1000, 10000, 100000}

func forSizes(b *testing.B, f func(b *testing.B, ft *fullTree)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if n > 10000 && testing.Short() {
				b.Skip("N=100000 skipped in -short mode")
			}
			ft := getFullTree(b, n)
			b.ResetTimer()
			f(b, ft)
		})
	}
}

// BenchmarkCreateUpdatePath: leaf 0 of a full tree creates a commit path:
// key derivation, parent hashes, leaf signature, tree hash, and one
// encryption per copath node (in parallel).
func BenchmarkCreateUpdatePath(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) {
		signer := ft.signer(0)
		for b.Loop() {
			d := ft.t.Diff()
			c, err := d.CreatePath(0, ft.t.Leaf(0), signer, ft.opts())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Encrypt(testGroupContext(d.TreeHash())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// applyBench measures a receiver at leaf r processing leaf 0's path:
// leaf validation (signature), path checks, parent hashes, merging into a
// diff, the new tree hash, decryption and key derivation.
func applyBench(b *testing.B, ft *fullTree, r LeafIndex) {
	d := ft.t.Diff()
	c, err := d.CreatePath(0, ft.t.Leaf(0), ft.signer(0), ft.opts())
	if err != nil {
		b.Fatal(err)
	}
	up, err := c.Encrypt(testGroupContext(d.TreeHash()))
	if err != nil {
		b.Fatal(err)
	}
	priv := ft.privateState(b, r)
	b.ResetTimer()
	for b.Loop() {
		d := ft.t.Diff()
		a, err := d.ApplyPath(0, up, ft.opts())
		if err != nil {
			b.Fatal(err)
		}
		res, err := a.Decrypt(priv, testGroupContext(d.TreeHash()))
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(res.CommitSecret(), c.CommitSecret()) {
			b.Fatal("commit secret differs")
		}
	}
}

// BenchmarkApplyUpdatePath: the last member (in the other half of the
// tree, like half of all receivers) processes leaf 0's path.
func BenchmarkApplyUpdatePath(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) { applyBench(b, ft, LeafIndex(ft.n-1)) })
}

// BenchmarkApplyUpdatePathNearest: leaf 1, the sender's sibling, which
// derives the key of every node on the path (the worst case).
func BenchmarkApplyUpdatePathNearest(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) { applyBench(b, ft, 1) })
}

// BenchmarkValidateTree: a joiner imports the (decoded) ratchet tree,
// computing every tree hash, and validates it: parent hashes, unmerged
// leaves, key uniqueness and every leaf signature on all cores.
func BenchmarkValidateTree(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) {
		want := ft.t.TreeHash()
		for b.Loop() {
			t, err := FromRatchetTree(ft.s, ft.rt)
			if err != nil {
				b.Fatal(err)
			}
			if err := t.Validate(want, &Options{GroupID: ft.groupID}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
