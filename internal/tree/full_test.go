package tree

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mlskit/mls/internal/treemath"
)

// TestBuildFullMatchesGrownTree compares the directly built full tree with
// one grown through real commits (every member added, then every member
// from the last to the first committing once with an UpdatePath): both
// validate (RFC 9420, Sections 7.9.2 and 12.4.3.1), the same parents are
// set, no node has unmerged leaves, and in the built tree every member
// holds the keys of its direct path and decrypts an UpdatePath from any
// other member.
func TestBuildFullMatchesGrownTree(t *testing.T) {
	for _, n := range []uint32{1, 2, 3, 5, 8, 13} {
		g := growTree(t, suite1, int(n), uint64(n))
		for i := int(n) - 1; i >= 0; i-- {
			g.commit(LeafIndex(i), 0)
		}
		f, err := BuildFull(g.s, g.groupID, n, 7)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		ft := f.Tree()
		for name, tr := range map[string]*Tree{"grown": g.t, "built": ft, "built, reimported": rebuilt(t, ft.View())} {
			if err := tr.Validate(tr.TreeHash(), &Options{GroupID: g.groupID}); err != nil {
				t.Fatalf("n=%d, %s tree: %v", n, name, err)
			}
		}
		gv, fv := g.t.View(), ft.View()
		if gv.NumLeaves() != fv.NumLeaves() || leafCount(fv) != int(n) {
			t.Fatalf("n=%d: %d leaves grown, %d built with %d members", n, gv.NumLeaves(), fv.NumLeaves(), leafCount(fv))
		}
		for x := NodeIndex(0); uint32(x) < gv.Width(); x++ {
			if gv.IsBlank(x) != fv.IsBlank(x) {
				t.Fatalf("n=%d: node %d blank grown %v, built %v", n, x, gv.IsBlank(x), fv.IsBlank(x))
			}
			if p := fv.Parent(x); p != nil && len(p.UnmergedLeaves) != 0 {
				t.Fatalf("n=%d: node %d has unmerged leaves", n, x)
			}
			if !x.IsLeaf() && !fv.IsBlank(x) && !bytes.Equal(fv.EncryptionKey(x), mustKeyPair(t, f, x)) {
				t.Fatalf("n=%d: node %d key is not derived from its path secret", n, x)
			}
		}
		// Every member's private state fits; every other member decrypts
		// a path from sender.
		for _, sender := range []LeafIndex{0, LeafIndex(n - 1), LeafIndex(n / 2)} {
			d := ft.Diff()
			c, err := d.CreatePath(sender, ft.Leaf(sender), f.Signer(sender), &PathOptions{Options: Options{GroupID: g.groupID}})
			if err != nil {
				t.Fatal(err)
			}
			gc := testGroupContext(d.TreeHash())
			up, err := c.Encrypt(gc)
			if err != nil {
				t.Fatal(err)
			}
			for j := range LeafIndex(n) {
				p, err := f.PrivateState(j)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Check(fv); err != nil {
					t.Fatalf("n=%d, leaf %d: %v", n, j, err)
				}
				if got := len(p.Nodes()); got != len(fv.FilteredDirectPath(j)) {
					t.Fatalf("n=%d, leaf %d holds %d node keys, its filtered direct path has %d nodes", n, j, got, len(fv.FilteredDirectPath(j)))
				}
				if j == sender {
					continue
				}
				a, err := ft.Diff().ApplyPath(sender, up, &PathOptions{Options: Options{GroupID: g.groupID}})
				if err != nil {
					t.Fatalf("n=%d, leaf %d applying the path of %d: %v", n, j, sender, err)
				}
				r, err := a.Decrypt(p, gc)
				if err != nil {
					t.Fatalf("n=%d, leaf %d decrypting the path of %d: %v", n, j, sender, err)
				}
				if !bytes.Equal(r.CommitSecret(), c.CommitSecret()) {
					t.Fatalf("n=%d, leaf %d: commit secret differs", n, j)
				}
			}
		}
	}
}

func mustKeyPair(t *testing.T, f *Full, x NodeIndex) []byte {
	t.Helper()
	kp, err := nodeKeyPair(f.Suite(), f.PathSecret(x))
	if err != nil {
		t.Fatal(err)
	}
	return kp.pub
}

// TestBuildFullPathSecretChain checks the TreeKEM chain: along leaf 0's
// filtered direct path (all of which leaf 0 set last), each path secret is
// DeriveSecret of the one below (RFC 9420, Section 7.4).
func TestBuildFullPathSecretChain(t *testing.T) {
	s := mustSuite(t, suite1)
	f, err := BuildFull(s, []byte("g"), 37, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := f.Tree().View().FilteredDirectPath(0)
	if len(path) < 3 {
		t.Fatalf("filtered direct path of %d nodes", len(path))
	}
	for k := 1; k < len(path); k++ {
		if !bytes.Equal(f.PathSecret(path[k]), s.DeriveSecret(f.PathSecret(path[k-1]), "path")) {
			t.Fatalf("path secret of node %d is not derived from node %d's", path[k], path[k-1])
		}
	}
	if _, err := BuildFull(s, nil, 0, 1); err == nil {
		t.Fatal("BuildFull accepted 0 members")
	}
	if f.PathSecret(treemath.Root(f.Tree().NumLeaves())) == nil {
		t.Fatal("root has no path secret")
	}
}

// BenchmarkBuildFull: building the full tree of N members (key
// derivation, signatures and hashes on all cores).
func BenchmarkBuildFull(b *testing.B) {
	s := mustSuite(b, suite1)
	for _, n := range []uint32{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if n > 10000 && testing.Short() {
				b.Skip("N=100000 skipped in -short mode")
			}
			for b.Loop() {
				if _, err := BuildFull(s, []byte("g"), n, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestImportedTreeFreeLeaf: a tree built from its nodes knows its first
// blank leaf, so an Add goes there without scanning the members before it
// (RFC 9420, Section 12.1.1: the leftmost blank leaf).
func TestImportedTreeFreeLeaf(t *testing.T) {
	f, err := BuildFull(mustSuite(t, suite1), []byte("g"), 6, 1)
	if err != nil {
		t.Fatal(err)
	}
	tr := rebuilt(t, f.Tree().View())
	if tr.free != 6 {
		t.Fatalf("first blank leaf %d, want 6", tr.free)
	}
	d := tr.Diff()
	if i, err := d.Add(tr.Leaf(0)); err != nil || i != 6 {
		t.Fatalf("Add went to leaf %d (%v), want 6", i, err)
	}
	d = tr.Diff()
	if err := d.Remove(2); err != nil {
		t.Fatal(err)
	}
	tr = rebuilt(t, d)
	if tr.free != 2 {
		t.Fatalf("first blank leaf %d after removing leaf 2, want 2", tr.free)
	}
}
