package mls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/storage"
)

// SenderType says who sent a message (RFC 9420, Section 6).
type SenderType uint8

const (
	SenderMember            = SenderType(message.SenderMember)
	SenderExternal          = SenderType(message.SenderExternal)
	SenderNewMemberProposal = SenderType(message.SenderNewMemberProposal)
	SenderNewMemberCommit   = SenderType(message.SenderNewMemberCommit)
)

// String returns the SenderType name of RFC 9420, Section 6.
func (t SenderType) String() string {
	switch t {
	case SenderMember:
		return "member"
	case SenderExternal:
		return "external"
	case SenderNewMemberProposal:
		return "new_member_proposal"
	case SenderNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("SenderType(%d)", uint8(t))
}

// Sender identifies the sender of a message: a member by leaf index, an
// external sender by its index in the external_senders extension, or a new
// member: for an external commit (SenderNewMemberCommit) Index is the leaf
// the joiner takes, for a join proposal it is 0.
type Sender struct {
	Type  SenderType
	Index uint32
}

// String describes the sender: "member 3", "external 0",
// "new_member_proposal" or "new_member_commit".
func (s Sender) String() string {
	switch s.Type {
	case SenderMember, SenderExternal:
		return fmt.Sprintf("%v %d", s.Type, s.Index)
	}
	return s.Type.String()
}

func senderOf(s message.Sender) Sender {
	switch s.Type {
	case message.SenderMember:
		return Sender{Type: SenderMember, Index: s.LeafIndex}
	case message.SenderExternal:
		return Sender{Type: SenderExternal, Index: s.SenderIndex}
	case message.SenderNewMemberCommit:
		// Set to the joiner's leaf once known (receiveCommit).
		return Sender{Type: SenderNewMemberCommit, Index: s.LeafIndex}
	}
	return Sender{Type: SenderType(s.Type)}
}

// ProposalType is a proposal type from the IANA "MLS Proposal Types"
// registry (RFC 9420, Section 17.4).
type ProposalType uint16

const (
	ProposalAdd                    = ProposalType(message.ProposalAdd)
	ProposalUpdate                 = ProposalType(message.ProposalUpdate)
	ProposalRemove                 = ProposalType(message.ProposalRemove)
	ProposalPSK                    = ProposalType(message.ProposalPSK)
	ProposalReInit                 = ProposalType(message.ProposalReInit)
	ProposalExternalInit           = ProposalType(message.ProposalExternalInit)
	ProposalGroupContextExtensions = ProposalType(message.ProposalGroupContextExtensions)
)

// String returns the registry name of the proposal type (RFC 9420,
// Section 17.4), or its number in hexadecimal for other types.
func (t ProposalType) String() string {
	switch t {
	case ProposalAdd:
		return "add"
	case ProposalUpdate:
		return "update"
	case ProposalRemove:
		return "remove"
	case ProposalPSK:
		return "psk"
	case ProposalReInit:
		return "reinit"
	case ProposalExternalInit:
		return "external_init"
	case ProposalGroupContextExtensions:
		return "group_context_extensions"
	}
	return fmt.Sprintf("ProposalType(0x%04x)", uint16(t))
}

// ProposalRef identifies a proposal sent by reference (RFC 9420,
// Section 5.2): RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent),
// as many bytes as the cipher suite's hash. It is a byte slice so that it
// converts freely to and from []byte; compare two with bytes.Equal. A nil
// ProposalRef means "none" (a proposal sent inline in a commit).
type ProposalRef []byte

// PSKType says which kind of pre-shared key a PSK id names (RFC 9420,
// Section 8.4).
type PSKType uint8

const (
	PSKExternal   = PSKType(message.PSKExternal)
	PSKResumption = PSKType(message.PSKResumption)
)

// String returns the PSKType name of RFC 9420, Section 8.4.
func (t PSKType) String() string {
	switch t {
	case PSKExternal:
		return "external"
	case PSKResumption:
		return "resumption"
	}
	return fmt.Sprintf("PSKType(%d)", uint8(t))
}

// ResumptionUsage says why a resumption PSK is injected (RFC 9420,
// Section 8.6).
type ResumptionUsage uint8

const (
	ResumptionApplication = ResumptionUsage(message.ResumptionApplication)
	ResumptionReInit      = ResumptionUsage(message.ResumptionReInit)
	ResumptionBranch      = ResumptionUsage(message.ResumptionBranch)
)

// String returns the ResumptionPSKUsage name of RFC 9420, Section 8.6.
func (u ResumptionUsage) String() string {
	switch u {
	case ResumptionApplication:
		return "application"
	case ResumptionReInit:
		return "reinit"
	case ResumptionBranch:
		return "branch"
	}
	return fmt.Sprintf("ResumptionUsage(%d)", uint8(u))
}

// PSKID is a PreSharedKeyID (RFC 9420, Section 8.4): an external PSK's ID,
// or the group and epoch whose resumption PSK is meant, plus the nonce.
type PSKID struct {
	Type PSKType
	// ID is an external PSK's psk_id.
	ID []byte
	// Usage, GroupID and Epoch name a resumption PSK.
	Usage   ResumptionUsage
	GroupID []byte
	Epoch   uint64
	Nonce   []byte
}

func pskIDOf(id *message.PreSharedKeyID) PSKID {
	return PSKID{Type: PSKType(id.Type), ID: clone(id.PSKID), Usage: ResumptionUsage(id.Usage), GroupID: clone(id.PSKGroupID), Epoch: id.PSKEpoch, Nonce: clone(id.Nonce)}
}

// QueuedProposal is a proposal received or sent in the current epoch,
// waiting to be committed, or one covered by a staged commit.
type QueuedProposal struct {
	p      *message.Proposal
	ref    []byte // ProposalRef; nil for a proposal inline in a commit
	sender message.Sender
}

// body returns the proposal, or an empty one for a QueuedProposal that
// was not obtained from this package (a zero value), so that the
// accessors report "none" instead of panicking.
func (q *QueuedProposal) body() *message.Proposal {
	if q == nil || q.p == nil {
		return &message.Proposal{}
	}
	return q.p
}

// Type returns the proposal type.
func (q *QueuedProposal) Type() ProposalType { return ProposalType(q.body().Type) }

// Ref returns the ProposalRef (RFC 9420, Section 5.2), or nil for a
// proposal sent inline in a commit.
func (q *QueuedProposal) Ref() ProposalRef { return ProposalRef(clone(q.ref)) }

// Sender returns who proposed it.
func (q *QueuedProposal) Sender() Sender { return senderOf(q.sender) }

// Removed returns the leaf a Remove proposal removes.
func (q *QueuedProposal) Removed() (uint32, bool) {
	p := q.body()
	if p.Remove == nil {
		return 0, false
	}
	return p.Remove.Removed, true
}

// KeyPackage returns the key package an Add proposal adds (RFC 9420,
// Section 12.1.1). Its signatures were checked when the proposal was
// validated.
func (q *QueuedProposal) KeyPackage() (*KeyPackage, bool) {
	p := q.body()
	if p.Add == nil {
		return nil, false
	}
	s, err := lookupSuite(p.Add.KeyPackage.CipherSuite)
	if err != nil {
		return nil, false
	}
	kp, err := wrapKeyPackage(s, p.Add.KeyPackage)
	if err != nil {
		return nil, false
	}
	return kp, true
}

// LeafNode returns the new leaf node of an Update proposal (RFC 9420,
// Section 12.1.2).
func (q *QueuedProposal) LeafNode() (*LeafNode, bool) {
	p := q.body()
	if p.Update == nil {
		return nil, false
	}
	return leafNodeOf(&p.Update.LeafNode), true
}

// AddedCredential returns the credential of the key package an Add
// proposal adds.
func (q *QueuedProposal) AddedCredential() (credential.Credential, bool) {
	p := q.body()
	if p.Add == nil {
		return credential.Credential{}, false
	}
	return credOf(p.Add.KeyPackage.LeafNode.Credential), true
}

// UpdatedCredential returns the credential of an Update proposal's new leaf.
func (q *QueuedProposal) UpdatedCredential() (credential.Credential, bool) {
	p := q.body()
	if p.Update == nil {
		return credential.Credential{}, false
	}
	return credOf(p.Update.LeafNode.Credential), true
}

// PreSharedKey returns the PSK id a PreSharedKey proposal injects (RFC
// 9420, Section 12.1.4), external or resumption.
func (q *QueuedProposal) PreSharedKey() (PSKID, bool) {
	p := q.body()
	if p.PSK == nil {
		return PSKID{}, false
	}
	return pskIDOf(&p.PSK.PSK), true
}

// CustomType returns the type of a proposal RFC 9420 does not define, with
// CustomData its body.
func (q *QueuedProposal) CustomType() (uint16, bool) {
	p := q.body()
	if p.Type == 0 || group.IsDefaultProposal(p.Type) {
		return 0, false
	}
	return uint16(p.Type), true
}

func (q *QueuedProposal) String() string {
	return fmt.Sprintf("proposal(%v from %v)", ProposalType(q.body().Type), senderOf(q.sender))
}

// defaultResumptionPSKRetention is how many past epochs' resumption PSKs
// a group keeps by default (RFC 9420, Section 8.6; OpenMLS's
// number_of_resumption_psks).
const defaultResumptionPSKRetention = 8

// resumptionRetention is JoinConfig.ResumptionPSKRetention with its
// default applied; 0 keeps none.
func (c *JoinConfig) resumptionRetention() int {
	switch {
	case c.ResumptionPSKRetention == 0:
		return defaultResumptionPSKRetention
	case c.ResumptionPSKRetention < 0:
		return 0
	}
	return c.ResumptionPSKRetention
}

// findProposal looks up a queued proposal by reference.
func (g *Group) findProposal(ref []byte) *QueuedProposal {
	for _, q := range g.props {
		if bytes.Equal(q.ref, ref) {
			return q
		}
	}
	return nil
}

// ProposePSK sends a PreSharedKey proposal for the external PSK pskID
// (RFC 9420, Section 12.1.4), which must already be stored with StorePSK,
// and queues it. The members who commit or process the commit need the
// PSK too.
func (g *Group) ProposePSK(ctx context.Context, pskID []byte) (*Message, ProposalRef, error) {
	if len(pskID) == 0 {
		return nil, nil, fmt.Errorf("%w: empty PSK id", ErrInvalidArgument)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if g.store != nil {
		err := view(ctx, g.store, func(tx storage.Tx) error {
			_, err := state.PSK(tx, pskID)
			return err
		})
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: external PSK %x (store it with StorePSK first)", ErrNotFound, pskID)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	p, err := ExternalPSKProposal(pskID).build(g.st.Suite, g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	return g.propose(ctx, p, nil)
}

// ProposeGroupContextExtensions sends a GroupContextExtensions proposal
// (RFC 9420, Section 12.1.7) that replaces the group context extensions
// with exts, and queues it. The current members must support every
// extension in it that is not one of RFC 9420's, and any
// required_capabilities it sets (ValSem209).
func (g *Group) ProposeGroupContextExtensions(ctx context.Context, exts []Extension) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	w := toWireExtensions(exts)
	if err := message.CheckExtensions(w); err != nil {
		return nil, nil, invalidErr("ValSem209", "12.1.7", err, "group context extensions")
	}
	v := g.st.Tree.View()
	rc, err := group.RequiredCapabilities(w)
	if err != nil {
		return nil, nil, invalidErr("ValSem209", "12.1.7", err, "required_capabilities")
	}
	if rc != nil {
		if err := group.CheckNewRequiredCapabilities(v, rc); err != nil {
			return nil, nil, err
		}
	}
	if err := group.CheckExtensionsSupported(v, w); err != nil {
		return nil, nil, err
	}
	p := GroupContextExtensionsProposal(exts)
	return g.propose(ctx, &p.p, nil)
}

// ProposeCustom sends a proposal of a type RFC 9420 does not define, with
// data as its opaque body, and queues it. Every member must list the type
// in its capabilities (ValSem113, RFC 9420, Section 12.2). A commit that
// covers it carries a path.
func (g *Group) ProposeCustom(ctx context.Context, proposalType uint16, data []byte) (*Message, ProposalRef, error) {
	t := message.ProposalType(proposalType)
	if t == 0 || group.IsDefaultProposal(t) {
		return nil, nil, fmt.Errorf("%w: proposal type %d is not a custom type", ErrInvalidArgument, proposalType)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if err := group.CheckProposalSupported(g.st.Tree.View(), t); err != nil {
		return nil, nil, err
	}
	if data == nil {
		data = []byte{}
	}
	return g.propose(ctx, &message.Proposal{Type: t, Data: clone(data)}, nil)
}

// ProposeReInit sends a ReInit proposal (RFC 9420, Section 12.1.5) for a
// new group with groupID (nil means 16 random bytes), suite and
// extensions, protocol version mls10, and queues it. A commit covers a
// pending ReInit only when it covers nothing else (Section 12.2); once
// that commit merges, the group is inactive and ReInitParams returns the
// parameters for the new group (Section 11.2).
func (g *Group) ProposeReInit(ctx context.Context, groupID []byte, suite CipherSuite, exts []Extension) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if groupID == nil {
		groupID = make([]byte, 16)
		if _, err := io.ReadFull(g.cfg.rand(), groupID); err != nil {
			return nil, nil, err
		}
	}
	if err := message.CheckExtensions(toWireExtensions(exts)); err != nil {
		return nil, nil, fmt.Errorf("%w: ReInit extensions: %v", ErrInvalidArgument, err)
	}
	p, err := ReInitProposal(ReInitParams{GroupID: groupID, CipherSuite: suite, Extensions: exts}).build(g.st.Suite, g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	return g.propose(ctx, p, nil)
}

// ReInitParams returns the parameters of the ReInit commit that shut the
// group down (RFC 9420, Section 11.2), or false if there was none. The
// group's last epoch stays available, so that a member can create the new
// group with them (ReInitGroup).
func (g *Group) ReInitParams() (*ReInitParams, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reinit == nil && !g.active && g.store != nil {
		// A group loaded from storage: the record is kept beside the
		// group state.
		var raw []byte
		err := view(context.Background(), g.store, func(tx storage.Tx) error {
			v, err := state.ReInit(tx, g.st.GC.GroupID)
			raw = v
			return err
		})
		if err == nil {
			var p message.ReInitProposal
			if message.Unmarshal(raw, &p) == nil {
				g.reinit = reInitParams(&p)
			}
		}
	}
	if g.reinit == nil {
		return nil, false
	}
	r := *g.reinit
	r.GroupID = clone(r.GroupID)
	r.Extensions = fromWireExtensions(toWireExtensions(r.Extensions))
	return &r, true
}

// PSKID returns the ID of an external PSK a PreSharedKey proposal injects.
func (q *QueuedProposal) PSKID() ([]byte, bool) {
	p := q.body()
	if p.PSK == nil || p.PSK.PSK.Type != message.PSKExternal {
		return nil, false
	}
	return clone(p.PSK.PSK.PSKID), true
}

// ReInit returns the parameters of a ReInit proposal.
func (q *QueuedProposal) ReInit() (*ReInitParams, bool) {
	p := q.body()
	if p.ReInit == nil {
		return nil, false
	}
	return reInitParams(p.ReInit), true
}

// GroupContextExtensions returns the extensions a GroupContextExtensions
// proposal sets.
func (q *QueuedProposal) GroupContextExtensions() ([]Extension, bool) {
	p := q.body()
	if p.GroupContextExtensions == nil {
		return nil, false
	}
	return fromWireExtensions(p.GroupContextExtensions.Extensions), true
}

// CustomData returns the body of a proposal of a type RFC 9420 does not
// define.
func (q *QueuedProposal) CustomData() ([]byte, bool) {
	p := q.body()
	if p.Type == 0 || group.IsDefaultProposal(p.Type) {
		return nil, false
	}
	return clone(p.Data), true
}

// ReInitGroup creates the group that replaces g after a ReInit commit
// (RFC 9420, Section 11.2, step 3): a group with the ReInit's group ID,
// cipher suite and extensions, created by the client c (whose signature key
// must fit the new suite: another Client on the same store when the
// signature scheme changes), whose first commit adds the
// members' key packages (for the new suite) and whose key schedule takes
// the resumption PSK of g's last epoch with usage reinit. The Welcome
// names that PSK, so joiners must hold g's state in the store they join
// with (StageWelcome finds it there). cfg supplies the creator's settings;
// its GroupID and GroupContextExtensions are taken from the
// ReInit, and it may not add group context extensions of its own
// (required capabilities, external senders). The new group is stored at
// epoch 0 with the commit pending: merge it with MergePendingCommit once
// the delivery service accepts it, then send the Welcome.
func (g *Group) ReInitGroup(ctx context.Context, c *Client, cfg GroupConfig, kps ...*KeyPackage) (*Group, *CommitResult, error) {
	if ctx == nil || c == nil {
		return nil, nil, fmt.Errorf("%w: ReInitGroup needs a context and a client", ErrInvalidArgument)
	}
	for _, kp := range kps {
		if kp == nil {
			return nil, nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
		}
	}
	params, ok := g.ReInitParams()
	if !ok {
		return nil, nil, fmt.Errorf("%w: the group was not shut down by a ReInit commit", ErrInvalidArgument)
	}
	if len(cfg.RequiredExtensions)+len(cfg.RequiredProposals)+len(cfg.RequiredCredentials)+len(cfg.ExternalSenders)+len(cfg.GroupContextExtensions) > 0 {
		return nil, nil, fmt.Errorf("%w: the new group's extensions are the ReInit's", ErrInvalidArgument)
	}
	if params.Version != uint16(message.MLS10) {
		return nil, nil, fmt.Errorf("%w: ReInit to protocol version %d", ErrInvalidArgument, params.Version)
	}
	g.mu.Lock()
	st := g.st
	held := &heldPSK{
		id:     message.PreSharedKeyID{Type: message.PSKResumption, Usage: message.ResumptionReInit, PSKGroupID: clone(st.GC.GroupID), PSKEpoch: st.GC.Epoch},
		secret: st.keys.ResumptionPSK(),
	}
	g.mu.Unlock()
	cfg.GroupID, cfg.GroupContextExtensions = params.GroupID, params.Extensions
	s, err := lookupSuite(params.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	held.id.Nonce = make([]byte, s.HashSize())
	if _, err := io.ReadFull(c.rand(), held.id.Nonce); err != nil {
		return nil, nil, err
	}
	ng, err := c.CreateGroup(ctx, params.CipherSuite, cfg)
	if err != nil {
		return nil, nil, err
	}
	res, err := ng.Commit(ctx, CommitOptions{Add: kps, reinitPSK: held})
	if err != nil {
		return nil, nil, err
	}
	return ng, res, nil
}

// public returns the proposal as internal/group takes it.
func (q *QueuedProposal) public() *group.Proposal {
	return &group.Proposal{Proposal: q.p, Ref: q.ref, Sender: q.sender}
}

func queued(p *group.Proposal) *QueuedProposal {
	return &QueuedProposal{p: p.Proposal, ref: p.Ref, sender: p.Sender}
}

func publicList(qs []*QueuedProposal) []*group.Proposal {
	out := make([]*group.Proposal, len(qs))
	for i, q := range qs {
		out[i] = q.public()
	}
	return out
}

func queuedList(ps []*group.Proposal) []*QueuedProposal {
	out := make([]*QueuedProposal, len(ps))
	for i, p := range ps {
		out[i] = queued(p)
	}
	return out
}

// lookupProposal finds a pending proposal a commit covers by reference
// (RFC 9420, Section 12.4.2), or nil.
func (g *Group) lookupProposal(ref []byte) *group.Proposal {
	if q := g.findProposal(ref); q != nil {
		return q.public()
	}
	return nil
}
