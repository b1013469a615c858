package mls

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// CommitResult is what a commit produces: the commit for the group, a
// Welcome for new members (nil if none), and the GroupInfo of the new
// epoch (for external joins).
type CommitResult struct {
	Commit    *Message
	Welcome   *Message
	GroupInfo *Message
}

// CommitOptions choose what a commit covers (OpenMLS's commit_builder).
// Pending proposals (received or proposed in this epoch) are always
// included by reference; these options add proposals inline.
type CommitOptions struct {
	// Add adds members from their key packages.
	Add []*KeyPackage
	// Remove removes members by leaf index.
	Remove []uint32
	// RemoveIdentities removes, for each identity, every member other than
	// this one whose credential has that Identity (credential.Identity:
	// a basic credential's identity, an X.509 leaf certificate's subject).
	// An identity that no other member holds fails with ErrNotFound.
	RemoveIdentities [][]byte
	// WireFormat frames the commit as WireFormatPublicMessage or
	// WireFormatPrivateMessage instead of what the group's
	// WireFormatPolicy.OutgoingPrivate says; zero means the policy's
	// choice. A format the group's incoming policy rejects (its members
	// would drop the commit) or any other wire format fails with
	// ErrInvalidArgument and ErrWireFormat.
	WireFormat WireFormat
	// ExternalPSKs inject pre-shared keys already stored with StorePSK.
	ExternalPSKs [][]byte
	// ResumptionPSKs inject the resumption PSKs of earlier epochs of this
	// group (RFC 9420, Section 8.6, usage application), by epoch number:
	// the current epoch or one of the last few before it.
	ResumptionPSKs []uint64
	// GroupContextExtensions, if non-nil, replace the group context
	// extensions.
	GroupContextExtensions []Extension
	// ForcePath includes an UpdatePath even if no proposal needs one (a
	// self-update, RFC 9420, Section 12.4).
	ForcePath bool
	// NewIdentity, if set, replaces this member's credential and signature
	// key in its new leaf (SelfUpdateWithNewSigner).
	NewIdentity *Identity
	// LeafExtensions, if non-nil, replace this member's leaf extensions.
	LeafExtensions []Extension
	// LeafCapabilities, if non-nil, replace this member's leaf
	// capabilities (OpenMLS's LeafNodeParameters).
	LeafCapabilities *Capabilities
	// AuthenticatedData is sent in the clear, authenticated.
	AuthenticatedData []byte
	// ReInit, if set, commits an inline ReInit proposal (RFC 9420,
	// Section 12.1.5). A ReInit must be the commit's only proposal
	// (Section 12.2), so it cannot be combined with other options or
	// pending proposals. After the commit merges the group is inactive;
	// see Group.ReInitParams.
	ReInit *ReInitParams
	// AppDataUpdates commits AppDataUpdate proposals (draft-ietf-mls-
	// extensions) by value, in this order after the other inline proposals
	// but before Custom; see ProposeAppDataUpdate.
	AppDataUpdates []AppDataUpdate
	// Custom commits proposals of types RFC 9420 does not define by value,
	// in this order after the other inline proposals (see custom.go).
	Custom []CustomProposal

	// reinitPSK, set by ReInitGroup, is the resumption PSK (usage reinit)
	// of the group being replaced: it enters the key schedule and the
	// Welcome but is not a proposal (RFC 9420, Section 11.2).
	reinitPSK *heldPSK
}

// heldPSK is a PSK the committer already holds, with its ID.
type heldPSK struct {
	id     message.PreSharedKeyID
	secret []byte
}

// AddMembers commits Add proposals for the key packages, together with
// the pending proposals. Merge the result with MergePendingCommit once the
// delivery service accepted the commit, then send the Welcome.
func (g *Group) AddMembers(ctx context.Context, kps ...*KeyPackage) (*CommitResult, error) {
	return g.Commit(ctx, CommitOptions{Add: kps})
}

// RemoveMembers commits Remove proposals for the given leaves.
func (g *Group) RemoveMembers(ctx context.Context, leaves ...uint32) (*CommitResult, error) {
	return g.Commit(ctx, CommitOptions{Remove: leaves})
}

// RemoveMembersByIdentity commits Remove proposals for every member other
// than this one whose credential has one of the identities (see
// CommitOptions.RemoveIdentities). An identity that no other member holds
// fails with ErrNotFound and nothing is committed.
func (g *Group) RemoveMembersByIdentity(ctx context.Context, identities ...[]byte) (*CommitResult, error) {
	if len(identities) == 0 {
		return nil, fmt.Errorf("%w: no identity to remove", ErrInvalidArgument)
	}
	return g.Commit(ctx, CommitOptions{RemoveIdentities: identities})
}

