package mls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
)

// ContentKind is what a processed message carries.
type ContentKind int

const (
	KindApplication ContentKind = iota + 1
	KindProposal
	KindCommit
)

func (k ContentKind) String() string {
	switch k {
	case KindApplication:
		return "application"
	case KindProposal:
		return "proposal"
	case KindCommit:
		return "commit"
	}
	return fmt.Sprintf("ContentKind(%d)", int(k))
}

// Processed is a verified message (OpenMLS's ProcessedMessage). Exactly
// one of ApplicationData, Proposal and Commit is set, as Kind says.
type Processed struct {
	Kind              ContentKind
	Epoch             uint64
	Sender            Sender
	Credential        credential.Credential // the sender's
	AuthenticatedData []byte
	ApplicationData   []byte
	// Generation is the sender ratchet generation of a message that came
	// as a PrivateMessage (RFC 9420, Section 9.1): with Epoch and the
	// sender's leaf it names the key that decrypted it, which no other
	// message may use.
	Generation uint32
	// Proposal is a received proposal; store it with StorePendingProposal
	// if the application accepts it.
	Proposal *QueuedProposal
	// Commit is a staged commit; merge it with MergeStagedCommit after
	// inspecting it.
	Commit *StagedCommit
}

// Process decrypts, verifies and validates a PublicMessage or
// PrivateMessage for this group (RFC 9420, Sections 6 and 12). It does not
// change the group, except that the key of a decrypted PrivateMessage is
// consumed (a message can be read only once). Commits come back staged.
//
// A failure matches one class of errors.go: mostly a *ValidationError
// naming the rule, ErrDecrypt (ValSem006) for a PrivateMessage that does
// not decrypt, ErrReplayed for one whose key is already used.
func (g *Group) Process(ctx context.Context, msg *Message) (*Processed, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, err
	}
	p, err := g.process(ctx, msg)
	return p, classify(err)
}

func (g *Group) process(ctx context.Context, msg *Message) (*Processed, error) {
	if msg == nil {
		return nil, fmt.Errorf("%w: nil message", ErrInvalidArgument)
	}
	if !g.active {
		return nil, ErrInactive
	}
	st := g.st
	switch {
	case msg.m.PublicMessage != nil:
		return g.processPublic(ctx, st, msg.m.PublicMessage)
	case msg.m.PrivateMessage != nil:
		return g.processPrivate(ctx, st, msg.m.PrivateMessage)
	}
	return nil, fmt.Errorf("%w: a %v is not a group message", ErrInvalidArgument, msg.WireFormat())
}

// checkEpoch implements ValSem002 and ValSem003 (RFC 9420, Section 6:
// group_id and epoch must be the group's). The *ValidationError carries
// ErrWrongGroup, ErrPastEpoch or ErrFutureEpoch, so either can be tested.
func checkEpoch(st *epochState, groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, st.GC.GroupID) {
		return invalidErr("ValSem002", "6", ErrWrongGroup, "group %x, this group is %x", groupID, st.GC.GroupID)
	}
	switch {
	case epoch < st.GC.Epoch:
		return invalidErr("ValSem003", "6", ErrPastEpoch, "message epoch %d, group epoch %d", epoch, st.GC.Epoch)
	case epoch > st.GC.Epoch:
		return invalidErr("ValSem003", "6", ErrFutureEpoch, "message epoch %d, group epoch %d", epoch, st.GC.Epoch)
	}
	return nil
}

// unprotectError maps a failure to read a PrivateMessage (framing's
// UnprotectPrivate or Decrypted.Consume) to its class. A key already used
// or deleted is ErrReplayed (RFC 9420, Section 9.2), which is not a
// decryption failure; non-zero padding is ValSem011; everything else
// (AEAD failure, a generation too far ahead, content that does not decode)
// is the ValSem006 *ValidationError carrying ErrDecrypt.
func unprotectError(err error) error {
	switch {
	case errors.Is(err, framing.ErrReplayed):
		return &classError{ErrReplayed, err}
	case errors.Is(err, framing.ErrPadding):
		return invalidErr("ValSem011", "6.3.1", err, "padding")
	}
	return invalidErr("ValSem006", "6.3", &classError{ErrDecrypt, err}, "PrivateMessage")
}

