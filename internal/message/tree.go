package message

import (
	"crypto"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// This file holds the ratchet tree structures: LeafNode (with its
// signature), ParentNode, Node, the ratchet_tree vector and UpdatePath.

// Signature labels (RFC 9420, Sections 7.2, 10 and 12.4.3). The
// ciphersuite package adds the "MLS 1.0 " prefix.
const (
	labelLeafNodeTBS   = "LeafNodeTBS"
	labelKeyPackageTBS = "KeyPackageTBS"
	labelGroupInfoTBS  = "GroupInfoTBS"
)

// encodeBody appends every LeafNode field before the signature, which is
// the common prefix of LeafNode and LeafNodeTBS (RFC 9420, Section 7.2).
// The source-specific field is written from Source: Lifetime for
// key_package, ParentHash for commit, nothing otherwise.
func (ln *LeafNode) encodeBody(e *wire.Encoder) {
	e.Opaque(ln.EncryptionKey)
	e.Opaque(ln.SignatureKey)
	ln.Credential.Encode(e)
	ln.Capabilities.Encode(e)
	e.U8(uint8(ln.Source))
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.Encode(e)
	case LeafNodeSourceCommit:
		e.Opaque(ln.ParentHash)
	}
	encodeExtensions(e, ln.Extensions)
}

// Encode appends the LeafNode (RFC 9420, Section 7.2).
func (ln *LeafNode) Encode(e *wire.Encoder) {
	ln.encodeBody(e)
	e.Opaque(ln.Signature)
}

// Decode reads a LeafNode (RFC 9420, Section 7.2). A leaf_node_source
// other than key_package, update or commit is ErrUnknownValue: the
// structure cannot be parsed past it.
func (ln *LeafNode) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("LeafNode"))
	*ln = LeafNode{}
	ln.EncryptionKey = d.Opaque("encryption_key")
	ln.SignatureKey = d.Opaque("signature_key")
	ln.Credential.Decode(d)
	ln.Capabilities.Decode(d)
	ln.Source = LeafNodeSource(d.U8("leaf_node_source"))
	if d.Err() != nil {
		return
	}
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.Decode(d)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		ln.ParentHash = d.Opaque("parent_hash")
	default:
		failUnknown(d, "leaf_node_source", uint64(ln.Source))
		return
	}
	ln.Extensions = decodeExtensions(d, "extensions")
	ln.Signature = d.Opaque("signature")
}

// LeafNodeParentHash reads the leaf_node_source of an encoded LeafNode
// (RFC 9420, Section 7.2) and, for source commit, its parent_hash, which
// shares enc's memory; the other fields are skipped, not decoded. ok is
// false if enc is malformed up to there.
func LeafNodeParentHash(enc []byte) (src LeafNodeSource, parentHash []byte, ok bool) {
	src, parentHash, _, ok = scanLeafNode(enc, false)
	return src, parentHash, ok
}

// scanLeafNode skips over the LeafNode at the start of b, without copying
// or allocating, up to its source (and parent_hash), or to its end when
// whole is set; n is then its length. ok is false if b is malformed up to
// there (decoding reports why).
func scanLeafNode(b []byte, whole bool) (src LeafNodeSource, parentHash []byte, n int, ok bool) {
	d := wire.NewAliasingDecoder(b)
	d.SkipVector("encryption_key")
	d.SkipVector("signature_key")
	d.U16("credential_type")
	// Every credential body is one vector: identity<V>, certificates<V>
	// or an unknown type's opaque<V> (Section 5.3).
	d.SkipVector("credential")
	for range 5 { // the vectors of Capabilities
		d.SkipVector("capabilities")
	}
	src = LeafNodeSource(d.U8("leaf_node_source"))
	switch src {
	case LeafNodeSourceKeyPackage:
		d.Skip("lifetime", 16)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		parentHash = d.Opaque("parent_hash")
	default:
		return src, nil, 0, false
	}
	if whole {
		d.SkipVector("extensions")
		d.SkipVector("signature")
	}
	return src, parentHash, len(b) - d.Len(), d.Err() == nil
}