// MembersByIdentity returns the members whose credential has identity
// (credential.Identity), in leaf order: a client with several devices has
// one leaf per device.
func (g *Group) MembersByIdentity(identity []byte) []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Member
	for _, l := range leavesWithIdentity(g.st.Tree.View(), identity) {
		out = append(out, memberOf(uint32(l), g.st.Tree.Leaf(l)))
	}
	return out
}

// leavesWithIdentity returns the non-blank leaves whose credential has
// identity.
func leavesWithIdentity(d *tree.Diff, identity []byte) []tree.LeafIndex {
	var out []tree.LeafIndex
	for _, l := range group.MembersLeaves(d) {
		if bytes.Equal(credOf(d.Leaf(l).Credential).Identity(), identity) {
			out = append(out, l)
		}
	}
	return out
}

// outgoingWireFormat picks the framing of an own handshake message: the
// one asked for (zero: the policy's), which must be PublicMessage or
// PrivateMessage and accepted by the group's incoming policy, so that the
// members, who share it, do not drop the message (RFC 9420, Section 6).
func (g *Group) outgoingWireFormat(want WireFormat) (message.WireFormat, error) {
	if want == 0 {
		if g.cfg.WireFormatPolicy.OutgoingPrivate {
			return message.WireFormatPrivateMessage, nil
		}
		return message.WireFormatPublicMessage, nil
	}
	in := g.cfg.WireFormatPolicy.Incoming
	switch {
	case want != WireFormatPublicMessage && want != WireFormatPrivateMessage:
		return 0, fmt.Errorf("%w: %w: a handshake message cannot be a %v", ErrInvalidArgument, ErrWireFormat, want)
	case want == WireFormatPublicMessage && in == AcceptPrivateOnly,
		want == WireFormatPrivateMessage && in == AcceptPublicOnly:
		return 0, fmt.Errorf("%w: %w: %v, but the group's incoming policy is %v", ErrInvalidArgument, ErrWireFormat, want, in)
	}
	return message.WireFormat(want), nil
}

// String names the policy as the constant does.
func (p IncomingPolicy) String() string {
	switch p {
	case AcceptAny:
		return "AcceptAny"
	case AcceptPublicOnly:
		return "AcceptPublicOnly"
	case AcceptPrivateOnly:
		return "AcceptPrivateOnly"
	}
	return fmt.Sprintf("IncomingPolicy(%d)", uint8(p))
}

// SelfUpdate commits a fresh UpdatePath for this member: new leaf and path
// keys (forward secrecy and post-compromise security, RFC 9420,
// Section 12.4).
func (g *Group) SelfUpdate(ctx context.Context) (*CommitResult, error) {
	return g.Commit(ctx, CommitOptions{ForcePath: true})
}

// SelfUpdateWithNewSigner is SelfUpdate that also moves this member to a
// new credential and signature key. After the commit merges, the group
// signs with id.Signer.
func (g *Group) SelfUpdateWithNewSigner(ctx context.Context, id Identity) (*CommitResult, error) {
	return g.Commit(ctx, CommitOptions{ForcePath: true, NewIdentity: &id})
}

// CommitPendingProposals commits the pending proposals (an empty commit
// with a path if there are none).
func (g *Group) CommitPendingProposals(ctx context.Context) (*CommitResult, error) {
	return g.Commit(ctx, CommitOptions{})
}

// Commit creates a commit (RFC 9420, Section 12.4) and keeps it as the
// pending commit. Nothing else changes until MergePendingCommit.
func (g *Group) Commit(ctx context.Context, opts CommitOptions) (*CommitResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, err
	}
	if !g.active {
		return nil, ErrInactive
	}
	if g.pending != nil {
		return nil, ErrPendingCommit
	}
	if opts.NewIdentity != nil && opts.NewIdentity.Signer == nil {
		return nil, fmt.Errorf("%w: new identity has no signer", ErrInvalidArgument)
	}
	sc, err := g.createCommit(ctx, opts)
	if err != nil {
		return nil, classify(err)
	}
	g.pending = sc
	if err := g.save(ctx); err != nil {
		g.pending = nil
		return nil, err
	}
	return &CommitResult{Commit: sc.commit, Welcome: sc.welcome, GroupInfo: sc.groupInfo}, nil
}

