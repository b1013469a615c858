package mls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// PublicGroup follows a group without holding any of its secrets (OpenMLS's
// PublicGroup, mls-rs's external group): a delivery service, an auditor or a
// moderation bot tracks the membership and rejects invalid handshake
// messages (RFC 9750, Section 5).
//
// A PublicGroup runs the public stage of the state machine that Group runs
// (internal/group): every check it makes is the code a member runs, and a
// member then adds the secrets. What needs a secret of the epoch is skipped:
// the value of a member's membership tag (Section 6.2), PrivateMessages
// (Section 6.3), UpdatePath secrets (Section 7.6) and the key schedule, so
// the confirmation tag of a commit (Section 6.1) is not checked either.
// Everything else is: signatures, group ID and epoch, the sender's
// membership, the proposal list rules of Section 12.2, leaf node and
// ratchet tree validation (Section 7.3), parent hashes (Section 7.9.2), the
// transcript hashes and the tree hash of the new GroupContext.
//
// Commits come back staged from Process and change nothing until Merge.
// A PublicGroup is stored in its own store, incrementally, and follows the
// same one-writer rule as a Group (ErrStaleState).
type PublicGroup struct {
	g *Group
}

// PublicGroupOptions are a PublicGroup's policy.
type PublicGroupOptions struct {
	// RatchetTree is the encoded ratchet tree when the GroupInfo does not
	// carry the ratchet_tree extension.
	RatchetTree []byte
	// Now is the clock for lifetimes; nil means time.Now.
	Now func() time.Time
	// MaxTreeLeaves caps the accepted ratchet tree; zero means
	// DefaultMaxTreeLeaves.
	MaxTreeLeaves uint32
	// SkipLifetimeCheck disables the lifetime check of leaves that enter
	// the group (replaying recorded traffic only).
	SkipLifetimeCheck bool
	// AppData is the application logic of the components that
	// AppDataUpdate proposals update, as ClientOptions.AppData; a
	// follower must run the members' logic to agree on the GroupContext.
	AppData AppDataFunc
}

// noLeaf is the own leaf of a PublicGroup: no leaf index of a tree within
// the limits is ever this one.
const noLeaf = tree.LeafIndex(math.MaxUint32)

// follower builds the client that carries a PublicGroup's policy: a store
// and a validator, no identity (a PublicGroup never signs).
func follower(store storage.Store, validator credential.Validator, opts *PublicGroupOptions) (*Client, error) {
	if store == nil || validator == nil {
		return nil, fmt.Errorf("%w: a PublicGroup needs a store and a validator (credential.AcceptAll to accept all)", ErrInvalidArgument)
	}
	return &Client{store: store, validator: validator, opts: ClientOptions{Now: opts.Now, MaxTreeLeaves: opts.MaxTreeLeaves, AppData: opts.AppData}}, nil
}

// NewPublicGroup starts following a group from a GroupInfo (RFC 9420,
// Section 12.4.3): its signature is verified against the signer's leaf
// before anything else is done with the tree, then the ratchet tree (from
// the ratchet_tree extension or opts.RatchetTree) is validated as a joiner
// validates it, against the GroupContext's tree hash. The PublicGroup is
// stored in store.
func NewPublicGroup(ctx context.Context, store storage.Store, validator credential.Validator, groupInfo *Message, opts PublicGroupOptions) (*PublicGroup, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	if groupInfo == nil || groupInfo.m.GroupInfo == nil {
		return nil, fmt.Errorf("%w: not a GroupInfo message", ErrInvalidArgument)
	}
	c, err := follower(store, validator, &opts)
	if err != nil {
		return nil, err
	}
	pg, err := newPublicGroup(c, groupInfo.m.GroupInfo, opts)
	if err != nil {
		return nil, classify(err)
	}
	if err := pg.save(ctx, nil); err != nil {
		return nil, err
	}
	return pg, nil
}

