package tree

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// changeSim makes fake nodes with unique keys for the Changes tests.
type changeSim struct {
	rng *rand.Rand
	n   uint32
}

func (s *changeSim) leaf() *message.LeafNode {
	s.n++
	return &message.LeafNode{
		EncryptionKey: fmt.Appendf(nil, "e%d", s.n), SignatureKey: fmt.Appendf(nil, "s%d", s.n),
		Credential: message.Credential{Type: message.CredentialBasic, Identity: fmt.Appendf(nil, "%d", s.n)},
		Source:     message.LeafNodeSourceUpdate,
	}
}

func (s *changeSim) parent() *message.ParentNode {
	s.n++
	return &message.ParentNode{EncryptionKey: fmt.Appendf(nil, "p%d", s.n), ParentHash: []byte{}, UnmergedLeaves: []uint32{}}
}

// tree returns a random ratchet tree of up to 16 leaves.
func (s *changeSim) tree() message.RatchetTree {
	leaves := 1 << s.rng.IntN(5)
	rt := make(message.RatchetTree, 2*leaves-1)
	for i := 0; i < len(rt); i += 2 {
		// The first and last leaves are members, so the tree has its
		// truncated width (RFC 9420, Section 7.7).
		if i == 0 || i == len(rt)-1 || s.rng.IntN(3) != 0 {
			rt[i] = &message.Node{Leaf: s.leaf()}
		}
	}
	// As in a real tree, a parent is non-blank only above a member.
	for i := 1; i < len(rt); i += 2 {
		first, count := leafRange(NodeIndex(i))
		for l := first; l < first+count; l++ {
			if rt[2*l] != nil && s.rng.IntN(3) != 0 {
				rt[i] = &message.Node{Parent: s.parent()}
				break
			}
		}
	}
	return rt
}

