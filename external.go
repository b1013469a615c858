package mls

import (
	"context"
	"crypto"
	"crypto/rand"
	"fmt"
	"io"
	"math"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// ExternalJoinOptions configures JoinExternal (OpenMLS's external commit
// builder).
type ExternalJoinOptions struct {
	// JoinConfig holds the joiner's own settings for the group.
	JoinConfig
	// RatchetTree is the encoded ratchet tree (a member's
	// ExportRatchetTree) when the GroupInfo does not carry the
	// ratchet_tree extension.
	// A tree (here or in the extension) needing more leaves than
	// ClientOptions.MaxTreeLeaves is rejected with an error matching
	// ErrMalformed, before the GroupInfo signature is checked or anything
	// is hashed.
	RatchetTree []byte
	// RemoveLeaf, if set, makes the commit a "resync" (RFC 9420, Section
	// 12.4.3.2): it also removes the member at this leaf, an earlier
	// appearance of the joiner. The other members decide whether the new
	// credential is acceptable for the removed one (StagedCommit's
	// RemoveProposals and NewCredentials).
	RemoveLeaf *uint32
	// ExternalPSKs inject pre-shared keys already stored with StorePSK
	// (the other members must hold them too).
	ExternalPSKs [][]byte
	// Capabilities and LeafExtensions describe the joiner's leaf.
	Capabilities   Capabilities
	LeafExtensions []Extension
	// AuthenticatedData is sent in the clear with the commit,
	// authenticated.
	AuthenticatedData []byte
	// SelfRemoves are the pending SelfRemove proposals of the epoch
	// (draft-ietf-mls-extensions, "SelfRemove Proposal": the joiner "MUST
	// fetch any pending SelfRemove Proposals along with the GroupInfo"),
	// as the PublicMessages their senders sent. Each is validated, all
	// but its membership tag, which a non-member cannot check, and the
	// commit covers it by reference; a bad one fails the join with its
	// *ValidationError.
	SelfRemoves []*Message
	// AppDataUpdates are AppDataUpdate proposals (draft-ietf-mls-
	// extensions) the commit carries by value, which the draft allows in
	// external commits.
	AppDataUpdates []AppDataUpdate
}

// joinExternal joins a group with an external commit (RFC 9420, Section
// 12.4.3.2) from a GroupInfo that carries the external_pub extension
// (Group.ExportGroupInfo, or CommitResult.GroupInfo).
//
// It verifies the GroupInfo as a Welcome joiner does (Section 12.4.3.1):
// the ratchet tree, from the ratchet_tree extension or opts.RatchetTree,
// must match the tree hash and pass full tree validation, and the GroupInfo
// must be signed by its signer leaf. It then derives the init secret from
// external_pub (Section 8.3), takes the leftmost free leaf (after the
// optional Remove of opts.RemoveLeaf), and builds a commit with sender
// new_member_commit that holds, inline, one ExternalInit proposal, the
// optional Remove and PreSharedKey proposals, and an UpdatePath from the
// new leaf; it is signed with id's key and sent as a PublicMessage without
// membership tag.
//
// The returned group is already in the new epoch, and is stored. Send
// CommitResult.Commit to the delivery service; CommitResult.GroupInfo is
// the GroupInfo of the new epoch (Welcome is nil). The joiner's state is
// final only once the delivery service accepts the commit: if it rejects
// it (typically because another commit for the same epoch won), discard
// the returned group and join again from a fresh GroupInfo; the new join
// overwrites the stored state. In a resync, the store's earlier state of
// the group is replaced as soon as JoinExternal returns.
func joinExternal(ctx context.Context, c *Client, groupInfo *Message, opts ExternalJoinOptions) (*Group, *CommitResult, error) {
	if groupInfo == nil || groupInfo.m.GroupInfo == nil {
		return nil, nil, fmt.Errorf("%w: not a GroupInfo message", ErrInvalidArgument)
	}
	store, id := c.store, c.identity()
	gi := groupInfo.m.GroupInfo
	s, err := lookupSuite(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	if gi.GroupContext.Version != message.MLS10 {
		return nil, nil, invalid("GroupInfoVersion", "12.4.3", "group info for version %d", gi.GroupContext.Version)
	}
	var ep message.ExternalPub
	ok, err := message.ParseExtension(gi.Extensions, &ep)
	if err != nil {
		return nil, nil, invalidErr("ExternalPub", "12.4.3.2", err, "external_pub extension")
	}
	if !ok {
		return nil, nil, invalid("ExternalPub", "12.4.3.2", "the GroupInfo has no external_pub extension")
	}
	cfg := opts.JoinConfig
	// The GroupInfo signature is checked before the tree is built or
	// hashed (joinTree).
	t, sigs, err := joinTree(s, &cfg, gi, opts.RatchetTree)
	if err != nil {
		return nil, nil, err
	}
	defer sigs.Stop()
	st, err := joinState(s, &cfg, gi, t, sigs, nil)
	if err != nil {
		return nil, nil, err
	}
	sigPub, err := s.SignaturePublicKey(id.Signer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	// RFC 9420, Section 8.3: the joiner's half of the external init.
	kemOutput, initSecret, err := keyschedule.ExternalInit(s, ep.ExternalPub)
	if err != nil {
		return nil, nil, invalidErr("ExternalPub", "8.3", err, "external init to external_pub")
	}
	g := &Group{store: store, signer: id.Signer, cfg: cfg, active: true}
	sender := message.Sender{Type: message.SenderNewMemberCommit}
	props := []*QueuedProposal{{sender: sender, p: &message.Proposal{Type: message.ProposalExternalInit, ExternalInit: &message.ExternalInitProposal{KEMOutput: kemOutput}}}}
	if opts.RemoveLeaf != nil {
		props = append(props, &QueuedProposal{sender: sender, p: &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: *opts.RemoveLeaf}}})
	}
	for _, pskID := range opts.ExternalPSKs {
		nonce := make([]byte, s.HashSize())
		if _, err := io.ReadFull(cfg.rand(), nonce); err != nil {
			return nil, nil, err
		}
		props = append(props, &QueuedProposal{sender: sender, p: &message.Proposal{Type: message.ProposalPSK, PSK: &message.PreSharedKeyProposal{PSK: message.PreSharedKeyID{Type: message.PSKExternal, PSKID: clone(pskID), Nonce: nonce}}}})
	}
	for _, u := range opts.AppDataUpdates {
		p, err := u.proposal()
		if err != nil {
			return nil, nil, err
		}
		props = append(props, &QueuedProposal{sender: sender, p: p})
	}
	refs := make([]message.ProposalOrRef, len(props))
	for i, q := range props {
		refs[i] = message.ProposalOrRef{Proposal: q.p}
	}
	for _, m := range opts.SelfRemoves {
		q, err := externalSelfRemove(st, g.policy(), m)
		if err != nil {
			return nil, nil, err
		}
		props = append(props, q)
		refs = append(refs, message.ProposalOrRef{Reference: clone(q.ref)})
	}
	// The proposal list is checked with the receivers' rules (Section
	// 12.2); the joiner has no leaf yet, so no Remove is its own.
	d := st.Tree.Diff()
	a, err := st.ApplyProposals(d, publicList(props), sender, tree.LeafIndex(math.MaxUint32), g.policy())
	if err != nil {
		return nil, nil, err
	}
	if l, dup := d.FindSignatureKey(sigPub); dup {
		return nil, nil, fmt.Errorf("%w: the signature key is already used by leaf %d; remove that leaf with RemoveLeaf (resync) or use a new key", ErrInvalidArgument, l)
	}
	own, err := d.ReserveLeaf()
	if err != nil {
		return nil, nil, invalidErr("TreeFull", "12.4.3.2", err, "no room for the joiner")
	}
	gc := st.NextContext(a)
	template := message.LeafNode{
		SignatureKey: sigPub,
		Credential:   wireCred(id.Credential),
		Capabilities: wireCapabilities(opts.Capabilities, gc.CipherSuite, id.Credential.Type()),
		Extensions:   toWireExtensions(opts.LeafExtensions),
	}
	// As in CreateGroup: the leaf lists the group's own non-default
	// extensions, which it carries in the GroupContext.
	for _, e := range gc.Extensions {
		if !group.IsDefaultExtension(e.Type) {
			template.Capabilities.Extensions = appendUnique(template.Capabilities.Extensions, e.Type)
		}
	}
	if err := cfg.client.greaseLeaf(&template); err != nil {
		return nil, nil, err
	}
	cp, err := d.CreatePath(own, &template, id.Signer, &tree.PathOptions{Options: g.treeOptions(st, &gc), Rand: cfg.rand()})
	if err != nil {
		return nil, nil, group.LeafError(err, message.LeafNodeSourceCommit, "the joiner's leaf")
	}
	a.ExternalLeaf = own
	gc.TreeHash = d.TreeHash()
	provisional, err := message.Marshal(&gc)
	if err != nil {
		return nil, nil, err
	}
	up, err := cp.Encrypt(provisional)
	if err != nil {
		return nil, nil, err
	}
	aad := opts.AuthenticatedData
	if aad == nil {
		aad = []byte{}
	}
	fc := &message.FramedContent{
		GroupID:           st.GC.GroupID,
		Epoch:             st.GC.Epoch,
		Sender:            sender,
		AuthenticatedData: aad,
		ContentType:       message.ContentCommit,
		Commit:            &message.Commit{Proposals: refs, Path: up},
	}
	// Signed with the old GroupContext (Section 12.4.2), by the key of the
	// path's leaf (Section 12.4.3.2).
	ac, err := framing.SignContent(s, id.Signer, message.WireFormatPublicMessage, fc, st.GCRaw)
	if err != nil {
		return nil, nil, err
	}
	pub, err := st.Next(gc, ac)
	if err != nil {
		return nil, nil, err
	}
	psk, err := resolvePSKs(ctx, store, s, a.Psks, nil)
	if err != nil {
		return nil, nil, err
	}
	keys, err := epochFrom(s, initSecret, cp.CommitSecret(), psk, pub.GCRaw)
	if err != nil {
		return nil, nil, err
	}
	tag := keys.epoch.ConfirmationTag(pub.GC.ConfirmedTranscriptHash)
	ac.Auth.ConfirmationTag = tag
	pub.SetConfirmationTag(tag)
	pm, err := framing.ProtectPublic(s, ac, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	next := &epochState{Epoch: *pub, own: own, priv: cp.PrivateState(), keys: keys.epoch}
	if next.secrets, err = newSecretTree(s, keys.epoch, d.NumLeaves(), cfg.secretTreeConfig()); err != nil {
		return nil, nil, err
	}
	gi2, gi2Raw, err := g.groupInfoFor(next, d, id.Signer, cfg.UseRatchetTreeExtension, true)
	if err != nil {
		return nil, nil, err
	}
	if err := d.Merge(); err != nil {
		return nil, nil, err
	}
	g.st = next
	// A resync may replace this store's earlier state of the group; its
	// Update keys belong to that state.
	dropUpdateKeys := func(tx storage.Tx) error {
		return state.DeleteUpdateKeys(tx, gc.GroupID)
	}
	if err := g.saveWith(ctx, dropUpdateKeys); err != nil {
		return nil, nil, err
	}
	return g, &CommitResult{Commit: wrapPublic(pm), GroupInfo: wrapGroupInfoRaw(gi2, gi2Raw)}, nil
}

// NewJoinProposal creates an external Add proposal by which the owner of
// keyPackage asks to join a group (RFC 9420, Section 12.1.8; OpenMLS's
// JoinProposal): sender new_member_proposal, signed with signer, the key
// package's signature key, for the group and epoch of groupInfo. The
// GroupInfo is not verified: it only names the group. A member processes
// the proposal (Processed.Kind is KindProposal), decides whether the
// joiner is welcome, stores it with StorePendingProposal and commits it.
func NewJoinProposal(keyPackage *KeyPackage, signer crypto.Signer, groupInfo *Message) (*Message, error) {
	if keyPackage == nil || signer == nil {
		return nil, fmt.Errorf("%w: nil key package or signer", ErrInvalidArgument)
	}
	if groupInfo == nil || groupInfo.m.GroupInfo == nil {
		return nil, fmt.Errorf("%w: not a GroupInfo message", ErrInvalidArgument)
	}
	gc := &groupInfo.m.GroupInfo.GroupContext
	if gc.CipherSuite != keyPackage.kp.CipherSuite {
		return nil, fmt.Errorf("%w: key package for suite 0x%04x, group uses 0x%04x", ErrInvalidArgument, uint16(keyPackage.kp.CipherSuite), uint16(gc.CipherSuite))
	}
	s := keyPackage.suite
	pub, err := s.SignaturePublicKey(signer)
	if err != nil {
		return nil, fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	if string(pub) != string(keyPackage.kp.LeafNode.SignatureKey) {
		return nil, fmt.Errorf("%w: signer does not match the key package", ErrInvalidArgument)
	}
	p := &message.Proposal{Type: message.ProposalAdd, Add: &message.AddProposal{KeyPackage: keyPackage.kp}}
	return externalProposal(s, gc.GroupID, gc.Epoch, message.Sender{Type: message.SenderNewMemberProposal}, signer, p)
}

// Proposal is a proposal to send, built with AddProposal, RemoveProposal,
// ExternalPSKProposal, ReInitProposal or GroupContextExtensionsProposal,
// for NewExternalProposal.
type Proposal struct {
	p     message.Proposal
	pskID []byte // for a PreSharedKey proposal: the nonce is drawn when sent
}

// AddProposal proposes adding the owner of kp (RFC 9420, Section 12.1.1).
func AddProposal(kp *KeyPackage) Proposal {
	if kp == nil {
		return Proposal{p: message.Proposal{Type: message.ProposalAdd}}
	}
	return Proposal{p: message.Proposal{Type: message.ProposalAdd, Add: &message.AddProposal{KeyPackage: kp.kp}}}
}

// RemoveProposal proposes removing the member at leaf (RFC 9420, Section
// 12.1.3).
func RemoveProposal(leaf uint32) Proposal {
	return Proposal{p: message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: leaf}}}
}

// ExternalPSKProposal proposes injecting the external pre-shared key pskID
// (RFC 9420, Section 12.1.4); the members must hold it (StorePSK).
func ExternalPSKProposal(pskID []byte) Proposal {
	return Proposal{p: message.Proposal{Type: message.ProposalPSK}, pskID: clone(pskID)}
}

// ReInitProposal proposes reinitializing the group with new parameters
// (RFC 9420, Section 12.1.5).
func ReInitProposal(params ReInitParams) Proposal {
	return Proposal{p: message.Proposal{Type: message.ProposalReInit, ReInit: params.wire()}}
}

// GroupContextExtensionsProposal proposes replacing the group context
// extensions (RFC 9420, Section 12.1.7).
func GroupContextExtensionsProposal(exts []Extension) Proposal {
	return Proposal{p: message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: &message.GroupContextExtensionsProposal{Extensions: toWireExtensions(exts)}}}
}