// commitProposals collects what a new commit covers: pending proposals by
// reference (minus those the committer must not or need not commit) and
// the inline ones.
func (g *Group) commitProposals(st *epochState, opts *CommitOptions) ([]*QueuedProposal, []message.ProposalOrRef, error) {
	me := message.Sender{Type: message.SenderMember, LeafIndex: uint32(st.own)}
	var props []*QueuedProposal
	var refs []message.ProposalOrRef
	inline := func(p *message.Proposal) {
		props = append(props, &QueuedProposal{p: p, sender: me})
		refs = append(refs, message.ProposalOrRef{Proposal: p})
	}
	if len(opts.RemoveIdentities) > 0 {
		v := st.Tree.View()
		remove := append([]uint32(nil), opts.Remove...)
		for _, id := range opts.RemoveIdentities {
			n := 0
			for _, l := range leavesWithIdentity(v, id) {
				if l == st.own {
					continue
				}
				n++
				if !containsU32(remove, uint32(l)) {
					remove = append(remove, uint32(l))
				}
			}
			if n == 0 {
				return nil, nil, fmt.Errorf("%w: no other member has identity %q", ErrNotFound, id)
			}
		}
		opts.Remove = remove
	}
	removed := map[uint32]bool{}
	for _, r := range opts.Remove {
		removed[r] = true
	}
	// Removes win over updates of the same leaf (Section 12.2), and a
	// SelfRemove over a Remove of its proposer's leaf (draft-ietf-mls-
	// extensions, "SelfRemove Proposal": that Remove is invalid).
	selfRemoved := map[uint32]bool{}
	for _, q := range g.props {
		switch q.p.Type {
		case message.ProposalRemove:
			removed[q.p.Remove.Removed] = true
		case group.ProposalSelfRemove:
			if l := q.sender.LeafIndex; q.sender.Type == message.SenderMember && l != uint32(st.own) {
				removed[l], selfRemoved[l] = true, true
			}
		}
	}
	for _, r := range opts.Remove {
		if selfRemoved[r] {
			return nil, nil, fmt.Errorf("%w: leaf %d has a pending SelfRemove proposal, which this commit covers; do not also remove it", ErrInvalidArgument, r)
		}
	}
	seen := map[uint32]bool{}
	var reinit *QueuedProposal
	for _, q := range g.props {
		switch q.p.Type {
		case message.ProposalReInit:
			// Committed alone, if at all (below).
			if reinit == nil {
				reinit = q
			}
			continue
		case message.ProposalUpdate:
			l := q.sender.LeafIndex
			if l == uint32(st.own) || removed[l] || seen[l] {
				continue // own updates are replaced by the path
			}
			seen[l] = true
		case message.ProposalRemove:
			r := q.p.Remove.Removed
			if r == uint32(st.own) || seen[r] || selfRemoved[r] || containsU32(opts.Remove, r) {
				continue
			}
			seen[r] = true
		case group.ProposalSelfRemove:
			// Never the committer's own (the proposal waits for another
			// member), at most one per leaf.
			l := q.sender.LeafIndex
			if q.sender.Type != message.SenderMember || l == uint32(st.own) || seen[l] {
				continue
			}
			seen[l] = true
		}
		props = append(props, q)
		refs = append(refs, message.ProposalOrRef{Reference: clone(q.ref)})
	}
	for _, kp := range opts.Add {
		if kp == nil {
			return nil, nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
		}
		inline(&message.Proposal{Type: message.ProposalAdd, Add: &message.AddProposal{KeyPackage: kp.kp}})
	}
	for _, r := range opts.Remove {
		inline(&message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: r}})
	}
	for _, id := range opts.ExternalPSKs {
		nonce := make([]byte, st.Suite.HashSize())
		if _, err := io.ReadFull(g.cfg.rand(), nonce); err != nil {
			return nil, nil, err
		}
		inline(&message.Proposal{Type: message.ProposalPSK, PSK: &message.PreSharedKeyProposal{PSK: message.PreSharedKeyID{Type: message.PSKExternal, PSKID: clone(id), Nonce: nonce}}})
	}
	for _, epoch := range opts.ResumptionPSKs {
		if epoch > st.GC.Epoch {
			return nil, nil, fmt.Errorf("%w: resumption PSK of future epoch %d", ErrInvalidArgument, epoch)
		}
		nonce := make([]byte, st.Suite.HashSize())
		if _, err := io.ReadFull(g.cfg.rand(), nonce); err != nil {
			return nil, nil, err
		}
		inline(&message.Proposal{Type: message.ProposalPSK, PSK: &message.PreSharedKeyProposal{PSK: message.PreSharedKeyID{
			Type: message.PSKResumption, Usage: message.ResumptionApplication, PSKGroupID: clone(st.GC.GroupID), PSKEpoch: epoch, Nonce: nonce}}})
	}
	if opts.GroupContextExtensions != nil {
		inline(&message.Proposal{Type: message.ProposalGroupContextExtensions, GroupContextExtensions: &message.GroupContextExtensionsProposal{Extensions: toWireExtensions(opts.GroupContextExtensions)}})
	}
	for _, u := range opts.AppDataUpdates {
		p, err := u.proposal()
		if err != nil {
			return nil, nil, err
		}
		inline(p)
	}
	for _, c := range opts.Custom {
		p, err := c.proposal()
		if err != nil {
			return nil, nil, err
		}
		inline(p)
	}
	// RFC 9420, Section 12.2: a ReInit goes alone; a committer that has
	// other proposals should prefer them, so a pending ReInit waits for a
	// commit with nothing else to cover.
	switch {
	case opts.ReInit != nil:
		if len(props) > 0 {
			return nil, nil, fmt.Errorf("%w: a ReInit commit cannot cover other proposals (%d pending or given)", ErrInvalidArgument, len(props))
		}
		p := ReInitProposal(*opts.ReInit)
		rp, err := p.build(st.Suite, g.cfg.rand())
		if err != nil {
			return nil, nil, err
		}
		inline(rp)
	case reinit != nil && len(props) == 0:
		props = append(props, reinit)
		refs = append(refs, message.ProposalOrRef{Reference: clone(reinit.ref)})
	}
	return props, refs, nil
}