// DecodeNodeKeepingLeaf reads a Node like Node.Decode, except that a leaf
// is read from one copy of its encoding, which its byte fields share and
// which is returned (nil for a parent): what a ratchet tree keeps of a
// leaf (RFC 9420, Section 12.4.3.3), at one allocation for all its bytes.
func DecodeNodeKeepingLeaf(d *wire.Decoder) (*Node, []byte) {
	rest := d.Peek()
	if len(rest) < 2 || NodeType(rest[0]) != NodeTypeLeaf {
		n := new(Node)
		n.Decode(d)
		return n, nil
	}
	_, _, size, ok := scanLeafNode(rest[1:], true)
	if !ok {
		// Malformed: decoding says where.
		n := new(Node)
		n.Decode(d)
		return n, nil
	}
	defer d.Struct(d.Struct("Node"))
	d.U8("node_type")
	ln := new(LeafNode)
	enc := d.Detach("LeafNode", size, ln.Decode)
	if enc == nil {
		return &Node{}, nil
	}
	return &Node{Leaf: ln}, enc
}

// check reports a LeafNode that Encode cannot write faithfully.
func (ln *LeafNode) check() error {
	switch ln.Source {
	case LeafNodeSourceKeyPackage, LeafNodeSourceUpdate:
		if ln.ParentHash != nil {
			return inconsistent("LeafNode", "parent_hash", "set for source %d, which carries none", ln.Source)
		}
	case LeafNodeSourceCommit:
	default:
		return inconsistent("LeafNode", "leaf_node_source", "unknown source %d", ln.Source)
	}
	if ln.Source != LeafNodeSourceKeyPackage && ln.Lifetime != (Lifetime{}) {
		return inconsistent("LeafNode", "lifetime", "set for source %d, which carries none", ln.Source)
	}
	return CheckExtensions(ln.Extensions)
}

// tbs encodes LeafNodeTBS (RFC 9420, Section 7.2): the LeafNode without its
// signature, followed by group_id and leaf_index for the sources update and
// commit (a KeyPackage's leaf is signed before any group exists).
func (ln *LeafNode) tbs(groupID []byte, leaf uint32) ([]byte, error) {
	if err := ln.check(); err != nil {
		return nil, err
	}
	e := wire.NewEncoder(nil)
	ln.encodeBody(e)
	if ln.Source == LeafNodeSourceUpdate || ln.Source == LeafNodeSourceCommit {
		e.Opaque(groupID)
		e.U32(leaf)
	}
	return e.Bytes()
}

// TBS returns the encoded LeafNodeTBS (RFC 9420, Section 7.2). groupID and
// leaf are used only for the sources update and commit. It returns nil for
// a node that cannot be encoded (an unknown source, or a vector over 2^30
// bytes); Sign and VerifySignature report those as errors.
func (ln *LeafNode) TBS(groupID []byte, leaf uint32) []byte {
	b, err := ln.tbs(groupID, leaf)
	if err != nil {
		return nil
	}
	return b
}

// Sign sets ln.Signature to SignWithLabel(signer, "LeafNodeTBS",
// LeafNodeTBS) (RFC 9420, Section 7.2). signer must belong to ln.SignatureKey;
// Sign does not check that.
func (ln *LeafNode) Sign(s *ciphersuite.Suite, signer crypto.Signer, groupID []byte, leaf uint32) error {
	tbs, err := ln.tbs(groupID, leaf)
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(signer, labelLeafNodeTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing LeafNode: %w", err)
	}
	ln.Signature = sig
	return nil
}

// VerifySignature checks ln.Signature over LeafNodeTBS with ln.SignatureKey
// (RFC 9420, Section 7.3). A bad signature gives an error wrapping
// ciphersuite.ErrInvalidSignature; a malformed key one wrapping
// ciphersuite.ErrInvalidKey.
func (ln *LeafNode) VerifySignature(s *ciphersuite.Suite, groupID []byte, leaf uint32) error {
	tbs, err := ln.tbs(groupID, leaf)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(ln.SignatureKey, labelLeafNodeTBS, tbs, ln.Signature); err != nil {
		return fmt.Errorf("mls: LeafNode signature (leaf %d): %w", leaf, err)
	}
	return nil
}

// Encode appends the ParentNode (RFC 9420, Section 7.1).
func (p *ParentNode) Encode(e *wire.Encoder) {
	e.Opaque(p.EncryptionKey)
	e.Opaque(p.ParentHash)
	encodeU32s(e, p.UnmergedLeaves)
}