// Type returns the proposal type.
func (p Proposal) Type() ProposalType { return ProposalType(p.p.Type) }

// NewExternalProposal creates a proposal from an external sender (RFC
// 9420, Section 12.1.8; OpenMLS's ExternalProposal): a party listed at
// senderIndex in the group's external_senders extension, signing with
// signer, for epoch of the group groupID that uses suite. Only Add,
// Remove, PreSharedKey, ReInit and GroupContextExtensions proposals may
// come from an external sender. The result is a PublicMessage (an
// external sender holds no group secrets); its signature covers no
// GroupContext (Section 6.1).
func NewExternalProposal(groupID []byte, epoch uint64, suite CipherSuite, senderIndex uint32, signer crypto.Signer, proposal Proposal) (*Message, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, err
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", ErrInvalidArgument)
	}
	if _, err := s.SignaturePublicKey(signer); err != nil {
		return nil, fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	if !group.ExternalSenderAllowed(proposal.p.Type) {
		return nil, fmt.Errorf("%w: an external sender cannot send a proposal of type %d", ErrInvalidArgument, proposal.p.Type)
	}
	p, err := proposal.build(s, rand.Reader)
	if err != nil {
		return nil, err
	}
	return externalProposal(s, groupID, epoch, message.Sender{Type: message.SenderExternal, SenderIndex: senderIndex}, signer, p)
}

