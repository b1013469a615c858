package dsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
	"github.com/mlskit/mls/storage/memory"
)

// Event is one entry of a group's log as this member handled it.
type Event struct {
	Group  *mls.Group
	Seq    uint64 // position in the log
	Epoch  uint64 // the epoch it was sent in
	Kind   mlsdv1.Kind
	Sender []byte // the identity the service authenticated
	// Message is the entry as posted; Processed what this member made of
	// it. For a commit the handler runs before the commit is merged (inspect
	// Processed.Commit against the old epoch); a proposal is already stored
	// as pending.
	Message   *mls.Message
	Processed *mls.Processed
	// Err is set, and Processed nil, for an application message this member
	// could not read; the entry is skipped.
	Err error
}

// Handler is called with each entry a member handles. An error stops the
// reading before the entry counts as read: a commit is not merged, and the
// entry comes again on the next read (an application message then comes
// with Err set, its key having been used).
type Handler func(Event) error

func (c *Client) lock(groupID []byte) func() {
	c.mu.Lock()
	m, ok := c.groups[string(groupID)]
	if !ok {
		m = new(sync.Mutex)
		c.groups[string(groupID)] = m
	}
	c.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// CreateOptions configure a group's registration.
type CreateOptions struct {
	// Encrypted: handshake messages travel as PrivateMessages, and the
	// service orders them by epoch only (the group must be configured to
	// send them so).
	Encrypted bool
	// AllowExternalJoins lets non-members fetch the GroupInfo and join by
	// external commit.
	AllowExternalJoins bool
}

// CreateGroup registers g, just created, with the service: its GroupInfo and
// ratchet tree.
func (c *Client) CreateGroup(ctx context.Context, g *mls.Group, opts CreateOptions) error {
	defer c.lock(g.GroupID())()
	gi, err := g.ExportGroupInfo(false)
	if err != nil {
		return fmt.Errorf("dsclient: GroupInfo: %w", err)
	}
	giBytes, err := gi.MarshalBinary()
	if err != nil {
		return fmt.Errorf("dsclient: GroupInfo: %w", err)
	}
	tree, err := g.ExportRatchetTree()
	if err != nil {
		return fmt.Errorf("dsclient: ratchet tree: %w", err)
	}
	mode := mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC
	if opts.Encrypted {
		mode = mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED
	}
	if _, err := call(ctx, c, "CreateGroup", c.rpc.CreateGroup, &mlsdv1.CreateGroupRequest{
		GroupInfo: giBytes, RatchetTree: tree, HandshakeMode: mode, AllowExternalJoins: opts.AllowExternalJoins,
	}); err != nil {
		return err
	}
	return c.setCursor(ctx, g.GroupID(), cursor{From: g.Epoch()})
}

// Posted is a commit the service accepted.
type Posted struct {
	Result   *mls.CommitResult
	Seq      uint64 // its place in the log
	Epoch    uint64 // the epoch it created
	Attempts int    // 1 unless it lost races to other commits first
	Size     int    // bytes of the commit message
}

// CommitFunc creates a commit in g: (*mls.Group).SelfUpdate, or a closure
// around AddMembers and the like. It may run several times, once per
// attempt, each time in a newer epoch. A nil result means there is nothing
// left to commit.
type CommitFunc func(*mls.Group, context.Context) (*mls.CommitResult, error)

// Commit catches up with the group's log, creates a commit with create and
// posts it with the new epoch's GroupInfo and ratchet tree and the Welcome.
// When the service accepts it, the entries the log holds before it (posted
// in the old epoch since the last read) are handled, h seeing them, and
// then the commit is merged. When another commit
// won the epoch (COMMIT_CONFLICT, or WRONG_EPOCH), the pending commit is
// cleared, the log read on from the cursor (h sees what comes), and the
// operation tried again, at most Options.MaxAttempts times
// (reference/faq.txt, "commit conflicts").
func (c *Client) Commit(ctx context.Context, g *mls.Group, create CommitFunc, h Handler) (*Posted, error) {
	defer c.lock(g.GroupID())()
	for attempt := 1; attempt <= c.attempts; attempt++ {
		if _, err := c.sync(ctx, g, h); err != nil {
			return nil, err
		}
		if g.PendingCommit() != nil {
			// Left by an earlier post whose answer was lost, and not in
			// the log (reading it would have merged it): never accepted.
			if err := g.ClearPendingCommit(ctx); err != nil {
				return nil, fmt.Errorf("dsclient: clearing an unposted commit: %w", err)
			}
			if err := c.setPosted(ctx, g.GroupID(), nil); err != nil {
				return nil, err
			}
		}
		res, err := create(g, ctx)
		if err != nil || res == nil {
			return nil, err
		}
		req, err := commitRequest(g, res)
		if err != nil {
			g.ClearPendingCommit(ctx)
			return nil, err
		}
		// Kept until the answer comes, so that a lost answer is told
		// from a lost race by the log (see handle).
		if err := c.setPosted(ctx, g.GroupID(), req.Commit); err != nil {
			g.ClearPendingCommit(ctx)
			return nil, err
		}
		pr, err := call(ctx, c, "PostCommit", c.rpc.PostCommit, req)
		if r := Reason(err); err != nil && r != mlsdv1.Error_REASON_UNSPECIFIED {
			if err := c.setPosted(ctx, g.GroupID(), nil); err != nil {
				return nil, err
			}
		}
		switch r := Reason(err); {
		case err == nil:
			// The record of the posted commit stays until it is merged:
			// if reading up to it fails, the next read of the log merges
			// it (see handle).
			if err := c.mergeAccepted(ctx, g, pr.Seq, h); err != nil {
				return nil, err
			}
			return &Posted{Result: res, Seq: pr.Seq, Epoch: pr.Epoch, Attempts: attempt, Size: len(req.Commit)}, nil
		case r == mlsdv1.Error_REASON_COMMIT_CONFLICT || r == mlsdv1.Error_REASON_WRONG_EPOCH:
			if cerr := g.ClearPendingCommit(ctx); cerr != nil {
				return nil, fmt.Errorf("dsclient: clearing the losing commit: %w", cerr)
			}
		case r != mlsdv1.Error_REASON_UNSPECIFIED:
			// Refused: the commit will never be accepted.
			g.ClearPendingCommit(ctx)
			return nil, err
		default:
			// Unknown outcome (a network error): the pending commit stays;
			// the next read of the log merges it if the service took it.
			return nil, err
		}
	}
	return nil, ErrTooManyAttempts
}

// mergeAccepted merges this member's pending commit, which the service
// accepted at seq. The entries the log holds between the cursor and seq
// were posted in the commit's own epoch after this member last read it:
// application messages of others, proposals. They are handled first, with
// the commit still pending, for once it is merged the old epoch's keys are
// gone and they could no longer be read (RFC 9420, Section 14: the commit
// ends the epoch for everyone at the same place in the log). Then the
// commit is merged and the cursor moves past it.
func (c *Client) mergeAccepted(ctx context.Context, g *mls.Group, seq uint64, h Handler) error {
	gid := g.GroupID()
	cur, err := c.cursor(ctx, gid)
	if err != nil {
		return err
	}
	if cur.Seq >= seq {
		return fmt.Errorf("%w: the commit was accepted at seq %d, but the cursor is already at %d", ErrUnexpected, seq, cur.Seq)
	}
	for page := 0; cur.Seq+1 < seq; page++ {
		if page == maxPages {
			return fmt.Errorf("%w: more than %d pages before the commit at seq %d", ErrUnexpected, maxPages, seq)
		}
		res, err := call(ctx, c, "FetchMessages", c.rpc.FetchMessages, &mlsdv1.FetchMessagesRequest{GroupId: gid, AfterSeq: cur.Seq})
		if err != nil {
			return err
		}
		before := cur.Seq
		for _, env := range res.Messages {
			if env.Seq >= seq {
				break
			}
			if err := c.apply(ctx, g, &cur, env, h); err != nil {
				return err
			}
		}
		if cur.Seq == before {
			return fmt.Errorf("%w: the log has no entries after seq %d before the commit at seq %d", ErrUnexpected, cur.Seq, seq)
		}
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		return fmt.Errorf("dsclient: merging the accepted commit: %w", err)
	}
	if err := c.setPosted(ctx, gid, nil); err != nil {
		return err
	}
	cur.Seq = seq
	if err := c.setCursor(ctx, gid, cur); err != nil {
		return err
	}
	// Best effort: the next read acknowledges it otherwise.
	_, _ = call(ctx, c, "Ack", c.rpc.Ack, &mlsdv1.AckRequest{GroupId: gid, Seq: seq})
	return nil
}

func commitRequest(g *mls.Group, res *mls.CommitResult) (*mlsdv1.PostCommitRequest, error) {
	pc := g.PendingCommit()
	if pc == nil || res.Commit == nil || res.GroupInfo == nil {
		return nil, fmt.Errorf("dsclient: %w: the commit function left no pending commit with a GroupInfo", mls.ErrInvalidArgument)
	}
	req := &mlsdv1.PostCommitRequest{GroupId: g.GroupID()}
	var err error
	if req.Commit, err = res.Commit.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("dsclient: encoding the commit: %w", err)
	}
	if req.GroupInfo, err = res.GroupInfo.MarshalBinary(); err != nil {
		return nil, fmt.Errorf("dsclient: encoding the GroupInfo: %w", err)
	}
	if req.RatchetTree, err = pc.RatchetTree(); err != nil {
		return nil, fmt.Errorf("dsclient: the new ratchet tree: %w", err)
	}
	if res.Welcome != nil {
		if req.Welcome, err = res.Welcome.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("dsclient: encoding the Welcome: %w", err)
		}
		req.WelcomeRatchetTree = req.RatchetTree
	}
	return req, nil
}

