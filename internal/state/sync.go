package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
)

// Snapshot is what WriteGroup writes: a group's encoded record, the parts
// of its state that live in records of their own, and how they changed.
type Snapshot struct {
	// Record is the encoded GroupRecord (GroupRecord.Marshal) and Header
	// its header.
	Record []byte
	Header *Header
	// Tree is the current ratchet tree.
	Tree *tree.Tree
	// Merged, if not nil, is the commit just merged into Tree: only its
	// changed nodes are written if the stored tree is its base.
	Merged *Merged
	// Current is the current epoch; Past the earlier epochs kept.
	Current Epoch
	Past    []Epoch
	// OwnLeaf is this member's leaf, whose ratchets in the current epoch
	// are brought up to date (sending a handshake message as a
	// PrivateMessage advances them).
	OwnLeaf uint32
}

// Merged is a merged commit's change to the tree.
type Merged struct {
	BaseTreeHash []byte // the tree hash of the tree the commit changed
	Changes      *tree.Changes
}

// Epoch is one epoch whose secret tree a group keeps.
type Epoch struct {
	Number  uint64
	ID      []byte // EpochID of its group context
	Secrets *secrettree.Tree
	// Past returns its past-epoch record; nil for the current epoch. It is
	// called only when the record must be written.
	Past func() *PastRecord
}

// WriteGroup writes a group's record and brings the node, ratchet and past
// records in line with it. It is meant to run in one transaction with
// whatever else the state change writes.
func WriteGroup(tx storage.Tx, groupID []byte, s *Snapshot) error {
	old, err := ReadHeader(tx, groupID)
	if err != nil {
		return err
	}
	if err := syncTree(tx, BucketNodes, groupID, old, s.Header, s.Tree, s.Merged); err != nil {
		return err
	}
	if err := syncEpochs(tx, groupID, old, s); err != nil {
		return err
	}
	return tx.Put(BucketGroups, groupID, s.Record)
}

