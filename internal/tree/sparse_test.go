package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// The tree keeps only non-blank nodes, the hashes of non-empty subtrees
// and those of one node in 2^hiLevel (tree.go). These tests compare every
// cached value with a plain recursion over the dense node list, on trees
// large enough to have cached levels, parallel hashing (1024 leaves and
// more) and all-blank subtrees, before and after diffs.

// naive holds the tree hash (RFC 9420, Section 7.8) and resolution size
// (Section 4.1.1) of every node of a dense tree, computed by a plain
// recursion that shares nothing with the cache but the two hash inputs.
type naive struct {
	hashes [][]byte
	res    []uint32
}

func naiveOf(tb testing.TB, d *Diff) *naive {
	tb.Helper()
	w := NodeIndex(d.Width())
	nv := &naive{hashes: make([][]byte, w), res: make([]uint32, w)}
	var walk func(x NodeIndex)
	walk = func(x NodeIndex) {
		n := d.node(x)
		if x.IsLeaf() {
			nv.hashes[x] = leafHash(d.Suite(), x.Leaf(), n.leaf)
			if n.leaf != nil {
				nv.res[x] = 1
			}
			return
		}
		l, r := treemath.Left(x), treemath.Right(x)
		walk(l)
		walk(r)
		nv.hashes[x] = parentHash(d.Suite(), n.parent, nv.hashes[l], nv.hashes[r])
		if n.parent != nil {
			nv.res[x] = 1 + uint32(len(n.parent.UnmergedLeaves))
		} else {
			nv.res[x] = nv.res[l] + nv.res[r]
		}
	}
	walk(treemath.Root(d.NumLeaves()))
	return nv
}

func (nv *naive) check(tb testing.TB, step string, d *Diff) {
	tb.Helper()
	for x := range NodeIndex(d.Width()) {
		if got := d.NodeHash(x); !bytes.Equal(got, nv.hashes[x]) {
			tb.Fatalf("%s: hash of node %d: %x, want %x", step, x, got, nv.hashes[x])
		}
		if got := d.resLen(x); got != nv.res[x] {
			tb.Fatalf("%s: resolution size of node %d: %d, want %d", step, x, got, nv.res[x])
		}
	}
}

// keyed makes a leaf or parent with keys unique to k.
func keyedLeaf(k uint32) *message.LeafNode {
	b := binary.BigEndian.AppendUint32(nil, k)
	return &message.LeafNode{EncryptionKey: append([]byte("e"), b...), SignatureKey: append([]byte("s"), b...),
		Credential: message.Credential{Type: message.CredentialBasic, Identity: b}, Source: message.LeafNodeSourceUpdate}
}

func keyedParent(k uint32) *message.ParentNode {
	return &message.ParentNode{EncryptionKey: binary.BigEndian.AppendUint32([]byte("p"), k), ParentHash: []byte{}, UnmergedLeaves: []uint32{}}
}

// randomTree makes a tree of about leaves leaves in which each leaf is
// non-blank with probability fill and each parent with probability
// fill/4, with long blank runs (a quarter of the leaves, in one piece).
func randomTree(tb testing.TB, rng *rand.Rand, leaves int, fill float64) *Tree {
	tb.Helper()
	rt := make(message.RatchetTree, 2*leaves-1)
	gap := rng.IntN(leaves)
	for i := range rt {
		x := NodeIndex(i)
		blankRun := int(x.Leaf()) >= gap && int(x.Leaf()) < gap+leaves/4
		switch {
		case x.IsLeaf() && !blankRun && rng.Float64() < fill:
			rt[i] = &message.Node{Leaf: keyedLeaf(uint32(i))}
		case !x.IsLeaf() && !blankRun && rng.Float64() < fill/4:
			rt[i] = &message.Node{Parent: keyedParent(uint32(i))}
		}
	}
	rt[len(rt)-1] = &message.Node{Leaf: keyedLeaf(uint32(len(rt) - 1))}
	tr, err := FromRatchetTree(mustSuite(tb, suite1), rt)
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

func TestSparseCachesMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, leaves := range []int{1, 2, 5, 16, 40, 1500} {
		for _, fill := range []float64{0.05, 0.5, 1} {
			tr := randomTree(t, rng, leaves, fill)
			naiveOf(t, tr.View()).check(t, "built", tr.View())
			checkSparse(t, tr.View())
			next := uint32(1 << 30)
			for step := range 30 {
				d := tr.Diff()
				switch rng.IntN(3) {
				case 0:
					for range 1 + rng.IntN(5) {
						next++
						if _, err := d.Add(keyedLeaf(next)); err != nil {
							t.Fatal(err)
						}
					}
				case 1:
					i := LeafIndex(rng.IntN(int(d.NumLeaves())))
					if d.Leaf(i) != nil {
						if err := d.Remove(i); err != nil {
							t.Fatal(err)
						}
					}
				case 2:
					i := LeafIndex(rng.IntN(int(d.NumLeaves())))
					if d.Leaf(i) != nil {
						next++
						if err := d.Update(i, keyedLeaf(next)); err != nil {
							t.Fatal(err)
						}
						// A parent on the path, as a commit would set it.
						if p := treemath.DirectPath(i.Node(), d.NumLeaves()); len(p) > 0 {
							next++
							d.set(p[0], node{parent: keyedParent(next)})
						}
					}
				}
				want := naiveOf(t, d)
				want.check(t, "diff", d)
				checkSparse(t, d)
				if err := d.Merge(); err != nil {
					t.Fatal(err)
				}
				want.check(t, "merged", tr.View())
				checkSparse(t, tr.View())
				if step%10 == 9 {
					naiveOf(t, rebuilt(t, tr.View()).View()).check(t, "merged vs rebuilt", tr.View())
				}
			}
		}
	}
}