func containsU32(s []uint32, v uint32) bool { return contains(s, v) }

func (g *Group) createCommit(ctx context.Context, opts CommitOptions) (*StagedCommit, error) {
	st := g.st
	s := st.Suite
	me := message.Sender{Type: message.SenderMember, LeafIndex: uint32(st.own)}
	wf, err := g.outgoingWireFormat(opts.WireFormat)
	if err != nil {
		return nil, err
	}
	props, refs, err := g.commitProposals(st, &opts)
	if err != nil {
		return nil, err
	}
	d := st.Tree.Diff()
	a, err := st.ApplyProposals(d, publicList(props), me, st.own, g.policy())
	if err != nil {
		return nil, err
	}
	gc := st.NextContext(a)
	commitSecret := make([]byte, s.HashSize())
	var priv *tree.PrivateState
	var cp *tree.CreatedPath
	var up *message.UpdatePath
	signer := g.signer
	if a.NeedsPath || opts.ForcePath || opts.NewIdentity != nil || opts.LeafExtensions != nil || opts.LeafCapabilities != nil {
		template := *st.ownLeaf()
		if opts.NewIdentity != nil {
			pub, err := s.SignaturePublicKey(opts.NewIdentity.Signer)
			if err != nil {
				return nil, fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
			}
			template.SignatureKey = pub
			template.Credential = wireCred(opts.NewIdentity.Credential)
			template.Capabilities.Credentials = appendUnique(template.Capabilities.Credentials, message.CredentialType(opts.NewIdentity.Credential.Type()))
			signer = opts.NewIdentity.Signer
		}
		if opts.LeafExtensions != nil {
			template.Extensions = toWireExtensions(opts.LeafExtensions)
		}
		if opts.LeafCapabilities != nil {
			template.Capabilities = wireCapabilities(*opts.LeafCapabilities, st.GC.CipherSuite, credOf(template.Credential).Type())
			if err := g.cfg.client.greaseNewCapabilities(&template); err != nil {
				return nil, err
			}
		}
		topts := g.treeOptions(st, &gc)
		cp, err = d.CreatePath(st.own, &template, signer, &tree.PathOptions{Options: topts, Exclude: a.Added, Rand: g.cfg.rand()})
		if err != nil {
			return nil, err
		}
		// The provisional GroupContext: new epoch and tree hash, old
		// transcript (Section 12.4.2, step 7 of the committer).
		gc.TreeHash = d.TreeHash()
		provisional, err := message.Marshal(&gc)
		if err != nil {
			return nil, err
		}
		if up, err = cp.Encrypt(provisional); err != nil {
			return nil, err
		}
		commitSecret = cp.CommitSecret()
		priv = cp.PrivateState()
	} else {
		gc.TreeHash = d.TreeHash()
		priv = st.priv.Prune(d)
	}
	aad := opts.AuthenticatedData
	if aad == nil {
		aad = []byte{}
	}
	if refs == nil {
		refs = []message.ProposalOrRef{}
	}
	fc := &message.FramedContent{
		GroupID:           st.GC.GroupID,
		Epoch:             st.GC.Epoch,
		Sender:            me,
		AuthenticatedData: aad,
		ContentType:       message.ContentCommit,
		Commit:            &message.Commit{Proposals: refs, Path: up},
	}
	ac, err := framing.SignContent(s, g.signer, wf, fc, st.GCRaw)
	if err != nil {
		return nil, classify(err)
	}
	pub, err := st.Next(gc, ac)
	if err != nil {
		return nil, err
	}
	var psk *keyschedule.PSKSecret
	if h := opts.reinitPSK; h != nil {
		// The Welcome lists the PSKs in key schedule order (RFC 9420,
		// Section 8.4): this one first.
		a.Psks = append([]message.PreSharedKeyID{h.id}, a.Psks...)
		psk, err = resolvePSKs(ctx, g.store, s, a.Psks, func(id *message.PreSharedKeyID) []byte {
			if id.Usage == h.id.Usage { // reinit, or branch (Branch)
				return h.secret
			}
			return g.resumptionPSK(st, id)
		})
	} else {
		psk, err = g.pskSecret(ctx, st, a.Psks)
	}
	if err != nil {
		return nil, err
	}
	keys, err := epochFrom(s, st.keys.InitSecret(), commitSecret, psk, pub.GCRaw)
	if err != nil {
		return nil, err
	}
	tag := keys.epoch.ConfirmationTag(pub.GC.ConfirmedTranscriptHash)
	ac.Auth.ConfirmationTag = tag
	pub.SetConfirmationTag(tag)
	next := &epochState{Epoch: *pub, own: st.own, priv: priv, keys: keys.epoch}
	if next.secrets, err = newSecretTree(s, keys.epoch, d.NumLeaves(), g.cfg.secretTreeConfig()); err != nil {
		return nil, err
	}
	sc := &StagedCommit{base: st, diff: d, next: next, a: a, props: props, sender: me, own: true, signer: signer}
	if sc.commit, err = g.protect(st, ac); err != nil {
		return nil, err
	}
	// One signed GroupInfo serves both the external joiners and the
	// Welcome: RFC 9420, Section 12.4.3 puts no limit on the Welcome's
	// GroupInfo extensions, and external_pub (Section 12.4.3.2) is a public
	// key every member can derive. With the ratchet_tree extension on, this
	// saves a second encoding and a second signature over the whole tree.
	gi, giRaw, err := g.groupInfoFor(next, d, signer, g.cfg.UseRatchetTreeExtension, true)
	if err != nil {
		return nil, classify(err)
	}
	sc.groupInfo, sc.treeInGroupInfo = wrapGroupInfoRaw(gi, giRaw), g.cfg.UseRatchetTreeExtension
	if len(a.Added) > 0 {
		w, err := g.welcomeFor(next, sc.groupInfo.encodedBody(), keys, a, cp)
		if err != nil {
			return nil, err
		}
		sc.welcome, sc.welcomeSecret = wrapWelcome(w), keys.welcome
	}
	return sc, nil
}

