package state

import (
	"maps"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/wire"
)

// Header is the part of a group record that a save reads back to decide
// what else to write.
type Header struct {
	Epoch        uint64
	GroupContext []byte // the encoded GroupContext of the current epoch
	TreeHash     []byte // of the stored tree
	Leaves       uint32 // of the stored tree
	Past         []PastRef
}

// PastRef names a past epoch whose records are stored.
type PastRef struct {
	Epoch uint64
	ID    []byte // EpochID of its group context
}

// slots returns the epochs whose secret trees are stored, by number.
func (h *Header) slots() map[uint64][]byte {
	m := map[uint64][]byte{h.Epoch: EpochID(h.GroupContext)}
	for _, p := range h.Past {
		m[p.Epoch] = p.ID
	}
	return m
}

func (h *Header) encode(e *wire.Encoder) {
	e.U64(h.Epoch)
	e.Opaque(h.GroupContext)
	e.Opaque(h.TreeHash)
	e.U32(h.Leaves)
	e.Vector(func(e *wire.Encoder) {
		for _, p := range h.Past {
			e.U64(p.Epoch)
			e.Opaque(p.ID)
		}
	})
}

func (h *Header) decode(d *wire.Decoder) {
	h.Epoch = d.U64("epoch")
	h.GroupContext = d.Opaque("group_context")
	h.TreeHash = d.Opaque("tree_hash")
	h.Leaves = d.U32("leaves")
	h.Past = nil
	d.Vector("past_epochs", func(d *wire.Decoder) {
		h.Past = append(h.Past, PastRef{d.U64("epoch"), d.Opaque("id")})
	})
}

// GroupRecord is the record of a group's current state:
//
//	struct {
//	    uint8 version = 4;            /* 2: no resumption_psk_retention;
//	                                     2, 3: the PendingCommit of version 3 */
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
//	    int32 resumption_psk_retention;   /* versions 3 and 4 */
//	} JoinConfigState;
//
//	struct {
//	    uint32 leaves; uint32 out_of_order_tolerance; uint32 max_forward_distance;
//	} SecretTreeParams;
type GroupRecord struct {
	Header
	Config          Config
	Active          bool
	OwnLeaf         uint32
	Private         PrivateRecord
	EpochSecrets    []byte
	SecretTree      SecretTreeParams
	ConfirmationTag []byte
	Proposals       []Proposal
	ResumptionPSKs  map[string][]byte
	Pending         *PendingRecord
}

// Config is the stored part of a group's configuration (JoinConfigState).
type Config struct {
	OutgoingPrivate        bool
	Incoming               uint8
	PaddingSize            uint32
	MaxPastEpochs          uint32
	OutOfOrderTolerance    uint32
	MaxForwardDistance     uint32
	RatchetTreeExtension   bool
	SkipLifetimeCheck      bool
	ResumptionPSKRetention int32 // 0 in a version 2 record
}

// Marshal encodes the record (as version 4), with its checksum.
func (r *GroupRecord) Marshal() ([]byte, error) {
	// Sized for the pending commit's messages, which carry the ratchet tree
	// when the group uses the ratchet_tree extension, so that they are
	// copied once.
	hint := 4096
	if p := r.Pending; p != nil {
		hint += len(p.SecretTree) + 512*len(p.Changes.Nodes)
		for _, m := range p.Messages {
			hint += 8 + len(m)
		}
	}
	e := wire.NewEncoder(make([]byte, 0, hint))
	e.U8(GroupRecordV4)
	r.Header.encode(e)
	c := &r.Config
	e.Bool(c.OutgoingPrivate)
	e.U8(c.Incoming)
	e.U32(c.PaddingSize)
	e.U32(c.MaxPastEpochs)
	e.U32(c.OutOfOrderTolerance)
	e.U32(c.MaxForwardDistance)
	e.Bool(c.RatchetTreeExtension)
	e.Bool(c.SkipLifetimeCheck)
	e.U32(uint32(c.ResumptionPSKRetention))
	e.Bool(r.Active)
	e.U32(r.OwnLeaf)
	r.Private.encode(e)
	e.Opaque(r.EpochSecrets)
	r.SecretTree.encode(e)
	e.Opaque(r.ConfirmationTag)
	e.Vector(func(e *wire.Encoder) {
		for i := range r.Proposals {
			r.Proposals[i].encode(e)
		}
	})
	e.Vector(func(e *wire.Encoder) {
		for _, k := range slices.Sorted(maps.Keys(r.ResumptionPSKs)) {
			e.Opaque([]byte(k))
			e.Opaque(r.ResumptionPSKs[k])
		}
	})
	e.Optional(r.Pending != nil)
	if r.Pending != nil {
		r.Pending.encode(e)
	}
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	return Seal(b), nil
}