// build completes a proposal for sending: it checks that its body is set
// and draws the nonce of a PreSharedKey proposal.
func (p Proposal) build(s *ciphersuite.Suite, rnd io.Reader) (*message.Proposal, error) {
	out := p.p
	switch out.Type {
	case message.ProposalAdd:
		if out.Add == nil {
			return nil, fmt.Errorf("%w: Add proposal without a key package", ErrInvalidArgument)
		}
		if out.Add.KeyPackage.CipherSuite != s.ID() {
			return nil, fmt.Errorf("%w: key package for suite 0x%04x, group uses 0x%04x", ErrInvalidArgument, uint16(out.Add.KeyPackage.CipherSuite), uint16(s.ID()))
		}
	case message.ProposalPSK:
		if out.PSK != nil && out.PSK.PSK.Type == message.PSKResumption {
			// ResumptionPSKProposal: only the nonce is missing.
			psk := *out.PSK
			psk.PSK.Nonce = make([]byte, s.HashSize())
			if _, err := io.ReadFull(rnd, psk.PSK.Nonce); err != nil {
				return nil, err
			}
			out.PSK = &psk
			break
		}
		if len(p.pskID) == 0 {
			return nil, fmt.Errorf("%w: empty PSK id", ErrInvalidArgument)
		}
		nonce := make([]byte, s.HashSize())
		if _, err := io.ReadFull(rnd, nonce); err != nil {
			return nil, err
		}
		out.PSK = &message.PreSharedKeyProposal{PSK: message.PreSharedKeyID{Type: message.PSKExternal, PSKID: clone(p.pskID), Nonce: nonce}}
	case message.ProposalReInit:
		if _, err := lookupSuite(out.ReInit.CipherSuite); err != nil {
			return nil, fmt.Errorf("%w: ReInit: %w", ErrInvalidArgument, err)
		}
	case message.ProposalRemove, message.ProposalGroupContextExtensions:
	default:
		return nil, fmt.Errorf("%w: proposal type %d", ErrInvalidArgument, out.Type)
	}
	return &out, nil
}