// protect frames a signed handshake message of the current epoch as a
// PublicMessage (membership tag) or PrivateMessage (handshake ratchet).
func (g *Group) protect(st *epochState, ac *message.AuthenticatedContent) (*Message, error) {
	if ac.WireFormat == message.WireFormatPrivateMessage {
		pm, err := framing.ProtectPrivate(st.Suite, ac, st.secrets, st.keys.SenderDataSecret(), g.cfg.PaddingSize, g.cfg.rand())
		if err != nil {
			return nil, classify(err)
		}
		return wrapPrivate(pm), nil
	}
	pm, err := framing.ProtectPublic(st.Suite, ac, st.keys.MembershipKey(), st.GCRaw)
	if err != nil {
		return nil, classify(err)
	}
	return wrapPublic(pm), nil
}

// welcomeFor builds the Welcome for the members a commit adds (RFC 9420,
// Section 12.4.3.1), encrypting giRaw, the encoded signed GroupInfo of the
// new epoch.
func (g *Group) welcomeFor(next *epochState, giRaw []byte, keys *epochKeys, a *group.Applied, cp *tree.CreatedPath) (*message.Welcome, error) {
	s := next.Suite
	// encrypted_group_info is the context of every EncryptWithLabel below
	// (Section 12.4.3.1): it is sealed after room for the EncryptContext
	// framing, so that with the tree in the GroupInfo the HPKE info is not
	// a copy of it.
	room := ciphersuite.LabeledPrefixRoom(labelWelcome)
	buf, err := keys.welcome.AppendSealedGroupInfo(make([]byte, room), giRaw)
	if err != nil {
		return nil, err
	}
	encGI := buf[room:len(buf):len(buf)]
	info, err := ciphersuite.PutLabeledPrefix(buf, room, labelWelcome)
	if err != nil {
		return nil, err
	}
	psks := a.Psks
	if psks == nil {
		psks = []message.PreSharedKeyID{}
	}
	w := &message.Welcome{CipherSuite: next.GC.CipherSuite, EncryptedGroupInfo: encGI, Secrets: make([]message.EncryptedGroupSecrets, len(a.AddedKPs))}
	errs := make([]error, len(a.AddedKPs))
	parallel(len(a.AddedKPs), func(i int) {
		kp := a.AddedKPs[i]
		gs := message.GroupSecrets{JoinerSecret: keys.joiner.Bytes(), PSKs: psks}
		if cp != nil {
			if secret, _, ok := cp.PathSecret(a.Added[i]); ok {
				gs.PathSecret = secret
			}
		}
		raw, err := message.Marshal(&gs)
		if err != nil {
			errs[i] = err
			return
		}
		kem, ct, err := s.EncryptWithLabelFramed(kp.InitKey, labelWelcome, info, raw)
		if err != nil {
			errs[i] = err
			return
		}
		ref, err := kp.Ref(s)
		if err != nil {
			errs[i] = err
			return
		}
		w.Secrets[i] = message.EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: message.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return w, nil
}

// MergePendingCommit merges this member's own pending commit: the group
// moves to the next epoch. Call it once the delivery service has accepted
// the commit.
func (g *Group) MergePendingCommit(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	if g.pending == nil {
		return ErrNoPendingCommit
	}
	return g.merge(ctx, g.pending)
}

// ClearPendingCommit discards the pending commit, for example when another
// member's commit for the same epoch won (reference/faq.txt). The group
// stays in its current epoch and can commit again.
func (g *Group) ClearPendingCommit(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	if g.pending == nil {
		return nil
	}
	old := g.pending
	g.pending = nil
	if err := g.save(ctx); err != nil {
		g.pending = old
		return err
	}
	return nil
}

// PendingCommit returns the pending commit, or nil.
func (g *Group) PendingCommit() *StagedCommit {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pending
}

// StagedCommit is a validated commit waiting to be merged: received
// (from Process) or this member's own pending commit. Inspect it before
// merging.
type StagedCommit struct {
	base   *epochState
	diff   *tree.Diff
	next   *epochState // nil if this member was removed
	a      *group.Applied
	props  []*QueuedProposal // a.Props
	sender message.Sender
	own    bool
	signer signerT

	commit    *Message
	welcome   *Message
	groupInfo *Message
	// Of this member's own pending commit, what lets its record leave out
	// the copies of the tree (state.PendingRecord): welcomeSecret seals
	// groupInfo into welcome (nil if the welcome is not to be sealed
	// again, as one restored from an old record), and treeInGroupInfo says
	// that groupInfo's ratchet_tree extension is diff's tree.
	welcomeSecret   *keyschedule.WelcomeSecret
	treeInGroupInfo bool
}

// Epoch returns the epoch the group enters when the commit is merged.
func (sc *StagedCommit) Epoch() uint64 { return sc.base.GC.Epoch + 1 }

// Sender returns the committer. For an external commit (type
// SenderNewMemberCommit) Index is the leaf the joiner takes.
func (sc *StagedCommit) Sender() Sender {
	s := senderOf(sc.sender)
	if sc.sender.Type == message.SenderNewMemberCommit {
		s.Index = uint32(sc.a.ExternalLeaf)
	}
	return s
}

// ReInit returns the parameters of the commit's ReInit proposal, if it has
// one (RFC 9420, Section 12.1.5): merging it shuts the group down.
func (sc *StagedCommit) ReInit() (*ReInitParams, bool) {
	if sc.a.Reinit == nil {
		return nil, false
	}
	return reInitParams(sc.a.Reinit), true
}

// Proposals returns every proposal the commit covers, in order.
func (sc *StagedCommit) Proposals() []*QueuedProposal {
	return append([]*QueuedProposal(nil), sc.props...)
}

func (sc *StagedCommit) ofType(t message.ProposalType) []*QueuedProposal {
	var out []*QueuedProposal
	for _, q := range sc.props {
		if q.p.Type == t {
			out = append(out, q)
		}
	}
	return out
}

// AddProposals returns the commit's Add proposals.
func (sc *StagedCommit) AddProposals() []*QueuedProposal { return sc.ofType(message.ProposalAdd) }

// RemoveProposals returns the commit's Remove proposals.
func (sc *StagedCommit) RemoveProposals() []*QueuedProposal {
	return sc.ofType(message.ProposalRemove)
}

// UpdateProposals returns the commit's Update proposals.
func (sc *StagedCommit) UpdateProposals() []*QueuedProposal {
	return sc.ofType(message.ProposalUpdate)
}

// PSKProposals returns the commit's PreSharedKey proposals.
func (sc *StagedCommit) PSKProposals() []*QueuedProposal { return sc.ofType(message.ProposalPSK) }

// SelfRemoved reports whether the commit removes this member.
func (sc *StagedCommit) SelfRemoved() bool { return sc.a.SelfGone }

// NewCredentials returns the credentials the commit brings into the group
// (added members, updated leaves, the committer's new leaf), for the
// application to check before merging (RFC 9420, Section 5.3.1).
func (sc *StagedCommit) NewCredentials() []credential.Credential {
	var out []credential.Credential
	for _, kp := range sc.a.AddedKPs {
		out = append(out, credOf(kp.LeafNode.Credential))
	}
	for _, q := range sc.UpdateProposals() {
		out = append(out, credOf(q.p.Update.LeafNode.Credential))
	}
	if sc.sender.Type == message.SenderMember || sc.sender.Type == message.SenderNewMemberCommit {
		if ln := sc.diff.Leaf(tree.LeafIndex(sc.senderLeaf())); ln != nil {
			// An external joiner is new even when it takes over the leaf of
			// an earlier appearance (a resync).
			if old := sc.base.Tree.Leaf(tree.LeafIndex(sc.senderLeaf())); old == nil || sc.sender.Type == message.SenderNewMemberCommit || !bytes.Equal(old.SignatureKey, ln.SignatureKey) || !credOf(old.Credential).Equal(credOf(ln.Credential)) {
				out = append(out, credOf(ln.Credential))
			}
		}
	}
	return out
}

func (sc *StagedCommit) senderLeaf() uint32 {
	if sc.next != nil && sc.sender.Type == message.SenderNewMemberCommit {
		return uint32(sc.a.ExternalLeaf)
	}
	return sc.sender.LeafIndex
}

// MergeStagedCommit merges a commit returned by Process: the group moves to
// the next epoch, or becomes inactive if the commit removed this member.
func (g *Group) MergeStagedCommit(ctx context.Context, sc *StagedCommit) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	if sc == nil || sc.a == nil || sc.base == nil {
		return fmt.Errorf("%w: nil staged commit (or one not from Process)", ErrInvalidArgument)
	}
	return g.merge(ctx, sc)
}

// ProposeAdd sends an Add proposal for kp (RFC 9420, Section 12.1.1) and
// queues it in this member's pending proposals, so that its next commit
// covers it. Send the returned message to the group.
func (g *Group) ProposeAdd(ctx context.Context, kp *KeyPackage) (*Message, ProposalRef, error) {
	if kp == nil {
		return nil, nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	st := g.st
	if err := st.CheckKeyPackage(&kp.kp); err != nil {
		return nil, nil, err
	}
	// Section 7.3: a client MUST validate the LeafNodes it sends,
	// including their lifetime; the leaf is checked where the Add would
	// put it if committed alone.
	d := st.Tree.Diff()
	at, err := d.ReserveLeaf()
	if err != nil {
		return nil, nil, invalidErr("TreeFull", "12.1.1", err, "no room for the new member")
	}
	opts := g.treeOptions(st, &st.GC)
	if err := d.ValidateLeaf(&kp.kp.LeafNode, at, message.LeafNodeSourceKeyPackage, &opts); err != nil {
		return nil, nil, invalidErr("LeafNodeValidation", "7.3", err, "key package leaf node")
	}
	p := &message.Proposal{Type: message.ProposalAdd, Add: &message.AddProposal{KeyPackage: kp.kp}}
	return g.propose(ctx, p, nil)
}

// ProposeRemove sends a Remove proposal for the member at leaf (RFC 9420,
// Section 12.1.3) and queues it. To leave the group, use LeaveGroup.
func (g *Group) ProposeRemove(ctx context.Context, leaf uint32) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	return g.proposeRemove(ctx, leaf)
}

func (g *Group) proposeRemove(ctx context.Context, leaf uint32) (*Message, ProposalRef, error) {
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	st := g.st
	if tree.LeafIndex(leaf) == st.own {
		return nil, nil, fmt.Errorf("%w: ProposeRemove of this member's own leaf %d; use LeaveGroup", ErrInvalidArgument, leaf)
	}
	if st.Tree.Leaf(tree.LeafIndex(leaf)) == nil {
		return nil, nil, fmt.Errorf("%w: leaf %d is blank or outside the tree", ErrInvalidArgument, leaf)
	}
	p := &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: leaf}}
	return g.propose(ctx, p, nil)
}

