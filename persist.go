package mls

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/wire"
	"github.com/mlskit/mls/storage"
)

// Storage layout. The library owns it; every backend stores the same
// bytes. Values start with a version octet.
//
//	keypackages/<KeyPackageRef>        private keys of an unused key package
//	psks/<psk_id>                      external PSKs
//	groups/<group_id>                  the group state at its last commit
//	ratchets/<group_id><epoch><leaf>   one sender's ratchet since then
//	ratchets/<group_id><epoch>         the secret tree's node secrets
const (
	bucketPSKs     = "psks"
	bucketGroups   = "groups"
	bucketRatchets = "ratchets"
)

const groupRecordVersion = 1

// ErrCorruptState is wrapped by errors for stored group state that cannot
// be decoded or does not fit together.
var ErrCorruptState = errors.New("mls: stored group state is corrupt")

// CorruptStateError names the group whose stored state is bad and why.
type CorruptStateError struct {
	GroupID []byte
	What    string
	Err     error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("mls: stored state of group %x is corrupt: %s: %v", e.GroupID, e.What, e.Err)
}

func (e *CorruptStateError) Unwrap() []error { return []error{ErrCorruptState, e.Err} }

// save writes the whole group state in one transaction.
func (g *Group) save(ctx context.Context) error { return g.saveWith(ctx, nil) }

// saveWith writes the group state and runs extra in the same transaction.
func (g *Group) saveWith(ctx context.Context, extra func(storage.Tx) error) error {
	if g.store == nil {
		return nil
	}
	rec, err := g.marshalState()
	if err != nil {
		return err
	}
	id := g.st.gc.GroupID
	return g.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Put(bucketGroups, id, rec); err != nil {
			return err
		}
		// The record holds every ratchet; older incremental records go.
		if err := tx.DeletePrefix(bucketRatchets, ratchetPrefix(id)); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
}

func ratchetPrefix(groupID []byte) []byte {
	e := wire.NewEncoder(nil)
	e.Opaque(groupID)
	return e.MustBytes()
}

func ratchetKey(groupID []byte, epoch uint64, leaf *uint32) []byte {
	e := wire.NewEncoder(nil)
	e.Opaque(groupID)
	e.U64(epoch)
	if leaf != nil {
		e.U32(*leaf)
	}
	return e.MustBytes()
}

// saveRatchet writes one sender's ratchet state (and the secret tree's
// node secrets, which change when a leaf is first used) after a message:
// an incremental write whose size does not depend on the group size.
func (g *Group) saveRatchet(ctx context.Context, st *epochState, leaf uint32) error {
	if g.store == nil {
		return nil
	}
	lb, err := st.secrets.MarshalLeaf(tree.LeafIndex(leaf))
	if err != nil {
		return err
	}
	nb, err := st.secrets.MarshalNodes()
	if err != nil {
		return err
	}
	id := st.gc.GroupID
	return g.store.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Put(bucketRatchets, ratchetKey(id, st.gc.Epoch, &leaf), lb); err != nil {
			return err
		}
		return tx.Put(bucketRatchets, ratchetKey(id, st.gc.Epoch, nil), nb)
	})
}

func (g *Group) marshalState() ([]byte, error) {
	st := g.st
	e := wire.NewEncoder(nil)
	e.U8(groupRecordVersion)
	c := &g.cfg
	e.Bool(c.WireFormatPolicy.OutgoingPrivate)
	e.U8(uint8(c.WireFormatPolicy.Incoming))
	e.U32(uint32(c.PaddingSize))
	e.U32(uint32(c.MaxPastEpochs))
	e.U32(c.SenderRatchet.OutOfOrderTolerance)
	e.U32(c.SenderRatchet.MaxForwardDistance)
	e.Bool(c.UseRatchetTreeExtension)
	e.Bool(c.SkipLifetimeCheck)
	e.Bool(g.active)
	e.Opaque(st.gcRaw)
	rt, err := message.Marshal(st.tree.RatchetTree())
	if err != nil {
		return nil, err
	}
	e.Opaque(rt)
	e.U32(uint32(st.own))
	e.Opaque(st.priv.LeafPrivateKey())
	e.Vector(func(e *wire.Encoder) {
		for _, x := range st.priv.Nodes() {
			k, _ := st.priv.NodePrivateKey(x)
			e.U32(uint32(x))
			e.Opaque(k)
		}
	})
	keys, err := st.keys.MarshalBinary()
	if err != nil {
		return nil, err
	}
	e.Opaque(keys)
	sec, err := st.secrets.MarshalBinary()
	if err != nil {
		return nil, err
	}
	e.Opaque(sec)
	e.Opaque(st.interim)
	e.Opaque(st.confTag)
	e.Vector(func(e *wire.Encoder) {
		for _, q := range g.props {
			e.Opaque(q.ref)
			q.sender.Encode(e)
			q.p.Encode(e)
		}
	})
	e.Vector(func(e *wire.Encoder) {
		for k, v := range g.psks {
			e.Opaque([]byte(k))
			e.Opaque(v)
		}
	})
	return e.Bytes()
}

