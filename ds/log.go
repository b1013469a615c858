package ds

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

func envelope(e Entry) *mlsdv1.Envelope {
	return &mlsdv1.Envelope{
		GroupId: e.GroupID, Seq: e.Seq, Epoch: e.Epoch, Kind: mlsdv1.Kind(e.Kind),
		Message: e.Data, Sender: e.Sender, ReceivedUnixNano: e.Received.UnixNano(),
	}
}

// readable returns the group if the caller may read its log after
// afterSeq: a member of its current epoch (RFC 9750, Section 6.4), or an
// identity that a commit removed, which may read up to and including that
// commit, so that a member offline at its removal learns of it. upTo is 0
// for a member, else the seq of that commit (greater than afterSeq).
func (s *Server) readable(ctx context.Context, id []byte, afterSeq uint64) (g Group, upTo uint64, err error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return Group{}, 0, err
	}
	if err := checkGroupID(id); err != nil {
		return Group{}, 0, err
	}
	g, v, err := s.current(ctx, id)
	if err != nil {
		return g, 0, err
	}
	if _, ok := s.member(v, sess); ok {
		return g, 0, nil
	}
	upTo, err = s.store.RemovedAt(ctx, id, sess.Identity)
	switch {
	case errors.Is(err, ErrNotFound):
		return g, 0, fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is not a member of the group")
	case err != nil:
		return g, 0, err
	case afterSeq >= upTo:
		return g, 0, removedError(upTo)
	}
	return g, upTo, nil
}

func removedError(seq uint64) error {
	return fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is no longer a member of the group: the commit at seq %d removed it", seq)
}