// ProposeRemoveIdentity sends a Remove proposal for the member other than
// this one whose credential has identity (credential.Identity), and queues
// it. It fails with ErrNotFound if no other member has it, and with
// ErrInvalidArgument if several do (a client with several devices): then
// pick the leaves from MembersByIdentity and use ProposeRemove for each.
func (g *Group) ProposeRemoveIdentity(ctx context.Context, identity []byte) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var leaves []uint32
	for _, l := range leavesWithIdentity(g.st.Tree.View(), identity) {
		if l != g.st.own {
			leaves = append(leaves, uint32(l))
		}
	}
	switch len(leaves) {
	case 0:
		return nil, nil, fmt.Errorf("%w: no other member has identity %q", ErrNotFound, identity)
	case 1:
		return g.proposeRemove(ctx, leaves[0])
	}
	return nil, nil, fmt.Errorf("%w: %d members have identity %q (leaves %v); propose each removal with ProposeRemove", ErrInvalidArgument, len(leaves), identity, leaves)
}

// LeaveGroup sends a Remove proposal for this member's own leaf (RFC 9420,
// Section 12.1.3; OpenMLS's leave_group). A member cannot commit its own
// removal (Section 12.2): another member commits the proposal, and when
// this member processes and merges that commit the group becomes inactive.
func (g *Group) LeaveGroup(ctx context.Context) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	p := &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: uint32(g.st.own)}}
	return g.propose(ctx, p, nil)
}

