package mls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math/bits"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
)

// Storage layout. The library owns it; every backend stores the same
// bytes. <gid> is the group ID encoded as opaque<V> (RFC 9420, Section
// 2.1.2), so no group's keys are a prefix of another's; integers are big
// endian.
//
//	keypackages/<KeyPackageRef>    private keys of an unused key package
//	psks/<psk_id>                  external PSKs
//	updatekeys/<gid><public key>   leaf keys of this member's Update proposals
//	reinit/<gid>                   the ReInit that ended the group (proposals.go)
//	groups/<gid>                   the group record (see marshalState)
//	nodes/<gid><len><node>         one non-blank node of the ratchet tree
//	ratchets/<gid><epoch>          the node secrets of an epoch's secret tree
//	ratchets/<gid><epoch><leaf>    one leaf's sender ratchets in that epoch
//	past/<gid><epoch>              an earlier epoch kept for late messages
//
// The ratchet tree lives in per-node records so that a commit writes the
// nodes it changed (a direct path: O(log N) of them, RFC 9420, Section
// 7.8) and not the whole tree. In a node key, <node> is the node index as
// uint32 and <len> its bit length (math/bits.Len32) as one octet: the keys
// of the nodes at or beyond 2^k are then the prefixes <gid><k+1> ...
// <gid><32>, so dropping the right half of a truncated tree (RFC 9420,
// Section 7.7) is a few DeletePrefix calls.
//
// The secret tree (RFC 9420, Section 9) lives in the ratchets records, so
// that an application message writes one sender's ratchets and not the
// whole secret tree; the node secrets are written again only when a leaf is
// used for the first time in an epoch.
//
// The group, past and ratchets records end in a CRC-32C of the rest, so
// that damaged storage is reported rather than loaded: the secrets they hold
// cannot be checked any other way. The tree is checked against the tree
// hash the group record holds, the epoch secrets against the confirmation
// tag.
//
// Every save reconciles the store with the group in one transaction: it
// reads the header of the previous group record (tree hash, epochs whose
// secrets are stored) and writes what differs. Keys that the new state no
// longer needs (an old epoch's secrets, a replaced leaf key, nodes of a
// truncated tree) are deleted in the transaction that makes them obsolete
// (RFC 9420, Sections 9.2 and 16.6).
const (
	bucketPSKs     = "psks"
	bucketGroups   = "groups"
	bucketNodes    = "nodes"
	bucketRatchets = "ratchets"
	bucketPast     = "past"
)

// groupRecordVersion is the first octet of the group and past records.
// Version 1 kept the tree and the secret tree inside the group record and
// had no pending commit or past epochs; it is not read any more.
const groupRecordVersion = 2

// groupRecordV3 is the version of group records that also hold
// JoinConfig.ResumptionPSKRetention (after skip_lifetime, as an int32).
// Version 2 group records are still read, with the default retention.
const groupRecordV3 = 3

// nodeRecordVersion is the first octet of a node record.
const nodeRecordVersion = 1

// ErrCorruptState is wrapped by errors for stored group state that cannot
// be decoded or does not fit together.
var ErrCorruptState = errors.New("mls: stored group state is corrupt")

// CorruptStateError names the group whose stored state is bad and why.
type CorruptStateError struct {
	GroupID []byte
	What    string // which record or check, e.g. "group record", "ratchet tree"
	Err     error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("mls: stored state of group %x is corrupt: %s: %v", e.GroupID, e.What, e.Err)
}

func (e *CorruptStateError) Unwrap() []error { return []error{ErrCorruptState, e.Err} }

func corrupt(groupID []byte, what string, err error) *CorruptStateError {
	return &CorruptStateError{GroupID: clone(groupID), What: what, Err: err}
}

// castagnoli is the CRC-32C table for record checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errChecksum: a record's checksum does not match its contents.
var errChecksum = errors.New("checksum mismatch")

// seal appends the CRC-32C of b.
func seal(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// unseal checks and strips the checksum seal appended.
func unseal(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: record of %d bytes", errChecksum, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, errChecksum
	}
	return body, nil
}

func gidPrefix(groupID []byte) []byte {
	e := wire.NewEncoder(nil)
	e.Opaque(groupID)
	return e.MustBytes()
}

// ratchetPrefix is the key prefix of a group's records in the buckets that
// are keyed by group first.
func ratchetPrefix(groupID []byte) []byte { return gidPrefix(groupID) }

func ratchetKey(groupID []byte, epoch uint64, leaf *uint32) []byte {
	k := binary.BigEndian.AppendUint64(gidPrefix(groupID), epoch)
	if leaf != nil {
		k = binary.BigEndian.AppendUint32(k, *leaf)
	}
	return k
}

func pastKey(groupID []byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(gidPrefix(groupID), epoch)
}

func nodeKey(groupID []byte, x tree.NodeIndex) []byte {
	k := append(gidPrefix(groupID), byte(bits.Len32(uint32(x))))
	return binary.BigEndian.AppendUint32(k, uint32(x))
}

// epochID identifies one epoch of one group: the hash of its encoded
// GroupContext, which includes the confirmed transcript hash. Two epochs
// with the same number (a member that was removed and added again) differ.
func epochID(gcRaw []byte) []byte {
	h := sha256.Sum256(gcRaw)
	return h[:]
}

// recordHeader is the part of a group record that a save reads back to
// decide what else to write.
type recordHeader struct {
	epoch    uint64
	gcRaw    []byte
	treeHash []byte // of the stored tree
	leaves   uint32 // of the stored tree
	past     []pastRef
}

type pastRef struct {
	epoch uint64
	id    []byte
}

// slots returns the epochs whose secret trees are stored, by number.
func (h *recordHeader) slots() map[uint64][]byte {
	m := map[uint64][]byte{h.epoch: epochID(h.gcRaw)}
	for _, p := range h.past {
		m[p.epoch] = p.id
	}
	return m
}

func (h *recordHeader) encode(e *wire.Encoder) {
	e.U64(h.epoch)
	e.Opaque(h.gcRaw)
	e.Opaque(h.treeHash)
	e.U32(h.leaves)
	e.Vector(func(e *wire.Encoder) {
		for _, p := range h.past {
			e.U64(p.epoch)
			e.Opaque(p.id)
		}
	})
}