// ProposeFunc creates a proposal in g, such as (*mls.Group).ProposeSelfUpdate
// or LeaveGroup.
type ProposeFunc func(*mls.Group, context.Context) (*mls.Message, mls.ProposalRef, error)

// Propose creates a proposal with create and posts it. A refused proposal
// is withdrawn from the member's queue; when the group moved on meanwhile
// (WRONG_EPOCH), the log is read and the proposal created again, at most
// Options.MaxAttempts times.
func (c *Client) Propose(ctx context.Context, g *mls.Group, create ProposeFunc, h Handler) (*mls.Message, error) {
	defer c.lock(g.GroupID())()
	if !g.IsActive() {
		return nil, removed(g)
	}
	for attempt := 1; attempt <= c.attempts; attempt++ {
		msg, ref, err := create(g, ctx)
		if err != nil {
			return nil, err
		}
		b, err := msg.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("dsclient: encoding the proposal: %w", err)
		}
		_, err = call(ctx, c, "PostProposal", c.rpc.PostProposal, &mlsdv1.PostProposalRequest{GroupId: g.GroupID(), Proposal: b})
		if err == nil {
			return msg, nil
		}
		r := Reason(err)
		if r == mlsdv1.Error_REASON_UNSPECIFIED {
			return nil, err // unknown outcome: the proposal stays queued
		}
		// Refused: withdrawn, so that no commit of this member refers to
		// a proposal the others never got.
		if rerr := g.RemovePendingProposal(ctx, ref); rerr != nil && !errors.Is(rerr, mls.ErrNotFound) {
			return nil, fmt.Errorf("dsclient: withdrawing the proposal: %w", rerr)
		}
		if r != mlsdv1.Error_REASON_WRONG_EPOCH && r != mlsdv1.Error_REASON_COMMIT_CONFLICT {
			return nil, err
		}
		if _, err := c.sync(ctx, g, h); err != nil {
			return nil, err
		}
	}
	return nil, ErrTooManyAttempts
}

