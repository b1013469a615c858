package conformance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
)

func init() { register("treekem.json", checkTreeKEM) }

type treeKEMVector struct {
	CipherSuite             uint16 `json:"cipher_suite"`
	GroupID                 hx     `json:"group_id"`
	Epoch                   uint64 `json:"epoch"`
	ConfirmedTranscriptHash hx     `json:"confirmed_transcript_hash"`
	RatchetTree             hx     `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32 `json:"index"`
		EncryptionPriv hx     `json:"encryption_priv"`
		SignaturePriv  hx     `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32 `json:"node"`
			PathSecret hx     `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32 `json:"sender"`
		UpdatePath    hx     `json:"update_path"`
		PathSecrets   []hx   `json:"path_secrets"`
		CommitSecret  hx     `json:"commit_secret"`
		TreeHashAfter hx     `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// treeKEMCase holds what the cases of one vector share.
type treeKEMCase struct {
	v       *treeKEMVector
	s       *ciphersuite.Suite
	t       *tree.Tree
	privs   map[tree.LeafIndex]*tree.PrivateState
	signers map[tree.LeafIndex][]byte
	opts    *tree.PathOptions
}

func checkTreeKEM(raw []byte, r *Report) error {
	var vs []treeKEMVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		return err
	}
	for i := range vs {
		v := &vs[i]
		name := fmt.Sprintf("%d/suite=%d", i, v.CipherSuite)
		c, err := newTreeKEMCase(v)
		if err != nil {
			r.Check(name, err)
			continue
		}
		for _, up := range v.UpdatePaths {
			r.Check(fmt.Sprintf("%s/sender=%d/process", name, up.Sender), c.process(up.Sender, up.UpdatePath, up.PathSecrets, up.CommitSecret, up.TreeHashAfter))
			r.Check(fmt.Sprintf("%s/sender=%d/create", name, up.Sender), c.create(up.Sender))
		}
	}
	return nil
}

// newTreeKEMCase loads the tree and every leaf's private state, checking
// that each state fits the tree.
func newTreeKEMCase(v *treeKEMVector) (*treeKEMCase, error) {
	s, err := suiteFor(v.CipherSuite)
	if err != nil {
		return nil, err
	}
	t, err := decodeTree(s, v.RatchetTree)
	if err != nil {
		return nil, fmt.Errorf("ratchet_tree: %w", err)
	}
	c := &treeKEMCase{v: v, s: s, t: t, privs: map[tree.LeafIndex]*tree.PrivateState{}, signers: map[tree.LeafIndex][]byte{},
		opts: &tree.PathOptions{Options: tree.Options{GroupID: v.GroupID, SkipLifetime: true}}}
	for _, lp := range v.LeavesPrivate {
		i := tree.LeafIndex(lp.Index)
		p, err := tree.NewPrivateState(s, i, lp.EncryptionPriv)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", i, err)
		}
		for _, ps := range lp.PathSecrets {
			if p, err = p.WithPathSecret(tree.NodeIndex(ps.Node), ps.PathSecret); err != nil {
				return nil, fmt.Errorf("leaf %d: %w", i, err)
			}
		}
		if err := p.Check(t.View()); err != nil {
			return nil, fmt.Errorf("leaves_private[%d] does not fit ratchet_tree: %w", i, err)
		}
		c.privs[i] = p
		c.signers[i] = lp.SignaturePriv
	}
	return c, nil
}

// groupContext encodes the provisional GroupContext of the vector with the
// given tree hash.
func (c *treeKEMCase) groupContext(treeHash []byte) ([]byte, error) {
	gc := message.GroupContext{Version: message.MLS10, CipherSuite: c.s.ID(), GroupID: c.v.GroupID, Epoch: c.v.Epoch,
		TreeHash: treeHash, ConfirmedTranscriptHash: c.v.ConfirmedTranscriptHash, Extensions: []message.Extension{}}
	return gc.Marshal()
}