// Decode reads a ParentNode (RFC 9420, Section 7.1).
func (p *ParentNode) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ParentNode"))
	*p = ParentNode{}
	p.EncryptionKey = d.Opaque("encryption_key")
	p.ParentHash = d.Opaque("parent_hash")
	p.UnmergedLeaves = decodeU32s(d, "unmerged_leaves")
}

// Encode appends the Node (RFC 9420, Section 12.4.3.3): a leaf if Leaf is
// set, otherwise a parent (a zero ParentNode if Parent is nil too; the
// Marshal methods reject such a Node).
func (n *Node) Encode(e *wire.Encoder) {
	if n.Leaf != nil {
		e.U8(uint8(NodeTypeLeaf))
		n.Leaf.Encode(e)
		return
	}
	e.U8(uint8(NodeTypeParent))
	p := n.Parent
	if p == nil {
		p = &ParentNode{}
	}
	p.Encode(e)
}

// Decode reads a Node (RFC 9420, Section 12.4.3.3). A node_type other than
// leaf or parent is ErrUnknownValue.
func (n *Node) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Node"))
	*n = Node{}
	t := NodeType(d.U8("node_type"))
	if d.Err() != nil {
		return
	}
	switch t {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.Decode(d)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.Decode(d)
	default:
		failUnknown(d, "node_type", uint64(t))
	}
}

// Type returns the node type: NodeTypeLeaf if Leaf is set, else
// NodeTypeParent.
func (n *Node) Type() NodeType {
	if n.Leaf != nil {
		return NodeTypeLeaf
	}
	return NodeTypeParent
}

func (n *Node) check() error {
	if (n.Leaf == nil) == (n.Parent == nil) {
		return inconsistent("Node", "node_type", "exactly one of Leaf and Parent must be set")
	}
	if n.Leaf != nil {
		return n.Leaf.check()
	}
	return nil
}

// Encode appends optional<Node> ratchet_tree<V> (RFC 9420, Section
// 12.4.3.3); nil entries are blank nodes. Encode writes the entries as
// they are: stripping trailing blank nodes is the tree's job.
func (t RatchetTree) Encode(e *wire.Encoder) {
	e.Vector(func(e *wire.Encoder) {
		for _, n := range t {
			e.Optional(n != nil)
			if n != nil {
				n.Encode(e)
			}
		}
	})
}

// Decode reads optional<Node> ratchet_tree<V> (RFC 9420, Section
// 12.4.3.3). Only the structure is checked; the shape rules (the last node
// is non-blank, leaves at even indices) belong to the tree.
func (t *RatchetTree) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("RatchetTree"))
	out := RatchetTree{}
	d.Vector("ratchet_tree", func(d *wire.Decoder) {
		if !d.Optional("node") {
			out = append(out, nil)
			return
		}
		n := new(Node)
		n.Decode(d)
		out = append(out, n)
	})
	if d.Err() != nil {
		*t = nil
		return
	}
	*t = out
}

func (t RatchetTree) check() error {
	for i, n := range t {
		if n == nil {
			continue
		}
		if err := n.check(); err != nil {
			return fmt.Errorf("ratchet_tree[%d]: %w", i, err)
		}
	}
	return nil
}

// Encode appends the UpdatePathNode (RFC 9420, Section 7.6).
func (n *UpdatePathNode) Encode(e *wire.Encoder) {
	e.Opaque(n.EncryptionKey)
	e.Vector(func(e *wire.Encoder) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].Encode(e)
		}
	})
}

// Decode reads an UpdatePathNode (RFC 9420, Section 7.6).
func (n *UpdatePathNode) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("UpdatePathNode"))
	*n = UpdatePathNode{}
	n.EncryptionKey = d.Opaque("encryption_key")
	n.EncryptedPathSecret = []HPKECiphertext{}
	// The ciphertexts of a node are read and dropped together; in a fresh
	// tree there is one per member below the node's copath child.
	// They all have the size of the first in practice (the KEM output and
	// a sealed path secret), so the first sizes the slice: no more than
	// appending would reach with ciphertexts as small as it, and no
	// growing when they are all alike.
	var arena wire.Arena
	d.Vector("encrypted_path_secret", func(d *wire.Decoder) {
		var c HPKECiphertext
		rest := d.Len()
		c.decodeIn(d, &arena)
		if cap(n.EncryptedPathSecret) == 0 && d.Err() == nil {
			n.EncryptedPathSecret = make([]HPKECiphertext, 0, rest/max(rest-d.Len(), 1))
		}
		n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
	})
}