// Send encrypts plaintext for the group and posts it. When the group moved
// on meanwhile (WRONG_EPOCH), it reads the log (h sees what comes) and
// encrypts again in the new epoch, at most Options.MaxAttempts times.
func (c *Client) Send(ctx context.Context, g *mls.Group, plaintext []byte, h Handler) (*mls.Message, error) {
	defer c.lock(g.GroupID())()
	if !g.IsActive() {
		return nil, removed(g)
	}
	for attempt := 1; attempt <= c.attempts; attempt++ {
		msg, err := g.Seal(ctx, plaintext, nil)
		if err != nil {
			return nil, err
		}
		b, err := msg.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("dsclient: encoding the message: %w", err)
		}
		_, err = call(ctx, c, "PostMessage", c.rpc.PostMessage, &mlsdv1.PostMessageRequest{GroupId: g.GroupID(), Message: b})
		if err == nil {
			return msg, nil
		}
		if r := Reason(err); r != mlsdv1.Error_REASON_WRONG_EPOCH && r != mlsdv1.Error_REASON_COMMIT_CONFLICT {
			return nil, err
		}
		if _, err := c.sync(ctx, g, h); err != nil {
			return nil, err
		}
	}
	return nil, ErrTooManyAttempts
}

// Sync reads the group's log from the cursor to its end and handles every
// entry: commits of others are processed, shown to h and merged; proposals
// processed and stored as pending; application messages decrypted. This
// member's own entries, which it has already applied, are skipped. The
// cursor moves past each entry once handled, in the client's store, and is
// acknowledged to the service at the end. Sync returns the number of
// entries handled. When an entry is the commit that removed this member
// (the service lets a removed member read the log up to it), h sees it, it
// is merged, and Sync stops there with an error matching ErrRemoved, as
// does every later Sync of the group (the service's refusal, which matches
// ErrNotMember too).
func (c *Client) Sync(ctx context.Context, g *mls.Group, h Handler) (int, error) {
	defer c.lock(g.GroupID())()
	return c.sync(ctx, g, h)
}