// process applies the vector's UpdatePath (which checks its parent hashes
// and leaf against ratchet_tree), compares the tree hash after it, and
// lets every other member decrypt it.
func (c *treeKEMCase) process(sender uint32, raw hx, pathSecrets []hx, commitSecret, treeHashAfter hx) error {
	var up message.UpdatePath
	if err := message.Unmarshal(raw, &up); err != nil {
		return fmt.Errorf("update_path: %w", err)
	}
	d := c.t.Diff()
	applied, err := d.ApplyPath(tree.LeafIndex(sender), &up, c.opts)
	if err != nil {
		return err
	}
	th := d.TreeHash()
	if err := eq("tree_hash_after", th, treeHashAfter); err != nil {
		return err
	}
	gc, err := c.groupContext(th)
	if err != nil {
		return err
	}
	checked := 0
	for j := range tree.LeafIndex(c.t.NumLeaves()) {
		if uint32(j) == sender || c.t.Leaf(j) == nil {
			continue
		}
		priv, ok := c.privs[j]
		if !ok {
			return fmt.Errorf("leaf %d is not blank but has no private state in the vector", j)
		}
		res, err := applied.Decrypt(priv, gc)
		if err != nil {
			return err
		}
		if int(j) >= len(pathSecrets) {
			return fmt.Errorf("no path secret for leaf %d in the vector", j)
		}
		if _, ps := res.PathSecret(); !equalBytes(ps, pathSecrets[j]) {
			return mismatch(fmt.Sprintf("path secret of leaf %d", j), ps, pathSecrets[j])
		}
		if err := eq(fmt.Sprintf("commit secret of leaf %d", j), res.CommitSecret(), commitSecret); err != nil {
			return err
		}
		if err := res.PrivateState().Check(d); err != nil {
			return fmt.Errorf("leaf %d after processing: %w", j, err)
		}
		checked++
	}
	if checked == 0 {
		return errors.New("no member processed the path")
	}
	return nil
}

// create makes a new UpdatePath from sender with its signature key, sends
// it through the wire encoding, and checks that every other member derives
// the same commit secret and tree.
func (c *treeKEMCase) create(sender uint32) error {
	i := tree.LeafIndex(sender)
	rawSigner, ok := c.signers[i]
	if !ok {
		return fmt.Errorf("no private state for sender %d", sender)
	}
	signer, err := c.s.NewSigner(rawSigner)
	if err != nil {
		return err
	}
	d := c.t.Diff()
	created, err := d.CreatePath(i, c.t.Leaf(i), signer, c.opts)
	if err != nil {
		return err
	}
	th := d.TreeHash()
	gc, err := c.groupContext(th)
	if err != nil {
		return err
	}
	up, err := created.Encrypt(gc)
	if err != nil {
		return err
	}
	if err := created.PrivateState().Check(d); err != nil {
		return fmt.Errorf("sender after creating: %w", err)
	}
	raw, err := message.Marshal(up)
	if err != nil {
		return err
	}
	checked := 0
	for j := range tree.LeafIndex(c.t.NumLeaves()) {
		if j == i || c.t.Leaf(j) == nil {
			continue
		}
		var in message.UpdatePath
		if err := message.Unmarshal(raw, &in); err != nil {
			return err
		}
		dj := c.t.Diff()
		applied, err := dj.ApplyPath(i, &in, c.opts)
		if err != nil {
			return fmt.Errorf("leaf %d applying the new path: %w", j, err)
		}
		if err := eq(fmt.Sprintf("tree hash at leaf %d", j), dj.TreeHash(), th); err != nil {
			return err
		}
		res, err := applied.Decrypt(c.privs[j], gc)
		if err != nil {
			return fmt.Errorf("leaf %d: %w", j, err)
		}
		if err := eq(fmt.Sprintf("commit secret at leaf %d", j), res.CommitSecret(), created.CommitSecret()); err != nil {
			return err
		}
		checked++
	}
	if checked == 0 {
		return errors.New("no member processed the path")
	}
	return nil
}

func equalBytes(a, b []byte) bool { return eq("", a, b) == nil }