// senderKey returns the signature key and credential of a message sender
// in the current epoch (ValSem004 for members).
func (g *Group) senderKey(st *epochState, fc *message.FramedContent) ([]byte, message.Credential, error) {
	switch s := fc.Sender; s.Type {
	case message.SenderMember:
		ln := st.Tree.Leaf(tree.LeafIndex(s.LeafIndex))
		if ln == nil {
			return nil, message.Credential{}, invalid("ValSem004", "6", "sender leaf %d is blank or outside the tree", s.LeafIndex)
		}
		return ln.SignatureKey, ln.Credential, nil
	case message.SenderExternal:
		var es message.ExternalSenders
		ok, err := message.ParseExtension(st.GC.Extensions, &es)
		if err != nil || !ok || int(s.SenderIndex) >= len(es) {
			return nil, message.Credential{}, invalid("ExternalSender", "12.1.8", "external sender index %d not in the external_senders extension", s.SenderIndex)
		}
		return es[s.SenderIndex].SignatureKey, es[s.SenderIndex].Credential, nil
	case message.SenderNewMemberProposal:
		if fc.ContentType != message.ContentProposal || fc.Proposal == nil || fc.Proposal.Add == nil {
			return nil, message.Credential{}, invalid("ValSem112", "12.1.8", "new_member_proposal sender without an Add proposal")
		}
		ln := &fc.Proposal.Add.KeyPackage.LeafNode
		return ln.SignatureKey, ln.Credential, nil
	case message.SenderNewMemberCommit:
		if fc.ContentType != message.ContentCommit || fc.Commit == nil || fc.Commit.Path == nil {
			return nil, message.Credential{}, invalid("ValSem245", "12.4.3.2", "external commit without a path")
		}
		ln := &fc.Commit.Path.LeafNode
		return ln.SignatureKey, ln.Credential, nil
	}
	return nil, message.Credential{}, invalid("SenderType", "6", "unknown sender type %d", fc.Sender.Type)
}

func (g *Group) processPublic(ctx context.Context, st *epochState, pm *message.PublicMessage) (*Processed, error) {
	// Non-members cannot encrypt, so the policy binds members only, as in
	// OpenMLS: external commits and proposals are always PublicMessages
	// (RFC 9420, Sections 12.1.8 and 12.4.3.2).
	if g.cfg.WireFormatPolicy.Incoming == AcceptPrivateOnly && pm.Content.Sender.Type == message.SenderMember {
		return nil, invalidErr("WireFormatPolicy", "6", ErrWireFormat, "PublicMessage from a member")
	}
	if err := checkEpoch(st, pm.Content.GroupID, pm.Content.Epoch); err != nil {
		return nil, err
	}
	if pm.Content.ContentType == message.ContentApplication {
		return nil, invalid("ValSem005", "6.2", "application message sent as a PublicMessage")
	}
	pub, cred, err := g.senderKey(st, &pm.Content)
	if err != nil {
		return nil, err
	}
	// ValSem007 and ValSem009: the tags RFC 9420, Sections 6.1 and 6.2
	// require must be present before anything is checked against them.
	if pm.Content.Sender.Type == message.SenderMember && pm.MembershipTag == nil {
		return nil, invalid("ValSem007", "6.2", "member's PublicMessage without membership tag")
	}
	if pm.Content.ContentType == message.ContentCommit && pm.Auth.ConfirmationTag == nil {
		return nil, invalid("ValSem009", "6.1", "commit without confirmation tag")
	}
	var un *framing.Unverified
	if g.public {
		un, err = framing.UnprotectPublicUntagged(st.Suite, pm, st.GCRaw)
	} else {
		un, err = framing.UnprotectPublic(st.Suite, pm, st.keys.MembershipKey(), st.GCRaw)
	}
	if err != nil {
		if errors.Is(err, framing.ErrMembershipTag) {
			return nil, invalidErr("ValSem008", "6.2", err, "membership tag")
		}
		return nil, invalidErr("ValSem007", "6.2", err, "public message")
	}
	ac, err := un.Verify(pub)
	if err != nil {
		sigErr := invalidErr("ValSem010", "6.1", err, "signature")
		if pm.Content.Sender.Type == message.SenderNewMemberCommit {
			// RFC 9420, Section 12.4.3.2: an external commit is signed
			// with the key of the LeafNode in its path.
			return nil, invalidErr("ValSem246", "12.4.3.2", sigErr, "external commit not signed by its path's leaf node key")
		}
		return nil, sigErr
	}
	return g.processContent(ctx, st, ac, cred, nil)
}

