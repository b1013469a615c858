package ds

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/storage/memory"
)

// groupCache holds, per group, the server's PublicGroup: the membership
// that authorises posts and reads, and (public handshakes) the state that
// validates proposals and commits. It is a cache of the Store: an entry is
// rebuilt from the Store's GroupState and the epoch's stored proposals
// whenever it is behind, so replicas sharing a Store agree, and a replica
// that restarts loses nothing.
type groupCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*groupEntry
}

func newGroupCache(max int) *groupCache {
	return &groupCache{max: max, m: make(map[string]*groupEntry)}
}

func (c *groupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// get returns the entry of a group, creating an empty one. When the cache
// is full an arbitrary entry is dropped: a request still holding it goes
// on, and every decision is checked by the Store anyway.
func (c *groupCache) get(id []byte) *groupEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[string(id)]; ok {
		return e
	}
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	e := &groupEntry{id: bytes.Clone(id)}
	c.m[string(id)] = e
	return e
}

// groupEntry is one cached group. mu serialises rebuilding and handshake
// processing; view is the membership of one epoch, read without the lock.
type groupEntry struct {
	id []byte

	mu      sync.Mutex
	pg      *mls.PublicGroup // nil: rebuild from the Store before use
	epoch   uint64           // pg's epoch
	propSeq uint64           // seq of the newest stored proposal fed to pg
	seenSeq uint64           // the Store's LastSeq when proposals were last synced

	view atomic.Pointer[groupView]
}

// groupView is the immutable membership of one epoch of a group.
type groupView struct {
	epoch    uint64
	mode     HandshakeMode
	allowExt bool
	active   bool
	// members by signature key (unique in a group, RFC 9420, Section 7.3)
	members map[string]mls.Member
}

func newView(g Group, pg *mls.PublicGroup) *groupView {
	ms := pg.Members()
	v := &groupView{epoch: pg.Epoch(), mode: g.Mode, allowExt: g.AllowExternalJoins, active: pg.IsActive(), members: make(map[string]mls.Member, len(ms))}
	for _, m := range ms {
		v.members[string(m.SignatureKey)] = m
	}
	return v
}

// member returns the caller's leaf: the member whose signature key is the
// session's and whose credential has the session's identity.
func (s *Server) member(v *groupView, sess Session) (mls.Member, bool) {
	m, ok := v.members[string(sess.SignatureKey)]
	if !ok {
		return m, false
	}
	id, err := s.identityOf(m.Credential, m.SignatureKey)
	if err != nil || !bytes.Equal(id, sess.Identity) {
		return m, false
	}
	return m, true
}

// publicOptions is the PublicGroup policy of the server. A state that was
// accepted before (rebuilt from the Store, or posted with a commit the
// server validated) is not refused for leaves whose lifetime ran out
// since: members keep it too (RFC 9420, Section 7.3 applies lifetimes to
// leaves as they enter).
func (s *Server) publicOptions(tree []byte, skipLifetime bool) mls.PublicGroupOptions {
	return mls.PublicGroupOptions{RatchetTree: tree, Now: s.now, MaxTreeLeaves: s.opts.MaxTreeLeaves, SkipLifetimeCheck: skipLifetime}
}

// followGroupInfo starts a PublicGroup from a GroupInfo and tree: the
// GroupInfo's signature against the signer's leaf, the tree against the
// GroupContext's tree hash, every leaf (RFC 9420, Section 12.4.3.1).
func (s *Server) followGroupInfo(ctx context.Context, gi *mls.Message, tree []byte, skipLifetime bool) (*mls.PublicGroup, error) {
	pg, err := mls.NewPublicGroup(ctx, memory.New(), s.validator(), gi, s.publicOptions(tree, skipLifetime))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classifyAs(mlsdv1.Error_REASON_INVALID_MESSAGE, err, "GroupInfo and ratchet tree")
	}
	return pg, nil
}

func (s *Server) validator() credential.Validator { return s.opts.Validator }

// sync brings e to the Store's state g: rebuilt when at another epoch,
// and (public handshakes, withProposals) fed the epoch's stored proposals
// it has not seen, which a commit may reference. Called with e.mu held.
func (s *Server) sync(ctx context.Context, e *groupEntry, g Group, withProposals bool) error {
	if e.pg == nil || e.epoch != g.State.Epoch {
		e.pg = nil
		gi, err := mls.ParseMessage(g.State.GroupInfo)
		if err != nil {
			return err
		}
		pg, err := s.followGroupInfo(ctx, gi, g.State.RatchetTree, true)
		if err != nil {
			return err
		}
		if pg.Epoch() != g.State.Epoch {
			return &rpcError{detail: "internal error", cause: errStoredEpoch}
		}
		e.pg, e.epoch, e.propSeq, e.seenSeq = pg, g.State.Epoch, 0, 0
		e.view.Store(newView(g, pg))
	}
	if v := e.view.Load(); v == nil || v.epoch != e.epoch || v.allowExt != g.AllowExternalJoins {
		e.view.Store(newView(g, e.pg))
	}
	if !withProposals || g.Mode == HandshakeEncrypted || g.LastSeq == e.seenSeq {
		return nil
	}
	props, err := s.store.Proposals(ctx, g.ID, g.State.Epoch)
	if err != nil {
		return err
	}
	for _, p := range props {
		if p.Seq <= e.propSeq {
			continue
		}
		e.propSeq = p.Seq
		msg, err := mls.ParseMessage(p.Data)
		if err != nil || msg.WireFormat() != mls.WireFormatPublicMessage {
			continue // an encrypted proposal: the PublicGroup cannot read it
		}
		pp, err := e.pg.Process(ctx, msg)
		if err != nil || pp.Proposal == nil {
			s.log.WarnContext(ctx, "stored proposal no longer validates", groupAttr(g.ID), "seq", p.Seq, "err", err)
			continue
		}
		if err := e.pg.StorePendingProposal(ctx, pp.Proposal); err != nil {
			e.pg = nil
			return err
		}
	}
	e.seenSeq = g.LastSeq
	return nil
}

// drop forgets e's state after a failed or lost commit: the next request
// rebuilds it from the Store. Called with e.mu held.
func (e *groupEntry) drop() {
	e.pg = nil
	e.view.Store(nil)
}

type internalError string

func (e internalError) Error() string { return string(e) }

const errStoredEpoch = internalError("ds: the stored GroupInfo is not for the stored epoch")