// ProposeSelfUpdate sends an Update proposal (RFC 9420, Section 12.1.2)
// with a new leaf encryption key for this member, and queues it. The new
// private key is kept (in memory and in the store) until the end of the
// epoch: when another member's commit covers the proposal, this member's
// leaf key becomes the new one. A commit of this member's own does not
// cover the proposal; its UpdatePath replaces the leaf anyway.
func (g *Group) ProposeSelfUpdate(ctx context.Context) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	st := g.st
	s := st.Suite
	priv, pub, err := s.GenerateKeyPair(g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	ln := *st.ownLeaf()
	ln.EncryptionKey = pub
	ln.Source = message.LeafNodeSourceUpdate
	ln.Lifetime = message.Lifetime{}
	ln.ParentHash = nil
	ln.Signature = nil
	if err := ln.Sign(s, g.signer, st.GC.GroupID, uint32(st.own)); err != nil {
		return nil, nil, classify(err)
	}
	opts := g.treeOptions(st, &st.GC)
	if err := st.Tree.View().ValidateLeaf(&ln, st.own, message.LeafNodeSourceUpdate, &opts); err != nil {
		return nil, nil, fmt.Errorf("mls: own Update proposal: %w", err)
	}
	p := &message.Proposal{Type: message.ProposalUpdate, Update: &message.UpdateProposal{LeafNode: ln}}
	// The key is stored so that a commit covering the proposal can be
	// processed after a restart.
	gid := st.GC.GroupID
	m, ref, err := g.propose(ctx, p, func(tx storage.Tx) error { return state.PutUpdateKey(tx, gid, pub, priv) })
	if err != nil {
		return nil, nil, err
	}
	if g.updateKeys == nil {
		g.updateKeys = map[string][]byte{}
	}
	g.updateKeys[string(pub)] = priv
	return m, ref, nil
}

