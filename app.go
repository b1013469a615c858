package mls

import (
	"context"

	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/message"
)

// Seal encrypts an application message for the group as a PrivateMessage
// (RFC 9420, Section 6.3), with optional authenticated data sent in the
// clear. The sender's ratchet advances and is saved before Seal returns.
func (g *Group) Seal(ctx context.Context, plaintext, authenticatedData []byte) (*Message, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, err
	}
	if !g.active {
		return nil, ErrInactive
	}
	if g.pending != nil {
		// RFC 9420, Section 15.2: no application messages between sending
		// a commit and merging it.
		return nil, ErrPendingCommit
	}
	st := g.st
	if authenticatedData == nil {
		authenticatedData = []byte{}
	}
	fc := &message.FramedContent{
		GroupID:           st.GC.GroupID,
		Epoch:             st.GC.Epoch,
		Sender:            message.Sender{Type: message.SenderMember, LeafIndex: uint32(st.own)},
		AuthenticatedData: authenticatedData,
		ContentType:       message.ContentApplication,
		ApplicationData:   plaintext,
	}
	ac, err := framing.SignContent(st.Suite, g.signer, message.WireFormatPrivateMessage, fc, st.GCRaw)
	if err != nil {
		return nil, classify(err)
	}
	pm, err := framing.ProtectPrivate(st.Suite, ac, st.secrets, st.keys.SenderDataSecret(), g.cfg.PaddingSize, g.cfg.rand())
	if err != nil {
		return nil, classify(err)
	}
	if err := g.saveRatchet(ctx, st, uint32(st.own)); err != nil {
		return nil, err
	}
	return wrapPrivate(pm), nil
}

// CreateMessage is Seal without authenticated data (OpenMLS's name).
func (g *Group) CreateMessage(ctx context.Context, plaintext []byte) (*Message, error) {
	return g.Seal(ctx, plaintext, nil)
}

func (g *Group) pastEpoch(epoch uint64) *pastEpoch {
	for _, p := range g.past {
		if p.epoch == epoch {
			return p
		}
	}
	return nil
}

// processPast reads an application message of a kept earlier epoch.
func (g *Group) processPast(ctx context.Context, p *pastEpoch, pm *message.PrivateMessage) (*Processed, error) {
	s := g.st.Suite
	dec, err := framing.UnprotectPrivate(s, pm, p.secrets, p.senderData, p.gcRaw)
	if err != nil {
		return nil, unprotectError(err)
	}
	leaf := dec.Content().Sender.LeafIndex
	pub, ok := p.sigKeys[leaf]
	if !ok {
		return nil, invalid("ValSem004", "6", "sender leaf %d was blank in epoch %d", leaf, p.epoch)
	}
	ac, err := dec.Verify(pub)
	if err != nil {
		return nil, invalidErr("ValSem010", "6.1", err, "signature")
	}
	if err := dec.Consume(); err != nil {
		return nil, unprotectError(err)
	}
	if err := g.savePastRatchet(ctx, p, leaf); err != nil {
		return nil, err
	}
	fc := &ac.Content
	return &Processed{Kind: KindApplication, Epoch: fc.Epoch, Sender: senderOf(fc.Sender), Credential: credOf(p.creds[leaf]),
		AuthenticatedData: clone(fc.AuthenticatedData), ApplicationData: clone(fc.ApplicationData), Generation: dec.Generation()}, nil
}
