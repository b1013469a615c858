package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
)

func init() { register("tree-operations.json", checkTreeOperations) }

type treeOperationsVector struct {
	CipherSuite    uint16 `json:"cipher_suite"`
	TreeBefore     hx     `json:"tree_before"`
	Proposal       hx     `json:"proposal"`
	ProposalSender uint32 `json:"proposal_sender"`
	TreeHashBefore hx     `json:"tree_hash_before"`
	TreeAfter      hx     `json:"tree_after"`
	TreeHashAfter  hx     `json:"tree_hash_after"`
}

func checkTreeOperations(raw []byte, r *Report) error {
	var vs []treeOperationsVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i, v := range vs {
		r.Check(fmt.Sprintf("%d/suite=%d", i, v.CipherSuite), checkTreeOperation(&v))
	}
	return nil
}

// decodeTree decodes a ratchet_tree vector and builds the tree.
func decodeTree(s *ciphersuite.Suite, b []byte) (*tree.Tree, error) {
	var rt message.RatchetTree
	if err := message.Unmarshal(b, &rt); err != nil {
		return nil, err
	}
	return tree.FromRatchetTree(s, rt)
}

func checkTreeOperation(v *treeOperationsVector) error {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return err
	}
	t, err := decodeTree(s, v.TreeBefore)
	if err != nil {
		return fmt.Errorf("tree_before: %w", err)
	}
	if err := eq("tree_hash_before", t.TreeHash(), v.TreeHashBefore); err != nil {
		return err
	}
	var p message.Proposal
	if err := message.Unmarshal(v.Proposal, &p); err != nil {
		return fmt.Errorf("proposal: %w", err)
	}
	d := t.Diff()
	switch p.Type {
	case message.ProposalAdd:
		_, err = d.Add(&p.Add.KeyPackage.LeafNode)
	case message.ProposalUpdate:
		err = d.Update(tree.LeafIndex(v.ProposalSender), &p.Update.LeafNode)
	case message.ProposalRemove:
		err = d.Remove(tree.LeafIndex(p.Remove.Removed))
	default:
		return fmt.Errorf("proposal type %d is not a tree operation", p.Type)
	}
	if err != nil {
		return err
	}
	// The hash of the staged diff and of the merged tree must both match.
	if err := eq("tree_hash_after (diff)", d.TreeHash(), v.TreeHashAfter); err != nil {
		return err
	}
	if err := d.Merge(); err != nil {
		return err
	}
	got, err := message.Marshal(t.RatchetTree())
	if err != nil {
		return err
	}
	if err := eq("tree_after", got, v.TreeAfter); err != nil {
		return err
	}
	return eq("tree_hash_after", t.TreeHash(), v.TreeHashAfter)
}