// maxPages bounds one Sync: the service pages its answers.
const maxPages = 100000

func (c *Client) sync(ctx context.Context, g *mls.Group, h Handler) (int, error) {
	gid := g.GroupID()
	cur, err := c.cursor(ctx, gid)
	if err != nil {
		return 0, err
	}
	if !g.IsActive() {
		// Removed already: the service, asked all the same, refuses
		// (it lets a removed member read up to its removal only).
		_, err := call(ctx, c, "FetchMessages", c.rpc.FetchMessages, &mlsdv1.FetchMessagesRequest{GroupId: gid, AfterSeq: cur.Seq, Limit: 1})
		if errors.Is(err, ErrNotMember) {
			return 0, fmt.Errorf("%w (%w)", err, ErrRemoved)
		}
		return 0, removed(g)
	}
	start, n := cur.Seq, 0
	for range maxPages {
		res, err := call(ctx, c, "FetchMessages", c.rpc.FetchMessages, &mlsdv1.FetchMessagesRequest{GroupId: gid, AfterSeq: cur.Seq})
		if err != nil {
			return n, err
		}
		for _, env := range res.Messages {
			if err := c.apply(ctx, g, &cur, env, h); err != nil {
				return n, err
			}
			n++
			if !g.IsActive() {
				break // the commit that removed this member: nothing follows
			}
		}
		if len(res.Messages) == 0 || cur.Seq >= res.LastSeq || !g.IsActive() {
			break
		}
	}
	if cur.Seq > start {
		if _, err := call(ctx, c, "Ack", c.rpc.Ack, &mlsdv1.AckRequest{GroupId: gid, Seq: cur.Seq}); err != nil && !errors.Is(err, ErrNotMember) {
			return n, err
		}
	}
	if !g.IsActive() {
		return n, removed(g)
	}
	return n, nil
}

// apply handles env, the entry after cur, and moves cur past it.
func (c *Client) apply(ctx context.Context, g *mls.Group, cur *cursor, env *mlsdv1.Envelope, h Handler) error {
	if env.Seq <= cur.Seq {
		return nil // seen
	}
	if env.Seq != cur.Seq+1 {
		return fmt.Errorf("%w: entry %d follows entry %d", ErrUnexpected, env.Seq, cur.Seq)
	}
	if err := c.handle(ctx, g, cur, env, h); err != nil {
		return err
	}
	cur.Seq = env.Seq
	return c.setCursor(ctx, g.GroupID(), *cur)
}