func newPublicGroup(c *Client, gi *message.GroupInfo, opts PublicGroupOptions) (*PublicGroup, error) {
	s, err := lookupSuite(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, err
	}
	if gi.GroupContext.Version != message.MLS10 {
		return nil, invalid("GroupInfoVersion", "12.4.3", "group info for version %d", gi.GroupContext.Version)
	}
	cfg := c.policy(JoinConfig{SkipLifetimeCheck: opts.SkipLifetimeCheck})
	t, sigs, err := joinTree(s, &cfg, gi, opts.RatchetTree)
	if err != nil {
		return nil, err
	}
	defer sigs.Stop()
	st, err := joinState(s, &cfg, gi, t, sigs, nil)
	if err != nil {
		return nil, err
	}
	st.own = noLeaf
	return &PublicGroup{g: &Group{store: c.store, cfg: cfg, st: st, active: true, public: true}}, nil
}

// PublicGroup returns a PublicGroup of g's group in store, made from g's
// current GroupInfo and ratchet tree (the group's creator, or any member,
// handing the group to its delivery service).
func (g *Group) PublicGroup(ctx context.Context, store storage.Store, validator credential.Validator) (*PublicGroup, error) {
	gi, err := g.ExportGroupInfo(false)
	if err != nil {
		return nil, err
	}
	rt, err := g.ExportRatchetTree()
	if err != nil {
		return nil, err
	}
	return NewPublicGroup(ctx, store, validator, gi, PublicGroupOptions{RatchetTree: rt, SkipLifetimeCheck: g.cfg.SkipLifetimeCheck, AppData: g.cfg.client.opts.AppData})
}

// PublicProcessed is what PublicGroup.Process found in a message.
type PublicProcessed struct {
	// Kind is the content type: a proposal or a commit for a
	// PublicMessage; for a PrivateMessage whatever its header says.
	Kind  ContentKind
	Epoch uint64
	// GroupID is the group the message names.
	GroupID []byte
	// Encrypted reports a PrivateMessage: only its header (group ID,
	// epoch, content type; RFC 9420, Section 6.3) was read. A PublicGroup
	// cannot follow encrypted handshake messages; a group whose commits
	// travel encrypted cannot be followed.
	Encrypted bool
	// MembershipTagUnchecked reports a member's PublicMessage: its
	// membership tag is present but keyed with a secret of the epoch
	// (Section 6.2), so only the members check it.
	MembershipTagUnchecked bool
	// The sender, its credential and the authenticated data of a
	// PublicMessage.
	Sender            Sender
	Credential        credential.Credential
	AuthenticatedData []byte
	// Proposal is a validated proposal; keep it with StorePendingProposal
	// if the commit that follows may reference it.
	Proposal *QueuedProposal
	// Commit is a validated, staged commit; Merge it once accepted.
	Commit *StagedCommit
}

// Process checks a handshake message of the group (RFC 9420, Sections 6
// and 12) with every check that needs no secret, and stages a commit. It
// changes nothing; see PublicProcessed for what it cannot check.
func (p *PublicGroup) Process(ctx context.Context, msg *Message) (*PublicProcessed, error) {
	g := p.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, err
	}
	if msg == nil {
		return nil, fmt.Errorf("%w: nil message", ErrInvalidArgument)
	}
	if pm := msg.m.PrivateMessage; pm != nil {
		out := &PublicProcessed{Encrypted: true, Epoch: pm.Epoch, GroupID: clone(pm.GroupID)}
		switch pm.ContentType {
		case message.ContentApplication:
			out.Kind = KindApplication
		case message.ContentProposal:
			out.Kind = KindProposal
		case message.ContentCommit:
			out.Kind = KindCommit
		}
		return out, nil
	}
	out, err := p.process(msg)
	return out, classify(err)
}