// Unmarshal decodes a record that Marshal encoded (version 2, 3 or 4),
// checksum included. It checks the structure only; whether the parts fit
// together is for the caller to check.
func (r *GroupRecord) Unmarshal(b []byte) error {
	body, err := Unseal(b)
	if err != nil {
		return err
	}
	*r = GroupRecord{}
	d := wire.NewDecoder(body)
	d.Struct("GroupRecord")
	v := d.U8("version")
	if d.Err() == nil && (v < GroupRecordV2 || v > GroupRecordV4) {
		d.Failf("version", "unsupported record version %d (this code reads versions %d to %d)", v, GroupRecordV2, GroupRecordV4)
	}
	r.Header.decode(d)
	c := &r.Config
	c.OutgoingPrivate = d.Bool("outgoing_private")
	c.Incoming = d.U8("incoming")
	c.PaddingSize = d.U32("padding")
	c.MaxPastEpochs = d.U32("max_past_epochs")
	c.OutOfOrderTolerance = d.U32("out_of_order")
	c.MaxForwardDistance = d.U32("max_forward")
	c.RatchetTreeExtension = d.Bool("ratchet_tree_extension")
	c.SkipLifetimeCheck = d.Bool("skip_lifetime")
	if v >= GroupRecordV3 {
		c.ResumptionPSKRetention = int32(d.U32("resumption_psk_retention"))
	}
	r.Active = d.Bool("active")
	r.OwnLeaf = d.U32("own_leaf")
	r.Private.decode(d)
	r.EpochSecrets = d.Opaque("epoch_secrets")
	r.SecretTree.decode(d)
	r.ConfirmationTag = d.Opaque("confirmation_tag")
	d.Vector("proposals", func(d *wire.Decoder) { r.Proposals = append(r.Proposals, decodeProposal(d)) })
	r.ResumptionPSKs = map[string][]byte{}
	d.Vector("resumption_psks", func(d *wire.Decoder) {
		k := d.Opaque("key")
		v := d.Opaque("psk")
		if d.Err() == nil {
			if _, dup := r.ResumptionPSKs[string(k)]; dup {
				d.Failf("key", "duplicate resumption PSK")
			}
			r.ResumptionPSKs[string(k)] = v
		}
	})
	if d.Optional("pending") {
		r.Pending = &PendingRecord{}
		r.Pending.decode(d, v)
	}
	return d.Finish()
}

// PrivateRecord holds a member's private tree keys:
//
//	struct {
//	    opaque leaf_key<V>;
//	    struct { uint32 node; opaque key<V>; } node_keys<V>;
//	} PrivateTreeState;
type PrivateRecord struct {
	LeafKey []byte
	Nodes   []NodeKeyRecord
}

// NodeKeyRecord is the private key of one parent node.
type NodeKeyRecord struct {
	Node uint32
	Key  []byte
}

// PrivateOf returns the record of p.
func PrivateOf(p *tree.PrivateState) PrivateRecord {
	r := PrivateRecord{LeafKey: p.LeafPrivateKey()}
	for _, x := range p.Nodes() {
		k, _ := p.NodePrivateKey(x)
		r.Nodes = append(r.Nodes, NodeKeyRecord{uint32(x), k})
	}
	return r
}

func (r *PrivateRecord) encode(e *wire.Encoder) {
	e.Opaque(r.LeafKey)
	e.Vector(func(e *wire.Encoder) {
		for _, n := range r.Nodes {
			e.U32(n.Node)
			e.Opaque(n.Key)
		}
	})
}

func (r *PrivateRecord) decode(d *wire.Decoder) {
	r.LeafKey = d.Opaque("leaf_key")
	d.Vector("node_keys", func(d *wire.Decoder) {
		r.Nodes = append(r.Nodes, NodeKeyRecord{d.U32("node"), d.Opaque("key")})
	})
}

