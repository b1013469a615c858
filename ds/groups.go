package ds

import (
	"bytes"
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// maxGroupID bounds group IDs (RFC 9420 allows up to 2^30 bytes; no sane
// group needs more than this).
const maxGroupID = 256

func checkGroupID(id []byte) error {
	if len(id) == 0 || len(id) > maxGroupID {
		return fail(mlsdv1.Error_REASON_MALFORMED, "group ID of %d bytes (1 to %d)", len(id), maxGroupID)
	}
	return nil
}

// parseGroupInfo checks the size of a GroupInfo and its tree and decodes
// the GroupInfo (structure only; followGroupInfo verifies it).
func (s *Server) parseGroupInfo(gi, tree []byte) (*mls.Message, error) {
	if len(gi) == 0 {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "no GroupInfo")
	}
	if len(gi)+len(tree) > s.opts.MaxGroupInfoSize {
		return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "GroupInfo and ratchet tree are %d bytes; at most %d", len(gi)+len(tree), s.opts.MaxGroupInfoSize)
	}
	msg, err := mls.ParseMessage(gi)
	if err != nil {
		return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "GroupInfo")
	}
	if msg.WireFormat() != mls.WireFormatGroupInfo {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "a %v where a GroupInfo was expected", msg.WireFormat())
	}
	// The tree is decoded by mls.NewPublicGroup, under MaxTreeLeaves:
	// mls.ParseRatchetTree has no such bound (a few MiB of blank nodes
	// would cost hundreds of MiB).
	return msg, nil
}

// getGroup reads a group from the Store.
func (s *Server) getGroup(ctx context.Context, id []byte) (Group, error) {
	g, err := s.store.GetGroup(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return g, fail(mlsdv1.Error_REASON_UNKNOWN_GROUP, "no group %x", id)
	}
	return g, err
}

