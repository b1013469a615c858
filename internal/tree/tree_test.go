package tree

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

const suite1 = ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// fakeLeaf and fakeParent make nodes with distinct keys for shape tests
// that do not look at signatures.
func fakeLeaf(k byte) *message.Node {
	return &message.Node{Leaf: &message.LeafNode{
		EncryptionKey: []byte{'e', k}, SignatureKey: []byte{'s', k},
		Credential: message.Credential{Type: message.CredentialBasic, Identity: []byte{k}},
		Source:     message.LeafNodeSourceUpdate,
	}}
}

func fakeParent(k byte, unmerged ...uint32) *message.Node {
	if unmerged == nil {
		unmerged = []uint32{}
	}
	return &message.Node{Parent: &message.ParentNode{EncryptionKey: []byte{'p', k}, ParentHash: []byte{}, UnmergedLeaves: unmerged}}
}

func mustTree(t *testing.T, rt message.RatchetTree) *Tree {
	t.Helper()
	tr, err := FromRatchetTree(mustSuite(t, suite1), rt)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func nodes(xs ...uint32) []NodeIndex {
	out := make([]NodeIndex, len(xs))
	for i, x := range xs {
		out[i] = NodeIndex(x)
	}
	return out
}

// TestResolutionRFCExample is the tree of RFC 9420, Section 4.1.1
// (Figure 10): X[B] at node 3, Y at node 9, leaves A B _ D E F _ H.
func TestResolutionRFCExample(t *testing.T) {
	rt := message.RatchetTree{
		fakeLeaf('A'), nil, fakeLeaf('B'), fakeParent('X', 1), nil, nil, fakeLeaf('D'), nil,
		fakeLeaf('E'), fakeParent('Y'), fakeLeaf('F'), nil, nil, nil, fakeLeaf('H'),
	}
	v := mustTree(t, rt).View()
	for _, c := range []struct {
		x    NodeIndex
		want []NodeIndex
	}{
		{3, nodes(3, 2)},        // [X, B]
		{4, nodes()},            // leaf 2 is blank
		{12, nodes()},           // leaf 6 is blank
		{7, nodes(3, 2, 9, 14)}, // [X, B, Y, H]
		{1, nodes(0, 2)},        // A, B
		{11, nodes(9, 14)},      // Y, H
		{13, nodes(14)},         // H
		{5, nodes(6)},           // D
		{9, nodes(9)},           // Y
		{0, nodes(0)},           // A
		{15, nil},               // outside the tree
	} {
		if got := v.Resolution(c.x); !slices.Equal(got, c.want) {
			t.Errorf("resolution of node %d: got %v, want %v", c.x, got, c.want)
		}
	}
	if got := v.Resolution(7, 1, 7); !slices.Equal(got, nodes(3, 9)) {
		t.Errorf("resolution of the root without leaves 1 and 7: got %v, want [3 9]", got)
	}
}

// TestFilteredDirectPathRFCExample is the tree of RFC 9420, Section 4.1.2
// (Figure 11) and its table.
func TestFilteredDirectPathRFCExample(t *testing.T) {
	rt := message.RatchetTree{
		fakeLeaf('A'), fakeParent('T'), fakeLeaf('B'), nil, nil, nil, nil, fakeParent('W'),
		fakeLeaf('E'), fakeParent('X'), fakeLeaf('F'), fakeParent('Y'), fakeLeaf('G'),
	}
	v := mustTree(t, rt).View()
	if v.NumLeaves() != 8 {
		t.Fatalf("NumLeaves = %d, want 8", v.NumLeaves())
	}
	for _, c := range []struct {
		leaf LeafIndex
		want []NodeIndex
	}{
		{0, nodes(1, 7)},     // A: T, W
		{1, nodes(1, 7)},     // B: T, W
		{4, nodes(9, 11, 7)}, // E: X, Y, W
		{5, nodes(9, 11, 7)}, // F: X, Y, W
		{6, nodes(11, 7)},    // G: Y, W
	} {
		if got := v.FilteredDirectPath(c.leaf); !slices.Equal(got, c.want) {
			t.Errorf("filtered direct path of leaf %d: got %v, want %v", c.leaf, got, c.want)
		}
	}
}

func TestFromRatchetTreeShape(t *testing.T) {
	s := mustSuite(t, suite1)
	for name, rt := range map[string]message.RatchetTree{
		"empty":                {},
		"trailing blank":       {fakeLeaf(1), nil},
		"leaf as parent":       {fakeLeaf(1), fakeLeaf(2), fakeLeaf(3)},
		"parent as leaf":       {fakeParent(1)},
		"both leaf and parent": {fakeLeaf(1), {Leaf: fakeLeaf(2).Leaf, Parent: fakeParent(2).Parent}, fakeLeaf(3)},
		"neither":              {fakeLeaf(1), {}, fakeLeaf(3)},
	} {
		_, err := FromRatchetTree(s, rt)
		if !errors.Is(err, ErrMalformedTree) {
			t.Errorf("%s: got %v, want ErrMalformedTree", name, err)
		}
	}
	// Five nodes extend to a tree of four leaves.
	tr := mustTree(t, message.RatchetTree{fakeLeaf(1), nil, nil, nil, fakeLeaf(3)})
	if tr.NumLeaves() != 4 {
		t.Errorf("NumLeaves = %d, want 4", tr.NumLeaves())
	}
	// Export strips the trailing blanks again.
	if got := len(tr.RatchetTree()); got != 5 {
		t.Errorf("exported %d nodes, want 5", got)
	}
}

func TestAddExtendsAndMarksUnmerged(t *testing.T) {
	tr := mustTree(t, message.RatchetTree{fakeLeaf(0), fakeParent('P'), fakeLeaf(1)})
	d := tr.Diff()
	i, err := d.Add(fakeLeaf(2).Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if i != 2 || d.NumLeaves() != 4 {
		t.Fatalf("added at leaf %d in a tree of %d leaves, want leaf 2 of 4", i, d.NumLeaves())
	}
	// Node 1 is not on leaf 2's direct path, node 3 (the new root) is blank.
	if u := d.Parent(1).UnmergedLeaves; len(u) != 0 {
		t.Errorf("node 1 unmerged leaves %v, want none", u)
	}
	if !d.IsBlank(3) || !d.IsBlank(5) {
		t.Errorf("new parents should be blank")
	}
	// Fill the tree, then set a parent over leaves 2 and 3 through a path
	// stand-in and check that a later Add lists the new leaf there.
	if _, err := d.Add(fakeLeaf(3).Leaf); err != nil {
		t.Fatal(err)
	}
	d.set(3, node{parent: fakeParent('R').Parent})
	if err := d.Remove(1); err != nil {
		t.Fatal(err)
	}
	if !d.IsBlank(3) || !d.IsBlank(1) {
		t.Fatalf("Remove should blank the direct path of leaf 1")
	}
	d.set(3, node{parent: fakeParent('R', 3).Parent})
	i, err = d.Add(fakeLeaf(4).Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if i != 1 {
		t.Fatalf("added at leaf %d, want the leftmost blank leaf 1", i)
	}
	if u := d.Parent(3).UnmergedLeaves; !slices.Equal(u, []uint32{1, 3}) {
		t.Errorf("root unmerged leaves %v, want [1 3]", u)
	}
	if got := d.Leaf(1).EncryptionKey; !bytes.Equal(got, []byte{'e', 4}) {
		t.Errorf("leaf 1 holds %x", got)
	}
}

func TestRemoveTruncates(t *testing.T) {
	// Leaves 0, 1 and 4 of eight; removing leaf 4 leaves a two-leaf tree
	// (RFC 9420, Section 12.1.3), dropping the non-blank node 3.
	rt := message.RatchetTree{fakeLeaf(0), fakeParent('a'), fakeLeaf(1), fakeParent('b'), nil, nil, nil, fakeParent('c'), fakeLeaf(4)}
	tr := mustTree(t, rt)
	d := tr.Diff()
	if err := d.Remove(4); err != nil {
		t.Fatal(err)
	}
	if d.NumLeaves() != 2 {
		t.Fatalf("NumLeaves = %d, want 2", d.NumLeaves())
	}
	if _, ok := d.FindEncryptionKey([]byte{'p', 'b'}); ok {
		t.Error("the discarded root's key is still indexed")
	}
	if _, ok := d.FindEncryptionKey([]byte{'e', 4}); ok {
		t.Error("the removed leaf's key is still indexed")
	}
	if err := d.Remove(4); !errors.Is(err, ErrBlankLeaf) {
		t.Errorf("removing a leaf outside the tree: %v", err)
	}
	if err := d.Update(3, fakeLeaf(9).Leaf); !errors.Is(err, ErrBlankLeaf) {
		t.Errorf("updating a leaf outside the tree: %v", err)
	}
	if err := d.Merge(); err != nil {
		t.Fatal(err)
	}
	want := rebuilt(t, tr.View())
	if !bytes.Equal(tr.TreeHash(), want.TreeHash()) {
		t.Error("tree hash after merge differs from a rebuilt tree")
	}
	if got := message.MustMarshal(tr.RatchetTree()); !bytes.Equal(got, message.MustMarshal(message.RatchetTree{fakeLeaf(0), fakeParent('a'), fakeLeaf(1)})) {
		t.Errorf("tree after truncation: %x", got)
	}
	// Removing the last member but one, then the last, keeps one blank leaf.
	d = tr.Diff()
	if err := d.Remove(1); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(0); err != nil {
		t.Fatal(err)
	}
	if d.NumLeaves() != 1 || len(d.RatchetTree()) != 0 || d.NumMembers() != 0 {
		t.Errorf("empty tree: %d leaves, %d exported nodes, %d members", d.NumLeaves(), len(d.RatchetTree()), d.NumMembers())
	}
}

// TestDiffIsolation checks that a diff leaves the tree alone until Merge,
// and that a second diff of the same tree cannot be merged after the first.
func TestDiffIsolation(t *testing.T) {
	g := growTree(t, suite1, 5, 1)
	before := message.MustMarshal(g.t.RatchetTree())
	hash := g.t.TreeHash()
	d1 := g.t.Diff()
	d2 := g.t.Diff()
	ln, _, _ := g.keyPackageLeaf()
	if _, err := d1.Add(ln); err != nil {
		t.Fatal(err)
	}
	if err := d1.Remove(2); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(d1.TreeHash(), hash) {
		t.Fatal("diff tree hash did not change")
	}
	if !bytes.Equal(message.MustMarshal(g.t.RatchetTree()), before) || !bytes.Equal(g.t.TreeHash(), hash) {
		t.Fatal("the tree changed before Merge")
	}
	if err := d1.Merge(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(g.t.TreeHash(), hash) {
		t.Fatal("Merge did not change the tree")
	}
	if err := d2.Merge(); !errors.Is(err, ErrStaleDiff) {
		t.Fatalf("merging a stale diff: %v", err)
	}
}

// TestCachesMatchRebuild drives a group through adds, removes, truncation
// and commits and compares every cached node hash and resolution with a
// tree built from scratch.
func TestCachesMatchRebuild(t *testing.T) {
	g := growTree(t, suite1, 6, 2)
	check := func(step string) {
		t.Helper()
		v := g.t.View()
		r := rebuilt(t, v).View()
		if v.NumLeaves() != r.NumLeaves() {
			t.Fatalf("%s: %d leaves, rebuilt %d", step, v.NumLeaves(), r.NumLeaves())
		}
		for x := range NodeIndex(v.Width()) {
			if !bytes.Equal(v.NodeHash(x), r.NodeHash(x)) {
				t.Fatalf("%s: hash of node %d differs from a rebuilt tree", step, x)
			}
			if v.resLen(x) != r.resLen(x) {
				t.Fatalf("%s: cached resolution size of node %d: %d, rebuilt %d", step, x, v.resLen(x), r.resLen(x))
			}
			if !slices.Equal(v.Resolution(x), r.Resolution(x)) {
				t.Fatalf("%s: resolution of node %d: %v, rebuilt %v", step, x, v.Resolution(x), r.Resolution(x))
			}
		}
		for x := range NodeIndex(v.Width()) {
			if k := v.EncryptionKey(x); k != nil {
				if y, ok := v.FindEncryptionKey(k); !ok || y != x {
					t.Fatalf("%s: key of node %d indexed at %d, %v", step, x, y, ok)
				}
			}
		}
		if v.NumMembers() != leafCount(v) {
			t.Fatalf("%s: NumMembers %d, %d non-blank leaves", step, v.NumMembers(), leafCount(v))
		}
		if err := g.t.Validate(g.t.TreeHash(), &Options{GroupID: g.groupID}); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	check("grown")
	g.commit(3, 2, 1, 4)
	check("commit removing 1 and 4, adding 2")
	g.commit(0, 0, 5, 4)
	check("commit removing 5 and 4, truncating")
	g.commit(2, 3)
	check("commit adding 3")
	g.commit(6, 0, 3)
	check("commit from the right")
	// Remove everyone but leaf 0: the tree shrinks to one leaf.
	var rest []LeafIndex
	for i := range g.members {
		if i != 0 {
			rest = append(rest, i)
		}
	}
	slices.Sort(rest)
	g.commit(0, 0, rest...)
	if g.t.NumLeaves() != 1 {
		t.Fatalf("NumLeaves = %d after removing all but leaf 0", g.t.NumLeaves())
	}
	check("alone")
	g.commit(0, 1)
	check("two again")
}

func TestUpdateBlanksDirectPath(t *testing.T) {
	g := growTree(t, suite1, 4, 3)
	d := g.t.Diff()
	for _, x := range treemath.DirectPath(LeafIndex(2).Node(), 4) {
		if d.IsBlank(x) {
			t.Fatalf("node %d blank before the update", x)
		}
	}
	ln, _, _ := g.keyPackageLeaf()
	if err := d.Update(2, ln); err != nil {
		t.Fatal(err)
	}
	for _, x := range treemath.DirectPath(LeafIndex(2).Node(), 4) {
		if !d.IsBlank(x) {
			t.Errorf("node %d not blank after the update", x)
		}
	}
	if d.Leaf(2) != ln {
		t.Error("leaf not replaced")
	}
	if !bytes.Equal(d.TreeHash(), rebuilt(t, d).TreeHash()) {
		t.Error("tree hash differs from a rebuilt tree")
	}
}
