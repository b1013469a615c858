package ds_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ds"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// twoMembers: alice's group (public handshakes unless mode says otherwise)
// with bob added.
func twoMembers(t *testing.T, e *env, mode mlsdv1.HandshakeMode, allowExternal bool) (alice, bob *user) {
	t.Helper()
	alice, bob = e.login("alice"), e.login("bob")
	bob.private = mode == mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED
	kp, _ := bob.keyPackage(mls.KeyPackageOptions{})
	bob.publish(kp)
	alice.createGroup(mode, allowExternal)
	alice.add(bob)
	return alice, bob
}

// Two members commit for the same epoch: the first wins, the second gets
// COMMIT_CONFLICT with the current epoch and last seq and changes nothing
// (its Welcome is not delivered); after fetching and processing the
// winner, its retry is accepted.
func TestCommitConflict(t *testing.T) { eachBackend(t, testCommitConflict) }

func testCommitConflict(t *testing.T, b backend) {
	for _, mode := range []mlsdv1.HandshakeMode{mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnvB(t, b, ds.Options{})
			ctx := t.Context()
			alice, bob := twoMembers(t, e, mode, false)
			carol := e.login("carol")
			kp1, _ := carol.keyPackage(mls.KeyPackageOptions{})
			kp2, _ := carol.keyPackage(mls.KeyPackageOptions{})
			carol.publish(kp1, kp2)

			// Both commit in epoch 1: alice updates, bob adds carol.
			ra, err := alice.group.SelfUpdate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ckp, err := bob.fetchKP(carol)
			if err != nil {
				t.Fatal(err)
			}
			rb, err := bob.group.AddMembers(ctx, ckp)
			if err != nil {
				t.Fatal(err)
			}
			reqA, reqB := alice.commitRequest(alice.group, ra), bob.commitRequest(bob.group, rb)
			if mode == mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED {
				if m, _ := mls.ParseMessage(reqA.Commit); m.WireFormat() != mls.WireFormatPrivateMessage {
					t.Fatalf("commit is a %v in encrypted mode", m.WireFormat())
				}
			}
			resA, err := alice.postCommit(reqA)
			if err != nil {
				t.Fatalf("first commit: %v", err)
			}
			if resA.Epoch != 2 || resA.Seq != 2 {
				t.Fatalf("first commit: epoch %d seq %d; want 2 2", resA.Epoch, resA.Seq)
			}
			if err := alice.group.MergePendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
			before := e.snap(alice.group.GroupID())
			_, err = bob.postCommit(reqB)
			d := wantReason(t, err, connect.CodeAborted, mlsdv1.Error_REASON_COMMIT_CONFLICT)
			if d.CurrentEpoch != 2 || d.LastSeq != 2 {
				t.Errorf("conflict says epoch %d last seq %d; want 2 2", d.CurrentEpoch, d.LastSeq)
			}
			e.unchanged(before)
			w, err := carol.api.FetchWelcomes(ctx, connect.NewRequest(&mlsdv1.FetchWelcomesRequest{}))
			if err != nil || len(w.Msg.Welcomes) != 0 {
				t.Fatalf("carol has %d Welcomes (%v) from a losing commit", len(w.Msg.Welcomes), err)
			}

			// bob catches up and retries.
			if err := bob.group.ClearPendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
			bob.process(bob.fetch(1).Messages)
			if bob.group.Epoch() != 2 || !bytes.Equal(bob.group.EpochAuthenticator(), alice.group.EpochAuthenticator()) {
				t.Fatalf("bob at epoch %d, not in alice's epoch 2", bob.group.Epoch())
			}
			ckp, err = bob.fetchKP(carol)
			if err != nil {
				t.Fatal(err)
			}
			res := bob.commit(bob.group.AddMembers(ctx, ckp))
			if res.Epoch != 3 || res.Seq != 3 {
				t.Fatalf("retry: epoch %d seq %d; want 3 3", res.Epoch, res.Seq)
			}
			// Another identity cannot delete carol's Welcome.
			w, err = carol.api.FetchWelcomes(ctx, connect.NewRequest(&mlsdv1.FetchWelcomesRequest{}))
			if err != nil || len(w.Msg.Welcomes) != 1 {
				t.Fatalf("carol has %d Welcomes (%v)", len(w.Msg.Welcomes), err)
			}
			if _, err := bob.api.AckWelcome(ctx, connect.NewRequest(&mlsdv1.AckWelcomeRequest{Id: w.Msg.Welcomes[0].Id})); err != nil {
				t.Fatal(err)
			}
			carol.join()
			w, err = carol.api.FetchWelcomes(ctx, connect.NewRequest(&mlsdv1.FetchWelcomesRequest{}))
			if err != nil || len(w.Msg.Welcomes) != 0 {
				t.Fatalf("carol's mailbox after AckWelcome: %d (%v)", len(w.Msg.Welcomes), err)
			}
			alice.process(alice.fetch(2).Messages)
			for _, u := range []*user{alice, bob, carol} {
				if u.group.Epoch() != 3 || len(u.group.Members()) != 3 || !bytes.Equal(u.group.EpochAuthenticator(), bob.group.EpochAuthenticator()) {
					t.Errorf("%s at epoch %d with %d members", u.name, u.group.Epoch(), len(u.group.Members()))
				}
			}
			// Everyone can talk in epoch 3.
			if _, err := carol.send("hi"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A proposal is posted and validated, then committed by reference; the
// commit goes through a second server on the same store, whose cache is
// empty: it rebuilds the group from the stored GroupInfo and proposals.
func TestProposalThenCommitByReference(t *testing.T) {
	eachBackend(t, testProposalThenCommitByReference)
}

func testProposalThenCommitByReference(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	carol := e.login("carol")
	kp, _ := carol.keyPackage(mls.KeyPackageOptions{})
	carol.publish(kp)

	ckp, err := bob.fetchKP(carol)
	if err != nil {
		t.Fatal(err)
	}
	prop, _, err := bob.group.ProposeAdd(ctx, ckp)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := bob.api.PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: bob.group.GroupID(), Proposal: marshal(t, prop)}))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Msg.Seq != 2 {
		t.Fatalf("proposal seq %d; want 2", pr.Msg.Seq)
	}
	alice.process(alice.fetch(1).Messages)
	if len(alice.group.PendingProposals()) != 1 {
		t.Fatalf("alice has %d pending proposals", len(alice.group.PendingProposals()))
	}

	e2 := e.replica(ds.Options{})
	alice2 := e2.newUser("alice")
	alice2.token, alice2.mc, alice2.group = alice.token, alice.mc, alice.group
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := alice2.postCommit(alice.commitRequest(alice.group, res))
	if err != nil {
		t.Fatalf("commit by reference at a fresh replica: %v", err)
	}
	if out.Epoch != 2 || out.Seq != 3 {
		t.Fatalf("epoch %d seq %d", out.Epoch, out.Seq)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	carol.join()
	bob.process(bob.fetch(2).Messages)
	if bob.group.Epoch() != 2 || len(bob.group.Members()) != 3 {
		t.Fatalf("bob at epoch %d with %d members", bob.group.Epoch(), len(bob.group.Members()))
	}
	// The first server's cache is now behind the store: it catches up.
	if _, err := carol.send("hello from carol"); err != nil {
		t.Fatalf("post after a commit through the other replica: %v", err)
	}

	// A proposal of a past epoch is refused, with the current position.
	before := e.snap(alice.group.GroupID())
	_, err = bob.api.PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: bob.group.GroupID(), Proposal: marshal(t, prop)}))
	d := wantReason(t, err, connect.CodeFailedPrecondition, mlsdv1.Error_REASON_WRONG_EPOCH)
	if d.CurrentEpoch != 2 || d.LastSeq != before.group.LastSeq {
		t.Errorf("WRONG_EPOCH says %d/%d", d.CurrentEpoch, d.LastSeq)
	}
	e.unchanged(before)
}