// current reads a group and the membership of its current epoch.
func (s *Server) current(ctx context.Context, id []byte) (Group, *groupView, error) {
	g, err := s.getGroup(ctx, id)
	if err != nil {
		return g, nil, err
	}
	e := s.groups.get(id)
	if v := e.view.Load(); v != nil && v.epoch == g.State.Epoch && v.allowExt == g.AllowExternalJoins {
		return g, v, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.sync(ctx, e, g, false); err != nil {
		return g, nil, err
	}
	return g, e.view.Load(), nil
}

// CreateGroup registers a group from its creator's GroupInfo and ratchet
// tree. The server follows it with a PublicGroup, which verifies the
// GroupInfo's signature and the tree (RFC 9420, Section 12.4.3.1); the
// caller must be a member of it.
func (s *Server) CreateGroup(ctx context.Context, req *connect.Request[mlsdv1.CreateGroupRequest]) (*connect.Response[mlsdv1.CreateGroupResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	var mode HandshakeMode
	switch m.HandshakeMode {
	case mlsdv1.HandshakeMode_HANDSHAKE_MODE_UNSPECIFIED, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC:
		mode = HandshakePublic
	case mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED:
		mode = HandshakeEncrypted
	default:
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "unknown handshake mode %d", m.HandshakeMode)
	}
	gi, err := s.parseGroupInfo(m.GroupInfo, m.RatchetTree)
	if err != nil {
		return nil, err
	}
	id := gi.GroupID()
	if err := checkGroupID(id); err != nil {
		return nil, err
	}
	pg, err := s.followGroupInfo(ctx, gi, m.RatchetTree, false)
	if err != nil {
		return nil, err
	}
	g := Group{
		ID: id, Mode: mode, AllowExternalJoins: m.AllowExternalJoins,
		State:   GroupState{Epoch: pg.Epoch(), GroupInfo: bytes.Clone(m.GroupInfo), RatchetTree: bytes.Clone(m.RatchetTree)},
		Created: s.now(),
	}
	v := newView(g, pg)
	if _, ok := s.member(v, sess); !ok {
		return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is not a member of the group it registers")
	}
	if err := s.store.CreateGroup(ctx, g); err != nil {
		return nil, err
	}
	e := s.groups.get(id)
	e.mu.Lock()
	e.pg, e.epoch, e.propSeq, e.seenSeq = pg, g.State.Epoch, 0, 0
	e.view.Store(v)
	e.mu.Unlock()
	s.metrics.groups.Inc()
	s.log.InfoContext(ctx, "group created", groupAttr(id), "epoch", g.State.Epoch, "creator", printable(sess.Identity), "members", len(v.members))
	return connect.NewResponse(&mlsdv1.CreateGroupResponse{Epoch: g.State.Epoch}), nil
}

// GetGroupInfo serves the latest GroupInfo and tree: to members, and to
// anyone when the group allows external joins (RFC 9750, Section 6.4:
// an explicit policy for external joins).
func (s *Server) GetGroupInfo(ctx context.Context, req *connect.Request[mlsdv1.GetGroupInfoRequest]) (*connect.Response[mlsdv1.GetGroupInfoResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkGroupID(req.Msg.GroupId); err != nil {
		return nil, err
	}
	g, v, err := s.current(ctx, req.Msg.GroupId)
	if err != nil {
		return nil, err
	}
	if _, ok := s.member(v, sess); !ok && !g.AllowExternalJoins {
		if _, ok := s.resyncOf(v, sess); !ok {
			return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is not a member and the group does not allow external joins")
		}
	}
	return connect.NewResponse(&mlsdv1.GetGroupInfoResponse{
		GroupInfo: g.State.GroupInfo, RatchetTree: g.State.RatchetTree, Epoch: g.State.Epoch,
		HandshakeMode: modeProto(g.Mode), LastSeq: g.LastSeq,
	}), nil
}

func modeProto(m HandshakeMode) mlsdv1.HandshakeMode {
	if m == HandshakeEncrypted {
		return mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED
	}
	return mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC
}

// handshake is a decoded handshake or application message posted to a group.
type handshake struct {
	msg     *mls.Message
	raw     []byte
	epoch   uint64
	private bool
	content uint8 // PrivateMessage content type; 0 for a PublicMessage
}

// parseGroupMessage checks the size of a posted message and that it is a
// PublicMessage or PrivateMessage of the named group.
func (s *Server) parseGroupMessage(groupID, raw []byte, what string) (*handshake, error) {
	if err := checkGroupID(groupID); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "no %s", what)
	}
	if len(raw) > s.opts.MaxMessageSize {
		return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "%s of %d bytes; at most %d", what, len(raw), s.opts.MaxMessageSize)
	}
	msg, err := mls.ParseMessage(raw)
	if err != nil {
		return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "%s", what)
	}
	h := &handshake{msg: msg, raw: raw, epoch: msg.Epoch()}
	switch msg.WireFormat() {
	case mls.WireFormatPublicMessage:
	case mls.WireFormatPrivateMessage:
		gid, epoch, ct, ok := privateHeader(raw)
		if !ok {
			return nil, fail(mlsdv1.Error_REASON_MALFORMED, "%s: PrivateMessage header", what)
		}
		h.private, h.epoch, h.content = true, epoch, ct
		_ = gid
	default:
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "%s: a %v is not a group message", what, msg.WireFormat())
	}
	if !bytes.Equal(msg.GroupID(), groupID) {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "%s is for group %x, not %x", what, msg.GroupID(), groupID)
	}
	return h, nil
}

// nonMemberCheck refuses a handshake message from a non-member before
// any signature is checked: a non-member may only post an external commit
// or a join proposal (a PublicMessage from a new_member sender), and only
// where the group allows external joins (RFC 9750, Section 6.4), or, for an
// external commit, to resync (see resyncOf).
func (s *Server) nonMemberCheck(isMember bool, v *groupView, sess Session, g Group, h *handshake) error {
	if isMember {
		return nil
	}
	st, ok := uint8(0), false
	if !h.private {
		st, ok = publicSenderType(h.raw)
	}
	if !ok || (st != senderNewMemberCommit && st != senderNewMemberProposal) {
		return fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is not a member of the group")
	}
	if g.AllowExternalJoins {
		return nil
	}
	if st == senderNewMemberCommit {
		if _, ok := s.resyncOf(v, sess); ok {
			return nil
		}
	}
	return fail(mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED, "the group does not allow external joins")
}

// resyncOf returns the member whose identity is the caller's when the
// caller is not itself a member: a client of that identity that lost its
// state (RFC 9750, Section 6.6, Recovery After State Loss) may fetch the
// GroupInfo and rejoin by an external commit that removes the old leaf
// (RFC 9420, Section 12.4.3.2, "resync"), even where the group does not
// allow external joins. The identity is the Authentication Service's
// (Validator) word, as for every member.
func (s *Server) resyncOf(v *groupView, sess Session) (mls.Member, bool) {
	for _, m := range v.members {
		if id, err := s.identityOf(m.Credential, m.SignatureKey); err == nil && bytes.Equal(id, sess.Identity) {
			return m, true
		}
	}
	return mls.Member{}, false
}