func (h *recordHeader) decode(d *wire.Decoder) {
	h.epoch = d.U64("epoch")
	h.gcRaw = d.Opaque("group_context")
	h.treeHash = d.Opaque("tree_hash")
	h.leaves = d.U32("leaves")
	h.past = nil
	d.Vector("past_epochs", func(d *wire.Decoder) {
		h.past = append(h.past, pastRef{d.U64("epoch"), d.Opaque("id")})
	})
}

// save writes the group state in one transaction.
func (g *Group) save(ctx context.Context) error { return g.persist(ctx, nil, nil) }

// saveWith writes the group state and runs extra in the same transaction.
func (g *Group) saveWith(ctx context.Context, extra func(storage.Tx) error) error {
	return g.persist(ctx, nil, extra)
}

// saveMerged is saveWith after merging sc: it writes only the tree nodes
// that sc's diff changed.
func (g *Group) saveMerged(ctx context.Context, sc *StagedCommit, extra func(storage.Tx) error) error {
	return g.persist(ctx, sc, extra)
}

// persist writes the group record and brings the node, ratchet and past
// records in line with it, in one transaction. merged, if not nil, is the
// commit just merged, whose diff says which nodes changed.
func (g *Group) persist(ctx context.Context, merged *StagedCommit, extra func(storage.Tx) error) error {
	rec, hdr, err := g.marshalState()
	if err != nil {
		return err
	}
	id := g.st.gc.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		old, err := readHeader(tx, id)
		if err != nil {
			return err
		}
		if err := g.syncTree(tx, id, old, hdr, merged); err != nil {
			return err
		}
		if err := g.syncEpochs(tx, id, old); err != nil {
			return err
		}
		if err := tx.Put(bucketGroups, id, rec); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
}