// process runs the public stage of the state machine (internal/group) on
// a PublicMessage: the checks of RFC 9420, Sections 6 and 12 that need no
// secret, and for a commit the public half of the next epoch.
func (p *PublicGroup) process(msg *Message) (*PublicProcessed, error) {
	g := p.g
	if !g.active {
		return nil, ErrInactive
	}
	pm := msg.m.PublicMessage
	if pm == nil {
		return nil, fmt.Errorf("%w: a %v is not a group message", ErrInvalidArgument, msg.WireFormat())
	}
	st := g.st
	ac, cred, err := st.FollowPublic(pm, msg.content)
	if err != nil {
		return nil, err
	}
	fc := &ac.Content
	out := &PublicProcessed{
		Epoch: fc.Epoch, GroupID: clone(fc.GroupID),
		MembershipTagUnchecked: fc.Sender.Type == message.SenderMember,
		Sender:                 senderOf(fc.Sender), Credential: credOf(cred), AuthenticatedData: clone(fc.AuthenticatedData),
	}
	switch fc.ContentType {
	case message.ContentProposal:
		q, err := st.ValidateProposal(ac, g.policy())
		if err != nil {
			return nil, err
		}
		out.Kind, out.Proposal = KindProposal, queued(q)
	case message.ContentCommit:
		ps, err := st.StageCommit(ac, g.lookupProposal, noLeaf, g.policy())
		if err != nil {
			return nil, err
		}
		// A follower is never removed, so the next epoch is always there.
		// Its confirmation tag cannot be checked without the epoch's
		// secrets.
		sc := stagedCommit(st, ps, fc.Sender)
		sc.next = &epochState{Epoch: *ps.Next, own: noLeaf}
		out.Kind, out.Commit, out.Sender = KindCommit, sc, sc.Sender()
	}
	return out, nil
}

// StorePendingProposal keeps a proposal that Process returned, so that a
// commit referencing it can be checked.
func (p *PublicGroup) StorePendingProposal(ctx context.Context, q *QueuedProposal) error {
	g := p.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	if q == nil || q.p == nil {
		return fmt.Errorf("%w: nil proposal", ErrInvalidArgument)
	}
	if g.findProposal(q.ref) != nil {
		return nil
	}
	old := g.props
	g.props = append(append([]*QueuedProposal(nil), g.props...), q)
	if err := p.save(ctx, nil); err != nil {
		g.props = old
		return err
	}
	return nil
}

// Merge applies a commit staged by Process: the group moves to the next
// epoch, and the pending proposals are dropped (RFC 9420, Section 12.4.2).
func (p *PublicGroup) Merge(ctx context.Context, sc *StagedCommit) error {
	g := p.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return err
	}
	if sc == nil || sc.a == nil || sc.base == nil || sc.next == nil {
		return fmt.Errorf("%w: nil staged commit (or one not from Process)", ErrInvalidArgument)
	}
	if sc.base != g.st {
		return fmt.Errorf("%w: the staged commit is for another epoch or was already merged", ErrInvalidArgument)
	}
	if err := sc.diff.Merge(); err != nil {
		return err
	}
	oldState, oldProps, oldActive := g.st, g.props, g.active
	g.st, g.props = sc.next, nil
	if sc.a.Reinit != nil {
		// RFC 9420, Section 11.2: a ReInit commit ends the group.
		g.active = false
	}
	if err := p.save(ctx, sc); err != nil {
		g.st, g.props, g.active = oldState, oldProps, oldActive
		return fmt.Errorf("mls: saving merged commit (load the PublicGroup again): %w", err)
	}
	return nil
}

// GroupID returns the group's ID.
func (p *PublicGroup) GroupID() []byte { return p.g.GroupID() }

// Epoch returns the current epoch.
func (p *PublicGroup) Epoch() uint64 { return p.g.Epoch() }

// CipherSuite returns the group's cipher suite.
func (p *PublicGroup) CipherSuite() CipherSuite { return p.g.CipherSuite() }

// IsActive reports whether the group goes on (false after a ReInit).
func (p *PublicGroup) IsActive() bool {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	return p.g.active
}

// Members lists the group's members.
func (p *PublicGroup) Members() []Member { return p.g.Members() }

// Member returns the member at leaf i.
func (p *PublicGroup) Member(i uint32) (Member, bool) { return p.g.Member(i) }

// Extensions returns the group context extensions.
func (p *PublicGroup) Extensions() []Extension { return p.g.Extensions() }

// PendingProposals returns the proposals kept with StorePendingProposal.
func (p *PublicGroup) PendingProposals() []*QueuedProposal { return p.g.PendingProposals() }

// ExportRatchetTree returns the public ratchet tree (RFC 9420, Section
// 12.4.3.3), for joiners.
func (p *PublicGroup) ExportRatchetTree() ([]byte, error) { return p.g.ExportRatchetTree() }

