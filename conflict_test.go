package mls_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls"
)

// TestCommitConflict plays the race of reference/faq.txt: Alice and Bob
// commit in the same epoch; the delivery service orders Alice's first.
// Bob processes Alice's commit (his own pending commit is dropped when he
// merges), Carol rejects Bob's late commit as a past-epoch message, and Bob
// can commit again in the new epoch.
func TestCommitConflict(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, true, "alice", "bob", "carol")
	alice, bob, carol := cs[0], cs[1], cs[2]
	winner, err := alice.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	loser, err := bob.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	carol.processCommit(t, winner.Commit)
	bob.processCommit(t, winner.Commit)
	if bob.group.PendingCommit() != nil {
		t.Fatal("bob's losing commit is still pending after merging the winner")
	}
	if _, err := carol.group.Process(ctx, roundTrip(t, loser.Commit)); !errors.Is(err, mls.ErrPastEpoch) {
		t.Fatalf("late commit: got %v, want ErrPastEpoch", err)
	}
	agree(t, alice, bob, carol)
	// Bob retries in the new epoch.
	retry := commitAndFan(t, bob, mls.CommitOptions{ForcePath: true}, alice, carol)
	if retry.Commit == nil {
		t.Fatal("no retry commit")
	}
	agree(t, alice, bob, carol)
}

// TestClearPendingCommit: a committer whose commit was refused clears it
// and stays usable in the same epoch.
func TestClearPendingCommit(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	epoch := alice.group.Epoch()
	if _, err := alice.group.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.SelfUpdate(ctx); !errors.Is(err, mls.ErrPendingCommit) {
		t.Fatalf("second commit while pending: got %v", err)
	}
	if _, err := alice.group.Seal(ctx, []byte("x"), nil); !errors.Is(err, mls.ErrPendingCommit) {
		t.Fatalf("seal while pending: got %v", err)
	}
	if err := alice.group.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if alice.group.Epoch() != epoch {
		t.Fatal("ClearPendingCommit changed the epoch")
	}
	m, err := alice.group.Seal(ctx, []byte("still here"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bob.group.Process(ctx, roundTrip(t, m))
	if err != nil || string(p.ApplicationData) != "still here" {
		t.Fatalf("bob: %v %v", p, err)
	}
	if err := alice.group.MergePendingCommit(ctx); !errors.Is(err, mls.ErrNoPendingCommit) {
		t.Fatalf("merge without pending: got %v", err)
	}
}

// TestRemoveOperation checks every RemoveKind from the point of view of the
// members concerned.
func TestRemoveOperation(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "carol", "dave")
	alice, bob, carol, dave := cs[0], cs[1], cs[2], cs[3]

	// Alice removes Carol: Alice "we removed them", Carol "we were
	// removed", Bob "they were removed".
	res, err := alice.group.RemoveMembers(ctx, carol.group.OwnLeafIndex())
	if err != nil {
		t.Fatal(err)
	}
	kindOf := func(c *client, m *mls.Message) mls.RemoveKind {
		t.Helper()
		p, err := c.group.Process(ctx, roundTrip(t, m))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rs := p.Commit.RemoveProposals()
		if len(rs) != 1 {
			t.Fatalf("%s: %d remove proposals", c.name, len(rs))
		}
		op, err := mls.NewRemoveOperation(rs[0], c.group)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.group.MergeStagedCommit(ctx, p.Commit); err != nil {
			t.Fatal(err)
		}
		return op.Kind
	}
	pc := alice.group.PendingCommit()
	op, err := mls.NewRemoveOperation(pc.RemoveProposals()[0], alice.group)
	if err != nil || op.Kind != mls.WeRemovedThem {
		t.Fatalf("alice: %v %v", op, err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if k := kindOf(bob, res.Commit); k != mls.TheyWereRemovedBy {
		t.Fatalf("bob: %v", k)
	}
	if k := kindOf(carol, res.Commit); k != mls.WeWereRemovedBy {
		t.Fatalf("carol: %v", k)
	}
	if k := kindOf(dave, res.Commit); k != mls.TheyWereRemovedBy {
		t.Fatalf("dave: %v", k)
	}

	// Dave leaves and Bob commits it: Dave "we left", Alice "they left".
	leave, _, err := dave.group.LeaveGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		q := c.receiveProposal(t, leave)
		if err := c.group.StorePendingProposal(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	res, err = bob.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if k := kindOf(alice, res.Commit); k != mls.TheyLeft {
		t.Fatalf("alice: %v", k)
	}
	if k := kindOf(dave, res.Commit); k != mls.WeLeft {
		t.Fatalf("dave: %v", k)
	}
	if dave.group.IsActive() {
		t.Fatal("dave still active after leaving")
	}
	agree(t, alice, bob)
}

// TestLeafNodeParameters: a self-update can change the leaf's
// capabilities and extensions, and the others see the new leaf.
func TestLeafNodeParameters(t *testing.T) {
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	caps := &mls.Capabilities{Extensions: []uint16{0xff00}}
	commitAndFan(t, alice, mls.CommitOptions{LeafCapabilities: caps, LeafExtensions: []mls.Extension{{Type: 0xff00, Data: []byte{1, 2}}}}, bob)
	agree(t, alice, bob)
	// A leaf extension the capabilities do not list is refused.
	_, err := alice.group.Commit(context.Background(), mls.CommitOptions{LeafExtensions: []mls.Extension{{Type: 0xff01, Data: []byte{}}}})
	if err == nil {
		t.Fatal("leaf extension outside the capabilities accepted")
	}
}
