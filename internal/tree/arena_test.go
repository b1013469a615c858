package tree

import (
	"math/rand/v2"
	"testing"
)

// checkArena checks the bookkeeping of the tree's arena: every entry is
// either indexed by exactly one node or spare (and then holds nothing),
// and every node kept below hiLevel has its hash in its entry.
func checkArena(tb testing.TB, tr *Tree) {
	tb.Helper()
	if len(tr.nodes) != len(tr.res) || len(tr.hashes) != len(tr.nodes)*tr.suite.HashSize() {
		tb.Fatalf("arena arrays of %d nodes, %d sizes, %d hash bytes", len(tr.nodes), len(tr.res), len(tr.hashes))
	}
	used := make([]bool, len(tr.nodes))
	for x, p := range tr.idx {
		if used[p] {
			tb.Fatalf("entry %d indexed twice (again by node %d)", p, x)
		}
		used[p] = true
		if x >= tr.width() {
			tb.Fatalf("node %d kept beyond the width %d", x, tr.width())
		}
	}
	for _, p := range tr.spare {
		if used[p] {
			tb.Fatalf("entry %d both spare and indexed", p)
		}
		used[p] = true
		if !tr.nodes[p].blank() {
			tb.Fatalf("spare entry %d still holds a node", p)
		}
	}
	for p, u := range used {
		if !u {
			tb.Fatalf("entry %d neither indexed nor spare", p)
		}
	}
	// The arena grows by an eighth, not by append's quarter.
	if n := len(tr.nodes); cap(tr.nodes) > n+n/8+64 || cap(tr.hashes) > (n+n/8+64)*tr.suite.HashSize() {
		tb.Fatalf("arena of %d entries has room for %d", n, cap(tr.nodes))
	}
}

// TestArenaReuse: merges that blank nodes release their entries, later
// merges take them again, so that adding and removing members over and
// over does not grow the arena; hashes and resolutions stay right.
func TestArenaReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tr := randomTree(t, rng, 200, 0.5)
	checkArena(t, tr)
	next := uint32(1 << 30)
	peak := 0
	for step := range 300 {
		d := tr.Diff()
		for range 1 + rng.IntN(4) {
			i := LeafIndex(rng.IntN(int(d.NumLeaves())))
			if d.Leaf(i) == nil {
				continue
			}
			if err := d.Remove(i); err != nil {
				t.Fatal(err)
			}
		}
		for range 1 + rng.IntN(4) {
			next++
			i, err := d.Add(keyedLeaf(next))
			if err != nil {
				t.Fatal(err)
			}
			next++
			if err := d.Update(i, keyedLeaf(next)); err != nil {
				t.Fatal(err)
			}
		}
		want := naiveOf(t, d)
		if err := d.Merge(); err != nil {
			t.Fatal(err)
		}
		want.check(t, "merged", tr.View())
		checkArena(t, tr)
		peak = max(peak, len(tr.idx))
		if step == 299 && len(tr.nodes) > peak+int(tr.width())/8+64 {
			t.Fatalf("arena of %d entries for at most %d in use", len(tr.nodes), peak)
		}
	}
}