// leafOfIdentity reports whether the member at leaf has the identity.
func (s *Server) leafOfIdentity(v *groupView, leaf uint32, identity []byte) bool {
	for _, m := range v.members {
		if m.Index == leaf {
			id, err := s.identityOf(m.Credential, m.SignatureKey)
			return err == nil && bytes.Equal(id, identity)
		}
	}
	return false
}

// admitHandshake brings the group's cached PublicGroup (locked by the
// caller) up to the Store's epoch g and makes the checks every handshake
// post starts with. Who may post comes first, so a non-member learns
// nothing, not even the epoch (RFC 9750, Section 6.4); then the epoch.
func (s *Server) admitHandshake(ctx context.Context, e *groupEntry, g Group, sess Session, h *handshake, commit bool) (*groupView, mls.Member, bool, error) {
	if err := s.sync(ctx, e, g, h.epoch == g.State.Epoch); err != nil {
		return nil, mls.Member{}, false, err
	}
	v := e.view.Load()
	me, isMember := s.member(v, sess)
	if err := s.nonMemberCheck(isMember, v, sess, g, h); err != nil {
		return nil, mls.Member{}, false, err
	}
	if err := epochCheck(g, h, commit); err != nil {
		return nil, mls.Member{}, false, err
	}
	return v, me, isMember, nil
}

// epochCheck refuses a message that is not for the group's current epoch
// (a commit: COMMIT_CONFLICT when another commit already ended its epoch).
func epochCheck(g Group, h *handshake, commit bool) error {
	cur := g.State.Epoch
	switch {
	case h.epoch == cur:
		return nil
	case commit && h.epoch < cur:
		return conflict(mlsdv1.Error_REASON_COMMIT_CONFLICT, cur, g.LastSeq,
			"epoch %d already ended (current epoch %d): fetch, process and retry", h.epoch, cur)
	}
	return conflict(mlsdv1.Error_REASON_WRONG_EPOCH, cur, g.LastSeq, "message for epoch %d; the group is at epoch %d", h.epoch, cur)
}