// checkOperational rejects sending while removed or while a commit of
// this member's own is pending (RFC 9420, Section 15.2; OpenMLS refuses
// new proposals then too, as they would be lost with the epoch).
func (g *Group) checkOperational() error {
	if !g.active {
		return ErrInactive
	}
	if g.pending != nil {
		return ErrPendingCommit
	}
	return nil
}

// propose signs and frames a standalone proposal of this member for the
// current epoch (RFC 9420, Sections 6 and 12.1), queues it in the pending
// proposals under its ProposalRef (Section 5.2), which it returns, and
// saves the group, running extra in the same transaction. The framing follows the wire
// format policy.
func (g *Group) propose(ctx context.Context, p *message.Proposal, extra func(storage.Tx) error) (*Message, ProposalRef, error) {
	wf := message.WireFormatPublicMessage
	if g.cfg.WireFormatPolicy.OutgoingPrivate {
		wf = message.WireFormatPrivateMessage
	}
	return g.proposeAs(ctx, p, extra, wf)
}

// proposeAs is propose with the framing wf.
func (g *Group) proposeAs(ctx context.Context, p *message.Proposal, extra func(storage.Tx) error, wf message.WireFormat) (*Message, ProposalRef, error) {
	st := g.st
	s := st.Suite
	me := message.Sender{Type: message.SenderMember, LeafIndex: uint32(st.own)}
	fc := &message.FramedContent{
		GroupID:           st.GC.GroupID,
		Epoch:             st.GC.Epoch,
		Sender:            me,
		AuthenticatedData: []byte{},
		ContentType:       message.ContentProposal,
		Proposal:          p,
	}
	ac, err := framing.SignContent(s, g.signer, wf, fc, st.GCRaw)
	if err != nil {
		return nil, nil, classify(err)
	}
	ref, err := group.ProposalRef(s, ac)
	if err != nil {
		return nil, nil, err
	}
	// Encrypting a PrivateMessage advances this member's handshake
	// ratchet; the save below records it with the new proposal.
	m, err := g.protect(st, ac)
	if err != nil {
		return nil, nil, classify(err)
	}
	old := g.props
	g.props = append(append([]*QueuedProposal(nil), g.props...), &QueuedProposal{p: p, ref: ref, sender: me})
	if err := g.saveWith(ctx, extra); err != nil {
		g.props = old
		return nil, nil, err
	}
	return m, ProposalRef(clone(ref)), nil
}