// ReadHeader returns the header of the stored group record, or nil if
// there is none or it cannot be read (then everything is written anew).
func ReadHeader(tx storage.Tx, groupID []byte) (*Header, error) {
	b, err := tx.Get(BucketGroups, groupID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	body, err := Unseal(b)
	if err != nil {
		return nil, nil
	}
	d := wire.NewDecoder(body)
	var h Header
	if v := d.U8("version"); v < GroupRecordV2 || v > GroupRecordV4 {
		return nil, nil
	}
	h.decode(d)
	if d.Err() != nil {
		return nil, nil
	}
	return &h, nil
}

// syncTree writes the ratchet tree's node records: nothing if the stored
// tree is the current one, the nodes the merged diff changed if the stored
// tree is the one it was made from, and the whole tree otherwise.
func syncTree(tx storage.Tx, nodes string, groupID []byte, old, cur *Header, t *tree.Tree, merged *Merged) error {
	if old != nil && old.Leaves == cur.Leaves && bytes.Equal(old.TreeHash, cur.TreeHash) {
		return nil
	}
	if old != nil && merged != nil && bytes.Equal(old.TreeHash, merged.BaseTreeHash) {
		c := merged.Changes
		if c.Limit < tree.NodeIndex(treemath.NodeWidth(old.Leaves)) {
			if err := deleteNodesFrom(tx, nodes, groupID, c.Limit, old.Leaves); err != nil {
				return err
			}
		}
		for _, ch := range c.Nodes {
			if ch.Node == nil {
				if err := tx.Delete(nodes, NodeKey(groupID, ch.X)); err != nil {
					return err
				}
				continue
			}
			if err := putNode(tx, nodes, groupID, ch.X, ch.Node); err != nil {
				return err
			}
		}
		return nil
	}
	if err := tx.DeletePrefix(nodes, GroupPrefix(groupID)); err != nil {
		return err
	}
	// The records putNode writes, from the encodings the tree keeps.
	return t.EncodedNodes(func(x tree.NodeIndex, n []byte) error {
		return tx.Put(nodes, NodeKey(groupID, x), append([]byte{NodeRecordVersion}, n...))
	})
}

// putNode writes a node record:
//
//	struct { uint8 version = 1; Node node; } NodeRecord;
func putNode(tx storage.Tx, nodes string, groupID []byte, x tree.NodeIndex, n *message.Node) error {
	e := wire.NewEncoder(nil)
	e.U8(NodeRecordVersion)
	n.Encode(e)
	b, err := e.Bytes()
	if err != nil {
		return err
	}
	return tx.Put(nodes, NodeKey(groupID, x), b)
}

// deleteNodesFrom deletes the records of nodes lim and beyond, in a tree
// that had oldLeaves leaves. lim is a tree width, 2^k - 1.
func deleteNodesFrom(tx storage.Tx, nodes string, groupID []byte, lim tree.NodeIndex, oldLeaves uint32) error {
	l := bits.Len32(uint32(lim))
	for x := uint64(lim); x < 1<<l; x++ {
		if err := tx.Delete(nodes, NodeKey(groupID, tree.NodeIndex(x))); err != nil {
			return err
		}
	}
	top := bits.Len32(treemath.NodeWidth(oldLeaves) - 1)
	for n := l + 1; n <= top; n++ {
		if err := tx.DeletePrefix(nodes, append(GroupPrefix(groupID), byte(n))); err != nil {
			return err
		}
	}
	return nil
}

// syncEpochs brings the ratchets and past records in line with the
// group's current and past epochs: records of epochs no longer kept are
// deleted, new epochs are written in full, and the current epoch's record
// of this member's own leaf is brought up to date.
func syncEpochs(tx storage.Tx, groupID []byte, old *Header, s *Snapshot) error {
	// A removed member keeps its last epoch as both current and past: the
	// past one takes the slot.
	cur := map[uint64]Epoch{s.Current.Number: s.Current}
	for _, p := range s.Past {
		cur[p.Number] = p
	}
	oldSlots := map[uint64][]byte{}
	oldPast := map[uint64][]byte{}
	if old == nil {
		if err := tx.DeletePrefix(BucketRatchets, GroupPrefix(groupID)); err != nil {
			return err
		}
		if err := tx.DeletePrefix(BucketPast, GroupPrefix(groupID)); err != nil {
			return err
		}
	} else {
		oldSlots = old.slots()
		for _, p := range old.Past {
			oldPast[p.Epoch] = p.ID
		}
	}
	for e, id := range oldSlots {
		if ep, ok := cur[e]; !ok || !bytes.Equal(ep.ID, id) {
			if err := tx.DeletePrefix(BucketRatchets, RatchetKey(groupID, e, nil)); err != nil {
				return err
			}
		}
	}
	for e, id := range oldPast {
		if ep, ok := cur[e]; !ok || ep.Past == nil || !bytes.Equal(ep.ID, id) {
			if err := tx.Delete(BucketPast, PastKey(groupID, e)); err != nil {
				return err
			}
		}
	}
	for e, ep := range cur {
		if id, ok := oldSlots[e]; !ok || !bytes.Equal(id, ep.ID) {
			if err := writeSecretTree(tx, groupID, e, ep.Secrets); err != nil {
				return err
			}
		}
		if ep.Past != nil {
			if id, ok := oldPast[e]; !ok || !bytes.Equal(id, ep.ID) {
				b, err := ep.Past().Marshal()
				if err != nil {
					return err
				}
				if err := tx.Put(BucketPast, PastKey(groupID, e), b); err != nil {
					return err
				}
			}
		}
	}
	e := s.Current.Number
	if id, ok := oldSlots[e]; ok && bytes.Equal(id, cur[e].ID) {
		return SyncLeaf(tx, groupID, e, s.Current.Secrets, s.OwnLeaf)
	}
	return nil
}

// writeSecretTree writes an epoch's whole secret tree: the node secrets
// and the ratchets of every initialised leaf.
func writeSecretTree(tx storage.Tx, groupID []byte, epoch uint64, st *secrettree.Tree) error {
	nb, err := st.MarshalNodes()
	if err != nil {
		return err
	}
	held, err := nodeSecretIndexes(nb)
	if err != nil {
		return err
	}
	var werr error
	uncovered(held, treemath.Root(st.Leaves()), st.Leaves(), func(l uint32) bool {
		if st.Initialized(tree.LeafIndex(l)) {
			werr = putLeaf(tx, groupID, epoch, st, l)
		}
		return werr == nil
	})
	if werr != nil {
		return werr
	}
	return tx.Put(BucketRatchets, RatchetKey(groupID, epoch, nil), Seal(nb))
}

func putLeaf(tx storage.Tx, groupID []byte, epoch uint64, st *secrettree.Tree, leaf uint32) error {
	lb, err := st.MarshalLeaf(tree.LeafIndex(leaf))
	if err != nil {
		return err
	}
	return tx.Put(BucketRatchets, RatchetKey(groupID, epoch, &leaf), Seal(lb))
}

// SyncLeaf writes the ratchets of leaf in an epoch's secret tree st after
// a message from or to it: an incremental write whose size does not
// depend on the group size. If the leaf has no record yet, this is its
// first use in the epoch, which split node secrets: the node secrets are
// written too, with any other leaf whose secrets were split off since they
// were last written.
func SyncLeaf(tx storage.Tx, groupID []byte, epoch uint64, st *secrettree.Tree, leaf uint32) error {
	if !st.Initialized(tree.LeafIndex(leaf)) {
		return nil
	}
	_, err := tx.Get(BucketRatchets, RatchetKey(groupID, epoch, &leaf))
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrNotFound):
		if err := syncNodeSecrets(tx, groupID, epoch, st, leaf); err != nil {
			return err
		}
	default:
		return err
	}
	return putLeaf(tx, groupID, epoch, st, leaf)
}