// PostCommit accepts the first valid commit of an epoch (RFC 9750, Section
// 5.2.1, strongly consistent delivery). With public handshakes the commit is
// validated by the server's PublicGroup (RFC 9420, Section 12.4.2), merged,
// and the posted GroupInfo and tree must be exactly the epoch it creates
// (same GroupContext); with encrypted handshakes the header's epoch and
// content type order it and the posted GroupInfo, verified on its own,
// gives the new membership. The Store then appends it only if the group is
// still at its epoch, with the Welcome routed to the mailboxes of the
// identities that published the key packages it is for.
func (s *Server) PostCommit(ctx context.Context, req *connect.Request[mlsdv1.PostCommitRequest]) (*connect.Response[mlsdv1.PostCommitResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	h, err := s.parseGroupMessage(m.GroupId, m.Commit, "commit")
	if err != nil {
		return nil, err
	}
	if h.private && h.content != contentCommit {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "content type %d posted as a commit", h.content)
	}
	giMsg, err := s.parseGroupInfo(m.GroupInfo, m.RatchetTree)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(giMsg.GroupID(), m.GroupId) {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo is for group %x", giMsg.GroupID())
	}
	var welcome *mls.Welcome
	if len(m.Welcome) > 0 {
		if len(m.Welcome) > s.opts.MaxMessageSize || len(m.WelcomeRatchetTree) > s.opts.MaxGroupInfoSize {
			return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "Welcome of %d bytes and tree of %d bytes; at most %d and %d",
				len(m.Welcome), len(m.WelcomeRatchetTree), s.opts.MaxMessageSize, s.opts.MaxGroupInfoSize)
		}
		wm, err := mls.ParseMessage(m.Welcome)
		if err != nil {
			return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "Welcome")
		}
		if welcome, err = wm.Welcome(); err != nil {
			return nil, failWith(mlsdv1.Error_REASON_MALFORMED, err, "a %v where a Welcome was expected", wm.WireFormat())
		}
		// The Welcome's tree is the joiners' to check (RFC 9420, Section
		// 12.4.3.1); the server only bounds its size.
	}

	g, err := s.getGroup(ctx, m.GroupId)
	if err != nil {
		return nil, err
	}
	e := s.groups.get(m.GroupId)
	e.mu.Lock()
	defer e.mu.Unlock()
	v, me, isMember, err := s.admitHandshake(ctx, e, g, sess, h, true)
	if err != nil {
		return nil, err
	}
	if giMsg.Epoch() != g.State.Epoch+1 {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo is for epoch %d, not %d, the epoch the commit creates", giMsg.Epoch(), g.State.Epoch+1)
	}
	if !v.active {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the group ended with a ReInit commit")
	}

	var next *mls.PublicGroup
	var addRefs map[string]bool // public mode: the refs of the key packages the commit adds
	if h.private {
		if g.Mode != HandshakeEncrypted {
			return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the group's handshakes are PublicMessages")
		}
		if !isMember {
			return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "an external commit is a PublicMessage; the caller is not a member")
		}
		if next, err = s.followGroupInfo(ctx, giMsg, m.RatchetTree, true); err != nil {
			return nil, err
		}
		if next.CipherSuite() != e.pg.CipherSuite() {
			return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo changes the cipher suite")
		}
	} else {
		pp, err := processPosted(ctx, e.pg, h.msg, mls.KindCommit, isMember, me)
		if err != nil {
			return nil, err
		}
		switch pp.Sender.Type {
		case mls.SenderMember:
			// The caller's own leaf: checked by processPosted.
		case mls.SenderNewMemberCommit:
			if !g.AllowExternalJoins {
				// Only a resync: the commit removes a leaf of the caller's
				// identity.
				removes := false
				for _, q := range pp.Commit.RemoveProposals() {
					if l, ok := q.Removed(); ok && s.leafOfIdentity(v, l, sess.Identity) {
						removes = true
					}
				}
				if !removes {
					return nil, fail(mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED, "the group does not allow external commits, other than a resync that removes the caller's old leaf")
				}
			}
		default:
			return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "commit from a %v sender", pp.Sender.Type)
		}
		addRefs = make(map[string]bool)
		for _, q := range pp.Commit.AddProposals() {
			if kp, ok := q.KeyPackage(); ok {
				addRefs[string(kp.Ref())] = true
			}
		}
		// Merge changes the cached PublicGroup: from here on, any failure
		// leaves it to be rebuilt from the Store.
		pg := e.pg
		e.drop()
		if err := pg.Merge(ctx, pp.Commit); err != nil {
			return nil, err
		}
		// The posted GroupInfo and tree must be exactly the merged epoch:
		// checked directly when the tree is the server's own, else by
		// following the GroupInfo from scratch and comparing.
		handled, err := groupInfoMatches(pg, giMsg, m.GroupInfo, m.RatchetTree)
		if handled {
			s.metrics.giChecks.WithLabelValues("direct").Inc()
			if err != nil {
				return nil, err
			}
		} else {
			s.metrics.giChecks.WithLabelValues("rebuild").Inc()
			posted, err := s.followGroupInfo(ctx, giMsg, m.RatchetTree, true)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(pg.GroupContext(), posted.GroupContext()) {
				return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the GroupInfo is not the epoch the commit creates (GroupContext differs)")
			}
		}
		if pp.Sender.Type == mls.SenderNewMemberCommit {
			if _, ok := s.member(newView(g, pg), sess); !ok {
				return nil, fail(mlsdv1.Error_REASON_NOT_OWNER, "the external commit adds a leaf that is not the caller's")
			}
		}
		next = pg
	}

	welcomes, err := s.routeWelcomes(ctx, m, welcome, addRefs)
	if err != nil {
		if !h.private {
			e.drop()
		}
		return nil, err
	}
	nextView := newView(g, next)
	seq, err := s.store.AppendCommit(ctx, Commit{
		Entry: Entry{
			GroupID: bytes.Clone(m.GroupId), Epoch: g.State.Epoch, Kind: KindCommit,
			Sender: sess.Identity, Data: bytes.Clone(m.Commit), Received: s.now(),
		},
		NewState: GroupState{Epoch: g.State.Epoch + 1, GroupInfo: bytes.Clone(m.GroupInfo), RatchetTree: bytes.Clone(m.RatchetTree)},
		Welcomes: welcomes,
		Removed:  s.removedIdentities(v, nextView),
	})
	if err != nil {
		e.drop()
		return nil, err
	}
	g.State.Epoch++
	g.LastSeq = seq
	e.pg, e.epoch, e.propSeq, e.seenSeq = next, g.State.Epoch, seq, seq
	e.view.Store(nextView)
	s.metrics.message(KindCommit)
	for range welcomes {
		s.metrics.messages.WithLabelValues("welcome").Inc()
	}
	s.hub.notify(m.GroupId)
	s.log.InfoContext(ctx, "commit accepted", groupAttr(m.GroupId), "epoch", g.State.Epoch, "seq", seq,
		"sender", printable(sess.Identity), "welcomes", len(welcomes), "encrypted", h.private)
	return connect.NewResponse(&mlsdv1.PostCommitResponse{Seq: seq, Epoch: g.State.Epoch}), nil
}