// externalProposal signs a proposal of a non-member sender and frames it
// as a PublicMessage without membership tag (RFC 9420, Sections 6.1 and
// 6.2).
func externalProposal(s *ciphersuite.Suite, groupID []byte, epoch uint64, sender message.Sender, signer crypto.Signer, p *message.Proposal) (*Message, error) {
	fc := &message.FramedContent{
		GroupID:           clone(groupID),
		Epoch:             epoch,
		Sender:            sender,
		AuthenticatedData: []byte{},
		ContentType:       message.ContentProposal,
		Proposal:          p,
	}
	if fc.GroupID == nil {
		fc.GroupID = []byte{}
	}
	ac, err := framing.SignContent(s, signer, message.WireFormatPublicMessage, fc, nil)
	if err != nil {
		return nil, classify(err)
	}
	pm, err := framing.ProtectPublic(s, ac, nil, nil)
	if err != nil {
		return nil, classify(err)
	}
	return wrapPublic(pm), nil
}

// ReInitParams are the parameters of a ReInit proposal (RFC 9420, Section
// 12.1.5): those of the group that replaces the current one.
type ReInitParams struct {
	GroupID []byte
	// Version is the protocol version; zero means mls10 (1).
	Version     uint16
	CipherSuite CipherSuite
	Extensions  []Extension
}

