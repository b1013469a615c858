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
		return g.processPublic(ctx, st, msg.m.PublicMessage, msg.content)
	case msg.m.PrivateMessage != nil:
		return g.processPrivate(ctx, st, msg.m.PrivateMessage)
	}
	return nil, fmt.Errorf("%w: a %v is not a group message", ErrInvalidArgument, msg.WireFormat())
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

// processPublic handles a PublicMessage; content is the encoding of its
// FramedContent as received, or nil (Message.content).
func (g *Group) processPublic(ctx context.Context, st *epochState, pm *message.PublicMessage, content []byte) (*Processed, error) {
	// Non-members cannot encrypt, so the policy binds members only, as in
	// OpenMLS: external commits and proposals are always PublicMessages
	// (RFC 9420, Sections 12.1.8 and 12.4.3.2).
	if g.cfg.WireFormatPolicy.Incoming == AcceptPrivateOnly && pm.Content.Sender.Type == message.SenderMember {
		return nil, invalidErr("WireFormatPolicy", "6", ErrWireFormat, "PublicMessage from a member")
	}
	ac, cred, err := st.VerifyPublic(pm, content, st.keys.MembershipKey())
	if err != nil {
		return nil, err
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
	if err := st.CheckEpoch(pm.GroupID, pm.Epoch); err != nil {
		return nil, err
	}
	dec, err := framing.UnprotectPrivate(st.Suite, pm, st.secrets, st.keys.SenderDataSecret(), st.GCRaw)
	if err != nil {
		return nil, unprotectError(err)
	}
	fc := dec.Content()
	pub, cred, err := st.SenderKey(fc)
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
		if dec != nil && fc.Proposal.Type == group.ProposalSelfRemove {
			// draft-ietf-mls-extensions: SelfRemove proposals "MUST be
			// sent in an MLS PublicMessage", for external joiners to see.
			return nil, invalid("SelfRemovePrivate", "draft-ietf-mls-extensions, SelfRemove Proposal", "SelfRemove proposal in a PrivateMessage")
		}
		p, err := st.ValidateProposal(ac, g.policy())
		if err != nil {
			return nil, err
		}
		out.Kind, out.Proposal = KindProposal, queued(p)
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