// External joins: allowed where the group says so (GetGroupInfo for a
// non-member, an external commit), refused elsewhere.
func TestExternalJoin(t *testing.T) { eachBackend(t, testExternalJoin) }

func testExternalJoin(t *testing.T, b backend) {
	ctx := t.Context()
	t.Run("allowed", func(t *testing.T) {
		e := newEnvB(t, b, ds.Options{})
		alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, true)
		dave := e.login("dave")
		gi, err := dave.api.GetGroupInfo(ctx, connect.NewRequest(&mlsdv1.GetGroupInfoRequest{GroupId: alice.group.GroupID()}))
		if err != nil {
			t.Fatal(err)
		}
		gim, err := mls.ParseMessage(gi.Msg.GroupInfo)
		if err != nil {
			t.Fatal(err)
		}
		g, res, err := dave.mc.JoinExternal(ctx, gim, mls.ExternalJoinOptions{RatchetTree: gi.Msg.RatchetTree})
		if err != nil {
			t.Fatal(err)
		}
		dave.group = g
		tree, err := g.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		out, err := dave.postCommit(&mlsdv1.PostCommitRequest{GroupId: g.GroupID(), Commit: marshal(t, res.Commit), GroupInfo: marshal(t, res.GroupInfo), RatchetTree: tree})
		if err != nil {
			t.Fatalf("external commit: %v", err)
		}
		if out.Epoch != 2 {
			t.Fatalf("epoch %d", out.Epoch)
		}
		alice.process(alice.fetch(1).Messages)
		bob.process(bob.fetch(1).Messages)
		if len(alice.group.Members()) != 3 || !bytes.Equal(alice.group.EpochAuthenticator(), g.EpochAuthenticator()) {
			t.Fatalf("alice has %d members after dave's external commit", len(alice.group.Members()))
		}
		if _, err := dave.send("hello"); err != nil {
			t.Fatalf("dave posts as a member: %v", err)
		}

		// A join proposal (new_member_proposal): refused when posted by
		// someone else, accepted from its owner, then committed with a
		// Welcome that reaches erin's mailbox only.
		erin, eve := e.login("erin"), e.login("eve")
		ekpb, ekp := erin.keyPackage(mls.KeyPackageOptions{})
		erin.publish(ekpb)
		gi, err = erin.api.GetGroupInfo(ctx, connect.NewRequest(&mlsdv1.GetGroupInfoRequest{GroupId: alice.group.GroupID()}))
		if err != nil {
			t.Fatal(err)
		}
		gim, err = mls.ParseMessage(gi.Msg.GroupInfo)
		if err != nil {
			t.Fatal(err)
		}
		jp, err := mls.NewJoinProposal(ekp, erin.mc.Signer(), gim)
		if err != nil {
			t.Fatal(err)
		}
		preq := &mlsdv1.PostProposalRequest{GroupId: alice.group.GroupID(), Proposal: marshal(t, jp)}
		before := e.snap(alice.group.GroupID())
		_, err = eve.api.PostProposal(ctx, connect.NewRequest(preq))
		wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_OWNER)
		e.unchanged(before)
		if _, err := erin.api.PostProposal(ctx, connect.NewRequest(preq)); err != nil {
			t.Fatalf("join proposal: %v", err)
		}
		alice.process(alice.fetch(before.group.LastSeq).Messages)
		alice.commit(alice.group.CommitPendingProposals(ctx))
		for _, u := range []*user{alice, bob, dave, eve} {
			w, err := u.api.FetchWelcomes(ctx, connect.NewRequest(&mlsdv1.FetchWelcomesRequest{}))
			if err != nil || len(w.Msg.Welcomes) != 0 {
				t.Fatalf("%s has %d Welcomes (%v)", u.name, len(w.Msg.Welcomes), err)
			}
		}
		erin.join()
		if erin.group.Epoch() != alice.group.Epoch() || len(erin.group.Members()) != 4 {
			t.Fatalf("erin at epoch %d with %d members", erin.group.Epoch(), len(erin.group.Members()))
		}
	})
	t.Run("refused", func(t *testing.T) {
		e := newEnvB(t, b, ds.Options{})
		alice, _ := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
		dave := e.login("dave")
		_, err := dave.api.GetGroupInfo(ctx, connect.NewRequest(&mlsdv1.GetGroupInfoRequest{GroupId: alice.group.GroupID()}))
		wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
		// dave got the GroupInfo elsewhere.
		gim, err := alice.group.ExportGroupInfo(true)
		if err != nil {
			t.Fatal(err)
		}
		g, res, err := dave.mc.JoinExternal(ctx, gim, mls.ExternalJoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tree, _ := g.ExportRatchetTree()
		before := e.snap(alice.group.GroupID())
		_, err = dave.postCommit(&mlsdv1.PostCommitRequest{GroupId: g.GroupID(), Commit: marshal(t, res.Commit), GroupInfo: marshal(t, res.GroupInfo), RatchetTree: tree})
		wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED)
		_, dkp := dave.keyPackage(mls.KeyPackageOptions{})
		jp, err := mls.NewJoinProposal(dkp, dave.mc.Signer(), gim)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dave.api.PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: g.GroupID(), Proposal: marshal(t, jp)}))
		wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED)
		e.unchanged(before)
	})
}