// paddedTree encodes a ratchet_tree of n entries: two leaves at 0 and 2,
// blank nodes, and a leaf last.
func paddedTree(n int) []byte {
	e := wire.NewEncoder(make([]byte, 0, n+200))
	e.Vector(func(e *wire.Encoder) {
		for i := range n {
			if i == 0 || i == 2 || i == n-1 {
				e.Optional(true)
				(&message.Node{Leaf: keyedLeaf(uint32(i))}).Encode(e)
				continue
			}
			e.Optional(false)
		}
	})
	return e.MustBytes()
}

// TestBlankPaddedTreeCost: a ratchet tree of 2^20 - 1 entries, nearly all
// blank (about 1 MiB), decodes, builds and validates allocating less than
// 4x its size: blank nodes allocate nothing of their own.
func TestBlankPaddedTreeCost(t *testing.T) {
	raw := paddedTree(1<<20 - 1)
	s := mustSuite(t, suite1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rt, err := message.UnmarshalSparseRatchetTree(raw, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := FromSparse(s, rt, 1<<19)
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Validate(tr.TreeHash(), &Options{SkipLifetime: true})
	runtime.ReadMemStats(&after)
	// The fake leaves have no valid signatures: validation gets that far.
	if !errors.Is(err, ErrCapabilities) && !errors.Is(err, ErrLeafSignature) && !errors.Is(err, ErrCredentialUnsupported) {
		t.Fatalf("Validate: %v, want a leaf error", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4*uint64(len(raw)) {
		t.Errorf("%d-byte tree: %d bytes allocated, more than 4x", len(raw), n)
	}
	if tr.NumLeaves() != 1<<19 {
		t.Fatalf("NumLeaves = %d", tr.NumLeaves())
	}
}

// TestLeafLimit: the decoder stops at maxNodes entries, and FromSparse
// refuses a tree whose full size would exceed maxLeaves, both before
// hashing anything.
func TestLeafLimit(t *testing.T) {
	s := mustSuite(t, suite1)
	raw := paddedTree(1<<12 + 1) // needs 2^12 leaves
	if _, err := message.UnmarshalSparseRatchetTree(raw, 1<<12); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("decoding past the node limit: %v, want ErrTooLarge", err)
	}
	rt, err := message.UnmarshalSparseRatchetTree(raw, 1<<13)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromSparse(s, rt, 1<<11); !errors.Is(err, ErrTooManyLeaves) {
		t.Fatalf("FromSparse over the leaf limit: %v, want ErrTooManyLeaves", err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := FromSparse(s, rt, 1<<11); err == nil {
			t.Fatal("accepted")
		}
	})
	if raceEnabled {
		t.Logf("not counting the %v allocations of a rejected tree: the race detector adds its own", allocs)
	} else if allocs > 5 {
		t.Errorf("a rejected tree made %v allocations; nothing should be built", allocs)
	}
	tr, err := FromSparse(s, rt, 1<<12)
	if err != nil {
		t.Fatal(err)
	}
	if tr.NumLeaves() != 1<<12 {
		t.Fatalf("NumLeaves = %d, want %d", tr.NumLeaves(), 1<<12)
	}
}

// BenchmarkBlankPaddedTree builds and validates a ratchet tree of 2^21 - 1
// entries (2 MiB, 2^20 leaves), nearly all blank.
func BenchmarkBlankPaddedTree(b *testing.B) {
	raw := paddedTree(1<<21 - 1)
	s := mustSuite(b, suite1)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		rt, err := message.UnmarshalSparseRatchetTree(raw, 1<<21)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := FromSparse(s, rt, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		_ = tr.Validate(tr.TreeHash(), &Options{SkipLifetime: true})
	}
}

// checkSparse compares Diff.Sparse with the dense RatchetTree.
func checkSparse(tb testing.TB, d *Diff) {
	tb.Helper()
	dense := d.RatchetTree()
	sp := d.Sparse()
	if sp.Width != uint32(len(dense)) {
		tb.Fatalf("Sparse: width %d, RatchetTree has %d nodes", sp.Width, len(dense))
	}
	k := 0
	for i, n := range dense {
		if n == nil {
			continue
		}
		if k >= len(sp.Nodes) || sp.Nodes[k].Index != uint32(i) || !bytes.Equal(message.MustMarshal(sp.Nodes[k].Node), message.MustMarshal(n)) {
			tb.Fatalf("Sparse: node %d differs from RatchetTree", i)
		}
		k++
	}
	if k != len(sp.Nodes) {
		tb.Fatalf("Sparse: %d nodes, RatchetTree %d", len(sp.Nodes), k)
	}
}