func (g *Group) processPrivate(ctx context.Context, st *epochState, pm *message.PrivateMessage) (*Processed, error) {
	if pm.ContentType != message.ContentApplication && g.cfg.WireFormatPolicy.Incoming == AcceptPublicOnly {
		return nil, invalidErr("WireFormatPolicy", "6", ErrWireFormat, "PrivateMessage handshake")
	}
	if pm.Epoch < st.GC.Epoch && pm.ContentType == message.ContentApplication && bytes.Equal(pm.GroupID, st.GC.GroupID) {
		if p := g.pastEpoch(pm.Epoch); p != nil {
			return g.processPast(ctx, p, pm)
		}
	}
	if err := checkEpoch(st, pm.GroupID, pm.Epoch); err != nil {
		return nil, err
	}
	dec, err := framing.UnprotectPrivate(st.Suite, pm, st.secrets, st.keys.SenderDataSecret(), st.GCRaw)
	if err != nil {
		return nil, unprotectError(err)
	}
	fc := dec.Content()
	pub, cred, err := g.senderKey(st, fc)
	if err != nil {
		return nil, err
	}
	ac, err := dec.Verify(pub)
	if err != nil {
		return nil, invalidErr("ValSem010", "6.1", err, "signature")
	}
	return g.processContent(ctx, st, ac, cred, dec)
}

// processContent handles a verified AuthenticatedContent. dec, if not nil,
// is consumed (and the sender's ratchet saved) once the content is valid.
func (g *Group) processContent(ctx context.Context, st *epochState, ac *message.AuthenticatedContent, cred message.Credential, dec *framing.Decrypted) (*Processed, error) {
	fc := &ac.Content
	out := &Processed{Epoch: fc.Epoch, Sender: senderOf(fc.Sender), Credential: credOf(cred), AuthenticatedData: clone(fc.AuthenticatedData)}
	switch fc.ContentType {
	case message.ContentApplication:
		out.Kind = KindApplication
		out.ApplicationData = clone(fc.ApplicationData)
	case message.ContentProposal:
		q, err := g.receiveProposal(st, ac)
		if err != nil {
			return nil, err
		}
		out.Kind, out.Proposal = KindProposal, q
	case message.ContentCommit:
		sc, err := g.receiveCommit(ctx, st, ac)
		if err != nil {
			return nil, err
		}
		out.Kind, out.Commit = KindCommit, sc
		out.Sender = sc.Sender()
	}
	if dec != nil {
		out.Generation = dec.Generation()
		if err := dec.Consume(); err != nil {
			return nil, unprotectError(err)
		}
		if err := g.saveRatchet(ctx, st, fc.Sender.LeafIndex); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// receiveProposal validates a standalone proposal (RFC 9420, Section 12.1)
// and computes its reference.
func (g *Group) receiveProposal(st *epochState, ac *message.AuthenticatedContent) (*QueuedProposal, error) {
	p := ac.Content.Proposal
	sender := ac.Content.Sender
	switch p.Type {
	case message.ProposalUpdate:
		if sender.Type != message.SenderMember {
			return nil, invalid("ValSem112", "12.1.2", "Update proposal from a %d sender", sender.Type)
		}
		opts := g.treeOptions(st, &st.GC)
		if err := st.Tree.View().ValidateLeaf(&p.Update.LeafNode, tree.LeafIndex(sender.LeafIndex), message.LeafNodeSourceUpdate, &opts); err != nil {
			return nil, leafError(err, message.LeafNodeSourceUpdate, "Update proposal from leaf %d", sender.LeafIndex)
		}
	case message.ProposalAdd:
		kp := &p.Add.KeyPackage
		if kp.CipherSuite != st.GC.CipherSuite || kp.Version != st.GC.Version {
			return nil, invalid("ValSem105", "12.1.1", "key package for another suite or version")
		}
		if err := verifyKeyPackage(st.Suite, kp); err != nil {
			return nil, err
		}
	case message.ProposalRemove:
		if st.Tree.Leaf(tree.LeafIndex(p.Remove.Removed)) == nil {
			return nil, invalid("ValSem108", "12.1.3", "Remove proposal for blank leaf %d", p.Remove.Removed)
		}
	case message.ProposalExternalInit:
		return nil, invalid("ExternalInitStandalone", "12.1.6", "ExternalInit proposal outside a commit")
	}
	if sender.Type == message.SenderExternal && !externalSenderAllowed(p.Type) {
		// RFC 9420, Section 12.1.8: such messages are malformed.
		return nil, invalid("ExternalProposalType", "12.1.8", "external sender %d sent a proposal of type %d", sender.SenderIndex, p.Type)
	}
	ref, err := proposalRef(st.Suite, ac)
	if err != nil {
		return nil, err
	}
	return &QueuedProposal{p: p, ref: ref, sender: sender}, nil
}

// StorePendingProposal queues a received proposal for the next commit.
func (g *Group) StorePendingProposal(ctx context.Context, q *QueuedProposal) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	if q == nil || q.ref == nil {
		return fmt.Errorf("%w: not a standalone proposal", ErrInvalidArgument)
	}
	if g.findProposal(q.ref) != nil {
		return nil
	}
	g.props = append(g.props, q)
	if err := g.save(ctx); err != nil {
		g.props = g.props[:len(g.props)-1]
		return err
	}
	return nil
}

// RemovePendingProposal drops a queued proposal by reference.
func (g *Group) RemovePendingProposal(ctx context.Context, ref []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	old := g.props
	var kept []*QueuedProposal
	found := false
	for _, q := range g.props {
		if bytes.Equal(q.ref, ref) {
			found = true
			continue
		}
		kept = append(kept, q)
	}
	if !found {
		return fmt.Errorf("%w: no pending proposal %x", ErrNotFound, ref)
	}
	g.props = kept
	if err := g.save(ctx); err != nil {
		g.props = old
		return err
	}
	return nil
}

// PendingProposals returns the queued proposals.
func (g *Group) PendingProposals() []*QueuedProposal {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*QueuedProposal(nil), g.props...)
}