// Non-members may neither post nor read; a member may not post another
// member's commit.
func TestNonMember(t *testing.T) { eachBackend(t, testNonMember) }

func testNonMember(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, true)
	dave := e.login("dave")
	id := alice.group.GroupID()

	msg, err := alice.group.CreateMessage(ctx, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	creq := alice.commitRequest(alice.group, res)
	before := e.snap(id)

	_, err = dave.api.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: id, Message: marshal(t, msg)}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	_, err = dave.postCommit(creq)
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	_, err = dave.api.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: id}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	st, err := dave.api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: id}))
	if err != nil {
		t.Fatal(err)
	}
	for st.Receive() {
		t.Fatal("a non-member's stream received an entry")
	}
	wantReason(t, st.Err(), connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	// bob is a member, but the commit is alice's.
	_, err = bob.postCommit(creq)
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	e.unchanged(before)
	// alice's own post goes through.
	if _, err := alice.postCommit(creq); err != nil {
		t.Fatal(err)
	}
}

// Hostile handshake posts: each is refused with its reason and leaves the
// group as it was; afterwards a valid commit is still accepted (the
// server's cached group was not damaged).
func TestHostileHandshakes(t *testing.T) { eachBackend(t, testHostileHandshakes) }

func testHostileHandshakes(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{MaxMessageSize: 8 << 10, MaxGroupInfoSize: 64 << 10, MaxTreeLeaves: 1 << 10})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	id := alice.group.GroupID()

	// Commit X and commit Y of the same epoch, both well formed.
	rx, err := alice.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reqX := alice.commitRequest(alice.group, rx)
	if err := alice.group.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	ry, err := alice.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reqY := alice.commitRequest(alice.group, ry)
	oldGI, err := alice.group.ExportGroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	oldTree, _ := alice.group.ExportRatchetTree()
	welcomeOfAdd := func() []byte {
		// A Welcome from an unrelated group, for a commit that adds nobody.
		erin := e.login("erin")
		kp, _ := erin.keyPackage(mls.KeyPackageOptions{})
		erin.publish(kp)
		frank := e.login("frank")
		frank.createGroup(mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
		k, err := frank.fetchKP(erin)
		if err != nil {
			t.Fatal(err)
		}
		r, err := frank.group.AddMembers(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return marshal(t, r.Welcome)
	}()
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	with := func(f func(r *mlsdv1.PostCommitRequest)) *mlsdv1.PostCommitRequest {
		r := &mlsdv1.PostCommitRequest{GroupId: reqX.GroupId, Commit: reqX.Commit, GroupInfo: reqX.GroupInfo, RatchetTree: reqX.RatchetTree}
		f(r)
		return r
	}
	before := e.snap(id)
	cases := []struct {
		name   string
		req    *mlsdv1.PostCommitRequest
		code   connect.Code
		reason mlsdv1.Error_Reason
	}{
		{"garbage commit", with(func(r *mlsdv1.PostCommitRequest) { r.Commit = []byte{0, 1, 0, 1, 9, 9} }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		{"GroupInfo posted as commit", with(func(r *mlsdv1.PostCommitRequest) { r.Commit = reqX.GroupInfo }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		// The flip at len-100 is in the signature, before the confirmation and
		// membership tags (33 bytes each), which only members can check.
		{"forged commit signature", with(func(r *mlsdv1.PostCommitRequest) { r.Commit = flip(reqX.Commit, len(reqX.Commit)-100) }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"commit for another group", with(func(r *mlsdv1.PostCommitRequest) { r.GroupId = []byte("another group") }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"no GroupInfo", with(func(r *mlsdv1.PostCommitRequest) { r.GroupInfo = nil }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		{"GroupInfo of the old epoch", with(func(r *mlsdv1.PostCommitRequest) { r.GroupInfo, r.RatchetTree = marshal(t, oldGI), oldTree }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"GroupInfo with a forged signature", with(func(r *mlsdv1.PostCommitRequest) { r.GroupInfo = flip(reqX.GroupInfo, len(reqX.GroupInfo)-3) }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"tree of the old epoch", with(func(r *mlsdv1.PostCommitRequest) { r.RatchetTree = oldTree }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"garbage tree", with(func(r *mlsdv1.PostCommitRequest) { r.RatchetTree = []byte{7, 7, 7} }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		// 60 KiB of blank nodes: refused by the leaf limit before decoding.
		{"tree of blank nodes", with(func(r *mlsdv1.PostCommitRequest) { r.RatchetTree = blankTree(60 << 10) }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		// Valid on its own, but not the epoch commit X creates: caught
		// after the server merged X into its cached group.
		{"GroupInfo of another commit", with(func(r *mlsdv1.PostCommitRequest) { r.GroupInfo, r.RatchetTree = reqY.GroupInfo, reqY.RatchetTree }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		// The same with the commit's own tree: refused by the direct check.
		{"GroupInfo of another commit, right tree", with(func(r *mlsdv1.PostCommitRequest) { r.GroupInfo = reqY.GroupInfo }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"Welcome for a key package the commit does not add", with(func(r *mlsdv1.PostCommitRequest) { r.Welcome = welcomeOfAdd }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"Welcome that is not a Welcome", with(func(r *mlsdv1.PostCommitRequest) { r.Welcome = reqX.Commit }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
		{"oversized commit", with(func(r *mlsdv1.PostCommitRequest) { r.Commit = make([]byte, 9<<10) }), connect.CodeResourceExhausted, mlsdv1.Error_REASON_TOO_LARGE},
		{"oversized GroupInfo", with(func(r *mlsdv1.PostCommitRequest) { r.RatchetTree = make([]byte, 65<<10) }), connect.CodeResourceExhausted, mlsdv1.Error_REASON_TOO_LARGE},
		{"unknown group", with(func(r *mlsdv1.PostCommitRequest) { r.GroupId = nil }), connect.CodeInvalidArgument, mlsdv1.Error_REASON_MALFORMED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := alice.postCommit(c.req)
			wantReason(t, err, c.code, c.reason)
			e.unchanged(before)
		})
	}
	// An application message posted as a commit, and a commit as an
	// application message.
	app, err := bob.group.CreateMessage(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bob.postCommit(&mlsdv1.PostCommitRequest{GroupId: id, Commit: marshal(t, app), GroupInfo: reqX.GroupInfo, RatchetTree: reqX.RatchetTree})
	wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE)
	_, err = alice.api.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: id, Message: reqX.Commit}))
	wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE)
	_, err = alice.api.PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: id, Proposal: reqX.Commit}))
	wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE)
	// A request beyond Connect's read limit.
	_, err = alice.postCommit(&mlsdv1.PostCommitRequest{GroupId: id, Commit: make([]byte, 300<<10)})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("huge request: %v; want resource_exhausted", err)
	}
	e.unchanged(before)

	// Both ways of checking a posted GroupInfo were used.
	_, body := get(t, e.url+"/metrics")
	for _, path := range []string{"direct", "rebuild"} {
		if !strings.Contains(body, `mlsd_groupinfo_checks_total{path="`+path+`"}`) {
			t.Errorf("no GroupInfo was checked by %s", path)
		}
	}
	// Commit X with its own GroupInfo is still accepted, and bob follows.
	out, err := alice.postCommit(reqX)
	if err != nil {
		t.Fatalf("valid commit after hostile ones: %v", err)
	}
	if out.Epoch != 2 {
		t.Fatalf("epoch %d", out.Epoch)
	}
	bob.process(bob.fetch(1).Messages)
	if bob.group.Epoch() != 2 {
		t.Fatalf("bob at epoch %d", bob.group.Epoch())
	}
	if _, err := bob.send("still works"); err != nil {
		t.Fatal(err)
	}
}

// Oversized application messages are refused before parsing.
func TestTooLarge(t *testing.T) {
	e := newEnv(t, ds.Options{MaxMessageSize: 4 << 10})
	ctx := t.Context()
	alice, _ := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	before := e.snap(alice.group.GroupID())
	big, err := alice.group.CreateMessage(ctx, make([]byte, 5<<10))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.api.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: alice.group.GroupID(), Message: marshal(t, big)}))
	wantReason(t, err, connect.CodeResourceExhausted, mlsdv1.Error_REASON_TOO_LARGE)
	kp, _ := alice.keyPackage(mls.KeyPackageOptions{})
	many := make([][]byte, ds.MaxKeyPackagesPerRequest+1)
	for i := range many {
		many[i] = kp
	}
	_, err = alice.api.PublishKeyPackages(ctx, connect.NewRequest(&mlsdv1.PublishKeyPackagesRequest{KeyPackages: many}))
	wantReason(t, err, connect.CodeResourceExhausted, mlsdv1.Error_REASON_TOO_LARGE)
	e.unchanged(before)
}

// Application messages must be of the current epoch.
func TestWrongEpochMessage(t *testing.T) {
	e := newEnv(t, ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	old, err := bob.group.CreateMessage(ctx, []byte("late"))
	if err != nil {
		t.Fatal(err)
	}
	alice.commit(alice.group.SelfUpdate(ctx))
	before := e.snap(alice.group.GroupID())
	_, err = bob.api.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: alice.group.GroupID(), Message: marshal(t, old)}))
	d := wantReason(t, err, connect.CodeFailedPrecondition, mlsdv1.Error_REASON_WRONG_EPOCH)
	if d.CurrentEpoch != 2 || d.LastSeq != 2 {
		t.Errorf("WRONG_EPOCH says %d/%d; want 2/2", d.CurrentEpoch, d.LastSeq)
	}
	e.unchanged(before)
}

// Two servers on one store (replicas), two members committing for the same
// epoch at the same time through different servers: in every round exactly
// one commit wins, and the loser catches up and is in the winner's epoch.
func TestConcurrentCommitsAcrossReplicas(t *testing.T) {
	eachBackend(t, testConcurrentCommitsAcrossReplicas)
}

func testConcurrentCommitsAcrossReplicas(t *testing.T, b backend) {
	e1 := newEnvB(t, b, ds.Options{})
	e2 := e1.replica(ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e1, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	bob2 := e2.newUser("bob")
	bob2.token = bob.token
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		epoch := alice.group.Epoch()
		ra, err := alice.group.SelfUpdate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := bob.group.SelfUpdate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		qa, qb := alice.commitRequest(alice.group, ra), bob.commitRequest(bob.group, rb)
		errs := make(chan error, 2)
		var aErr, bErr error
		go func() { _, err := alice.postCommit(qa); errs <- err }()
		go func() { _, err := bob2.postCommit(qb); errs <- err }()
		// Match results to posters by their effect on the store below.
		r1, r2 := <-errs, <-errs
		if (r1 == nil) == (r2 == nil) {
			t.Fatalf("round %d: results %v and %v; want exactly one winner", round, r1, r2)
		}
		loser := r1
		if loser == nil {
			loser = r2
		}
		wantReason(t, loser, connect.CodeAborted, mlsdv1.Error_REASON_COMMIT_CONFLICT)
		g, err := e1.store.GetGroup(ctx, alice.group.GroupID())
		if err != nil {
			t.Fatal(err)
		}
		if g.State.Epoch != epoch+1 {
			t.Fatalf("round %d: store at epoch %d; want %d", round, g.State.Epoch, epoch+1)
		}
		entries, err := e1.store.Entries(ctx, g.ID, g.LastSeq-1, 1)
		if err != nil || len(entries) != 1 {
			t.Fatal(err)
		}
		if string(entries[0].Sender) == "alice" {
			aErr, bErr = nil, loser
		} else {
			aErr, bErr = loser, nil
		}
		for _, x := range []struct {
			u   *user
			err error
		}{{alice, aErr}, {bob, bErr}} {
			if x.err == nil {
				if err := x.u.group.MergePendingCommit(ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := x.u.group.ClearPendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
			x.u.process(x.u.fetch(g.LastSeq - 1).Messages)
		}
		if alice.group.Epoch() != epoch+1 || !bytes.Equal(alice.group.EpochAuthenticator(), bob.group.EpochAuthenticator()) {
			t.Fatalf("round %d: alice at %d, bob at %d, not in the same epoch", round, alice.group.Epoch(), bob.group.Epoch())
		}
	}
}

// Encrypted handshakes: the server orders PrivateMessage proposals and
// commits by their header, checks the content type against the RPC, and
// learns the membership from the GroupInfo posted with each commit.
func TestEncryptedHandshakes(t *testing.T) { eachBackend(t, testEncryptedHandshakes) }

func testEncryptedHandshakes(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED, false)
	id := alice.group.GroupID()
	carol, dave := e.login("carol"), e.login("dave")
	carol.private = true
	kp, _ := carol.keyPackage(mls.KeyPackageOptions{})
	carol.publish(kp)

	// An encrypted proposal from bob, committed by alice.
	ckp, err := bob.fetchKP(carol)
	if err != nil {
		t.Fatal(err)
	}
	prop, _, err := bob.group.ProposeAdd(ctx, ckp)
	if err != nil {
		t.Fatal(err)
	}
	if prop.WireFormat() != mls.WireFormatPrivateMessage {
		t.Fatalf("proposal is a %v", prop.WireFormat())
	}
	before := e.snap(id)
	// Posted by a non-member, or as the wrong kind.
	_, err = dave.api.PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: id, Proposal: marshal(t, prop)}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	_, err = bob.api.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: id, Message: marshal(t, prop)}))
	wantReason(t, err, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE)
	e.unchanged(before)
	if _, err := bob.api.PostProposal(ctx, connect.NewRequest(&mlsdv1.PostProposalRequest{GroupId: id, Proposal: marshal(t, prop)})); err != nil {
		t.Fatal(err)
	}
	alice.process(alice.fetch(1).Messages)
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := alice.commitRequest(alice.group, res)
	before = e.snap(id)
	app, err := alice.group.CreateMessage(ctx, []byte("x"))
	if err != nil {
		// A member with a pending commit may not send; make one from bob.
		app, err = bob.group.CreateMessage(ctx, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
	}
	oldGI := marshal(t, must(bob.group.ExportGroupInfo(true)))
	for _, c := range []struct {
		name   string
		u      *user
		req    *mlsdv1.PostCommitRequest
		code   connect.Code
		reason mlsdv1.Error_Reason
	}{
		{"non-member", dave, req, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER},
		{"application message as commit", alice, &mlsdv1.PostCommitRequest{GroupId: id, Commit: marshal(t, app), GroupInfo: req.GroupInfo, RatchetTree: req.RatchetTree}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"GroupInfo of the old epoch", alice, &mlsdv1.PostCommitRequest{GroupId: id, Commit: req.Commit, GroupInfo: oldGI}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
		{"GroupInfo without its tree", alice, &mlsdv1.PostCommitRequest{GroupId: id, Commit: req.Commit, GroupInfo: req.GroupInfo}, connect.CodeInvalidArgument, mlsdv1.Error_REASON_INVALID_MESSAGE},
	} {
		_, err := c.u.postCommit(c.req)
		wantReason(t, err, c.code, c.reason)
		e.unchanged(before)
	}
	out, err := alice.postCommit(req)
	if err != nil {
		t.Fatal(err)
	}
	if out.Epoch != 2 {
		t.Fatalf("epoch %d", out.Epoch)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	carol.join()
	bob.process(bob.fetch(2).Messages)
	// The server knows carol is a member from the posted GroupInfo.
	if _, err := carol.send("hello"); err != nil {
		t.Fatalf("carol posts: %v", err)
	}
	f := bob.fetch(3)
	if len(f.Messages) != 1 || string(f.Messages[0].Sender) != "carol" {
		t.Fatalf("bob fetched %d messages", len(f.Messages))
	}
}

// Every single-byte change to a commit (outside the confirmation and
// membership tags, which only members can check) or to its GroupInfo is
// refused as MALFORMED or INVALID_MESSAGE: never accepted, never an
// internal error, and the store does not change.
func TestMutatedCommits(t *testing.T) {
	e := newEnv(t, ds.Options{})
	ctx := t.Context()
	alice, _ := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	res, err := alice.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := alice.commitRequest(alice.group, res)
	before := e.snap(alice.group.GroupID())
	n := 120
	if testing.Short() {
		n = 30
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		r := &mlsdv1.PostCommitRequest{GroupId: req.GroupId, Commit: bytes.Clone(req.Commit), GroupInfo: bytes.Clone(req.GroupInfo), RatchetTree: req.RatchetTree}
		target := &r.Commit
		limit := len(r.Commit) - 66 // the two tags: 1+32 bytes each
		if i%2 == 1 {
			target, limit = &r.GroupInfo, len(r.GroupInfo)
		}
		pos := rnd.IntN(limit)
		(*target)[pos] ^= byte(1 + rnd.IntN(255))
		_, err := alice.postCommit(r)
		if err == nil {
			t.Fatalf("mutation %d (byte %d of the %s) accepted", i, pos, map[bool]string{true: "GroupInfo", false: "commit"}[i%2 == 1])
		}
		d := ds.ErrorReason(err)
		if d == nil || (d.Reason != mlsdv1.Error_REASON_MALFORMED && d.Reason != mlsdv1.Error_REASON_INVALID_MESSAGE && d.Reason != mlsdv1.Error_REASON_NOT_MEMBER &&
			d.Reason != mlsdv1.Error_REASON_UNKNOWN_GROUP && d.Reason != mlsdv1.Error_REASON_WRONG_EPOCH && d.Reason != mlsdv1.Error_REASON_COMMIT_CONFLICT) {
			t.Fatalf("mutation %d (byte %d): %v", i, pos, err)
		}
	}
	e.unchanged(before)
	if _, err := alice.postCommit(req); err != nil {
		t.Fatalf("the original commit after %d mutations: %v", n, err)
	}
}

// A Welcome is stored once per recipient: a commit whose copies would
// exceed four times MaxGroupInfoSize is refused, and nothing is stored.
func TestWelcomeCopiesBounded(t *testing.T) {
	e := newEnv(t, ds.Options{MaxGroupInfoSize: 4 << 10})
	ctx := t.Context()
	alice := e.login("alice")
	alice.createGroup(mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	var kps []*mls.KeyPackage
	for i := range 8 {
		u := e.login(fmt.Sprintf("u%d", i))
		b, _ := u.keyPackage(mls.KeyPackageOptions{})
		u.publish(b)
		kp, err := alice.fetchKP(u)
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	res, err := alice.group.AddMembers(ctx, kps...)
	if err != nil {
		t.Fatal(err)
	}
	req := alice.commitRequest(alice.group, res)
	if n := 8 * (len(req.Welcome) + len(req.WelcomeRatchetTree)); n <= 16<<10 || len(req.GroupInfo)+len(req.RatchetTree) > 4<<10 {
		t.Fatalf("test setup: copies %d bytes (want > 16 KiB), GroupInfo and tree %d (want <= 4 KiB)", n, len(req.GroupInfo)+len(req.RatchetTree))
	}
	before := e.snap(alice.group.GroupID())
	_, err = alice.postCommit(req)
	wantReason(t, err, connect.CodeResourceExhausted, mlsdv1.Error_REASON_TOO_LARGE)
	e.unchanged(before)
	// Without the separate tree (the joiners get it from the GroupInfo
	// extension or elsewhere) the copies fit.
	req.WelcomeRatchetTree = nil
	if 8*len(req.Welcome) > 16<<10 {
		t.Fatalf("test setup: the Welcome alone is %d bytes", len(req.Welcome))
	}
	if _, err := alice.postCommit(req); err != nil {
		t.Fatal(err)
	}
}

// Recovery after state loss (RFC 9750, Section 6.6): bob loses his state,
// authenticates with a new signature key under the same identity, fetches
// the GroupInfo and rejoins by an external commit that removes his old leaf,
// although the group does not allow external joins. Without removing the
// old leaf, the external commit is refused.
func TestResync(t *testing.T) { eachBackend(t, testResync) }

func testResync(t *testing.T, b backend) {
	e := newEnvB(t, b, ds.Options{})
	ctx := t.Context()
	alice, bob := twoMembers(t, e, mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, false)
	id := alice.group.GroupID()
	oldLeaf := bob.group.OwnLeafIndex()
	bob2 := e.login("bob") // a new client: same identity, new key
	gi, err := bob2.api.GetGroupInfo(ctx, connect.NewRequest(&mlsdv1.GetGroupInfoRequest{GroupId: id}))
	if err != nil {
		t.Fatalf("GetGroupInfo for a resync: %v", err)
	}
	gim, err := mls.ParseMessage(gi.Msg.GroupInfo)
	if err != nil {
		t.Fatal(err)
	}
	post := func(opts mls.ExternalJoinOptions) (*mls.Group, error) {
		opts.RatchetTree = gi.Msg.RatchetTree
		g, res, err := bob2.mc.JoinExternal(ctx, gim, opts)
		if err != nil {
			t.Fatal(err)
		}
		tree := must(g.ExportRatchetTree())
		_, err = bob2.postCommit(&mlsdv1.PostCommitRequest{GroupId: id, Commit: marshal(t, res.Commit), GroupInfo: marshal(t, res.GroupInfo), RatchetTree: tree})
		return g, err
	}
	before := e.snap(id)
	_, err = post(mls.ExternalJoinOptions{})
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED)
	// Removing alice instead of the old bob is no resync either.
	aliceLeaf := alice.group.OwnLeafIndex()
	_, err = post(mls.ExternalJoinOptions{RemoveLeaf: &aliceLeaf})
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_EXTERNAL_JOIN_NOT_ALLOWED)
	e.unchanged(before)
	g, err := post(mls.ExternalJoinOptions{RemoveLeaf: &oldLeaf})
	if err != nil {
		t.Fatalf("resync: %v", err)
	}
	bob2.group = g
	alice.process(alice.fetch(before.group.LastSeq).Messages)
	if len(alice.group.Members()) != 2 || !bytes.Equal(alice.group.EpochAuthenticator(), g.EpochAuthenticator()) {
		t.Fatalf("alice has %d members after the resync", len(alice.group.Members()))
	}
	if _, err := bob2.send("back"); err != nil {
		t.Fatal(err)
	}
	// The old client is out.
	_, err = bob.send("old me")
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
}

// blankTree encodes a RatchetTree of n blank nodes and one leaf-sized
// garbage node: cheap to send, costly to decode without a leaf limit.
func blankTree(n int) []byte {
	body := append(make([]byte, n), 1, 1, 0, 1)
	l := len(body)
	return append([]byte{byte(0x80 | l>>24), byte(l >> 16), byte(l >> 8), byte(l)}, body...)
}

// A member removed while it was not reading may still read the log up to
// and including the commit that removed it (how else would it learn?), and
// nothing after: FetchMessages and Subscribe, opened before or after the
// removal. A member that only updates its leaf keeps its rights; one added
// back reads as a member again. Both handshake modes (the encrypted one
// learns the membership from the posted GroupInfo).
func TestRemovedReadsItsRemoval(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		for _, mode := range []mlsdv1.HandshakeMode{mlsdv1.HandshakeMode_HANDSHAKE_MODE_PUBLIC, mlsdv1.HandshakeMode_HANDSHAKE_MODE_ENCRYPTED} {
			t.Run(mode.String(), func(t *testing.T) { testRemovedReadsItsRemoval(t, b, mode) })
		}
	})
}

func testRemovedReadsItsRemoval(t *testing.T, b backend, mode mlsdv1.HandshakeMode) {
	e := newEnvB(t, b, ds.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	alice, bob := twoMembers(t, e, mode, false)
	id := alice.group.GroupID()
	carol, dave := e.login("carol"), e.login("dave")
	carol.private = bob.private
	kp, _ := carol.keyPackage(mls.KeyPackageOptions{})
	carol.publish(kp)
	alice.add(carol) // seq 2
	bob.process(bob.fetch(1).Messages)

	live, err := carol.api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: id, AfterSeq: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !live.Receive() || live.Msg().Seq != 0 {
		t.Fatalf("first message is not the marker: %v %v", live.Msg(), live.Err())
	}
	if _, err := alice.send("m1"); err != nil { // seq 3
		t.Fatal(err)
	}
	removal := alice.commit(alice.group.RemoveMembersByIdentity(ctx, []byte("carol")))
	if removal.Seq != 4 {
		t.Fatalf("the removal is seq %d, want 4", removal.Seq)
	}
	if _, err := alice.send("m2"); err != nil { // seq 5
		t.Fatal(err)
	}
	alice.commit(alice.group.SelfUpdate(ctx)) // seq 6

	// The stream open at the removal.
	wantStream := func(st *connect.ServerStreamForClient[mlsdv1.Envelope], seqs ...uint64) {
		t.Helper()
		var got []uint64
		for st.Receive() {
			if s := st.Msg().Seq; s != 0 {
				got = append(got, s)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(seqs) {
			t.Errorf("the stream sent seqs %v, want %v", got, seqs)
		}
		wantReason(t, st.Err(), connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	}
	wantStream(live, 3, 4)

	// Reading later: up to the removal, which Carol processes.
	f := carol.fetch(2)
	if len(f.Messages) != 2 || f.Messages[0].Seq != 3 || f.Messages[1].Seq != 4 || f.LastSeq != 4 {
		t.Fatalf("Carol's fetch after her removal: %d entries, last seq %d; want 3 and 4, last seq 4", len(f.Messages), f.LastSeq)
	}
	carol.process(f.Messages)
	if carol.group.IsActive() {
		t.Error("Carol's group is active after processing her removal")
	}
	_, err = carol.api.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: id, AfterSeq: 4}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	page, err := carol.api.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: id, AfterSeq: 3, Limit: 10}))
	if err != nil || len(page.Msg.Messages) != 1 || page.Msg.Messages[0].Seq != 4 {
		t.Errorf("Carol's fetch after seq 3: %v, %v; want seq 4 alone", page, err)
	}
	st, err := carol.api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: id, AfterSeq: 2}))
	if err != nil {
		t.Fatal(err)
	}
	wantStream(st, 3, 4)
	st, err = carol.api.Subscribe(ctx, connect.NewRequest(&mlsdv1.SubscribeRequest{GroupId: id, AfterSeq: 4}))
	if err != nil {
		t.Fatal(err)
	}
	wantStream(st)
	// Removal is no licence to post.
	_, err = carol.api.PostMessage(ctx, connect.NewRequest(&mlsdv1.PostMessageRequest{GroupId: id, Message: f.Messages[0].Message}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)
	// A stranger is refused as before.
	_, err = dave.api.FetchMessages(ctx, connect.NewRequest(&mlsdv1.FetchMessagesRequest{GroupId: id}))
	wantReason(t, err, connect.CodePermissionDenied, mlsdv1.Error_REASON_NOT_MEMBER)

	// The Store's records: Carol's removal; none for Alice, whose update
	// changed her leaf, nor for Bob.
	if seq, err := e.store.RemovedAt(ctx, id, []byte("carol")); err != nil || seq != 4 {
		t.Errorf("RemovedAt(carol) = %d, %v; want 4", seq, err)
	}
	for _, who := range []string{"alice", "bob", "dave"} {
		if _, err := e.store.RemovedAt(ctx, id, []byte(who)); !errors.Is(err, ds.ErrNotFound) {
			t.Errorf("RemovedAt(%s) = %v, want ErrNotFound", who, err)
		}
	}

	// Added back, Carol reads as a member.
	kp, _ = carol.keyPackage(mls.KeyPackageOptions{})
	carol.publish(kp)
	alice.add(carol) // seq 7
	if f := carol.fetch(4); len(f.Messages) != 3 || f.LastSeq != 7 {
		t.Errorf("Carol, added back, fetched %d entries after seq 4, last seq %d; want 3, 7", len(f.Messages), f.LastSeq)
	}
}