// removedIdentities returns the identities of before's members that have
// no leaf in after: those a commit removes. A member that updates its
// leaf, or a client that rejoins by a resync commit, keeps its identity.
// Only the leaves whose signature key is gone are looked at (a signature
// key is unique in a group, RFC 9420, Section 7.3).
func (s *Server) removedIdentities(before, after *groupView) [][]byte {
	var gone []mls.Member
	for k, m := range before.members {
		if _, ok := after.members[k]; !ok {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	kept := make(map[string]bool, len(after.members))
	for _, m := range after.members {
		if id, err := s.identityOf(m.Credential, m.SignatureKey); err == nil {
			kept[string(id)] = true
		}
	}
	var out [][]byte
	for _, m := range gone {
		id, err := s.identityOf(m.Credential, m.SignatureKey)
		if err != nil || kept[string(id)] {
			continue
		}
		kept[string(id)] = true // listed once
		out = append(out, id)
	}
	return out
}

// FetchMessages returns a page of a group's log after a cursor, oldest
// first. An identity that a commit removed reads up to that commit; its
// LastSeq is that commit's.
func (s *Server) FetchMessages(ctx context.Context, req *connect.Request[mlsdv1.FetchMessagesRequest]) (*connect.Response[mlsdv1.FetchMessagesResponse], error) {
	m := req.Msg
	g, upTo, err := s.readable(ctx, m.GroupId, m.AfterSeq)
	if err != nil {
		return nil, err
	}
	limit := int(m.Limit)
	if limit <= 0 {
		limit = DefaultFetchLimit
	}
	limit = min(limit, MaxFetchLimit)
	last := g.LastSeq
	if upTo > 0 {
		if n := upTo - m.AfterSeq; n < uint64(limit) {
			limit = int(n)
		}
		last = min(last, upTo)
	}
	entries, err := s.store.Entries(ctx, m.GroupId, m.AfterSeq, limit)
	if err != nil {
		return nil, err
	}
	out := &mlsdv1.FetchMessagesResponse{Epoch: g.State.Epoch, LastSeq: last, Messages: make([]*mlsdv1.Envelope, 0, len(entries))}
	for _, e := range entries {
		if upTo > 0 && e.Seq > upTo {
			break
		}
		out.Messages = append(out.Messages, envelope(e))
	}
	return connect.NewResponse(out), nil
}

// Subscribe sends the entries after the cursor, then every new one, in
// order and without gaps: each wake-up (a Store notification, or the poll
// timer) reads the log from the last entry sent. When a commit removes the
// caller, the stream sends the entries up to that commit and ends with
// NOT_MEMBER.
func (s *Server) Subscribe(ctx context.Context, req *connect.Request[mlsdv1.SubscribeRequest], stream *connect.ServerStream[mlsdv1.Envelope]) error {
	err := s.subscribe(ctx, req.Msg, stream)
	if err != nil && s.ctx.Err() != nil {
		// Whatever failed, it failed because the server is closing.
		return connect.NewError(connect.CodeUnavailable, errShutdown)
	}
	return err
}

func (s *Server) subscribe(ctx context.Context, m *mlsdv1.SubscribeRequest, stream *connect.ServerStream[mlsdv1.Envelope]) error {
	sess, err := mustSession(ctx)
	if err != nil {
		return err
	}
	g, upTo, err := s.readable(ctx, m.GroupId, m.AfterSeq)
	if err != nil {
		return err
	}
	sub := s.hub.subscribe(m.GroupId)
	defer s.hub.unsubscribe(sub)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	// The marker: the client's call returns, the subscription is live.
	epoch := g.State.Epoch
	if err := stream.Send(&mlsdv1.Envelope{GroupId: m.GroupId, Epoch: epoch}); err != nil {
		return err
	}
	cursor := m.AfterSeq
	// untilEpoch, when the caller is not a member and no commit removed
	// its identity: the epoch from which it may read nothing.
	var untilEpoch uint64
	poll := time.NewTicker(s.opts.SubscribePoll)
	defer poll.Stop()
	lastSend := time.Now()
	for {
		// Drain what is stored after the cursor, page by page.
		for {
			entries, err := s.store.Entries(ctx, m.GroupId, cursor, DefaultFetchLimit)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				break
			}
			// After a commit, check that the caller is still a member; if
			// not, it gets the log up to the commit that removed it.
			if upTo == 0 && untilEpoch == 0 && slices.ContainsFunc(entries, func(e Entry) bool { return e.Kind == KindCommit }) {
				_, v, err := s.current(ctx, m.GroupId)
				if err != nil {
					return err
				}
				epoch = v.epoch
				if _, ok := s.member(v, sess); !ok {
					seq, err := s.store.RemovedAt(ctx, m.GroupId, sess.Identity)
					switch {
					case err == nil && seq > cursor:
						upTo = seq
					case err == nil || errors.Is(err, ErrNotFound):
						// Not removed by identity (its leaf was replaced,
						// as by a resync from another device): the epochs
						// it was a member of.
						untilEpoch = v.epoch
					default:
						return err
					}
				}
			}
			for _, e := range entries {
				if (upTo > 0 && e.Seq > upTo) || (untilEpoch > 0 && e.Epoch >= untilEpoch) {
					break
				}
				if err := stream.Send(envelope(e)); err != nil {
					return err
				}
				cursor = e.Seq
			}
			lastSend = time.Now()
			switch {
			case upTo > 0 && cursor >= upTo:
				return removedError(upTo)
			case untilEpoch > 0:
				return fail(mlsdv1.Error_REASON_NOT_MEMBER, "the caller is no longer a member of the group")
			}
			if len(entries) < DefaultFetchLimit {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.c:
		case <-poll.C:
			if time.Since(lastSend) >= keepAlive {
				if err := stream.Send(&mlsdv1.Envelope{GroupId: m.GroupId, Epoch: epoch}); err != nil {
					return err
				}
				lastSend = time.Now()
			}
		}
	}
}

// keepAlive is how long a stream stays silent before the server sends a
// marker Envelope (seq 0), which keeps proxies and NATs from closing it and
// lets the client notice a dead connection.
const keepAlive = 25 * time.Second

const errShutdown = internalError("mlsd is shutting down; resubscribe from your cursor")

// Ack records the caller's position in a group's log (never backwards).
func (s *Server) Ack(ctx context.Context, req *connect.Request[mlsdv1.AckRequest]) (*connect.Response[mlsdv1.AckResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if err := checkGroupID(m.GroupId); err != nil {
		return nil, err
	}
	g, err := s.getGroup(ctx, m.GroupId)
	if err != nil {
		return nil, err
	}
	if m.Seq > g.LastSeq {
		return nil, fail(mlsdv1.Error_REASON_MALFORMED, "seq %d is beyond the log's end (%d)", m.Seq, g.LastSeq)
	}
	if err := s.store.SetCursor(ctx, m.GroupId, sess.Identity, m.Seq); err != nil {
		return nil, err
	}
	return connect.NewResponse(&mlsdv1.AckResponse{}), nil
}

// GetCursor returns the caller's recorded position in a group's log.
func (s *Server) GetCursor(ctx context.Context, req *connect.Request[mlsdv1.GetCursorRequest]) (*connect.Response[mlsdv1.GetCursorResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkGroupID(req.Msg.GroupId); err != nil {
		return nil, err
	}
	if _, err := s.getGroup(ctx, req.Msg.GroupId); err != nil {
		return nil, err
	}
	seq, err := s.store.Cursor(ctx, req.Msg.GroupId, sess.Identity)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&mlsdv1.GetCursorResponse{Seq: seq}), nil
}

// FetchWelcomes returns the Welcomes in the caller's mailbox.
func (s *Server) FetchWelcomes(ctx context.Context, req *connect.Request[mlsdv1.FetchWelcomesRequest]) (*connect.Response[mlsdv1.FetchWelcomesResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	ws, err := s.store.Welcomes(ctx, sess.Identity)
	if err != nil {
		return nil, err
	}
	out := &mlsdv1.FetchWelcomesResponse{Welcomes: make([]*mlsdv1.WelcomeEnvelope, len(ws))}
	for i, w := range ws {
		out.Welcomes[i] = &mlsdv1.WelcomeEnvelope{Id: w.ID, KeyPackageRef: w.KeyPackageRef, Welcome: w.Data, RatchetTree: w.RatchetTree, GroupId: w.GroupID}
	}
	return connect.NewResponse(out), nil
}

// AckWelcome deletes a Welcome from the caller's mailbox.
func (s *Server) AckWelcome(ctx context.Context, req *connect.Request[mlsdv1.AckWelcomeRequest]) (*connect.Response[mlsdv1.AckWelcomeResponse], error) {
	sess, err := mustSession(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteWelcome(ctx, sess.Identity, req.Msg.Id); err != nil {
		return nil, err
	}
	return connect.NewResponse(&mlsdv1.AckWelcomeResponse{}), nil
}

// hub fans the Store's notifications out to this replica's subscriptions.
// Each subscription has a one-slot signal channel: notifications coalesce,
// and the subscriber reads the log from its cursor, so a slow subscriber
// costs no memory and misses nothing.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

type subscription struct {
	group string
	c     chan struct{}
}

func newHub() *hub { return &hub{subs: make(map[string]map[*subscription]struct{})} }

func (h *hub) subscribe(groupID []byte) *subscription {
	sub := &subscription{group: string(groupID), c: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[sub.group]
	if m == nil {
		m = make(map[*subscription]struct{})
		h.subs[sub.group] = m
	}
	m[sub] = struct{}{}
	return sub
}

func (h *hub) unsubscribe(sub *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[sub.group]
	delete(m, sub)
	if len(m) == 0 {
		delete(h.subs, sub.group)
	}
}

func (h *hub) notify(groupID []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[string(groupID)] {
		select {
		case sub.c <- struct{}{}:
		default:
		}
	}
}

// watch registers the Server's one Store watcher, which fans out to this
// replica's subscriptions, retrying while the Store refuses. A Store's
// Watch returns once registered (or, for a Store that blocks in it, when
// the Server closes); subscriptions also poll, so a watcher that dies
// later (a PostgreSQL connection lost) delays delivery, never loses it.
func (s *Server) watch() {
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		err := s.store.Watch(s.ctx, s.hub.notify)
		if err == nil {
			<-s.ctx.Done()
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("store watch failed; retrying", "err", err, "in", backoff.String())
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
