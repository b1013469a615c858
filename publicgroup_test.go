package mls_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// follower is a PublicGroup in the tests, as a delivery service holds it.
type follower struct {
	t  testing.TB
	pg *mls.PublicGroup
}

// see processes a handshake message: proposals are kept, commits merged.
func (f *follower) see(m *mls.Message) *mls.PublicProcessed {
	f.t.Helper()
	ctx := context.Background()
	p, err := f.pg.Process(ctx, roundTrip(f.t, m))
	if err != nil {
		f.t.Fatalf("follower: Process: %v", err)
	}
	switch p.Kind {
	case mls.KindProposal:
		if err := f.pg.StorePendingProposal(ctx, p.Proposal); err != nil {
			f.t.Fatalf("follower: StorePendingProposal: %v", err)
		}
	case mls.KindCommit:
		if err := f.pg.Merge(ctx, p.Commit); err != nil {
			f.t.Fatalf("follower: Merge: %v", err)
		}
	}
	return p
}

// agrees checks that the follower and every member are at one epoch with
// one ratchet tree (so one tree hash) and one member list.
func (f *follower) agrees(step int, members []*client) {
	f.t.Helper()
	tree, err := f.pg.ExportRatchetTree()
	if err != nil {
		f.t.Fatal(err)
	}
	ms := f.pg.Members()
	want := memberList(ms)
	for _, m := range ms {
		if got, ok := f.pg.Member(m.Index); !ok || !bytes.Equal(got.SignatureKey, m.SignatureKey) {
			f.t.Fatalf("step %d: Member(%d) = %v, %v; Members lists it", step, m.Index, ok, got.SignatureKey)
		}
	}
	// A leaf index past the tree (2^31+1 doubles to node 2 in 32 bits) is
	// no member.
	if _, ok := f.pg.Member(1<<31 + 1); ok {
		f.t.Fatalf("step %d: Member(2^31+1) found a member", step)
	}
	for _, c := range members {
		if c.group.Epoch() != f.pg.Epoch() {
			f.t.Fatalf("step %d: %s at epoch %d, follower at %d", step, c.name, c.group.Epoch(), f.pg.Epoch())
		}
		got, err := c.group.ExportRatchetTree()
		if err != nil {
			f.t.Fatal(err)
		}
		if !bytes.Equal(got, tree) {
			f.t.Fatalf("step %d: %s and the follower hold different ratchet trees", step, c.name)
		}
		if l := memberList(c.group.Members()); l != want {
			f.t.Fatalf("step %d: %s sees members %s, the follower %s", step, c.name, l, want)
		}
	}
}

func memberList(ms []mls.Member) string {
	var b bytes.Buffer
	for _, m := range ms {
		fmt.Fprintf(&b, "%d:%s:%x ", m.Index, m.Credential.Identity(), m.SignatureKey[:4])
	}
	return b.String()
}