// State rebuilds the private state of the member at leaf own.
func (r *PrivateRecord) State(s *ciphersuite.Suite, own tree.LeafIndex) (*tree.PrivateState, error) {
	p, err := tree.NewPrivateState(s, own, r.LeafKey)
	if err != nil {
		return nil, err
	}
	for _, n := range r.Nodes {
		if p, err = p.WithNodeKey(tree.NodeIndex(n.Node), n.Key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Proposal is a queued proposal:
//
//	struct {
//	    optional<opaque ref<V>>;   /* absent for a proposal inline in a commit */
//	    Sender sender;
//	    Proposal proposal;
//	} QueuedProposal;
type Proposal struct {
	Ref      []byte // nil: inline in a commit
	Sender   message.Sender
	Proposal *message.Proposal
}

func (q *Proposal) encode(e *wire.Encoder) {
	e.Optional(q.Ref != nil)
	if q.Ref != nil {
		e.Opaque(q.Ref)
	}
	q.Sender.Encode(e)
	q.Proposal.Encode(e)
}

func decodeProposal(d *wire.Decoder) Proposal {
	q := Proposal{Proposal: &message.Proposal{}}
	if d.Optional("ref") {
		q.Ref = d.Opaque("ref")
	}
	q.Sender.Decode(d)
	q.Proposal.Decode(d)
	return q
}

// PendingRecord is this member's own pending commit:
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
//	    opaque welcome_secret<V>;    /* version 4; empty: the Welcome is whole */
//	    bool tree_elided;            /* version 4 */
//	} PendingCommit;
//
//	struct {
//	    uint32 leaves; uint32 limit;
//	    struct { uint32 node; optional<Node> value; } nodes<V>;
//	} TreeChanges;
//
// In version 4, if welcome_secret is not empty, the Welcome's
// encrypted_group_info is empty: it is the GroupInfo sealed with
// welcome_secret (RFC 9420, Section 12.4.3.1), which is deterministic. (A
// pending commit restored from a version 3 record keeps its whole
// Welcome.) If tree_elided, the data of the GroupInfo's
// ratchet_tree extension (Section 12.4.3.3) is empty too: it is the
// encoding of the tree after the commit. Both would otherwise hold the
// whole tree, once in the clear and once encrypted.
type PendingRecord struct {
	GroupContext    []byte
	Private         PrivateRecord
	EpochSecrets    []byte
	SecretTree      []byte
	ConfirmationTag []byte
	Changes         tree.Changes
	Proposals       []Proposal
	Added           []uint32
	Removed         []uint32
	Updated         []uint32
	ExternalLeaf    uint32
	NeedsPath       bool
	SelfRemoved     bool
	Sender          message.Sender
	NewSignatureKey []byte
	// Messages are the commit, the Welcome and the GroupInfo as
	// MLSMessages; the last two are nil when absent.
	Messages [3][]byte
	// WelcomeSecret, if not nil, is the welcome_secret that seals the
	// GroupInfo into the Welcome's empty encrypted_group_info; if nil, the
	// Welcome is whole (always in a version 2 or 3 record).
	WelcomeSecret []byte
	// TreeElided: the GroupInfo's ratchet_tree extension is empty and is
	// the encoding of the tree after the commit.
	TreeElided bool
}

func (r *PendingRecord) encode(e *wire.Encoder) {
	e.Opaque(r.GroupContext)
	r.Private.encode(e)
	e.Opaque(r.EpochSecrets)
	e.Opaque(r.SecretTree)
	e.Opaque(r.ConfirmationTag)
	c := &r.Changes
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
	e.Vector(func(e *wire.Encoder) {
		for i := range r.Proposals {
			r.Proposals[i].encode(e)
		}
	})
	for _, ls := range [][]uint32{r.Added, r.Removed, r.Updated} {
		e.Vector(func(e *wire.Encoder) {
			for _, l := range ls {
				e.U32(l)
			}
		})
	}
	e.U32(r.ExternalLeaf)
	e.Bool(r.NeedsPath)
	e.Bool(r.SelfRemoved)
	r.Sender.Encode(e)
	e.Opaque(r.NewSignatureKey)
	for i, m := range r.Messages {
		if i > 0 {
			e.Optional(m != nil)
			if m == nil {
				continue
			}
		}
		e.Opaque(m)
	}
	e.Opaque(r.WelcomeSecret)
	e.Bool(r.TreeElided)
}

// decode decodes the PendingCommit of a group record of version v.
func (r *PendingRecord) decode(d *wire.Decoder, v uint8) {
	r.GroupContext = d.Opaque("group_context")
	r.Private.decode(d)
	r.EpochSecrets = d.Opaque("epoch_secrets")
	r.SecretTree = d.Opaque("secret_tree")
	r.ConfirmationTag = d.Opaque("confirmation_tag")
	r.Changes.NumLeaves = d.U32("leaves")
	r.Changes.Limit = tree.NodeIndex(d.U32("limit"))
	d.Vector("nodes", func(d *wire.Decoder) {
		ch := tree.NodeChange{X: tree.NodeIndex(d.U32("node"))}
		if d.Optional("value") {
			ch.Node = &message.Node{}
			ch.Node.Decode(d)
		}
		r.Changes.Nodes = append(r.Changes.Nodes, ch)
	})
	d.Vector("proposals", func(d *wire.Decoder) { r.Proposals = append(r.Proposals, decodeProposal(d)) })
	for _, l := range []*[]uint32{&r.Added, &r.Removed, &r.Updated} {
		d.Vector("leaves", func(d *wire.Decoder) { *l = append(*l, d.U32("leaf")) })
	}
	r.ExternalLeaf = d.U32("external_leaf")
	r.NeedsPath = d.Bool("needs_path")
	r.SelfRemoved = d.Bool("self_removed")
	r.Sender.Decode(d)
	r.NewSignatureKey = d.Opaque("new_signature_key")
	r.Messages[0] = d.Opaque("commit")
	if d.Optional("welcome") {
		r.Messages[1] = d.Opaque("welcome")
	}
	if d.Optional("group_info") {
		r.Messages[2] = d.Opaque("group_info")
	}
	if v < GroupRecordV4 {
		return
	}
	if ws := d.Opaque("welcome_secret"); len(ws) > 0 {
		r.WelcomeSecret = ws
	}
	r.TreeElided = d.Bool("tree_elided")
	if d.Err() == nil && r.WelcomeSecret != nil && (r.Messages[1] == nil || r.Messages[2] == nil) {
		d.Failf("welcome_secret", "a welcome_secret without a Welcome and its GroupInfo")
	}
	if d.Err() == nil && r.TreeElided && r.Messages[2] == nil {
		d.Failf("tree_elided", "the tree is elided from a GroupInfo that is absent")
	}
}

// SecretTreeParams are what an empty secret tree needs.
type SecretTreeParams struct {
	Leaves uint32
	Config secrettree.Config
}

// ParamsOf returns the parameters of st.
func ParamsOf(st *secrettree.Tree) SecretTreeParams {
	return SecretTreeParams{Leaves: st.Leaves(), Config: st.Config()}
}

func (p *SecretTreeParams) encode(e *wire.Encoder) {
	e.U32(p.Leaves)
	e.U32(p.Config.OutOfOrderTolerance)
	e.U32(p.Config.MaxForwardDistance)
}

func (p *SecretTreeParams) decode(d *wire.Decoder) {
	p.Leaves = d.U32("secret_tree_leaves")
	p.Config.OutOfOrderTolerance = d.U32("out_of_order_tolerance")
	p.Config.MaxForwardDistance = d.U32("max_forward_distance")
}

// EmptySecretTree returns a secret tree with no secrets, to restore stored
// ones into. It goes through secrettree.Tree.UnmarshalBinary, whose
// TreeState encoding with empty node and leaf vectors is the tree's
// parameters followed by two zero octets.
func EmptySecretTree(s *ciphersuite.Suite, p SecretTreeParams) (*secrettree.Tree, error) {
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

// PastRecord is an earlier epoch kept for late application messages:
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
//
// The epoch's secret tree is in the ratchets records.
type PastRecord struct {
	Epoch            uint64
	GroupContext     []byte
	SenderDataSecret []byte
	SecretTree       SecretTreeParams
	Members          []PastMember // in increasing leaf order
}

// PastMember is a member of a past epoch: what a late message's signature
// is checked with.
type PastMember struct {
	Leaf         uint32
	SignatureKey []byte
	Credential   message.Credential
}

// Marshal encodes the record, with its checksum.
func (p *PastRecord) Marshal() ([]byte, error) {
	e := wire.NewEncoder(nil)
	e.U8(GroupRecordV2)
	e.U64(p.Epoch)
	e.Opaque(p.GroupContext)
	e.Opaque(p.SenderDataSecret)
	p.SecretTree.encode(e)
	e.Vector(func(e *wire.Encoder) {
		for i := range p.Members {
			m := &p.Members[i]
			e.U32(m.Leaf)
			e.Opaque(m.SignatureKey)
			m.Credential.Encode(e)
		}
	})
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	return Seal(b), nil
}

// Unmarshal decodes a record that Marshal encoded, checksum included, and
// checks that the members are in order and within the secret tree.
func (p *PastRecord) Unmarshal(b []byte) error {
	body, err := Unseal(b)
	if err != nil {
		return err
	}
	*p = PastRecord{}
	d := wire.NewDecoder(body)
	d.Struct("PastEpochRecord")
	if v := d.U8("version"); d.Err() == nil && v != GroupRecordV2 {
		d.Failf("version", "unsupported record version %d", v)
	}
	p.Epoch = d.U64("epoch")
	p.GroupContext = d.Opaque("group_context")
	p.SenderDataSecret = d.Opaque("sender_data_secret")
	p.SecretTree.decode(d)
	prev := int64(-1)
	d.Vector("members", func(d *wire.Decoder) {
		l := d.U32("leaf")
		key := d.Opaque("signature_key")
		var c message.Credential
		c.Decode(d)
		if d.Err() != nil {
			return
		}
		if int64(l) <= prev || l >= p.SecretTree.Leaves {
			d.Failf("leaf", "leaf %d out of order or outside %d leaves", l, p.SecretTree.Leaves)
			return
		}
		prev = int64(l)
		p.Members = append(p.Members, PastMember{l, key, c})
	})
	return d.Finish()
}