func (c *Client) handle(ctx context.Context, g *mls.Group, cur *cursor, env *mlsdv1.Envelope, h Handler) error {
	own := bytes.Equal(env.Sender, c.Identity())
	ev := Event{Group: g, Seq: env.Seq, Epoch: env.Epoch, Kind: env.Kind, Sender: env.Sender}
	// The epoch that counts is the message's own (RFC 9420, Section 6),
	// not the service's label, which must match it.
	msg, err := mls.ParseMessage(env.Message)
	switch {
	case err != nil && env.Epoch < cur.From:
		return nil // sent before this member joined: none of its business
	case err != nil && env.Kind == mlsdv1.Kind_KIND_APPLICATION && !own:
		ev.Err = err
		return call0(h, ev)
	case err != nil:
		return fmt.Errorf("dsclient: entry %d: %w", env.Seq, err)
	case msg.Epoch() != env.Epoch:
		return fmt.Errorf("%w: entry %d is labelled epoch %d but its message is of epoch %d", ErrUnexpected, env.Seq, env.Epoch, msg.Epoch())
	}
	epoch := msg.Epoch()
	switch {
	case epoch < cur.From:
		return nil // sent before this member joined
	case !g.IsActive():
		return removed(g)
	case env.Kind == mlsdv1.Kind_KIND_COMMIT && epoch < g.Epoch():
		return nil // merged already: this member's own, or read before a restart
	case env.Kind == mlsdv1.Kind_KIND_COMMIT && epoch > g.Epoch():
		return fmt.Errorf("%w: a commit of epoch %d, but the group is at epoch %d", ErrUnexpected, epoch, g.Epoch())
	case env.Kind == mlsdv1.Kind_KIND_PROPOSAL && (own || epoch != g.Epoch()):
		return nil // this member's own (queued when made), or moot
	case env.Kind == mlsdv1.Kind_KIND_APPLICATION && own:
		return nil
	}
	ev.Message = msg
	if env.Kind == mlsdv1.Kind_KIND_COMMIT && g.PendingCommit() != nil {
		posted, err := c.posted(ctx, g.GroupID())
		if err != nil {
			return err
		}
		if own && posted != nil && bytes.Equal(posted, env.Message) {
			// This member's commit, accepted by the service, whose answer
			// never arrived: merge it now.
			if err := g.MergePendingCommit(ctx); err != nil {
				return fmt.Errorf("dsclient: merging own commit of entry %d: %w", env.Seq, err)
			}
			return c.setPosted(ctx, g.GroupID(), nil)
		}
		if err := g.ClearPendingCommit(ctx); err != nil {
			return fmt.Errorf("dsclient: clearing the pending commit that lost: %w", err)
		}
	}
	p, err := g.Process(ctx, msg)
	if err != nil {
		if env.Kind == mlsdv1.Kind_KIND_APPLICATION {
			ev.Err = err
			return call0(h, ev)
		}
		return fmt.Errorf("dsclient: entry %d (%v, epoch %d): %w", env.Seq, env.Kind, env.Epoch, err)
	}
	ev.Processed = p
	switch p.Kind {
	case mls.KindCommit:
		if err := call0(h, ev); err != nil {
			return err
		}
		if err := g.MergeStagedCommit(ctx, p.Commit); err != nil {
			return fmt.Errorf("dsclient: merging the commit of entry %d: %w", env.Seq, err)
		}
		return nil
	case mls.KindProposal:
		if err := g.StorePendingProposal(ctx, p.Proposal); err != nil {
			return fmt.Errorf("dsclient: storing the proposal of entry %d: %w", env.Seq, err)
		}
	}
	return call0(h, ev)
}

// removed is the error of an operation on a group this member was removed
// from (it matches ErrRemoved and mls.ErrInactive).
func removed(g *mls.Group) error {
	return fmt.Errorf("%w (epoch %d): %w", ErrRemoved, g.Epoch(), mls.ErrInactive)
}

func call0(h Handler, ev Event) error {
	if h == nil {
		return nil
	}
	return h(ev)
}