func (r ReInitParams) wire() *message.ReInitProposal {
	v := message.ProtocolVersion(r.Version)
	if v == 0 {
		v = message.MLS10
	}
	return &message.ReInitProposal{GroupID: clone(r.GroupID), Version: v, CipherSuite: r.CipherSuite, Extensions: toWireExtensions(r.Extensions)}
}

func reInitParams(p *message.ReInitProposal) *ReInitParams {
	return &ReInitParams{GroupID: clone(p.GroupID), Version: uint16(p.Version), CipherSuite: p.CipherSuite, Extensions: fromWireExtensions(p.Extensions)}
}

// externalSelfRemove validates a pending SelfRemove proposal for an
// external joiner (draft-ietf-mls-extensions, "SelfRemove Proposal"):
// a PublicMessage of the epoch from a member, signed by its leaf; the
// membership tag is present but not checked.
func externalSelfRemove(st *epochState, pol *group.Policy, m *Message) (*QueuedProposal, error) {
	if m == nil || m.m.PublicMessage == nil {
		return nil, invalid("SelfRemovePrivate", "draft-ietf-mls-extensions, SelfRemove Proposal", "a SelfRemove proposal for an external joiner must be a PublicMessage")
	}
	ac, _, err := st.FollowPublic(m.m.PublicMessage, m.content)
	if err != nil {
		return nil, err
	}
	if ac.Content.ContentType != message.ContentProposal || ac.Content.Proposal.Type != group.ProposalSelfRemove {
		return nil, fmt.Errorf("%w: ExternalJoinOptions.SelfRemoves holds a message that is not a SelfRemove proposal", ErrInvalidArgument)
	}
	p, err := st.ValidateProposal(ac, pol)
	if err != nil {
		return nil, err
	}
	return queued(p), nil
}