func syncNodeSecrets(tx storage.Tx, groupID []byte, epoch uint64, st *secrettree.Tree, leaf uint32) error {
	nb, err := st.MarshalNodes()
	if err != nil {
		return err
	}
	held, err := nodeSecretIndexes(nb)
	if err != nil {
		return err
	}
	root := treemath.Root(st.Leaves())
	before := map[tree.NodeIndex]bool{root: true} // if nothing is stored
	if b, err := tx.Get(BucketRatchets, RatchetKey(groupID, epoch, nil)); err == nil {
		if body, err := Unseal(b); err == nil {
			if m, err := nodeSecretIndexes(body); err == nil {
				before = m
			}
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	var werr error
	width := tree.NodeIndex(treemath.NodeWidth(st.Leaves()))
	for x := range before {
		if held[x] || x >= width {
			continue
		}
		uncovered(held, x, st.Leaves(), func(l uint32) bool {
			if l != leaf && st.Initialized(tree.LeafIndex(l)) {
				werr = putLeaf(tx, groupID, epoch, st, l)
			}
			return werr == nil
		})
		if werr != nil {
			break
		}
	}
	if werr != nil {
		return werr
	}
	return tx.Put(BucketRatchets, RatchetKey(groupID, epoch, nil), Seal(nb))
}

// nodeSecretIndexes returns the node indexes in an encoding of
// secrettree.Tree.MarshalNodes: uint8 version; struct { uint32 node;
// opaque secret<V>; } nodes<V>.
func nodeSecretIndexes(b []byte) (map[tree.NodeIndex]bool, error) {
	d := wire.NewDecoder(b)
	d.Struct("NodeSecrets")
	d.U8("version")
	m := map[tree.NodeIndex]bool{}
	d.Vector("nodes", func(d *wire.Decoder) {
		x := d.U32("node")
		d.Opaque("secret")
		m[tree.NodeIndex(x)] = true
	})
	return m, d.Finish()
}

// uncovered calls f for each leaf below x (and below leaves) that no node
// in held covers, in order, until f returns false. It returns false if f
// did.
func uncovered(held map[tree.NodeIndex]bool, x tree.NodeIndex, leaves uint32, f func(leaf uint32) bool) bool {
	if held[x] {
		return true
	}
	if x.IsLeaf() {
		return uint32(x.Leaf()) >= leaves || f(uint32(x.Leaf()))
	}
	if !uncovered(held, treemath.Left(x), leaves, f) {
		return false
	}
	if uint64(treemath.Right(x)) < uint64(treemath.NodeWidth(leaves)) {
		return uncovered(held, treemath.Right(x), leaves, f)
	}
	return true
}

// LoadGroupRecord reads and decodes a group record: storage.ErrNotFound if
// there is none, a *CorruptError if it cannot be decoded.
func LoadGroupRecord(tx storage.Tx, groupID []byte) (*GroupRecord, error) {
	b, err := tx.Get(BucketGroups, groupID)
	if err != nil {
		return nil, err
	}
	var r GroupRecord
	if err := r.Unmarshal(b); err != nil {
		return nil, corrupt(groupID, "group record", err)
	}
	return &r, nil
}

// storeOrCorrupt passes errors of the store through and reports the rest
// as corruption of what.
func storeOrCorrupt(groupID []byte, what string, err error) error {
	var se *storage.Error
	if errors.As(err, &se) {
		return err
	}
	return corrupt(groupID, what, err)
}

// LoadTree reads the node records and checks them against the header: the
// tree they make must have hdr.Leaves leaves and hash to hdr.TreeHash.
func LoadTree(tx storage.Tx, groupID []byte, s *ciphersuite.Suite, hdr *Header) (*tree.Tree, error) {
	return loadTree(tx, BucketNodes, groupID, s, hdr)
}

func loadTree(tx storage.Tx, nodes string, groupID []byte, s *ciphersuite.Suite, hdr *Header) (*tree.Tree, error) {
	if hdr.Leaves == 0 || hdr.Leaves > tree.MaxLeaves || hdr.Leaves&(hdr.Leaves-1) != 0 {
		return nil, corrupt(groupID, "group record", fmt.Errorf("tree of %d leaves", hdr.Leaves))
	}
	width := treemath.NodeWidth(hdr.Leaves)
	prefix := GroupPrefix(groupID)
	var rt message.SparseRatchetTree // blank nodes cost nothing
	err := tx.Scan(nodes, prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+5 {
			return fmt.Errorf("node key %x of %d bytes", k, len(k))
		}
		x := binary.BigEndian.Uint32(k[len(prefix)+1:])
		if int(k[len(prefix)]) != bits.Len32(x) {
			return fmt.Errorf("node key %x: length octet %d for node %d", k, k[len(prefix)], x)
		}
		if x >= width {
			return fmt.Errorf("node %d outside a tree of %d leaves", x, hdr.Leaves)
		}
		if rt.Width > x {
			return fmt.Errorf("node %d out of order", x)
		}
		d := wire.NewDecoder(v)
		d.Struct("NodeRecord")
		if ver := d.U8("version"); d.Err() == nil && ver != NodeRecordVersion {
			d.Failf("version", "unsupported node record version %d", ver)
		}
		// A leaf's fields share one copy of its encoding, which the tree
		// keeps.
		n, enc := message.DecodeNodeKeepingLeaf(d)
		if err := d.Finish(); err != nil {
			return fmt.Errorf("node %d: %w", x, err)
		}
		rt.Nodes = append(rt.Nodes, message.IndexedNode{Index: x, Node: n, LeafEncoding: enc})
		rt.Width = x + 1
		return nil
	})
	if err != nil {
		return nil, storeOrCorrupt(groupID, "ratchet tree", err)
	}
	t, err := tree.FromSparse(s, &rt, tree.MaxLeaves)
	if err != nil {
		return nil, corrupt(groupID, "ratchet tree", err)
	}
	if t.NumLeaves() != hdr.Leaves || !bytes.Equal(t.TreeHash(), hdr.TreeHash) {
		return nil, corrupt(groupID, "ratchet tree", fmt.Errorf("the stored nodes make a tree of %d leaves whose hash does not match the record (%d leaves)", t.NumLeaves(), hdr.Leaves))
	}
	return t, nil
}

// LoadSecretTree restores an epoch's secret tree from its ratchets records
// and checks that every leaf is below a node secret or has its ratchets.
func LoadSecretTree(tx storage.Tx, groupID []byte, s *ciphersuite.Suite, epoch uint64, p SecretTreeParams) (*secrettree.Tree, error) {
	what := fmt.Sprintf("secret tree of epoch %d", epoch)
	st, err := EmptySecretTree(s, p)
	if err != nil {
		return nil, corrupt(groupID, what, err)
	}
	prefix := RatchetKey(groupID, epoch, nil)
	var nodes []byte
	type leafRec struct {
		leaf uint32
		b    []byte
	}
	var leaves []leafRec
	err = tx.Scan(BucketRatchets, prefix, func(k, v []byte) error {
		body, err := Unseal(v)
		if err != nil {
			return fmt.Errorf("record %x: %w", k, err)
		}
		switch len(k) - len(prefix) {
		case 0:
			nodes = body
		case 4:
			leaves = append(leaves, leafRec{binary.BigEndian.Uint32(k[len(prefix):]), body})
		default:
			return fmt.Errorf("unexpected ratchet key %x", k)
		}
		return nil
	})
	if err != nil {
		return nil, storeOrCorrupt(groupID, what, err)
	}
	if nodes == nil {
		return nil, corrupt(groupID, what, errors.New("node secrets missing"))
	}
	if err := st.UnmarshalNodes(nodes); err != nil {
		return nil, corrupt(groupID, what, err)
	}
	for _, l := range leaves {
		if err := st.UnmarshalLeaf(tree.LeafIndex(l.leaf), l.b); err != nil {
			return nil, corrupt(groupID, what, err)
		}
	}
	// Every leaf is below a node secret or has its ratchets (RFC 9420,
	// Section 9.2 deletes a node secret only once its children exist).
	held, err := nodeSecretIndexes(nodes)
	if err != nil {
		return nil, corrupt(groupID, what, err)
	}
	// The leaves no node secret covers are exactly those with ratchets, so
	// the walk stops after len(leaves)+1 of them.
	lost, seen := -1, 0
	uncovered(held, treemath.Root(st.Leaves()), st.Leaves(), func(l uint32) bool {
		seen++
		if !st.Initialized(tree.LeafIndex(l)) {
			lost = int(l)
		}
		return lost < 0 && seen <= len(leaves)
	})
	if lost >= 0 {
		return nil, corrupt(groupID, what, fmt.Errorf("the ratchets of leaf %d are missing", lost))
	}
	return st, nil
}

// LoadPast reads the record of a past epoch and its secret tree, and
// checks them against ref and the suite.
func LoadPast(tx storage.Tx, groupID []byte, s *ciphersuite.Suite, ref PastRef) (*PastRecord, *secrettree.Tree, error) {
	what := fmt.Sprintf("past epoch %d", ref.Epoch)
	b, err := tx.Get(BucketPast, PastKey(groupID, ref.Epoch))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, corrupt(groupID, what, errors.New("record missing"))
	}
	if err != nil {
		return nil, nil, err
	}
	p := &PastRecord{}
	if err := p.Unmarshal(b); err != nil {
		return nil, nil, corrupt(groupID, what, err)
	}
	if p.Epoch != ref.Epoch || !bytes.Equal(EpochID(p.GroupContext), ref.ID) {
		return nil, nil, corrupt(groupID, what, errors.New("record is for another epoch"))
	}
	if len(p.SenderDataSecret) != s.HashSize() {
		return nil, nil, corrupt(groupID, what, fmt.Errorf("sender data secret of %d bytes", len(p.SenderDataSecret)))
	}
	st, err := LoadSecretTree(tx, groupID, s, p.Epoch, p.SecretTree)
	if err != nil {
		return nil, nil, err
	}
	return p, st, nil
}