// LoadGroup loads a group from store (RFC 9420 state as of the last merged
// commit, plus every message key consumed since). signer is the member's
// signing key. A pending commit is not persisted: after a restart the
// member commits again. Past-epoch secrets are not restored either.
func LoadGroup(ctx context.Context, store storage.Store, groupID []byte, signer crypto.Signer) (*Group, error) {
	var rec []byte
	ratchets := map[uint32][]byte{}
	var nodes []byte
	err := store.View(ctx, func(tx storage.Tx) error {
		var err error
		if rec, err = tx.Get(bucketGroups, groupID); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("%w: group %x", ErrNotFound, groupID)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g := &Group{store: store, signer: signer}
	if err := g.unmarshalState(rec); err != nil {
		return nil, &CorruptStateError{GroupID: clone(groupID), What: "group record", Err: err}
	}
	prefix := ratchetKey(groupID, g.st.gc.Epoch, nil)
	err = store.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(bucketRatchets, prefix, func(k, v []byte) error {
			switch len(k) - len(prefix) {
			case 0:
				nodes = clone(v)
			case 4:
				leaf := uint32(k[len(k)-4])<<24 | uint32(k[len(k)-3])<<16 | uint32(k[len(k)-2])<<8 | uint32(k[len(k)-1])
				ratchets[leaf] = clone(v)
			default:
				return fmt.Errorf("unexpected ratchet key %x", k)
			}
			return nil
		})
	})
	if err != nil {
		return nil, &CorruptStateError{GroupID: clone(groupID), What: "ratchet records", Err: err}
	}
	if nodes != nil {
		if err := g.st.secrets.UnmarshalNodes(nodes); err != nil {
			return nil, &CorruptStateError{GroupID: clone(groupID), What: "secret tree nodes", Err: err}
		}
	}
	for leaf, b := range ratchets {
		if err := g.st.secrets.UnmarshalLeaf(tree.LeafIndex(leaf), b); err != nil {
			return nil, &CorruptStateError{GroupID: clone(groupID), What: fmt.Sprintf("ratchet of leaf %d", leaf), Err: err}
		}
	}
	if signer != nil && g.active {
		pub, err := g.st.suite.SignaturePublicKey(signer)
		if err != nil {
			return nil, err
		}
		if string(pub) != string(g.st.ownLeaf().SignatureKey) {
			return nil, fmt.Errorf("%w: signer does not match this member's leaf", ErrInvalidArgument)
		}
	}
	return g, nil
}

func (g *Group) unmarshalState(b []byte) error {
	d := wire.NewDecoder(b)
	d.Struct("GroupRecord")
	if v := d.U8("version"); d.Err() == nil && v != groupRecordVersion {
		d.Failf("version", "unsupported record version %d", v)
	}
	c := &g.cfg
	c.WireFormatPolicy.OutgoingPrivate = d.Bool("outgoing_private")
	c.WireFormatPolicy.Incoming = IncomingPolicy(d.U8("incoming"))
	c.PaddingSize = int(d.U32("padding"))
	c.MaxPastEpochs = int(d.U32("max_past_epochs"))
	c.SenderRatchet.OutOfOrderTolerance = d.U32("out_of_order")
	c.SenderRatchet.MaxForwardDistance = d.U32("max_forward")
	c.UseRatchetTreeExtension = d.Bool("ratchet_tree_extension")
	c.SkipLifetimeCheck = d.Bool("skip_lifetime")
	g.active = d.Bool("active")
	gcRaw := d.Opaque("group_context")
	rtRaw := d.Opaque("ratchet_tree")
	own := d.U32("own_leaf")
	leafKey := d.Opaque("leaf_key")
	type nodeKey struct {
		x   uint32
		key []byte
	}
	var nodeKeys []nodeKey
	d.Vector("node_keys", func(d *wire.Decoder) {
		nodeKeys = append(nodeKeys, nodeKey{d.U32("node"), d.Opaque("key")})
	})
	keysRaw := d.Opaque("epoch_secrets")
	secRaw := d.Opaque("secret_tree")
	interim := d.Opaque("interim")
	confTag := d.Opaque("confirmation_tag")
	var props []*QueuedProposal
	d.Vector("proposals", func(d *wire.Decoder) {
		q := &QueuedProposal{p: &message.Proposal{}}
		q.ref = d.Opaque("ref")
		q.sender.Decode(d)
		q.p.Decode(d)
		props = append(props, q)
	})
	psks := map[string][]byte{}
	d.Vector("psks", func(d *wire.Decoder) {
		k := d.Opaque("key")
		psks[string(k)] = d.Opaque("psk")
	})
	if err := d.Finish(); err != nil {
		return err
	}
	var gc message.GroupContext
	if err := message.Unmarshal(gcRaw, &gc); err != nil {
		return err
	}
	s, err := ciphersuite.Lookup(gc.CipherSuite)
	if err != nil {
		return err
	}
	rt, err := message.UnmarshalRatchetTree(rtRaw)
	if err != nil {
		return err
	}
	t, err := tree.FromRatchetTree(s, rt)
	if err != nil {
		return err
	}
	st := &epochState{suite: s, gc: gc, gcRaw: gcRaw, tree: t, own: tree.LeafIndex(own), interim: interim, confTag: confTag}
	if st.ownLeaf() == nil && g.active {
		return fmt.Errorf("own leaf %d is blank", own)
	}
	if st.priv, err = tree.NewPrivateState(s, st.own, leafKey); err != nil {
		return err
	}
	for _, nk := range nodeKeys {
		if st.priv, err = st.priv.WithNodeKey(tree.NodeIndex(nk.x), nk.key); err != nil {
			return err
		}
	}
	st.keys = &keyschedule.EpochSecrets{}
	if err := st.keys.UnmarshalBinary(keysRaw); err != nil {
		return err
	}
	st.secrets = &secrettree.Tree{}
	if err := st.secrets.UnmarshalBinary(secRaw); err != nil {
		return err
	}
	g.st, g.props, g.psks = st, props, psks
	return nil
}