// mutate applies random adds, removes and updates to d.
func (s *changeSim) mutate(t *testing.T, d *Diff) {
	for range 1 + s.rng.IntN(6) {
		var members []LeafIndex
		for i := range LeafIndex(d.NumLeaves()) {
			if d.Leaf(i) != nil {
				members = append(members, i)
			}
		}
		switch op := s.rng.IntN(3); {
		case op == 0 || len(members) == 0:
			if _, err := d.Add(s.leaf()); err != nil {
				t.Fatal(err)
			}
		case op == 1:
			if err := d.Remove(members[s.rng.IntN(len(members))]); err != nil {
				t.Fatal(err)
			}
		default:
			if err := d.Update(members[s.rng.IntN(len(members))], s.leaf()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// copyChanges re-decodes every node, as storage would.
func copyChanges(t *testing.T, c *Changes) *Changes {
	out := &Changes{NumLeaves: c.NumLeaves, Limit: c.Limit}
	for _, ch := range c.Nodes {
		nc := NodeChange{X: ch.X}
		if ch.Node != nil {
			nc.Node = new(message.Node)
			if err := message.Unmarshal(message.MustMarshal(ch.Node), nc.Node); err != nil {
				t.Fatal(err)
			}
		}
		out.Nodes = append(out.Nodes, nc)
	}
	return out
}

func sameDiff(t *testing.T, step string, want, got *Diff) {
	t.Helper()
	if want.NumLeaves() != got.NumLeaves() || want.NumMembers() != got.NumMembers() {
		t.Fatalf("%s: %d leaves %d members, want %d and %d", step, got.NumLeaves(), got.NumMembers(), want.NumLeaves(), want.NumMembers())
	}
	if !bytes.Equal(message.MustMarshal(want.RatchetTree()), message.MustMarshal(got.RatchetTree())) {
		t.Fatalf("%s: ratchet trees differ", step)
	}
	if !bytes.Equal(want.TreeHash(), got.TreeHash()) {
		t.Fatalf("%s: tree hashes differ", step)
	}
	for x := range NodeIndex(want.Width()) {
		if k := want.EncryptionKey(x); k != nil {
			if y, ok := got.FindEncryptionKey(k); !ok || y != x {
				t.Fatalf("%s: key of node %d found at %d, %v", step, x, y, ok)
			}
		}
		if ln := want.Leaf(x.Leaf()); x.IsLeaf() && ln != nil {
			if l, ok := got.FindSignatureKey(ln.SignatureKey); !ok || l != x.Leaf() {
				t.Fatalf("%s: signature key of leaf %d found at %d, %v", step, x.Leaf(), l, ok)
			}
		}
	}
}

// TestApplyChanges replays the changes of random diffs on a copy of their
// tree and checks that the replayed diff is the same tree, before and
// after both are merged, and that Changes survives Merge.
func TestApplyChanges(t *testing.T) {
	for seed := range uint64(300) {
		s := &changeSim{rng: rand.New(rand.NewPCG(seed, 7))}
		rt := s.tree()
		t1 := mustTree(t, rt)
		t2 := rebuilt(t, t1.View())
		// An add merged into both first moves their free-leaf hints on.
		pre := s.leaf()
		for _, tr := range []*Tree{t1, t2} {
			d := tr.Diff()
			if _, err := d.Add(pre); err != nil {
				t.Fatal(err)
			}
			if err := d.Merge(); err != nil {
				t.Fatal(err)
			}
		}
		var baseKeys [][]byte
		for x := range NodeIndex(t1.View().Width()) {
			if k := t1.View().EncryptionKey(x); k != nil {
				baseKeys = append(baseKeys, k)
			}
		}
		d1 := t1.Diff()
		s.mutate(t, d1)
		c := d1.Changes()
		d2, err := t2.ApplyChanges(copyChanges(t, c))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		step := fmt.Sprintf("seed %d", seed)
		sameDiff(t, step, d1, d2)
		for _, k := range baseKeys {
			x1, ok1 := d1.FindEncryptionKey(k)
			x2, ok2 := d2.FindEncryptionKey(k)
			if ok1 != ok2 || x1 != x2 {
				t.Fatalf("%s: base key %q: %d %v, replayed %d %v", step, k, x1, ok1, x2, ok2)
			}
		}
		if err := d1.Merge(); err != nil {
			t.Fatal(err)
		}
		if err := d2.Merge(); err != nil {
			t.Fatal(err)
		}
		if !d1.MergedInto(t1) || d1.MergedInto(t2) {
			t.Fatalf("%s: MergedInto is wrong", step)
		}
		after := d1.Changes()
		if after.NumLeaves != c.NumLeaves || after.Limit != c.Limit || len(after.Nodes) != len(c.Nodes) {
			t.Fatalf("%s: Changes after Merge differ: %+v, before %+v", step, after, c)
		}
		for i := range c.Nodes {
			if after.Nodes[i].X != c.Nodes[i].X || (after.Nodes[i].Node == nil) != (c.Nodes[i].Node == nil) {
				t.Fatalf("%s: changed node %d differs after Merge", step, i)
			}
		}
		sameDiff(t, step+" merged", t1.View(), t2.View())
		if len(t1.RatchetTree()) > 0 {
			sameDiff(t, step+" merged vs rebuilt", rebuilt(t, t1.View()).View(), t2.View())
		}
		// The next free leaf is the same in both.
		n1, n2 := t1.Diff(), t2.Diff()
		ln := s.leaf()
		l1, err1 := n1.Add(ln)
		l2, err2 := n2.Add(ln)
		if err1 != nil || err2 != nil || l1 != l2 {
			t.Fatalf("%s: next added leaf %d (%v), replayed %d (%v)", step, l1, err1, l2, err2)
		}
	}
}

// TestApplyChangesRejects checks the shape rules of ApplyChanges.
func TestApplyChangesRejects(t *testing.T) {
	s := &changeSim{rng: rand.New(rand.NewPCG(1, 1))}
	tr := mustTree(t, message.RatchetTree{&message.Node{Leaf: s.leaf()}, nil, &message.Node{Leaf: s.leaf()}})
	leaf := &message.Node{Leaf: s.leaf()}
	parent := &message.Node{Parent: s.parent()}
	for _, c := range []struct {
		name string
		c    Changes
	}{
		{"zero leaves", Changes{NumLeaves: 0, Limit: 3}},
		{"not a power of two", Changes{NumLeaves: 3, Limit: 3}},
		{"too many leaves", Changes{NumLeaves: 2 * MaxLeaves, Limit: 3}},
		{"limit beyond the tree", Changes{NumLeaves: 4, Limit: 7}},
		{"too wide for the leaves set", Changes{NumLeaves: 8, Limit: 3, Nodes: []NodeChange{{X: 14, Node: leaf}}}},
		{"limit not a width", Changes{NumLeaves: 2, Limit: 2}},
		{"node outside", Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 3, Node: leaf}}}},
		{"out of order", Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 2, Node: leaf}, {X: 0, Node: leaf}}}},
		{"duplicate", Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 2}, {X: 2}}}},
		{"leaf at parent", Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 1, Node: leaf}}}},
		{"parent at leaf", Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 0, Node: parent}}}},
		{"empty node", Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 0, Node: &message.Node{}}}}},
	} {
		if _, err := tr.ApplyChanges(&c.c); !errors.Is(err, ErrMalformedTree) {
			t.Errorf("%s: %v, want ErrMalformedTree", c.name, err)
		}
	}
	if _, err := tr.ApplyChanges(&Changes{NumLeaves: 2, Limit: 3, Nodes: []NodeChange{{X: 1, Node: parent}}}); err != nil {
		t.Errorf("valid changes: %v", err)
	}
}