// TestPublicGroupFollowsRandomScenario: a PublicGroup follows a group of up
// to 50 members through 300 epochs of public handshakes (adds, removes,
// self-updates, Update proposals committed by others, external joins and
// external proposals from the delivery service), and at every epoch its
// ratchet tree (so its tree hash) and member list equal every member's.
func TestPublicGroupFollowsRandomScenario(t *testing.T) {
	ctx := context.Background()
	size, epochs := 50, 300
	if testing.Short() {
		size, epochs = 16, 60
	}
	rng := mathrand.New(mathrand.NewPCG(10, 2026))
	s, err := ciphersuite.Lookup(regressSuite)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dsPub, err := s.SignaturePublicKey(ds)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mls.GroupConfig{ExternalSenders: []mls.ExternalSender{{SignatureKey: dsPub, Credential: credential.NewBasic([]byte("ds"))}}}
	next := 0
	newMember := func() *client {
		next++
		return newClient(t, fmt.Sprintf("m%d", next), regressSuite)
	}
	first := newMember()
	if first.group, err = clientOf(first.store, first.id).CreateGroup(ctx, regressSuite, cfg); err != nil {
		t.Fatal(err)
	}
	pgStore := memory.New()
	pg, err := first.group.PublicGroup(ctx, pgStore, credential.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{t: t, pg: pg}
	members := []*client{first}
	join := func(res *mls.CommitResult, committer *client, joiners []*client) {
		rt, err := committer.group.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range joiners {
			j.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
		}
	}
	// Grow to the size in one commit.
	var joiners []*client
	var kps []*mls.KeyPackage
	for range size - 1 {
		j := newMember()
		joiners = append(joiners, j)
		kps = append(kps, j.keyPackage(t, regressSuite))
	}
	res := commitAndFan(t, first, mls.CommitOptions{Add: kps}, members[1:]...)
	f.see(res.Commit)
	join(res, first, joiners)
	members = append(members, joiners...)
	f.agrees(0, members)

	counts := map[string]int{}
	for step := 1; step <= epochs; step++ {
		if rng.IntN(10) == 0 {
			// The delivery service restarts: its PublicGroup comes back
			// from the store.
			if f.pg, err = mls.LoadPublicGroup(ctx, pgStore, credential.AcceptAll, first.group.GroupID(), mls.PublicGroupOptions{}); err != nil {
				t.Fatalf("step %d: LoadPublicGroup: %v", step, err)
			}
			counts["restart"]++
		}
		committer := members[rng.IntN(len(members))]
		others := slices.DeleteFunc(slices.Clone(members), func(c *client) bool { return c == committer })
		var op string
		switch r := rng.IntN(6); {
		case r == 0:
			op = "self-update"
			res, err = committer.group.Commit(ctx, mls.CommitOptions{ForcePath: true})
		case r == 1 && len(members) < size:
			op = "add"
			j := newMember()
			res, err = committer.group.Commit(ctx, mls.CommitOptions{Add: []*mls.KeyPackage{j.keyPackage(t, regressSuite)}})
			joiners = []*client{j}
		case (r == 1 || r == 2) && len(others) > 1:
			op = "remove"
			victim := others[rng.IntN(len(others))]
			res, err = committer.group.Commit(ctx, mls.CommitOptions{Remove: []uint32{victim.group.OwnLeafIndex()}})
			members = slices.DeleteFunc(members, func(c *client) bool { return c == victim })
		case r == 3 && len(others) > 0:
			op = "update proposal"
			proposer := others[rng.IntN(len(others))]
			m, _, err := proposer.group.ProposeSelfUpdate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range members {
				if c != proposer {
					c.receiveProposal(t, m)
				}
			}
			f.see(m)
			res, err = committer.group.CommitPendingProposals(ctx)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		case r == 4 && len(members) < size:
			op = "external join"
			j := newMember()
			gi, err := committer.group.ExportGroupInfo(rng.IntN(2) == 0)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := committer.group.ExportRatchetTree()
			if err != nil {
				t.Fatal(err)
			}
			res = j.joinExternal(t, gi, mls.ExternalJoinOptions{RatchetTree: rt})
			f.see(res.Commit)
			for _, c := range members {
				c.processCommit(t, res.Commit)
			}
			members = append(members, j)
			counts[op]++
			f.agrees(step, members)
			continue
		case len(others) > 1:
			op = "external proposal"
			victim := others[rng.IntN(len(others))]
			m, perr := mls.NewExternalProposal(committer.group.GroupID(), committer.group.Epoch(), regressSuite, 0, ds, mls.RemoveProposal(victim.group.OwnLeafIndex()))
			if perr != nil {
				t.Fatal(perr)
			}
			for _, c := range members {
				c.receiveProposal(t, m)
			}
			if p := f.see(m); p.Sender.Type != mls.SenderExternal || p.MembershipTagUnchecked {
				t.Fatalf("step %d: external proposal seen from %v (membership tag unchecked %v)", step, p.Sender, p.MembershipTagUnchecked)
			}
			res, err = committer.group.CommitPendingProposals(ctx)
			members = slices.DeleteFunc(members, func(c *client) bool { return c == victim })
		default:
			op = "self-update"
			res, err = committer.group.Commit(ctx, mls.CommitOptions{ForcePath: true})
		}
		if err != nil {
			t.Fatalf("step %d: %s: %v", step, op, err)
		}
		counts[op]++
		if err := committer.group.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		p, err := f.pg.Process(ctx, roundTrip(t, res.Commit))
		if err != nil {
			t.Fatalf("step %d: %s: follower: %v", step, op, err)
		}
		if !p.MembershipTagUnchecked || p.Kind != mls.KindCommit {
			t.Fatalf("step %d: member commit processed as %v, membership tag unchecked %v", step, p.Kind, p.MembershipTagUnchecked)
		}
		if err := f.pg.Merge(ctx, p.Commit); err != nil {
			t.Fatal(err)
		}
		for _, c := range members {
			if c != committer {
				c.processCommit(t, res.Commit)
			}
		}
		if op == "add" {
			join(res, committer, joiners)
			members = append(members, joiners...)
		}
		f.agrees(step, members)
	}
	t.Logf("%d epochs, %d members at the end (%d at most): %v", epochs, len(members), size, counts)
}

// TestPublicGroupPrivateMessage: a PublicGroup reads only the header of a
// PrivateMessage and says it cannot follow it.
func TestPublicGroupPrivateMessage(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	pg, err := cs[0].group.PublicGroup(ctx, memory.New(), credential.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cs[0].group.Seal(ctx, []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pg.Process(ctx, roundTrip(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Encrypted || p.Kind != mls.KindApplication || p.Epoch != cs[0].group.Epoch() || !bytes.Equal(p.GroupID, cs[0].group.GroupID()) {
		t.Fatalf("PrivateMessage seen as %+v", p)
	}
	// A Welcome is not a group message.
	if _, err := pg.Process(ctx, nil); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("nil message: %v", err)
	}
}

// FuzzPublicGroupProcess feeds arbitrary bytes to a PublicGroup following
// the fuzz fixture's group: nothing may panic, every error has a class, and
// processing changes nothing (commits are only staged). The corpus holds
// the fixture's real messages (TestGenerateFuzzCorpus).
func FuzzPublicGroupProcess(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	ctx := context.Background()
	var pg *mls.PublicGroup
	var before string
	state := func(t *testing.T) string {
		rt, err := pg.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d %x %x %d", pg.Epoch(), rt, pg.GroupContext(), len(pg.PendingProposals()))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if pg == nil {
			fx := newProcessFixture(t)
			var err error
			if pg, err = fx.bob.group.PublicGroup(ctx, memory.New(), credential.AcceptAll); err != nil {
				t.Fatal(err)
			}
			before = state(t)
		}
		m, err := mls.ParseMessage(b)
		if err != nil {
			return
		}
		_, err = pg.Process(ctx, m)
		if err != nil && errorClass(err) == "" {
			t.Fatalf("error outside the classes: %v (%T)", err, err)
		}
		if after := state(t); after != before {
			t.Fatalf("processing changed the PublicGroup (err %v)", err)
		}
	})
}

// TestPublicGroupStore: a PublicGroup's store holds what it needs to go on
// after a restart, a commit writes the changed nodes only, and two handles
// on one store cannot both advance it.
func TestPublicGroupStore(t *testing.T) {
	ctx := context.Background()
	names := make([]string, 32)
	for i := range names {
		names[i] = fmt.Sprint("m", i)
	}
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, names...)
	store := memory.New()
	pg, err := cs[0].group.PublicGroup(ctx, store, credential.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	gid := cs[0].group.GroupID()
	treeBytes, err := pg.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		committer := cs[1+i]
		res := commitAndFan(t, committer, mls.CommitOptions{ForcePath: true}, slices.DeleteFunc(slices.Clone(cs), func(c *client) bool { return c == committer })...)
		p, err := pg.Process(ctx, roundTrip(t, res.Commit))
		if err != nil {
			t.Fatal(err)
		}
		before := store.Stats()
		if err := pg.Merge(ctx, p.Commit); err != nil {
			t.Fatal(err)
		}
		w := store.Stats().Sub(before)
		// The record, the version and the committer's direct path (leaf
		// and 5 parents in a 32-leaf tree); a whole tree is 63 nodes.
		if w.Puts > 8 || w.BytesWritten > uint64(len(treeBytes))/2 {
			t.Fatalf("merge %d wrote %d records, %d bytes (the tree is %d bytes)", i, w.Puts, w.BytesWritten, len(treeBytes))
		}
		// A restart between any two commits.
		again, err := mls.LoadPublicGroup(ctx, store, credential.AcceptAll, gid, mls.PublicGroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := again.ExportRatchetTree()
		b, _ := cs[0].group.ExportRatchetTree()
		if !bytes.Equal(a, b) || again.Epoch() != cs[0].group.Epoch() || !bytes.Equal(again.GroupContext(), pg.GroupContext()) {
			t.Fatalf("reloaded PublicGroup differs from the group after commit %d", i)
		}
		pg = again
	}
	// Two handles: the second to save is stale, and stays refused.
	h1, err := mls.LoadPublicGroup(ctx, store, credential.AcceptAll, gid, mls.PublicGroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := mls.LoadPublicGroup(ctx, store, credential.AcceptAll, gid, mls.PublicGroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := commitAndFan(t, cs[0], mls.CommitOptions{ForcePath: true}, cs[1:]...)
	p1, err := h1.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := h2.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Merge(ctx, p1.Commit); err != nil {
		t.Fatal(err)
	}
	if err := h2.Merge(ctx, p2.Commit); !errors.Is(err, mls.ErrStaleState) {
		t.Fatalf("second handle's merge: %v, want ErrStaleState", err)
	}
	if _, err := h2.Process(ctx, roundTrip(t, res.Commit)); !errors.Is(err, mls.ErrStaleState) {
		t.Fatalf("stale handle's Process: %v, want ErrStaleState", err)
	}
	// Nothing of another group, and a damaged record is reported.
	if _, err := mls.LoadPublicGroup(ctx, store, credential.AcceptAll, []byte("nope"), mls.PublicGroupOptions{}); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("LoadPublicGroup of an unknown group: %v", err)
	}
	if err := store.Update(ctx, func(tx storage.Tx) error { return tx.Put("publicgroups", gid, []byte("garbage")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := mls.LoadPublicGroup(ctx, store, credential.AcceptAll, gid, mls.PublicGroupOptions{}); !errors.Is(err, mls.ErrCorruptState) {
		t.Fatalf("LoadPublicGroup of a damaged record: %v", err)
	}
	if err := mls.DeletePublicGroup(ctx, store, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := mls.LoadPublicGroup(ctx, store, credential.AcceptAll, gid, mls.PublicGroupOptions{}); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("LoadPublicGroup after DeletePublicGroup: %v", err)
	}
}