// maxWelcomeRefs bounds the key package lookups one Welcome causes when
// the commit cannot be read (encrypted handshakes).
const maxWelcomeRefs = 1024

// routeWelcomes addresses a Welcome to the identity that published each key
// package it is encrypted to (RFC 9420, Section 12.4.3.1; RFC 9750,
// Section 5.2.3). With public handshakes each must be a key package the
// commit adds. A reference to a key package published elsewhere is
// skipped: its owner gets the Welcome another way.
func (s *Server) routeWelcomes(ctx context.Context, m *mlsdv1.PostCommitRequest, w *mls.Welcome, addRefs map[string]bool) ([]Welcome, error) {
	if w == nil {
		return nil, nil
	}
	refs := w.KeyPackageRefs()
	if len(refs) > maxWelcomeRefs {
		return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "Welcome for %d key packages; at most %d", len(refs), maxWelcomeRefs)
	}
	if addRefs != nil {
		for _, r := range refs {
			if !addRefs[string(r)] {
				return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the Welcome is for key package %x, which the commit does not add", r)
			}
		}
	}
	// Each mailbox gets its own copy: bound the total, so that one commit
	// adding many members with a large tree cannot fill the Store.
	if total := len(refs) * (len(m.Welcome) + len(m.WelcomeRatchetTree)); total > 4*s.opts.MaxGroupInfoSize {
		return nil, fail(mlsdv1.Error_REASON_TOO_LARGE, "Welcome copies for %d key packages would store %d bytes; at most %d", len(refs), total, 4*s.opts.MaxGroupInfoSize)
	}
	var out []Welcome
	for _, r := range refs {
		owner, err := s.store.KeyPackageOwner(ctx, r)
		if errors.Is(err, ErrNotFound) {
			s.log.DebugContext(ctx, "welcome for a key package published elsewhere", groupAttr(m.GroupId), "ref", hexString(r))
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Welcome{
			Identity: owner, KeyPackageRef: r, GroupID: bytes.Clone(m.GroupId),
			Data: bytes.Clone(m.Welcome), RatchetTree: bytes.Clone(m.WelcomeRatchetTree),
		})
	}
	return out, nil
}

// PostProposal appends a proposal of the current epoch. With public
// handshakes the server's PublicGroup validates it and keeps it, so that
// the commit that references it can be checked (RFC 9420, Section 12.1).
// A non-member may post a join proposal (new_member_proposal sender) where
// the group allows external joins.
func (s *Server) PostProposal(ctx context.Context, req *connect.Request[mlsdv1.PostProposalRequest]) (*connect.Response[mlsdv1.PostProposalResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	h, err := s.parseGroupMessage(m.GroupId, m.Proposal, "proposal")
	if err != nil {
		return nil, err
	}
	if h.private && h.content != contentProposal {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "content type %d posted as a proposal", h.content)
	}
	g, err := s.getGroup(ctx, m.GroupId)
	if err != nil {
		return nil, err
	}
	e := s.groups.get(m.GroupId)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, me, isMember, err := s.admitHandshake(ctx, e, g, sess, h, false)
	if err != nil {
		return nil, err
	}
	var queued *mls.QueuedProposal
	if h.private {
		if g.Mode != HandshakeEncrypted {
			return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "the group's handshakes are PublicMessages")
		}
		if !isMember {
			return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "a join proposal is a PublicMessage; the caller is not a member")
		}
	} else {
		pp, err := processPosted(ctx, e.pg, h.msg, mls.KindProposal, isMember, me)
		if err != nil {
			return nil, err
		}
		switch pp.Sender.Type {
		case mls.SenderMember:
			// The caller's own leaf: checked by processPosted.
		case mls.SenderNewMemberProposal:
			if !g.AllowExternalJoins {
				return nil, fail(mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED, "the group does not allow join proposals")
			}
			kp, ok := pp.Proposal.KeyPackage()
			if !ok || !bytes.Equal(kp.SignatureKey(), sess.SignatureKey) {
				return nil, fail(mlsdv1.Error_REASON_NOT_OWNER, "the join proposal adds a key package that is not the caller's")
			}
			if id, err := s.identityOf(kp.Credential(), kp.SignatureKey()); err != nil || !bytes.Equal(id, sess.Identity) {
				return nil, fail(mlsdv1.Error_REASON_NOT_OWNER, "the join proposal adds a key package that is not the caller's")
			}
		case mls.SenderExternal:
			// An external sender of the external_senders extension
			// (RFC 9420, Section 12.1.8.1), relayed by a member.
			if !isMember {
				return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "external-sender proposals are relayed by members")
			}
		default:
			return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "proposal from a %v sender", pp.Sender.Type)
		}
		queued = pp.Proposal
	}
	seq, err := s.store.Append(ctx, Entry{
		GroupID: bytes.Clone(m.GroupId), Epoch: h.epoch, Kind: KindProposal,
		Sender: sess.Identity, Data: bytes.Clone(m.Proposal), Received: s.now(),
	})
	if err != nil {
		e.drop()
		return nil, err
	}
	if queued != nil {
		if err := e.pg.StorePendingProposal(ctx, queued); err != nil {
			e.drop()
			s.log.WarnContext(ctx, "keeping a proposal in the cache", groupAttr(m.GroupId), "err", err)
		} else if e.propSeq < seq {
			e.propSeq = seq
		}
	}
	s.metrics.message(KindProposal)
	s.hub.notify(m.GroupId)
	return connect.NewResponse(&mlsdv1.PostProposalResponse{Seq: seq}), nil
}

