package tree

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/treemath"
)

// keyPair is an HPKE key pair in the suite's serialized formats.
type keyPair struct {
	priv, pub []byte
}

// PrivateState is what one member knows beyond the public tree (RFC 9420,
// Section 4.2): the private key of its leaf and those of the parent nodes
// on its direct path whose path secrets it has received. Each key is kept
// with its public key, so keys whose node changed are recognized and
// dropped (Section 7.5: outdated key pairs must be deleted).
//
// A PrivateState is not modified by the functions of this package: they
// return a new one, so a staged commit does not touch the current state.
type PrivateState struct {
	suite *ciphersuite.Suite
	leaf  LeafIndex
	own   keyPair
	nodes map[NodeIndex]keyPair
}

// NewPrivateState returns the state of the member at leaf holding the HPKE
// private key leafKey (in the suite's SerializePrivateKey format) and no
// parent node keys.
func NewPrivateState(suite *ciphersuite.Suite, leaf LeafIndex, leafKey []byte) (*PrivateState, error) {
	pub, err := suite.HPKEPublicKey(leafKey)
	if err != nil {
		return nil, failErr(ErrPrivateState, "4.2", leaf.Node(), err, "leaf private key")
	}
	return &PrivateState{suite: suite, leaf: leaf, own: keyPair{clone(leafKey), pub}, nodes: map[NodeIndex]keyPair{}}, nil
}

// Leaf returns the member's leaf index.
func (p *PrivateState) Leaf() LeafIndex { return p.leaf }

// LeafPublicKey returns the public key of the member's leaf key pair.
func (p *PrivateState) LeafPublicKey() []byte { return clone(p.own.pub) }

// LeafPrivateKey returns the leaf's HPKE private key, for storage.
func (p *PrivateState) LeafPrivateKey() []byte { return clone(p.own.priv) }

// Nodes returns the parent nodes whose private keys the state holds, in
// increasing order.
func (p *PrivateState) Nodes() []NodeIndex {
	out := make([]NodeIndex, 0, len(p.nodes))
	for x := range p.nodes {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// NodePrivateKey returns the HPKE private key held for parent node x, for
// storage.
func (p *PrivateState) NodePrivateKey(x NodeIndex) ([]byte, bool) {
	kp, ok := p.nodes[x]
	return clone(kp.priv), ok
}

// String describes the state without printing any key.
func (p *PrivateState) String() string {
	return fmt.Sprintf("tree.PrivateState{leaf %d, %d node keys}", p.leaf, len(p.nodes))
}

// Clone returns an independent copy.
func (p *PrivateState) Clone() *PrivateState {
	o := &PrivateState{suite: p.suite, leaf: p.leaf, own: p.own, nodes: make(map[NodeIndex]keyPair, len(p.nodes))}
	for x, kp := range p.nodes {
		o.nodes[x] = kp
	}
	return o
}

// WithNodeKey returns a copy of the state that also holds priv for parent
// node x (restoring stored state).
func (p *PrivateState) WithNodeKey(x NodeIndex, priv []byte) (*PrivateState, error) {
	if x.IsLeaf() {
		return nil, fail(ErrPrivateState, "4.2", x, "not a parent node")
	}
	pub, err := p.suite.HPKEPublicKey(priv)
	if err != nil {
		return nil, failErr(ErrPrivateState, "4.2", x, err, "node private key")
	}
	o := p.Clone()
	o.nodes[x] = keyPair{clone(priv), pub}
	return o, nil
}

// WithPathSecret returns a copy of the state that also holds the key pair
// of parent node x derived from its path secret (RFC 9420, Section 7.4:
// node_secret = DeriveSecret(path_secret, "node"), then DeriveKeyPair).
func (p *PrivateState) WithPathSecret(x NodeIndex, pathSecret []byte) (*PrivateState, error) {
	if x.IsLeaf() {
		return nil, fail(ErrPrivateState, "4.2", x, "not a parent node")
	}
	kp, err := nodeKeyPair(p.suite, pathSecret)
	if err != nil {
		return nil, failErr(ErrPrivateState, "7.4", x, err, "deriving the node key pair")
	}
	o := p.Clone()
	o.nodes[x] = kp
	return o, nil
}

// WithLeafKey returns a copy of the state whose leaf private key is
// leafKey (after the member's own Update was committed).
func (p *PrivateState) WithLeafKey(leafKey []byte) (*PrivateState, error) {
	pub, err := p.suite.HPKEPublicKey(leafKey)
	if err != nil {
		return nil, failErr(ErrPrivateState, "4.2", p.leaf.Node(), err, "leaf private key")
	}
	o := p.Clone()
	o.own = keyPair{clone(leafKey), pub}
	return o, nil
}

// Check verifies that the state fits the tree (RFC 9420, Section 4.2): the
// leaf and every node with a private key are non-blank, hold the matching
// public key, and the nodes are on the member's direct path.
func (p *PrivateState) Check(d *Diff) error {
	l := p.leaf.Node()
	if !bytes.Equal(d.EncryptionKey(l), p.own.pub) {
		return fail(ErrPrivateState, "4.2", l, "the leaf's public key does not match the private key")
	}
	for _, x := range p.Nodes() {
		if !d.inTree(x) || !treemath.IsInSubtree(x, l) {
			return fail(ErrPrivateState, "4.2", x, "node is not on the direct path of leaf %d", p.leaf)
		}
		if !bytes.Equal(d.EncryptionKey(x), p.nodes[x].pub) {
			return fail(ErrPrivateState, "4.2", x, "the node's public key does not match the private key")
		}
	}
	return nil
}

// Prune returns a copy of the state without the node keys that no longer
// fit the tree in d: nodes now blank, outside the tree, or holding another
// public key (RFC 9420, Section 7.5 asks for replaced keys to be deleted).
func (p *PrivateState) Prune(d *Diff) *PrivateState {
	o := p.Clone()
	for x, kp := range o.nodes {
		if !d.inTree(x) || !bytes.Equal(d.EncryptionKey(x), kp.pub) {
			delete(o.nodes, x)
		}
	}
	return o
}

// key returns the private key for node x, if held.
func (p *PrivateState) key(x NodeIndex) ([]byte, bool) {
	if x == p.leaf.Node() {
		return p.own.priv, true
	}
	kp, ok := p.nodes[x]
	return kp.priv, ok
}

// nodeKeyPair derives a node's key pair from its path secret (RFC 9420,
// Section 7.4).
func nodeKeyPair(s *ciphersuite.Suite, pathSecret []byte) (keyPair, error) {
	priv, pub, err := s.DeriveKeyPair(s.DeriveSecret(pathSecret, "node"))
	return keyPair{priv, pub}, err
}
