package tree

import (
	"slices"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// TestLeafSignaturesPartlyOther: background checks whose lowest failure
// is at a leaf value the tree does not have stopped before reaching the
// tree's own bad leaf above it, so Validate's leaf checks may not take the
// leaves above as verified: they report the tree's bad leaf.
func TestLeafSignaturesPartlyOther(t *testing.T) {
	s := mustSuite(t, suite1)
	groupID := []byte("leaf signatures")
	f, err := BuildFull(s, groupID, 200, 7)
	if err != nil {
		t.Fatal(err)
	}
	var rt message.RatchetTree
	if err := message.Unmarshal(message.MustMarshal(f.Tree().RatchetTree()), &rt); err != nil {
		t.Fatal(err)
	}
	rt[2*10].Leaf.Signature[5] ^= 1
	sp := rt.Sparse()
	tr, err := FromSparse(s, sp, MaxLeaves)
	if err != nil {
		t.Fatal(err)
	}
	// The same leaves but leaf 3, a bad copy.
	other := &message.SparseRatchetTree{Width: sp.Width, Nodes: slices.Clone(sp.Nodes)}
	for k, in := range other.Nodes {
		if in.Index == 2*3 {
			bad := *in.Node.Leaf
			bad.Signature = slices.Clone(bad.Signature)
			bad.Signature[5] ^= 1
			other.Nodes[k].Node = &message.Node{Leaf: &bad}
		}
	}
	opts := Options{GroupID: groupID, Signatures: VerifyLeafSignatures(s, other, groupID)}
	defer opts.Signatures.Stop()
	wantRule(t, "bad leaf 10, background failed at another leaf 3", tr.View().verifyLeaves(&opts), ErrLeafSignature, 20)
}