// PostMessage appends an application message: a PrivateMessage (RFC 9420,
// Section 6.3; application data is never a PublicMessage) of the current
// epoch, posted by a member.
func (s *Server) PostMessage(ctx context.Context, req *connect.Request[mlsdv1.PostMessageRequest]) (*connect.Response[mlsdv1.PostMessageResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	h, err := s.parseGroupMessage(m.GroupId, m.Message, "message")
	if err != nil {
		return nil, err
	}
	if !h.private || h.content != contentApplication {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "application messages are PrivateMessages of content type application")
	}
	e := s.groups.get(m.GroupId)
	v := e.view.Load()
	if v == nil || v.epoch != h.epoch {
		// Not cached at this epoch: read the group; the Store checks the
		// epoch again when it appends.
		g, cv, err := s.current(ctx, m.GroupId)
		if err != nil {
			return nil, err
		}
		if _, ok := s.member(cv, sess); !ok {
			return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is not a member of the group")
		}
		if err := epochCheck(g, h, false); err != nil {
			return nil, err
		}
		v = cv
	}
	if _, ok := s.member(v, sess); !ok {
		return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is not a member of the group")
	}
	seq, err := s.store.Append(ctx, Entry{
		GroupID: bytes.Clone(m.GroupId), Epoch: h.epoch, Kind: KindApplication,
		Sender: sess.Identity, Data: bytes.Clone(m.Message), Received: s.now(),
	})
	if err != nil {
		var ce *ConflictError
		if errors.As(err, &ce) {
			// Our view was behind: forget it.
			e.view.CompareAndSwap(v, nil)
		}
		return nil, err
	}
	s.metrics.message(KindApplication)
	s.hub.notify(m.GroupId)
	return connect.NewResponse(&mlsdv1.PostMessageResponse{Seq: seq}), nil
}

// processPosted runs the group's PublicGroup over a posted handshake
// PublicMessage, which must be of kind want (a commit or a proposal), and
// checks that a member sender is the caller's own leaf. Other senders are
// the caller's to check.
func processPosted(ctx context.Context, pg *mls.PublicGroup, msg *mls.Message, want mls.ContentKind, isMember bool, me mls.Member) (*mls.PublicProcessed, error) {
	what := "proposal"
	if want == mls.KindCommit {
		what = "commit"
	}
	pp, err := pg.Process(ctx, msg)
	if err != nil {
		return nil, classifyAs(mlsdv1.Error_REASON_INVALID_MESSAGE, err, "%s", what)
	}
	if pp.Kind != want || (want == mls.KindCommit && pp.Commit == nil) || (want == mls.KindProposal && pp.Proposal == nil) {
		return nil, fail(mlsdv1.Error_REASON_INVALID_MESSAGE, "a %v posted as a %s", pp.Kind, what)
	}
	if pp.Sender.Type == mls.SenderMember && (!isMember || me.Index != pp.Sender.Index) {
		return nil, fail(mlsdv1.Error_REASON_NOT_MEMBER, "the %s is signed by leaf %d, not by the caller", what, pp.Sender.Index)
	}
	return pp, nil
}