// receiveCommit validates a commit (RFC 9420, Section 12.4.2) and stages
// the next epoch.
func (g *Group) receiveCommit(ctx context.Context, st *epochState, ac *message.AuthenticatedContent) (*StagedCommit, error) {
	s := st.Suite
	fc := &ac.Content
	commit := fc.Commit
	sender := fc.Sender
	if ac.Auth.ConfirmationTag == nil {
		return nil, invalid("ValSem009", "6.1", "commit without confirmation tag")
	}
	if sender.Type == message.SenderMember && tree.LeafIndex(sender.LeafIndex) == st.own {
		// Our own commit, echoed by the delivery service.
		if g.pending != nil && g.pending.base == st && bytes.Equal(g.pending.next.ConfTag, ac.Auth.ConfirmationTag) {
			return g.pending, nil
		}
		return nil, invalid("OwnCommit", "12.4.2", "commit from this member's leaf that is not its pending commit")
	}
	if sender.Type != message.SenderMember && sender.Type != message.SenderNewMemberCommit {
		return nil, invalid("ValSem112", "12.4", "commit from a sender of type %d", sender.Type)
	}
	external := sender.Type == message.SenderNewMemberCommit
	props := make([]*QueuedProposal, 0, len(commit.Proposals))
	for _, por := range commit.Proposals {
		if por.Proposal != nil {
			props = append(props, &QueuedProposal{p: por.Proposal, sender: sender})
			continue
		}
		if external {
			return nil, invalid("ValSem244", "12.2", "external commit covers a proposal by reference")
		}
		q := g.findProposal(por.Reference)
		if q == nil {
			return nil, invalidErr("ProposalReference", "12.4.2", ErrUnknownProposal, "proposal %x not received", por.Reference)
		}
		props = append(props, q)
	}
	d := st.Tree.Diff()
	a, err := g.applyProposals(st, d, props, sender, st.own)
	if err != nil {
		return nil, err
	}
	senderLeaf := tree.LeafIndex(sender.LeafIndex)
	if external {
		if commit.Path == nil {
			return nil, invalid("ValSem245", "12.4.3.2", "external commit without a path")
		}
		if senderLeaf, err = d.ReserveLeaf(); err != nil {
			return nil, invalidErr("TreeFull", "12.4.3.2", err, "no room for the external joiner")
		}
		a.externalLeaf = senderLeaf
		// The inline proposals' sender is the joiner, now at senderLeaf
		// (QueuedProposal.Sender, RemoveOperation).
		for _, q := range props {
			q.sender.LeafIndex = uint32(senderLeaf)
		}
	}
	if a.needsPath && commit.Path == nil {
		return nil, invalid("ValSem201", "12.4", "commit needs a path and has none")
	}
	gc := st.GC
	gc.Epoch++
	if a.exts != nil {
		gc.Extensions = a.exts
	}
	commitSecret := make([]byte, s.HashSize())
	priv := st.priv
	if a.updated[st.own] {
		// This member's own Update proposal is committed: its leaf now
		// holds the key pair generated with the proposal (RFC 9420,
		// Section 12.1.2), which may be needed to decrypt the path.
		key, err := g.ownUpdateKey(ctx, st, d.Leaf(st.own).EncryptionKey)
		if err != nil {
			return nil, err
		}
		if priv, err = priv.WithLeafKey(key); err != nil {
			return nil, invalidErr("OwnUpdateKey", "12.1.2", err, "own Update proposal key")
		}
	}
	if commit.Path != nil {
		opts := tree.PathOptions{Options: g.treeOptions(st, &gc), Exclude: a.added}
		ap, err := d.ApplyPath(senderLeaf, commit.Path, &opts)
		if err != nil {
			return nil, pathError(err, senderLeaf)
		}
		gc.TreeHash = d.TreeHash()
		if !a.selfGone && !g.public {
			provisional, err := message.Marshal(&gc)
			if err != nil {
				return nil, err
			}
			dec, err := ap.Decrypt(priv, provisional)
			if err != nil {
				return nil, invalidErr("ValSem203", "12.4.2", err, "path secret")
			}
			commitSecret = dec.CommitSecret()
			priv = dec.PrivateState()
		}
	} else {
		gc.TreeHash = d.TreeHash()
		if !g.public {
			priv = priv.Prune(d)
		}
	}
	sc := &StagedCommit{base: st, diff: d, a: a, sender: sender}
	if a.selfGone {
		return sc, nil
	}
	var err2 error
	if gc.ConfirmedTranscriptHash, err2 = framing.ConfirmedTranscriptHash(s, st.Interim, ac); err2 != nil {
		return nil, err2
	}
	gcRaw, err := message.Marshal(&gc)
	if err != nil {
		return nil, err
	}
	if g.public {
		// A PublicGroup follows the public half of the next epoch: the
		// GroupContext, the tree, the transcript hashes. The confirmation
		// tag cannot be checked without the epoch's secrets.
		next := &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: gcRaw, Tree: st.Tree, ConfTag: clone(ac.Auth.ConfirmationTag)}, own: st.own}
		next.Interim = interimHash(next)
		sc.next = next
		return sc, nil
	}
	psk, err := g.pskSecret(ctx, st, a.psks)
	if err != nil {
		return nil, err
	}
	init := st.keys.InitSecret()
	if external {
		kp, err := st.keys.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		if init, err = kp.InitSecret(a.extInit.KEMOutput); err != nil {
			return nil, invalidErr("ExternalInit", "8.3", err, "external init")
		}
	}
	keys, err := epochFrom(s, init, commitSecret, psk, gcRaw)
	if err != nil {
		return nil, err
	}
	if !keys.epoch.VerifyConfirmationTag(gc.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag) {
		return nil, invalid("ValSem205", "12.4.2", "confirmation tag does not verify")
	}
	next := &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: gcRaw, Tree: st.Tree, ConfTag: clone(ac.Auth.ConfirmationTag)}, own: st.own, priv: priv, keys: keys.epoch}
	next.Interim = interimHash(next)
	if next.secrets, err = newSecretTree(s, keys.epoch, d.NumLeaves(), g.cfg.secretTreeConfig()); err != nil {
		return nil, err
	}
	sc.next = next
	return sc, nil
}

// pathError maps tree errors from applying an UpdatePath to the
// validation rules they break.
func pathError(err error, sender tree.LeafIndex) error {
	var te *tree.Error
	switch {
	case errors.Is(err, tree.ErrDuplicateEncryptionKey) && errors.As(err, &te) && te.Node == sender.Node():
		return invalidErr("ValSem206", "12.4.2", err, "update path leaf node")
	case errors.Is(err, tree.ErrDuplicateEncryptionKey):
		return invalidErr("ValSem207", "12.4.2", err, "update path")
	case errors.Is(err, tree.ErrUpdatePath):
		return invalidErr("ValSem202", "7.6", err, "update path")
	case errors.Is(err, tree.ErrParentHash):
		return invalidErr("ValSem204", "7.9.2", err, "update path")
	}
	return invalidErr("ValSem206", "12.4.2", err, "update path leaf node")
}

// parallel calls f(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	w := runtime.GOMAXPROCS(0)
	if n < 2 || w < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	if w > n {
		w = n
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}