// Subscribe follows the group's log until ctx is done: it reads what is
// stored after the cursor, then handles each new entry as the service
// streams it. A broken stream is opened again after a pause. It returns
// ctx's error; an error matching ErrRemoved once the commit that removed
// this member is merged (h sees it, whether it came while following or
// was read later); one matching ErrNotMember when the service no longer
// counts this member in otherwise (its leaf replaced by a resync from
// another device); or the first error from h or from handling an entry.
func (c *Client) Subscribe(ctx context.Context, g *mls.Group, h Handler) error {
	pause := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := c.follow(ctx, g, h)
		switch {
		case ctx.Err() != nil:
		case err == nil:
			pause = 50 * time.Millisecond
		case !isConnect(err) || errors.Is(err, ErrNotMember) || errors.Is(err, ErrUnknownGroup):
			// Not a broken connection: the handler's error, the store's,
			// ErrRemoved, or a refusal that will not go away.
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
	return ctx.Err()
}

func isConnect(err error) bool {
	var ce *connect.Error
	var e *Error
	return errors.As(err, &ce) || errors.As(err, &e)
}

func (c *Client) follow(ctx context.Context, g *mls.Group, h Handler) error {
	unlock := c.lock(g.GroupID())
	_, err := c.sync(ctx, g, h)
	var cur cursor
	if err == nil {
		cur, err = c.cursor(ctx, g.GroupID())
	}
	unlock()
	if err != nil {
		return err
	}
	stream, err := c.rpc.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: g.GroupID(), AfterSeq: cur.Seq}))
	if err != nil {
		return c.streamErr(ctx, err)
	}
	defer stream.Close()
	for stream.Receive() {
		env := stream.Msg()
		unlock := c.lock(g.GroupID())
		cur, err := c.cursor(ctx, g.GroupID())
		if err == nil {
			if env.Seq == cur.Seq+1 {
				err = c.apply(ctx, g, &cur, env, h)
			} else if env.Seq > cur.Seq {
				_, err = c.sync(ctx, g, h) // a gap: read it from the log
			}
		}
		unlock()
		if err != nil {
			return err
		}
		if !g.IsActive() {
			return removed(g)
		}
	}
	if err := stream.Err(); errors.Is(wrap("Subscribe", err), ErrNotMember) {
		// Removed by a commit the stream has not sent: read the log,
		// which a removed member may read up to that commit.
		unlock := c.lock(g.GroupID())
		_, serr := c.sync(ctx, g, h)
		unlock()
		if serr != nil {
			return serr
		}
	}
	return c.streamErr(ctx, stream.Err())
}

// streamErr wraps a stream's error, and gets a new token when it was
// refused for want of one.
func (c *Client) streamErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if connect.CodeOf(err) == connect.CodeUnauthenticated {
		if aerr := c.Authenticate(ctx); aerr != nil {
			return aerr
		}
	}
	return wrap("Subscribe", err)
}

// Joined is a Welcome taken from the mailbox.
type Joined struct {
	// GroupID is the joined group's, or, if Err, the one the service
	// filed the Welcome under.
	GroupID []byte
	Staged  *mls.StagedWelcome // nil if Err
	Group   *mls.Group
	// Err is why the Welcome could not be used; it is dropped from the
	// mailbox all the same (a Welcome that fails now will never succeed).
	Err error
}

// Join reads the client's Welcome mailbox (RFC 9420, Section 12.4.3.1),
// joins each group it is welcomed to with the ratchet tree the committer
// posted, and removes each Welcome from the mailbox. A Welcome that cannot
// be used comes back with Err set: one for none of this client's key
// packages (published by an earlier installation under the same identity,
// whose private keys are gone) matches mls.ErrNoKeyPackage, and
// JoinExternal with resync takes the place it was meant for.
func (c *Client) Join(ctx context.Context, opts mls.JoinConfig) ([]Joined, error) {
	res, err := call(ctx, c, "FetchWelcomes", c.rpc.FetchWelcomes, &mlsdv1.FetchWelcomesRequest{})
	if err != nil {
		return nil, err
	}
	var out []Joined
	for _, w := range res.Welcomes {
		j := c.join(ctx, w, opts)
		if errors.Is(j.Err, ErrUnexpected) || ctx.Err() != nil {
			return out, j.Err // the store failed: keep the Welcome for later
		}
		if _, err := call(ctx, c, "AckWelcome", c.rpc.AckWelcome, &mlsdv1.AckWelcomeRequest{Id: w.Id}); err != nil {
			return out, err
		}
		out = append(out, j)
	}
	return out, nil
}

func (c *Client) join(ctx context.Context, w *mlsdv1.WelcomeEnvelope, opts mls.JoinConfig) Joined {
	j := c.joinWelcome(ctx, w, opts)
	if j.GroupID = w.GroupId; j.Group != nil {
		j.GroupID = j.Group.GroupID()
	}
	return j
}