// Encode appends the UpdatePath (RFC 9420, Section 7.6).
func (p *UpdatePath) Encode(e *wire.Encoder) {
	p.LeafNode.Encode(e)
	e.Vector(func(e *wire.Encoder) {
		for i := range p.Nodes {
			p.Nodes[i].Encode(e)
		}
	})
}

// Decode reads an UpdatePath (RFC 9420, Section 7.6).
func (p *UpdatePath) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("UpdatePath"))
	*p = UpdatePath{}
	p.LeafNode.Decode(d)
	p.Nodes = []UpdatePathNode{}
	d.Vector("nodes", func(d *wire.Decoder) {
		var n UpdatePathNode
		n.Decode(d)
		p.Nodes = append(p.Nodes, n)
	})
}

// IndexedNode is a non-blank node of a ratchet tree with its position.
type IndexedNode struct {
	Index uint32
	Node  *Node
	// LeafEncoding, if set, is the encoding of Node.Leaf, which the leaf's
	// byte fields share (see DecodeNodeKeepingLeaf). A tree built from the
	// node keeps it instead of encoding the leaf again.
	LeafEncoding []byte
}

// SparseRatchetTree is a decoded ratchet_tree (RFC 9420, Section 12.4.3.3)
// that keeps only its non-blank nodes: a blank node costs its one input
// byte and no memory, so a tree padded with blank nodes cannot make the
// decoder allocate more than its non-blank nodes need.
type SparseRatchetTree struct {
	// Width is the number of entries of the vector, blank ones included.
	Width uint32
	// Nodes are the non-blank entries, in increasing Index order.
	Nodes []IndexedNode
}

// UnmarshalSparseRatchetTree decodes optional<Node> ratchet_tree<V> (RFC
// 9420, Section 12.4.3.3) into its non-blank nodes. Decoding stops with
// wire.ErrTooLarge as soon as the vector holds more than maxNodes entries,
// so the cost is bounded by the input and by maxNodes, whatever the
// vector's length header claims. As with RatchetTree.Decode, only the
// structure is checked.
func UnmarshalSparseRatchetTree(b []byte, maxNodes uint32) (*SparseRatchetTree, error) {
	d := wire.NewDecoder(b)
	d.Struct("RatchetTree")
	out := &SparseRatchetTree{}
	var count uint64
	d.Vector("ratchet_tree", func(d *wire.Decoder) {
		if count >= uint64(maxNodes) {
			d.Fail("node", fmt.Errorf("%w: more than %d nodes", wire.ErrTooLarge, maxNodes))
			return
		}
		// A run of blank nodes (each one absent-optional octet, 0) is
		// skipped at once, up to the limit.
		if rest := d.Peek(); len(rest) > 0 && rest[0] == 0 {
			run := min(uint64(len(rest)), uint64(maxNodes)-count)
			for k := uint64(1); k < run; k++ {
				if rest[k] != 0 {
					run = k
					break
				}
			}
			d.Skip("node", int(run))
			count += run
			return
		}
		i := uint32(count)
		count++
		if !d.Optional("node") {
			return
		}
		n, enc := DecodeNodeKeepingLeaf(d)
		out.Nodes = append(out.Nodes, IndexedNode{Index: i, Node: n, LeafEncoding: enc})
	})
	if err := d.Finish(); err != nil {
		return nil, err
	}
	out.Width = uint32(count)
	return out, nil
}

// Sparse returns the non-blank nodes of t, sharing them with t.
func (t RatchetTree) Sparse() *SparseRatchetTree {
	out := &SparseRatchetTree{Width: uint32(len(t))}
	for i, n := range t {
		if n != nil {
			out.Nodes = append(out.Nodes, IndexedNode{Index: uint32(i), Node: n})
		}
	}
	return out
}
