package mls

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/group"
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

// snapshot keeps what reading late application messages of st needs.
func (st *epochState) snapshot() *pastEpoch {
	p := &pastEpoch{epoch: st.GC.Epoch, gcRaw: st.GCRaw, senderData: st.keys.SenderDataSecret(), secrets: st.secrets,
		sigKeys: map[uint32][]byte{}, creds: map[uint32]message.Credential{}}
	v := st.Tree.View()
	for _, l := range group.MembersLeaves(v) {
		ln := v.Leaf(l)
		p.sigKeys[uint32(l)] = ln.SignatureKey
		p.creds[uint32(l)] = ln.Credential
	}
	return p
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

// resumptionKey names a resumption PSK in Group.psks.
func resumptionKey(groupID []byte, epoch uint64) string {
	return fmt.Sprintf("%x/%d", groupID, epoch)
}

// rememberResumption keeps the resumption PSK of epoch, which is ending,
// and forgets those beyond the retention (JoinConfig.ResumptionPSKRetention).
func (g *Group) rememberResumption(epoch uint64, psk []byte) {
	if g.psks == nil {
		g.psks = map[string][]byte{}
	}
	id := g.st.GC.GroupID
	n := g.cfg.resumptionRetention()
	if n > 0 {
		g.psks[resumptionKey(id, epoch)] = psk
	}
	// The new epoch is epoch+1; keep epochs epoch+1-n ... epoch. Entries
	// kept under a larger retention before a reload go too.
	prefix := resumptionKey(id, 0)
	prefix = prefix[:len(prefix)-1]
	for k := range g.psks {
		if e, err := strconv.ParseUint(strings.TrimPrefix(k, prefix), 10, 64); err == nil && strings.HasPrefix(k, prefix) && e+uint64(n) <= epoch {
			delete(g.psks, k)
		}
	}
}