func (c *Client) joinWelcome(ctx context.Context, w *mlsdv1.WelcomeEnvelope, opts mls.JoinConfig) Joined {
	msg, err := mls.ParseMessage(w.Welcome)
	if err != nil {
		return Joined{Err: fmt.Errorf("dsclient: Welcome %d: %w", w.Id, err)}
	}
	sw, err := c.mc.StageWelcome(ctx, msg, mls.WelcomeOptions{JoinConfig: opts, RatchetTree: w.RatchetTree})
	if err != nil {
		return Joined{Err: fmt.Errorf("dsclient: Welcome %d: %w", w.Id, err)}
	}
	defer c.lock(sw.GroupID())()
	g, err := sw.Join(ctx)
	if err != nil {
		return Joined{Staged: sw, Err: fmt.Errorf("dsclient: joining from Welcome %d: %w", w.Id, err)}
	}
	if err := c.setCursor(ctx, g.GroupID(), cursor{From: g.Epoch()}); err != nil {
		return Joined{Staged: sw, Group: g, Err: fmt.Errorf("%w: %w", ErrUnexpected, err)}
	}
	return Joined{Staged: sw, Group: g}
}

// GroupInfo returns the group's latest GroupInfo and ratchet tree as the
// service holds them, with its epoch and last seq.
func (c *Client) GroupInfo(ctx context.Context, groupID []byte) (*mlsdv1.GetGroupInfoResponse, error) {
	return call(ctx, c, "GetGroupInfo", c.rpc.GetGroupInfo, &mlsdv1.GetGroupInfoRequest{GroupId: groupID})
}

// JoinExternal joins the group by an external commit (RFC 9420, Section
// 12.4.3.2) from the GroupInfo and ratchet tree the service holds, where
// the group allows external joins. With resync, the commit also removes the
// leaf of this client's identity: recovery after state loss (RFC 9750,
// Section 6.6; the service allows a resync even where external joins are
// not allowed). A commit that loses to another is made again from a fresh
// GroupInfo, at most Options.MaxAttempts times. The joined group reads its
// log from the epoch it joined at.
func (c *Client) JoinExternal(ctx context.Context, groupID []byte, resync bool) (*mls.Group, *Posted, error) {
	defer c.lock(groupID)()
	for attempt := 1; attempt <= c.attempts; attempt++ {
		info, err := c.GroupInfo(ctx, groupID)
		if err != nil {
			return nil, nil, err
		}
		gi, err := mls.ParseMessage(info.GroupInfo)
		if err != nil {
			return nil, nil, fmt.Errorf("dsclient: the service's GroupInfo: %w", err)
		}
		opts := mls.ExternalJoinOptions{RatchetTree: info.RatchetTree}
		if resync {
			leaf, err := c.ownLeaf(ctx, gi, info.RatchetTree)
			if err != nil {
				return nil, nil, err
			}
			opts.RemoveLeaf = &leaf
		}
		g, res, err := c.mc.JoinExternal(ctx, gi, opts)
		if err != nil {
			return nil, nil, err
		}
		req := &mlsdv1.PostCommitRequest{GroupId: groupID}
		if req.Commit, err = res.Commit.MarshalBinary(); err == nil {
			if req.GroupInfo, err = res.GroupInfo.MarshalBinary(); err == nil {
				req.RatchetTree, err = g.ExportRatchetTree()
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("dsclient: encoding the external commit: %w", err)
		}
		pr, err := call(ctx, c, "PostCommit", c.rpc.PostCommit, req)
		if r := Reason(err); r == mlsdv1.Error_REASON_COMMIT_CONFLICT || r == mlsdv1.Error_REASON_WRONG_EPOCH {
			continue // the stored state is replaced by the next attempt
		}
		if err != nil {
			return nil, nil, err
		}
		if err := c.setCursor(ctx, groupID, cursor{From: g.Epoch()}); err != nil {
			return nil, nil, err
		}
		return g, &Posted{Result: res, Seq: pr.Seq, Epoch: pr.Epoch, Attempts: attempt, Size: len(req.Commit)}, nil
	}
	return nil, nil, ErrTooManyAttempts
}

// ownLeaf finds the leaf of this client's identity in the group of gi.
func (c *Client) ownLeaf(ctx context.Context, gi *mls.Message, tree []byte) (uint32, error) {
	pg, err := mls.NewPublicGroup(ctx, memory.New(), credential.AcceptAll, gi, mls.PublicGroupOptions{RatchetTree: tree})
	if err != nil {
		return 0, fmt.Errorf("dsclient: the service's GroupInfo: %w", err)
	}
	id := c.mc.Credential().Identity()
	for _, m := range pg.Members() {
		if bytes.Equal(m.Credential.Identity(), id) {
			return m.Index, nil
		}
	}
	return 0, fmt.Errorf("dsclient: %w: no leaf of %q to resync", mls.ErrNotFound, id)
}