// readHeader returns the header of the stored group record, or nil if
// there is none or it cannot be read (then everything is written anew).
func readHeader(tx storage.Tx, groupID []byte) (*recordHeader, error) {
	b, err := tx.Get(bucketGroups, groupID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	body, err := unseal(b)
	if err != nil {
		return nil, nil
	}
	d := wire.NewDecoder(body)
	var h recordHeader
	if v := d.U8("version"); v != groupRecordVersion && v != groupRecordV3 {
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
func (g *Group) syncTree(tx storage.Tx, groupID []byte, old, cur *recordHeader, merged *StagedCommit) error {
	if old != nil && old.leaves == cur.leaves && bytes.Equal(old.treeHash, cur.treeHash) {
		return nil
	}
	if old != nil && merged != nil && merged.diff.MergedInto(g.st.tree) && bytes.Equal(old.treeHash, merged.base.gc.TreeHash) {
		c := merged.diff.Changes()
		if c.Limit < tree.NodeIndex(treemath.NodeWidth(old.leaves)) {
			if err := deleteNodesFrom(tx, groupID, c.Limit, old.leaves); err != nil {
				return err
			}
		}
		for _, ch := range c.Nodes {
			if ch.Node == nil {
				if err := tx.Delete(bucketNodes, nodeKey(groupID, ch.X)); err != nil {
					return err
				}
				continue
			}
			if err := putNode(tx, groupID, ch.X, ch.Node); err != nil {
				return err
			}
		}
		return nil
	}
	if err := tx.DeletePrefix(bucketNodes, gidPrefix(groupID)); err != nil {
		return err
	}
	for _, n := range g.st.tree.Sparse().Nodes {
		if err := putNode(tx, groupID, tree.NodeIndex(n.Index), n.Node); err != nil {
			return err
		}
	}
	return nil
}

func putNode(tx storage.Tx, groupID []byte, x tree.NodeIndex, n *message.Node) error {
	e := wire.NewEncoder(nil)
	e.U8(nodeRecordVersion)
	n.Encode(e)
	b, err := e.Bytes()
	if err != nil {
		return err
	}
	return tx.Put(bucketNodes, nodeKey(groupID, x), b)
}

// deleteNodesFrom deletes the records of nodes lim and beyond, in a tree
// that had oldLeaves leaves. lim is a tree width, 2^k - 1.
func deleteNodesFrom(tx storage.Tx, groupID []byte, lim tree.NodeIndex, oldLeaves uint32) error {
	l := bits.Len32(uint32(lim))
	for x := uint64(lim); x < 1<<l; x++ {
		if err := tx.Delete(bucketNodes, nodeKey(groupID, tree.NodeIndex(x))); err != nil {
			return err
		}
	}
	top := bits.Len32(treemath.NodeWidth(oldLeaves) - 1)
	for n := l + 1; n <= top; n++ {
		if err := tx.DeletePrefix(bucketNodes, append(gidPrefix(groupID), byte(n))); err != nil {
			return err
		}
	}
	return nil
}

// syncEpochs brings the ratchets and past records in line with the
// group's current and past epochs: records of epochs no longer kept are
// deleted, new epochs are written in full, and the current epoch's record
// of this member's own leaf is brought up to date (sending a handshake
// message as a PrivateMessage advances it).
func (g *Group) syncEpochs(tx storage.Tx, groupID []byte, old *recordHeader) error {
	type slot struct {
		id      []byte
		secrets *secrettree.Tree
		past    *pastEpoch
	}
	cur := map[uint64]slot{g.st.gc.Epoch: {id: epochID(g.st.gcRaw), secrets: g.st.secrets}}
	for _, p := range g.past {
		cur[p.epoch] = slot{id: epochID(p.gcRaw), secrets: p.secrets, past: p}
	}
	oldSlots := map[uint64][]byte{}
	oldPast := map[uint64][]byte{}
	if old == nil {
		if err := tx.DeletePrefix(bucketRatchets, gidPrefix(groupID)); err != nil {
			return err
		}
		if err := tx.DeletePrefix(bucketPast, gidPrefix(groupID)); err != nil {
			return err
		}
	} else {
		oldSlots = old.slots()
		for _, p := range old.past {
			oldPast[p.epoch] = p.id
		}
	}
	for e, id := range oldSlots {
		if s, ok := cur[e]; !ok || !bytes.Equal(s.id, id) {
			if err := tx.DeletePrefix(bucketRatchets, ratchetKey(groupID, e, nil)); err != nil {
				return err
			}
		}
	}
	for e, id := range oldPast {
		if s, ok := cur[e]; !ok || s.past == nil || !bytes.Equal(s.id, id) {
			if err := tx.Delete(bucketPast, pastKey(groupID, e)); err != nil {
				return err
			}
		}
	}
	for e, s := range cur {
		if id, ok := oldSlots[e]; !ok || !bytes.Equal(id, s.id) {
			if err := writeSecretTree(tx, groupID, e, s.secrets); err != nil {
				return err
			}
		}
		if s.past != nil {
			if id, ok := oldPast[e]; !ok || !bytes.Equal(id, s.id) {
				b, err := marshalPast(s.past)
				if err != nil {
					return err
				}
				if err := tx.Put(bucketPast, pastKey(groupID, e), b); err != nil {
					return err
				}
			}
		}
	}
	if id, ok := oldSlots[g.st.gc.Epoch]; ok && bytes.Equal(id, cur[g.st.gc.Epoch].id) {
		return syncLeaf(tx, groupID, g.st.gc.Epoch, g.st.secrets, uint32(g.st.own))
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
	return tx.Put(bucketRatchets, ratchetKey(groupID, epoch, nil), seal(nb))
}

func putLeaf(tx storage.Tx, groupID []byte, epoch uint64, st *secrettree.Tree, leaf uint32) error {
	lb, err := st.MarshalLeaf(tree.LeafIndex(leaf))
	if err != nil {
		return err
	}
	return tx.Put(bucketRatchets, ratchetKey(groupID, epoch, &leaf), seal(lb))
}

// syncLeaf writes the ratchets of leaf after a message from or to it. If
// the leaf has no record yet, this is its first use in the epoch, which
// split node secrets: the node secrets are written too, with any other
// leaf whose secrets were split off since they were last written.
func syncLeaf(tx storage.Tx, groupID []byte, epoch uint64, st *secrettree.Tree, leaf uint32) error {
	if !st.Initialized(tree.LeafIndex(leaf)) {
		return nil
	}
	_, err := tx.Get(bucketRatchets, ratchetKey(groupID, epoch, &leaf))
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
	if b, err := tx.Get(bucketRatchets, ratchetKey(groupID, epoch, nil)); err == nil {
		if body, err := unseal(b); err == nil {
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
	return tx.Put(bucketRatchets, ratchetKey(groupID, epoch, nil), seal(nb))
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

// saveRatchet writes one sender's ratchet state (and, on the sender's first
// message of the epoch, the secret tree's node secrets) after a message:
// an incremental write whose size does not depend on the group size.
func (g *Group) saveRatchet(ctx context.Context, st *epochState, leaf uint32) error {
	id := st.gc.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		return syncLeaf(tx, id, st.gc.Epoch, st.secrets, leaf)
	})
}

// savePastRatchet is saveRatchet for an application message of a kept
// earlier epoch (processPast).
func (g *Group) savePastRatchet(ctx context.Context, p *pastEpoch, leaf uint32) error {
	id := g.st.gc.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		return syncLeaf(tx, id, p.epoch, p.secrets, leaf)
	})
}

// secretTreeParams are what an empty secret tree needs.
type secretTreeParams struct {
	leaves uint32
	cfg    secrettree.Config
}

func paramsOf(st *secrettree.Tree) secretTreeParams {
	return secretTreeParams{leaves: st.Leaves(), cfg: st.Config()}
}

func (p *secretTreeParams) encode(e *wire.Encoder) {
	e.U32(p.leaves)
	e.U32(p.cfg.OutOfOrderTolerance)
	e.U32(p.cfg.MaxForwardDistance)
}

func (p *secretTreeParams) decode(d *wire.Decoder) {
	p.leaves = d.U32("secret_tree_leaves")
	p.cfg.OutOfOrderTolerance = d.U32("out_of_order_tolerance")
	p.cfg.MaxForwardDistance = d.U32("max_forward_distance")
}

// emptySecretTree returns a secret tree with no secrets, to restore stored
// ones into. It goes through secrettree.Tree.UnmarshalBinary, whose
// TreeState encoding with empty node and leaf vectors is the tree's
// parameters followed by two zero octets.
func emptySecretTree(s *ciphersuite.Suite, p secretTreeParams) (*secrettree.Tree, error) {
	e := wire.NewEncoder(nil)
	e.U8(1)
	e.U16(uint16(s.ID()))
	p.encode(e)
	e.Vector(func(*wire.Encoder) {})
	e.Vector(func(*wire.Encoder) {})
	st := &secrettree.Tree{}
	if err := st.UnmarshalBinary(e.MustBytes()); err != nil {
		return nil, err
	}
	return st, nil
}

// marshalState encodes the group record:
//
//	struct {
//	    uint8 version = 2;
//	    /* header */
//	    uint64 epoch;
//	    opaque group_context<V>;
//	    opaque tree_hash<V>;          /* of the stored tree */
//	    uint32 leaves;                /* of the stored tree */
//	    struct { uint64 epoch; opaque id<V>; } past_epochs<V>;
//	    /* body */
//	    JoinConfigState config;
//	    bool active;
//	    uint32 own_leaf;
//	    PrivateTreeState private;
//	    opaque epoch_secrets<V>;      /* keyschedule.EpochSecrets */
//	    SecretTreeParams secret_tree;
//	    opaque confirmation_tag<V>;
//	    QueuedProposal proposals<V>;
//	    struct { opaque key<V>; opaque psk<V>; } resumption_psks<V>;
//	    optional<PendingCommit> pending;
//	    uint32 crc32c;
//	} GroupRecord;
//
//	struct {
//	    bool outgoing_private; uint8 incoming; uint32 padding_size;
//	    uint32 max_past_epochs; uint32 out_of_order_tolerance;
//	    uint32 max_forward_distance; bool ratchet_tree_extension;
//	    bool skip_lifetime_check;
//	} JoinConfigState;
//
//	struct {
//	    uint32 leaves; uint32 out_of_order_tolerance; uint32 max_forward_distance;
//	} SecretTreeParams;
//
// It returns the record and its header.
func (g *Group) marshalState() ([]byte, *recordHeader, error) {
	st := g.st
	hdr := &recordHeader{epoch: st.gc.Epoch, gcRaw: st.gcRaw, treeHash: st.tree.TreeHash(), leaves: st.tree.NumLeaves()}
	for _, p := range g.past {
		hdr.past = append(hdr.past, pastRef{p.epoch, epochID(p.gcRaw)})
	}
	e := wire.NewEncoder(nil)
	e.U8(groupRecordV3)
	hdr.encode(e)
	c := &g.cfg
	e.Bool(c.WireFormatPolicy.OutgoingPrivate)
	e.U8(uint8(c.WireFormatPolicy.Incoming))
	e.U32(uint32(c.PaddingSize))
	e.U32(uint32(c.MaxPastEpochs))
	e.U32(c.SenderRatchet.OutOfOrderTolerance)
	e.U32(c.SenderRatchet.MaxForwardDistance)
	e.Bool(c.UseRatchetTreeExtension)
	e.Bool(c.SkipLifetimeCheck)
	e.U32(uint32(int32(c.ResumptionPSKRetention)))
	e.Bool(g.active)
	e.U32(uint32(st.own))
	encodePrivate(e, st.priv)
	keys, err := st.keys.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	e.Opaque(keys)
	p := paramsOf(st.secrets)
	p.encode(e)
	e.Opaque(st.confTag)
	e.Vector(func(e *wire.Encoder) {
		for _, q := range g.props {
			encodeQueued(e, q)
		}
	})
	e.Vector(func(e *wire.Encoder) {
		for _, k := range slices.Sorted(maps.Keys(g.psks)) {
			e.Opaque([]byte(k))
			e.Opaque(g.psks[k])
		}
	})
	e.Optional(g.pending != nil)
	if g.pending != nil {
		if err := g.encodePending(e, g.pending); err != nil {
			return nil, nil, err
		}
	}
	b, err := e.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return seal(b), hdr, nil
}

//	struct {
//	    opaque leaf_key<V>;
//	    struct { uint32 node; opaque key<V>; } node_keys<V>;
//	} PrivateTreeState;
func encodePrivate(e *wire.Encoder, p *tree.PrivateState) {
	e.Opaque(p.LeafPrivateKey())
	e.Vector(func(e *wire.Encoder) {
		for _, x := range p.Nodes() {
			k, _ := p.NodePrivateKey(x)
			e.U32(uint32(x))
			e.Opaque(k)
		}
	})
}

type privateRecord struct {
	leafKey []byte
	nodes   []struct {
		x   uint32
		key []byte
	}
}

func (r *privateRecord) decode(d *wire.Decoder) {
	r.leafKey = d.Opaque("leaf_key")
	d.Vector("node_keys", func(d *wire.Decoder) {
		r.nodes = append(r.nodes, struct {
			x   uint32
			key []byte
		}{d.U32("node"), d.Opaque("key")})
	})
}

func (r *privateRecord) state(s *ciphersuite.Suite, own tree.LeafIndex) (*tree.PrivateState, error) {
	p, err := tree.NewPrivateState(s, own, r.leafKey)
	if err != nil {
		return nil, err
	}
	for _, n := range r.nodes {
		if p, err = p.WithNodeKey(tree.NodeIndex(n.x), n.key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

//	struct {
//	    optional<opaque ref<V>>;   /* absent for a proposal inline in a commit */
//	    Sender sender;
//	    Proposal proposal;
//	} QueuedProposal;
func encodeQueued(e *wire.Encoder, q *QueuedProposal) {
	e.Optional(q.ref != nil)
	if q.ref != nil {
		e.Opaque(q.ref)
	}
	q.sender.Encode(e)
	q.p.Encode(e)
}

func decodeQueued(d *wire.Decoder) *QueuedProposal {
	q := &QueuedProposal{p: &message.Proposal{}}
	if d.Optional("ref") {
		q.ref = d.Opaque("ref")
	}
	q.sender.Decode(d)
	q.p.Decode(d)
	return q
}

// encodePending encodes this member's own pending commit:
//
//	struct {
//	    opaque group_context<V>;     /* of the next epoch */
//	    PrivateTreeState private;
//	    opaque epoch_secrets<V>;
//	    opaque secret_tree<V>;       /* secrettree.Tree.MarshalBinary */
//	    opaque confirmation_tag<V>;
//	    TreeChanges tree;            /* the diff, see tree.Changes */
//	    QueuedProposal proposals<V>;
//	    uint32 added<V>; uint32 removed<V>; uint32 updated<V>;
//	    uint32 external_leaf;
//	    bool needs_path; bool self_removed;
//	    Sender sender;
//	    opaque new_signature_key<V>; /* empty if unchanged */
//	    opaque commit<V>;            /* MLSMessage */
//	    optional<opaque welcome<V>>;
//	    optional<opaque group_info<V>>;
//	} PendingCommit;
//
//	struct {
//	    uint32 leaves; uint32 limit;
//	    struct { uint32 node; optional<Node> value; } nodes<V>;
//	} TreeChanges;
func (g *Group) encodePending(e *wire.Encoder, sc *StagedCommit) error {
	next := sc.next
	if next == nil || !sc.own {
		return fmt.Errorf("mls: pending commit without a next epoch")
	}
	e.Opaque(next.gcRaw)
	encodePrivate(e, next.priv)
	keys, err := next.keys.MarshalBinary()
	if err != nil {
		return err
	}
	e.Opaque(keys)
	sec, err := next.secrets.MarshalBinary()
	if err != nil {
		return err
	}
	e.Opaque(sec)
	e.Opaque(next.confTag)
	c := sc.diff.Changes()
	e.U32(c.NumLeaves)
	e.U32(uint32(c.Limit))
	e.Vector(func(e *wire.Encoder) {
		for _, ch := range c.Nodes {
			e.U32(uint32(ch.X))
			e.Optional(ch.Node != nil)
			if ch.Node != nil {
				ch.Node.Encode(e)
			}
		}
	})
	a := sc.a
	e.Vector(func(e *wire.Encoder) {
		for _, q := range a.props {
			encodeQueued(e, q)
		}
	})
	leafList := func(ls []tree.LeafIndex) {
		e.Vector(func(e *wire.Encoder) {
			for _, l := range ls {
				e.U32(uint32(l))
			}
		})
	}
	leafList(a.added)
	leafList(a.removed)
	var updated []tree.LeafIndex
	for l := range a.updated {
		updated = append(updated, l)
	}
	leafList(sortedLeaves(updated))
	e.U32(uint32(a.externalLeaf))
	e.Bool(a.needsPath)
	e.Bool(a.selfGone)
	sc.sender.Encode(e)
	var newSig []byte
	if now, was := sc.diff.Leaf(sc.base.own), sc.base.ownLeaf(); now != nil && was != nil && !bytes.Equal(now.SignatureKey, was.SignatureKey) {
		newSig = now.SignatureKey
	}
	e.Opaque(newSig)
	for i, m := range []*Message{sc.commit, sc.welcome, sc.groupInfo} {
		if i > 0 {
			e.Optional(m != nil)
			if m == nil {
				continue
			}
		}
		b, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		e.Opaque(b)
	}
	return nil
}

func sortedLeaves(ls []tree.LeafIndex) []tree.LeafIndex {
	slices.Sort(ls)
	return ls
}

// pendingRecord is a decoded PendingCommit, not yet checked.
type pendingRecord struct {
	gcRaw, keys, secrets, confTag []byte
	priv                          privateRecord
	changes                       tree.Changes
	props                         []*QueuedProposal
	added, removed, updated       []uint32
	externalLeaf                  uint32
	needsPath, selfGone           bool
	sender                        message.Sender
	newSig                        []byte
	msgs                          [3][]byte // commit, welcome, group info
}

func (r *pendingRecord) decode(d *wire.Decoder) {
	r.gcRaw = d.Opaque("group_context")
	r.priv.decode(d)
	r.keys = d.Opaque("epoch_secrets")
	r.secrets = d.Opaque("secret_tree")
	r.confTag = d.Opaque("confirmation_tag")
	r.changes.NumLeaves = d.U32("leaves")
	r.changes.Limit = tree.NodeIndex(d.U32("limit"))
	d.Vector("nodes", func(d *wire.Decoder) {
		ch := tree.NodeChange{X: tree.NodeIndex(d.U32("node"))}
		if d.Optional("value") {
			ch.Node = &message.Node{}
			ch.Node.Decode(d)
		}
		r.changes.Nodes = append(r.changes.Nodes, ch)
	})
	d.Vector("proposals", func(d *wire.Decoder) { r.props = append(r.props, decodeQueued(d)) })
	for _, l := range []*[]uint32{&r.added, &r.removed, &r.updated} {
		d.Vector("leaves", func(d *wire.Decoder) { *l = append(*l, d.U32("leaf")) })
	}
	r.externalLeaf = d.U32("external_leaf")
	r.needsPath = d.Bool("needs_path")
	r.selfGone = d.Bool("self_removed")
	r.sender.Decode(d)
	r.newSig = d.Opaque("new_signature_key")
	r.msgs[0] = d.Opaque("commit")
	if d.Optional("welcome") {
		r.msgs[1] = d.Opaque("welcome")
	}
	if d.Optional("group_info") {
		r.msgs[2] = d.Opaque("group_info")
	}
}

// marshalPast encodes a past-epoch record:
//
//	struct {
//	    uint8 version = 2;
//	    uint64 epoch;
//	    opaque group_context<V>;
//	    opaque sender_data_secret<V>;
//	    SecretTreeParams secret_tree;
//	    struct { uint32 leaf; opaque signature_key<V>; Credential credential; } members<V>;
//	    uint32 crc32c;
//	} PastEpochRecord;
func marshalPast(p *pastEpoch) ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.U8(groupRecordVersion)
	e.U64(p.epoch)
	e.Opaque(p.gcRaw)
	e.Opaque(p.senderData)
	prm := paramsOf(p.secrets)
	prm.encode(e)
	leaves := make([]tree.LeafIndex, 0, len(p.sigKeys))
	for l := range p.sigKeys {
		leaves = append(leaves, tree.LeafIndex(l))
	}
	e.Vector(func(e *wire.Encoder) {
		for _, l := range sortedLeaves(leaves) {
			e.U32(uint32(l))
			e.Opaque(p.sigKeys[uint32(l)])
			c := p.creds[uint32(l)]
			c.Encode(e)
		}
	})
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	return seal(b), nil
}

// loadGroup loads a group from the client's store, as the last state
// change left it: the current epoch, every message key consumed since,
// pending proposals, this member's pending commit (merge it with
// MergePendingCommit, or clear it), and the earlier epochs kept for late
// messages (JoinConfig.MaxPastEpochs), with the stored version the handle
// will check on its next save (Client.LoadGroup). signer may be nil for a
// group only read, such as the source of a resumption PSK.
func loadGroup(ctx context.Context, c *Client, groupID []byte, signer crypto.Signer) (*Group, error) {
	g := &Group{store: c.store}
	g.cfg.client = c
	err := view(ctx, c.store, func(tx storage.Tx) error {
		rec, err := tx.Get(bucketGroups, groupID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: group %x", ErrNotFound, groupID)
		}
		if err != nil {
			return err
		}
		if g.version, err = readVersion(tx, groupID); err != nil {
			return err
		}
		return g.load(tx, groupID, rec)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if err := g.setSigner(signer); err != nil {
		return nil, err
	}
	return g, nil
}

// load restores the group from the record rec and the records it names.
func (g *Group) load(tx storage.Tx, groupID, rec []byte) error {
	body, err := unseal(rec)
	if err != nil {
		return corrupt(groupID, "group record", err)
	}
	var r groupRecord
	if err := r.decode(body); err != nil {
		return corrupt(groupID, "group record", err)
	}
	// restore wraps what it finds wrong in a *CorruptStateError; other
	// errors come from the store.
	return g.restore(tx, groupID, &r)
}

// groupRecord is a decoded GroupRecord, not yet checked.
type groupRecord struct {
	hdr     recordHeader
	cfg     JoinConfig
	active  bool
	own     uint32
	priv    privateRecord
	keys    []byte
	params  secretTreeParams
	confTag []byte
	props   []*QueuedProposal
	psks    map[string][]byte
	pending *pendingRecord
}

func (r *groupRecord) decode(b []byte) error {
	d := wire.NewDecoder(b)
	d.Struct("GroupRecord")
	v := d.U8("version")
	if d.Err() == nil && v != groupRecordVersion && v != groupRecordV3 {
		d.Failf("version", "unsupported record version %d (this code reads versions %d and %d)", v, groupRecordVersion, groupRecordV3)
	}
	r.hdr.decode(d)
	c := &r.cfg
	c.WireFormatPolicy.OutgoingPrivate = d.Bool("outgoing_private")
	c.WireFormatPolicy.Incoming = IncomingPolicy(d.U8("incoming"))
	c.PaddingSize = int(d.U32("padding"))
	c.MaxPastEpochs = int(d.U32("max_past_epochs"))
	c.SenderRatchet.OutOfOrderTolerance = d.U32("out_of_order")
	c.SenderRatchet.MaxForwardDistance = d.U32("max_forward")
	c.UseRatchetTreeExtension = d.Bool("ratchet_tree_extension")
	c.SkipLifetimeCheck = d.Bool("skip_lifetime")
	if v == groupRecordV3 {
		c.ResumptionPSKRetention = int(int32(d.U32("resumption_psk_retention")))
	}
	r.active = d.Bool("active")
	r.own = d.U32("own_leaf")
	r.priv.decode(d)
	r.keys = d.Opaque("epoch_secrets")
	r.params.decode(d)
	r.confTag = d.Opaque("confirmation_tag")
	d.Vector("proposals", func(d *wire.Decoder) { r.props = append(r.props, decodeQueued(d)) })
	r.psks = map[string][]byte{}
	d.Vector("resumption_psks", func(d *wire.Decoder) {
		k := d.Opaque("key")
		v := d.Opaque("psk")
		if d.Err() == nil {
			if _, dup := r.psks[string(k)]; dup {
				d.Failf("key", "duplicate resumption PSK")
			}
			r.psks[string(k)] = v
		}
	})
	if d.Optional("pending") {
		r.pending = &pendingRecord{}
		r.pending.decode(d)
	}
	if err := d.Finish(); err != nil {
		return err
	}
	if c.WireFormatPolicy.Incoming > AcceptPrivateOnly {
		return fmt.Errorf("incoming wire format policy %d", c.WireFormatPolicy.Incoming)
	}
	if c.PaddingSize < 0 || c.MaxPastEpochs < 0 || uint32(c.PaddingSize) > 1<<16 {
		return fmt.Errorf("padding %d or max past epochs %d out of range", c.PaddingSize, c.MaxPastEpochs)
	}
	if len(r.hdr.past) > c.MaxPastEpochs {
		return fmt.Errorf("%d past epochs stored, at most %d kept", len(r.hdr.past), c.MaxPastEpochs)
	}
	return nil
}

// restore rebuilds the group from a decoded record and checks that the
// pieces fit: the tree against the tree hash, the private keys against the
// tree, the epoch secrets against the confirmation tag.
func (g *Group) restore(tx storage.Tx, groupID []byte, r *groupRecord) error {
	var gc message.GroupContext
	if err := message.Unmarshal(r.hdr.gcRaw, &gc); err != nil {
		return corrupt(groupID, "group context", err)
	}
	if !bytes.Equal(gc.GroupID, groupID) || gc.Epoch != r.hdr.epoch {
		return corrupt(groupID, "group context", fmt.Errorf("record of group %x epoch %d stored under this group at epoch %d", gc.GroupID, gc.Epoch, r.hdr.epoch))
	}
	s, err := ciphersuite.Lookup(gc.CipherSuite)
	if err != nil {
		return corrupt(groupID, "group context", err)
	}
	t, err := loadTree(tx, groupID, s, &r.hdr)
	if err != nil {
		return err
	}
	if r.active && !bytes.Equal(r.hdr.treeHash, gc.TreeHash) {
		return corrupt(groupID, "ratchet tree", errors.New("the stored tree is not the group context's"))
	}
	st := &epochState{suite: s, gc: gc, gcRaw: r.hdr.gcRaw, tree: t, own: tree.LeafIndex(r.own), confTag: r.confTag}
	if err := restoreEpoch(st, &r.priv, r.keys, r.active); err != nil {
		return corrupt(groupID, "epoch state", err)
	}
	if r.params.leaves != t.NumLeaves() && r.active {
		return corrupt(groupID, "secret tree", fmt.Errorf("%d leaves, the tree has %d", r.params.leaves, t.NumLeaves()))
	}
	if st.secrets, err = loadSecretTree(tx, groupID, s, gc.Epoch, r.params); err != nil {
		return err
	}
	g.cfg.WireFormatPolicy, g.cfg.PaddingSize, g.cfg.MaxPastEpochs = r.cfg.WireFormatPolicy, r.cfg.PaddingSize, r.cfg.MaxPastEpochs
	g.cfg.SenderRatchet, g.cfg.UseRatchetTreeExtension, g.cfg.SkipLifetimeCheck = r.cfg.SenderRatchet, r.cfg.UseRatchetTreeExtension, r.cfg.SkipLifetimeCheck
	g.cfg.ResumptionPSKRetention = r.cfg.ResumptionPSKRetention
	g.st, g.active, g.props, g.psks = st, r.active, r.props, r.psks
	for _, ref := range r.hdr.past {
		p, err := loadPast(tx, groupID, s, ref)
		if err != nil {
			return err
		}
		// A removed member keeps its last epoch as both current and past.
		if p.epoch > gc.Epoch || p.epoch == gc.Epoch && r.active || (len(g.past) > 0 && p.epoch <= g.past[len(g.past)-1].epoch) {
			return corrupt(groupID, "past epochs", fmt.Errorf("epoch %d out of order", p.epoch))
		}
		g.past = append(g.past, p)
	}
	if r.pending != nil {
		if !r.active {
			return corrupt(groupID, "pending commit", errors.New("pending commit of an inactive member"))
		}
		if g.pending, err = g.restorePending(r.pending); err != nil {
			return corrupt(groupID, "pending commit", err)
		}
	}
	return nil
}

// restoreEpoch fills in the private keys and epoch secrets of st and checks
// them: the private keys must fit the tree (RFC 9420, Section 4.2), the
// epoch secrets must produce the confirmation tag (Section 6.1).
func restoreEpoch(st *epochState, pr *privateRecord, keys []byte, active bool) error {
	var err error
	if st.priv, err = pr.state(st.suite, st.own); err != nil {
		return err
	}
	if active {
		if st.ownLeaf() == nil {
			return fmt.Errorf("own leaf %d is blank", st.own)
		}
		if err := st.priv.Check(st.tree.View()); err != nil {
			return err
		}
	}
	st.keys = &keyschedule.EpochSecrets{}
	if err := st.keys.UnmarshalBinary(keys); err != nil {
		return err
	}
	if st.keys.Suite().ID() != st.suite.ID() {
		return fmt.Errorf("epoch secrets for suite %v, group uses %v", st.keys.Suite().ID(), st.suite.ID())
	}
	if !st.keys.VerifyConfirmationTag(st.gc.ConfirmedTranscriptHash, st.confTag) {
		return errors.New("the epoch secrets do not produce the stored confirmation tag")
	}
	st.interim = interimHash(st)
	return nil
}

// loadTree reads the node records and checks them against the header.
func loadTree(tx storage.Tx, groupID []byte, s *ciphersuite.Suite, hdr *recordHeader) (*tree.Tree, error) {
	if hdr.leaves == 0 || hdr.leaves > tree.MaxLeaves || hdr.leaves&(hdr.leaves-1) != 0 {
		return nil, corrupt(groupID, "group record", fmt.Errorf("tree of %d leaves", hdr.leaves))
	}
	width := treemath.NodeWidth(hdr.leaves)
	prefix := gidPrefix(groupID)
	var rt message.SparseRatchetTree // blank nodes cost nothing
	err := tx.Scan(bucketNodes, prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+5 {
			return fmt.Errorf("node key %x of %d bytes", k, len(k))
		}
		x := binary.BigEndian.Uint32(k[len(prefix)+1:])
		if int(k[len(prefix)]) != bits.Len32(x) {
			return fmt.Errorf("node key %x: length octet %d for node %d", k, k[len(prefix)], x)
		}
		if x >= width {
			return fmt.Errorf("node %d outside a tree of %d leaves", x, hdr.leaves)
		}
		if rt.Width > x {
			return fmt.Errorf("node %d out of order", x)
		}
		d := wire.NewDecoder(v)
		d.Struct("NodeRecord")
		if ver := d.U8("version"); d.Err() == nil && ver != nodeRecordVersion {
			d.Failf("version", "unsupported node record version %d", ver)
		}
		n := &message.Node{}
		n.Decode(d)
		if err := d.Finish(); err != nil {
			return fmt.Errorf("node %d: %w", x, err)
		}
		rt.Nodes = append(rt.Nodes, message.IndexedNode{Index: x, Node: n})
		rt.Width = x + 1
		return nil
	})
	if err != nil {
		var se *storage.Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, corrupt(groupID, "ratchet tree", err)
	}
	t, err := tree.FromSparse(s, &rt, tree.MaxLeaves)
	if err != nil {
		return nil, corrupt(groupID, "ratchet tree", err)
	}
	if t.NumLeaves() != hdr.leaves || !bytes.Equal(t.TreeHash(), hdr.treeHash) {
		return nil, corrupt(groupID, "ratchet tree", fmt.Errorf("the stored nodes make a tree of %d leaves whose hash does not match the record (%d leaves)", t.NumLeaves(), hdr.leaves))
	}
	return t, nil
}

// loadSecretTree restores an epoch's secret tree from its ratchets records.
func loadSecretTree(tx storage.Tx, groupID []byte, s *ciphersuite.Suite, epoch uint64, p secretTreeParams) (*secrettree.Tree, error) {
	what := fmt.Sprintf("secret tree of epoch %d", epoch)
	st, err := emptySecretTree(s, p)
	if err != nil {
		return nil, corrupt(groupID, what, err)
	}
	prefix := ratchetKey(groupID, epoch, nil)
	var nodes []byte
	type leafRec struct {
		leaf uint32
		b    []byte
	}
	var leaves []leafRec
	err = tx.Scan(bucketRatchets, prefix, func(k, v []byte) error {
		body, err := unseal(v)
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
		var se *storage.Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, corrupt(groupID, what, err)
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

// loadPast restores a past epoch.
func loadPast(tx storage.Tx, groupID []byte, s *ciphersuite.Suite, ref pastRef) (*pastEpoch, error) {
	what := fmt.Sprintf("past epoch %d", ref.epoch)
	b, err := tx.Get(bucketPast, pastKey(groupID, ref.epoch))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, corrupt(groupID, what, errors.New("record missing"))
	}
	if err != nil {
		return nil, err
	}
	body, err := unseal(b)
	if err != nil {
		return nil, corrupt(groupID, what, err)
	}
	p := &pastEpoch{sigKeys: map[uint32][]byte{}, creds: map[uint32]message.Credential{}}
	var prm secretTreeParams
	d := wire.NewDecoder(body)
	d.Struct("PastEpochRecord")
	if v := d.U8("version"); d.Err() == nil && v != groupRecordVersion {
		d.Failf("version", "unsupported record version %d", v)
	}
	p.epoch = d.U64("epoch")
	p.gcRaw = d.Opaque("group_context")
	p.senderData = d.Opaque("sender_data_secret")
	prm.decode(d)
	prev := int64(-1)
	d.Vector("members", func(d *wire.Decoder) {
		l := d.U32("leaf")
		key := d.Opaque("signature_key")
		var c message.Credential
		c.Decode(d)
		if d.Err() != nil {
			return
		}
		if int64(l) <= prev || l >= prm.leaves {
			d.Failf("leaf", "leaf %d out of order or outside %d leaves", l, prm.leaves)
			return
		}
		prev = int64(l)
		p.sigKeys[l], p.creds[l] = key, c
	})
	if err := d.Finish(); err != nil {
		return nil, corrupt(groupID, what, err)
	}
	if p.epoch != ref.epoch || !bytes.Equal(epochID(p.gcRaw), ref.id) {
		return nil, corrupt(groupID, what, errors.New("record is for another epoch"))
	}
	if len(p.senderData) != s.HashSize() {
		return nil, corrupt(groupID, what, fmt.Errorf("sender data secret of %d bytes", len(p.senderData)))
	}
	if p.secrets, err = loadSecretTree(tx, groupID, s, p.epoch, prm); err != nil {
		return nil, err
	}
	return p, nil
}

// restorePending rebuilds this member's pending commit on top of g.st and
// checks it like the current epoch: the replayed tree diff against the
// next tree hash, the private keys against the new tree, the epoch
// secrets against the confirmation tag.
func (g *Group) restorePending(r *pendingRecord) (*StagedCommit, error) {
	base := g.st
	s := base.suite
	var gc message.GroupContext
	if err := message.Unmarshal(r.gcRaw, &gc); err != nil {
		return nil, err
	}
	if !bytes.Equal(gc.GroupID, base.gc.GroupID) || gc.Epoch != base.gc.Epoch+1 || gc.CipherSuite != base.gc.CipherSuite {
		return nil, fmt.Errorf("pending commit for group %x epoch %d, group is at epoch %d", gc.GroupID, gc.Epoch, base.gc.Epoch)
	}
	d, err := base.tree.ApplyChanges(&r.changes)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(d.TreeHash(), gc.TreeHash) {
		return nil, errors.New("the stored tree changes do not produce the next tree hash")
	}
	next := &epochState{suite: s, gc: gc, gcRaw: r.gcRaw, tree: base.tree, own: base.own, confTag: r.confTag}
	if next.priv, err = r.priv.state(s, base.own); err != nil {
		return nil, err
	}
	if d.Leaf(base.own) == nil {
		return nil, fmt.Errorf("own leaf %d is blank after the pending commit", base.own)
	}
	if err := next.priv.Check(d); err != nil {
		return nil, err
	}
	next.keys = &keyschedule.EpochSecrets{}
	if err := next.keys.UnmarshalBinary(r.keys); err != nil {
		return nil, err
	}
	if next.keys.Suite().ID() != s.ID() || !next.keys.VerifyConfirmationTag(gc.ConfirmedTranscriptHash, next.confTag) {
		return nil, errors.New("the next epoch secrets do not produce the stored confirmation tag")
	}
	next.interim = interimHash(next)
	next.secrets = &secrettree.Tree{}
	if err := next.secrets.UnmarshalBinary(r.secrets); err != nil {
		return nil, err
	}
	if next.secrets.Leaves() != d.NumLeaves() || next.secrets.Suite().ID() != s.ID() {
		return nil, fmt.Errorf("next secret tree of %d leaves, the tree has %d", next.secrets.Leaves(), d.NumLeaves())
	}
	if r.sender.Type != message.SenderMember || r.sender.LeafIndex != uint32(base.own) || r.selfGone {
		return nil, errors.New("pending commit not sent by this member")
	}
	a := &applied{props: r.props, updated: map[tree.LeafIndex]bool{}, externalLeaf: tree.LeafIndex(r.externalLeaf), needsPath: r.needsPath}
	for _, l := range r.added {
		a.added = append(a.added, tree.LeafIndex(l))
	}
	for _, l := range r.removed {
		a.removed = append(a.removed, tree.LeafIndex(l))
	}
	for _, l := range r.updated {
		a.updated[tree.LeafIndex(l)] = true
	}
	for _, q := range r.props {
		switch p := q.p; p.Type {
		case message.ProposalAdd:
			a.addedKPs = append(a.addedKPs, &p.Add.KeyPackage)
		case message.ProposalPSK:
			a.psks = append(a.psks, p.PSK.PSK)
		case message.ProposalGroupContextExtensions:
			a.exts = p.GroupContextExtensions.Extensions
		case message.ProposalReInit:
			a.reinit = p.ReInit
		case message.ProposalExternalInit:
			a.extInit = p.ExternalInit
		}
	}
	if len(a.addedKPs) != len(a.added) {
		return nil, fmt.Errorf("%d Add proposals for %d added leaves", len(a.addedKPs), len(a.added))
	}
	sc := &StagedCommit{base: base, diff: d, next: next, a: a, sender: r.sender, own: true}
	var msgs [3]*Message
	for i, b := range r.msgs {
		if b == nil {
			continue
		}
		if msgs[i], err = ParseMessage(b); err != nil {
			return nil, err
		}
	}
	if msgs[0] == nil || msgs[0].WireFormat() != WireFormatPublicMessage && msgs[0].WireFormat() != WireFormatPrivateMessage ||
		msgs[1] != nil && msgs[1].WireFormat() != WireFormatWelcome || msgs[2] != nil && msgs[2].WireFormat() != WireFormatGroupInfo {
		return nil, errors.New("pending commit messages of the wrong kinds")
	}
	sc.commit, sc.welcome, sc.groupInfo = msgs[0], msgs[1], msgs[2]
	if len(r.newSig) > 0 && !bytes.Equal(d.Leaf(base.own).SignatureKey, r.newSig) {
		return nil, errors.New("new signature key does not match the new leaf")
	}
	return sc, nil
}

// errSignerUnavailable: a loaded group was given the signer of the other
// side of a pending key change (see LoadGroup).
var errSignerUnavailable = errors.New("mls: this signature key was not passed to LoadGroup; load the group again with it")

// missingSigner stands in for the signer that LoadGroup was not given. Its
// Public is the given signer's, which has the right type for the suite, so
// that signing fails in Sign with errSignerUnavailable.
type missingSigner struct{ pub crypto.PublicKey }

func (m missingSigner) Public() crypto.PublicKey { return m.pub }

func (missingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errSignerUnavailable
}

// setSigner checks signer against the member's leaf (or the leaf of its
// pending commit) and installs it.
func (g *Group) setSigner(signer crypto.Signer) error {
	sc := g.pending
	if signer == nil || !g.active {
		g.signer = signer
		if sc != nil {
			sc.signer = signer
		}
		return nil
	}
	pub, err := g.st.suite.SignaturePublicKey(signer)
	if err != nil {
		return fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	cur := g.st.ownLeaf().SignatureKey
	var next []byte
	if sc != nil {
		next = sc.diff.Leaf(g.st.own).SignatureKey
	}
	switch {
	case bytes.Equal(pub, cur):
		g.signer = signer
		if sc != nil {
			sc.signer = signer
			if !bytes.Equal(next, cur) {
				sc.signer = missingSigner{signer.Public()}
			}
		}
	case sc != nil && bytes.Equal(pub, next):
		g.signer, sc.signer = missingSigner{signer.Public()}, signer
	default:
		return fmt.Errorf("%w: signer does not match this member's leaf", ErrInvalidArgument)
	}
	return nil
}