// TreeHash returns the tree hash of the current ratchet tree (RFC 9420,
// Section 7.8), as the GroupContext holds it.
func (p *PublicGroup) TreeHash() []byte {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	return clone(p.g.st.GC.TreeHash)
}

// GroupContext returns the current GroupContext (RFC 9420, Section 8.1),
// encoded.
func (p *PublicGroup) GroupContext() []byte {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	return clone(p.g.st.GCRaw)
}

// ConfirmedTranscriptHash returns the confirmed transcript hash of the
// current epoch (RFC 9420, Section 8.2).
func (p *PublicGroup) ConfirmedTranscriptHash() []byte {
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	return clone(p.g.st.GC.ConfirmedTranscriptHash)
}

// save stores the PublicGroup in one transaction (internal/state's public
// records): the record, and the tree nodes that changed since the stored
// tree (after a merge, only the commit's path).
func (p *PublicGroup) save(ctx context.Context, merged *StagedCommit) error {
	g := p.g
	st := g.st
	r := &state.PublicRecord{
		Header: st.header(), ConfirmationTag: st.ConfTag, Active: g.active,
		SkipLifetime: g.cfg.SkipLifetimeCheck, Proposals: proposalRecords(g.props),
	}
	id := st.GC.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		return state.WritePublicGroup(tx, id, r, st.Tree, merged.changes(st.Tree))
	})
}

// LoadPublicGroup loads a PublicGroup from store, as its last save left it,
// with the given policy (the validator and options are not stored). A
// damaged store gives ErrCorruptState; a group the store does not follow,
// ErrNotFound. Only the RatchetTree field of opts is ignored.
func LoadPublicGroup(ctx context.Context, store storage.Store, validator credential.Validator, groupID []byte, opts PublicGroupOptions) (*PublicGroup, error) {
	if ctx == nil || len(groupID) == 0 {
		return nil, fmt.Errorf("%w: LoadPublicGroup needs a context and a group ID", ErrInvalidArgument)
	}
	c, err := follower(store, validator, &opts)
	if err != nil {
		return nil, err
	}
	g := &Group{store: store, public: true}
	err = view(ctx, store, func(tx storage.Tx) error {
		var err error
		if g.version, err = state.PublicVersion(tx, groupID); err != nil {
			return err
		}
		var gc message.GroupContext
		var s *ciphersuite.Suite
		r, t, err := state.LoadPublicGroup(tx, groupID, func(r *state.PublicRecord) (*ciphersuite.Suite, error) {
			if err := message.Unmarshal(r.Header.GroupContext, &gc); err != nil {
				return nil, err
			}
			if !bytes.Equal(gc.GroupID, groupID) || gc.Epoch != r.Header.Epoch {
				return nil, fmt.Errorf("record of group %x epoch %d stored under this group at epoch %d", gc.GroupID, gc.Epoch, r.Header.Epoch)
			}
			var err error
			s, err = ciphersuite.Lookup(gc.CipherSuite)
			return s, err
		})
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: public group %x", ErrNotFound, groupID)
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(r.Header.TreeHash, gc.TreeHash) {
			return corrupt(groupID, "ratchet tree", errors.New("the stored tree is not the group context's"))
		}
		g.cfg = c.policy(JoinConfig{SkipLifetimeCheck: r.SkipLifetime})
		g.st = &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: r.Header.GroupContext, Tree: t, ConfTag: r.ConfirmationTag}, own: noLeaf}
		g.st.Interim = g.st.InterimHash()
		g.active, g.props = r.Active, queuedOf(r.Proposals)
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	return &PublicGroup{g: g}, nil
}

// DeletePublicGroup deletes every record of a PublicGroup from store.
func DeletePublicGroup(ctx context.Context, store storage.Store, groupID []byte) error {
	if ctx == nil || store == nil || len(groupID) == 0 {
		return fmt.Errorf("%w: DeletePublicGroup needs a context, a store and a group ID", ErrInvalidArgument)
	}
	return update(ctx, store, func(tx storage.Tx) error { return state.DeletePublicGroup(tx, groupID) })
}
