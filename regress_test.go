package mls_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage/memory"
)

// Regression and coverage tests for the group layer's commit and proposal
// paths (RFC 9420, Sections 8.4, 12.1-12.4): proposals by reference, own
// Update proposals committed by others, PSKs, group context extensions,
// unmerged leaves, commits without a path and Welcome path secrets.

const regressSuite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// newGroupOf creates a group of the named clients: the first creates it
// and adds the others in one commit (with a path if forcePath), and they
// join from the Welcome.
func newGroupOf(t testing.TB, suite mls.CipherSuite, cfg mls.GroupConfig, forcePath bool, names ...string) []*client {
	t.Helper()
	ctx := context.Background()

	cs := make([]*client, len(names))
	for i, n := range names {
		cs[i] = newClient(t, n, suite)
	}
	var err error
	cs[0].group, err = clientOf(cs[0].store, cs[0].id).CreateGroup(ctx, suite, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 1 {
		return cs
	}
	var kps []*mls.KeyPackage
	for _, c := range cs[1:] {
		kps = append(kps, c.keyPackage(t, suite))
	}
	res, err := cs[0].group.Commit(ctx, mls.CommitOptions{Add: kps, ForcePath: forcePath})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs[0].group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	rt, err := cs[0].group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs[1:] {
		c.join(t, roundTrip(t, res.Welcome), cfg.JoinConfig, rt)
	}
	agree(t, cs...)
	return cs
}

// receiveProposal processes a standalone proposal and queues it.
func (c *client) receiveProposal(t testing.TB, m *mls.Message) *mls.QueuedProposal {
	t.Helper()
	ctx := context.Background()
	p, err := c.group.Process(ctx, roundTrip(t, m))
	if err != nil {
		t.Fatalf("%s: Process proposal: %v", c.name, err)
	}
	if p.Kind != mls.KindProposal {
		t.Fatalf("%s: got %v, want proposal", c.name, p.Kind)
	}
	if err := c.group.StorePendingProposal(ctx, p.Proposal); err != nil {
		t.Fatalf("%s: StorePendingProposal: %v", c.name, err)
	}
	return p.Proposal
}

// commitAndFan has committer commit with opts, merge, and every other
// client in others process and merge the commit.
func commitAndFan(t *testing.T, committer *client, opts mls.CommitOptions, others ...*client) *mls.CommitResult {
	t.Helper()
	ctx := context.Background()
	res, err := committer.group.Commit(ctx, opts)
	if err != nil {
		t.Fatalf("%s: Commit: %v", committer.name, err)
	}
	if err := committer.group.MergePendingCommit(ctx); err != nil {
		t.Fatalf("%s: merge: %v", committer.name, err)
	}
	for _, c := range others {
		c.processCommit(t, res.Commit)
	}
	return res
}

func encryptionKey(t testing.TB, c *client, leaf uint32) []byte {
	t.Helper()
	m, ok := c.group.Member(leaf)
	if !ok {
		t.Fatalf("%s: no member at leaf %d", c.name, leaf)
	}
	return m.EncryptionKey
}

// TestProposeAddByReference: an Add proposal sent by one member and
// committed by reference by another (RFC 9420, Sections 12.1.1 and 12.4).
func TestProposeAddByReference(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	charlie := newClient(t, "charlie", regressSuite)
	m, _, err := bob.group.ProposeAdd(ctx, charlie.keyPackage(t, regressSuite))
	if err != nil {
		t.Fatal(err)
	}
	if m.WireFormat() != mls.WireFormatPublicMessage {
		t.Fatalf("proposal sent as %v, want PublicMessage by default", m.WireFormat())
	}
	if n := len(bob.group.PendingProposals()); n != 1 {
		t.Fatalf("proposer has %d pending proposals, want its own 1", n)
	}
	q := alice.receiveProposal(t, m)
	if !bytes.Equal(q.Ref(), bob.group.PendingProposals()[0].Ref()) {
		t.Fatal("proposer and receiver disagree on the ProposalRef")
	}
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Welcome == nil {
		t.Fatal("commit of an Add proposal by reference has no Welcome")
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := bob.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if adds := p.Commit.AddProposals(); len(adds) != 1 || !bytes.Equal(adds[0].Ref(), q.Ref()) {
		t.Fatalf("staged commit has %d Add proposals, want bob's by reference", len(adds))
	}
	if err := bob.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	charlie.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob, charlie)
	if len(bob.group.PendingProposals()) != 0 {
		t.Fatal("pending proposals survived the epoch")
	}
}

// TestProposeSelfUpdateCommittedByOther: when another member commits this
// member's Update proposal, the member's leaf private key becomes the one
// generated with the proposal (RFC 9420, Section 12.1.2). Later path
// secrets are encrypted to the new leaf key, so the member can only follow
// the group if it switched keys.
func TestProposeSelfUpdateCommittedByOther(t *testing.T) {
	for _, reload := range []bool{false, true} {
		name := "in-memory"
		if reload {
			name = "after-reload"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
			alice, bob, charlie := cs[0], cs[1], cs[2]
			oldKey := encryptionKey(t, bob, 1)
			m, _, err := bob.group.ProposeSelfUpdate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if reload {
				g, err := loaderOf(bob.store, bob.id.Signer).LoadGroup(ctx, bob.group.GroupID())
				if err != nil {
					t.Fatal(err)
				}
				bob.group = g
				if n := len(g.PendingProposals()); n != 1 {
					t.Fatalf("reloaded group has %d pending proposals, want 1", n)
				}
			}
			// The new leaf private key waits in the store until the epoch
			// ends, then goes (forward secrecy, RFC 9420, Section 12.1.2).
			mem := bob.store.(*memory.Store)
			if n := mem.Len("updatekeys"); n != 1 {
				t.Fatalf("%d stored Update keys after ProposeSelfUpdate, want 1", n)
			}
			alice.receiveProposal(t, m)
			charlie.receiveProposal(t, m)
			commitAndFan(t, alice, mls.CommitOptions{}, bob, charlie)
			agree(t, alice, bob, charlie)
			if n := mem.Len("updatekeys"); n != 0 {
				t.Fatalf("%d stored Update keys after the commit, want 0", n)
			}
			newKey := encryptionKey(t, alice, 1)
			if bytes.Equal(newKey, oldKey) {
				t.Fatal("bob's leaf key did not change")
			}
			if !bytes.Equal(encryptionKey(t, bob, 1), newKey) {
				t.Fatal("bob's view of its own leaf differs from alice's")
			}
			// charlie's path secret for the node above bob goes to bob's
			// leaf, which now holds the proposal's key.
			commitAndFan(t, charlie, mls.CommitOptions{ForcePath: true}, alice, bob)
			agree(t, alice, bob, charlie)
			commitAndFan(t, bob, mls.CommitOptions{ForcePath: true}, alice, charlie)
			agree(t, alice, bob, charlie)
		})
	}
}

// TestOwnUpdateNotCommitted: an Update proposal that the epoch's commit
// does not cover is dropped with the epoch; the member keeps its old key
// and can still follow the group.
func TestOwnUpdateNotCommitted(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	oldKey := encryptionKey(t, bob, 1)
	if _, _, err := bob.group.ProposeSelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	// alice never received it.
	commitAndFan(t, alice, mls.CommitOptions{ForcePath: true}, bob, charlie)
	if !bytes.Equal(encryptionKey(t, bob, 1), oldKey) {
		t.Fatal("bob's leaf changed although its Update was not committed")
	}
	if len(bob.group.PendingProposals()) != 0 {
		t.Fatal("bob's Update proposal survived the epoch")
	}
	commitAndFan(t, charlie, mls.CommitOptions{ForcePath: true}, alice, bob)
	agree(t, alice, bob, charlie)
}

// TestOwnUpdateSkippedInOwnCommit: a member's own pending Update proposal
// is not covered by its own commit (RFC 9420, Section 12.2 forbids it);
// the commit's path replaces the leaf instead.
func TestOwnUpdateSkippedInOwnCommit(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	m, _, err := bob.group.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice.receiveProposal(t, m)
	commitAndFan(t, bob, mls.CommitOptions{}, alice)
	agree(t, alice, bob)
}

// TestLeaveGroup: a member's Remove proposal for itself, committed by
// another member, makes it inactive (RFC 9420, Section 12.1.3); it cannot
// commit its own removal.
func TestLeaveGroup(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	m, _, err := charlie.group.LeaveGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(charlie.group.PendingProposals()); n != 1 {
		t.Fatalf("%d pending proposals after LeaveGroup, want 1", n)
	}
	alice.receiveProposal(t, m)
	bob.receiveProposal(t, m)
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.processCommit(t, res.Commit)
	p, err := charlie.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Commit.SelfRemoved() {
		t.Fatal("staged commit does not report charlie's removal")
	}
	if err := charlie.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	if charlie.group.IsActive() {
		t.Fatal("charlie still active after its Remove was committed")
	}
	if _, _, err := charlie.group.LeaveGroup(ctx); !errors.Is(err, mls.ErrInactive) {
		t.Fatalf("LeaveGroup after removal: %v, want ErrInactive", err)
	}
	agree(t, alice, bob)
	if n := len(alice.group.Members()); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
}

// TestLeaveGroupOwnCommitSkipsIt: a member that asked to leave and then
// commits does not cover its own Remove proposal (Section 12.2, ValSem200).
func TestLeaveGroupOwnCommitSkipsIt(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	m, _, err := bob.group.LeaveGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alice.receiveProposal(t, m)
	commitAndFan(t, bob, mls.CommitOptions{}, alice)
	agree(t, alice, bob)
	if !bob.group.IsActive() || len(alice.group.Members()) != 2 {
		t.Fatal("bob's own commit removed bob")
	}
}

// TestProposeRemoveByReference: a Remove proposal from one member
// committed by another.
func TestProposeRemoveByReference(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	if _, _, err := alice.group.ProposeRemove(ctx, alice.group.OwnLeafIndex()); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("ProposeRemove of own leaf: %v, want ErrInvalidArgument", err)
	}
	if _, _, err := alice.group.ProposeRemove(ctx, 7); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("ProposeRemove of a leaf outside the tree: %v, want ErrInvalidArgument", err)
	}
	m, _, err := alice.group.ProposeRemove(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	charlie.receiveProposal(t, m)
	bob.receiveProposal(t, m)
	res := commitAndFan(t, charlie, mls.CommitOptions{}, alice)
	bob.processCommit(t, res.Commit)
	if bob.group.IsActive() {
		t.Fatal("bob still active")
	}
	agree(t, alice, charlie)
}

// TestProposalsAsPrivateMessages: proposals and commits framed as
// PrivateMessage (wire format policy); the ProposalRef covers the
// PrivateMessage wire format (RFC 9420, Section 5.2).
func TestProposalsAsPrivateMessages(t *testing.T) {
	ctx := context.Background()
	cfg := mls.GroupConfig{JoinConfig: mls.JoinConfig{WireFormatPolicy: mls.WireFormatPolicy{OutgoingPrivate: true}}}
	cs := newGroupOf(t, regressSuite, cfg, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	m, _, err := bob.group.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.WireFormat() != mls.WireFormatPrivateMessage {
		t.Fatalf("proposal sent as %v, want PrivateMessage", m.WireFormat())
	}
	alice.receiveProposal(t, m)
	charlie.receiveProposal(t, m)
	dave := newClient(t, "dave", regressSuite)
	m2, _, err := charlie.group.ProposeAdd(ctx, dave.keyPackage(t, regressSuite))
	if err != nil {
		t.Fatal(err)
	}
	alice.receiveProposal(t, m2)
	bob.receiveProposal(t, m2)
	res := commitAndFan(t, alice, mls.CommitOptions{}, bob, charlie)
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	dave.join(t, roundTrip(t, res.Welcome), cfg.JoinConfig, rt)
	agree(t, alice, bob, charlie, dave)
	commitAndFan(t, dave, mls.CommitOptions{ForcePath: true}, alice, bob, charlie)
	agree(t, alice, bob, charlie, dave)
}

// TestProposeWhilePending: no proposals while a commit of one's own is
// pending.
func TestProposeWhilePending(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice := cs[0]
	if _, err := alice.group.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.group.ProposeSelfUpdate(ctx); !errors.Is(err, mls.ErrPendingCommit) {
		t.Fatalf("ProposeSelfUpdate with a pending commit: %v, want ErrPendingCommit", err)
	}
	if _, _, err := alice.group.ProposeRemove(ctx, 1); !errors.Is(err, mls.ErrPendingCommit) {
		t.Fatalf("ProposeRemove with a pending commit: %v, want ErrPendingCommit", err)
	}
}

// TestExternalPSK: a commit injecting an external PSK (RFC 9420, Section
// 8.4) while adding a member, who needs the PSK to join, and a commit
// with only a PSK proposal, which needs no path (Section 12.4).
func TestExternalPSK(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	pskID, psk := []byte("psk-1"), bytes.Repeat([]byte{7}, 32)
	charlie := newClient(t, "charlie", regressSuite)
	for _, c := range []*client{alice, bob, charlie} {
		if err := loaderOf(c.store, nil).StorePSK(ctx, pskID, psk); err != nil {
			t.Fatal(err)
		}
	}
	eve := newClient(t, "eve", regressSuite) // does not have the PSK
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{charlie.keyPackage(t, regressSuite), eve.keyPackage(t, regressSuite)}, ExternalPSKs: [][]byte{pskID}}, bob)
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	charlie.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob, charlie)
	if _, err := clientOf(eve.store, eve.id).StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{RatchetTree: rt}); !errors.Is(err, &mls.ValidationError{Rule: "PSKMissing"}) {
		t.Fatalf("joining without the Welcome's PSK: %v, want PSKMissing", err)
	}

	// A PSK-only commit: no path, so the committer's leaf keeps its key.
	before := encryptionKey(t, bob, bob.group.OwnLeafIndex())
	commitAndFan(t, bob, mls.CommitOptions{ExternalPSKs: [][]byte{pskID}}, alice, charlie)
	agree(t, alice, bob, charlie)
	if !bytes.Equal(encryptionKey(t, alice, bob.group.OwnLeafIndex()), before) {
		t.Fatal("a PSK-only commit carried a path")
	}

	// A member without the PSK cannot process such a commit, and its
	// group is unchanged.
	dave := newClient(t, "dave", regressSuite)
	res = commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{dave.keyPackage(t, regressSuite)}}, bob, charlie)
	rt, err = alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	dave.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	res, err = alice.group.Commit(ctx, mls.CommitOptions{ExternalPSKs: [][]byte{pskID}})
	if err != nil {
		t.Fatal(err)
	}
	epoch, auth := dave.group.Epoch(), dave.group.EpochAuthenticator()
	if _, err := dave.group.Process(ctx, roundTrip(t, res.Commit)); !errors.Is(err, &mls.ValidationError{Rule: "PSKMissing"}) {
		t.Fatalf("commit with an unknown PSK: %v, want PSKMissing", err)
	}
	if dave.group.Epoch() != epoch || !bytes.Equal(dave.group.EpochAuthenticator(), auth) {
		t.Fatal("a rejected commit changed the group")
	}
}

// TestResumptionPSK: commits injecting the resumption PSK of the current
// and of earlier epochs (RFC 9420, Section 8.6), which every member must
// remember, also across a reload.
func TestResumptionPSK(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	e0 := alice.group.Epoch()
	commitAndFan(t, bob, mls.CommitOptions{ForcePath: true}, alice, charlie)
	commitAndFan(t, charlie, mls.CommitOptions{ResumptionPSKs: []uint64{alice.group.Epoch()}}, alice, bob)
	agree(t, alice, bob, charlie)
	g, err := loaderOf(bob.store, bob.id.Signer).LoadGroup(ctx, bob.group.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	bob.group = g
	commitAndFan(t, alice, mls.CommitOptions{ResumptionPSKs: []uint64{e0, e0 + 1}}, bob, charlie)
	agree(t, alice, bob, charlie)
	if _, err := alice.group.Commit(ctx, mls.CommitOptions{ResumptionPSKs: []uint64{alice.group.Epoch() + 1}}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("resumption PSK of a future epoch: %v, want ErrInvalidArgument", err)
	}
	// Epochs far in the past are forgotten.
	for range 10 {
		commitAndFan(t, alice, mls.CommitOptions{ForcePath: true}, bob, charlie)
	}
	if _, err := alice.group.Commit(ctx, mls.CommitOptions{ResumptionPSKs: []uint64{e0}}); !errors.Is(err, &mls.ValidationError{Rule: "PSKMissing"}) {
		t.Fatalf("resumption PSK of a forgotten epoch: %v, want PSKMissing", err)
	}
}

// TestGroupContextExtensions: a commit replacing the group context
// extensions (RFC 9420, Section 12.1.7), with an Add in the same commit:
// the new member joins with the new extensions.
func TestGroupContextExtensions(t *testing.T) {
	ctx := context.Background()
	caps := mls.Capabilities{Extensions: []uint16{0xff00}}
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{Capabilities: caps}, false, "alice")
	alice := cs[0]
	bob := newClient(t, "bob", regressSuite)
	kp, err := clientOf(bob.store, bob.id).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	exts := []mls.Extension{{Type: 0xff00, Data: []byte("v1")}}
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{kp}, GroupContextExtensions: exts})
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	bob.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob)
	for _, c := range []*client{alice, bob} {
		got := c.group.Extensions()
		if len(got) != 1 || got[0].Type != 0xff00 || string(got[0].Data) != "v1" {
			t.Fatalf("%s: extensions %+v", c.name, got)
		}
	}
	exts = []mls.Extension{{Type: 0xff00, Data: []byte("v2")}}
	commitAndFan(t, bob, mls.CommitOptions{GroupContextExtensions: exts}, alice)
	agree(t, alice, bob)
	if got := alice.group.Extensions(); len(got) != 1 || string(got[0].Data) != "v2" {
		t.Fatalf("alice: extensions %+v", got)
	}
}

// TestUnmergedLeaves: a member added without a path sits in the
// unmerged_leaves of the parents above it (RFC 9420, Section 12.1.1); the
// next committer must encrypt to its leaf directly (Section 4.1.1), and
// the tree a later joiner receives must carry the lists (Section 7.1).
func TestUnmergedLeaves(t *testing.T) {
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	// charlie (leaf 2) fills its direct path: nodes 5 and 3.
	commitAndFan(t, charlie, mls.CommitOptions{ForcePath: true}, alice, bob)
	// dave lands in leaf 3, unmerged at nodes 5 and 3.
	dave := newClient(t, "dave", regressSuite)
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{dave.keyPackage(t, regressSuite)}}, bob, charlie)
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	dave.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	if dave.group.OwnLeafIndex() != 3 {
		t.Fatalf("dave at leaf %d, want 3", dave.group.OwnLeafIndex())
	}
	// A joiner validates a tree with unmerged leaves.
	eve := newClient(t, "eve", regressSuite)
	res = commitAndFan(t, bob, mls.CommitOptions{Add: []*mls.KeyPackage{eve.keyPackage(t, regressSuite)}}, alice, charlie, dave)
	rt, err = bob.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	eve.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob, charlie, dave, eve)
	// bob's path secret for the root goes to node 5 and to dave's leaf.
	commitAndFan(t, bob, mls.CommitOptions{ForcePath: true}, alice, charlie, dave, eve)
	agree(t, alice, bob, charlie, dave, eve)
	commitAndFan(t, dave, mls.CommitOptions{ForcePath: true}, alice, bob, charlie, eve)
	agree(t, alice, bob, charlie, dave, eve)
	commitAndFan(t, eve, mls.CommitOptions{ForcePath: true}, alice, bob, charlie, dave)
	agree(t, alice, bob, charlie, dave, eve)
}

// TestWelcomePathSecret: members added by a commit with a path receive the
// path secret of their lowest common ancestor with the committer
// (RFC 9420, Section 12.4.3.1) and must hold the keys of the nodes above
// it: a later commit encrypts to those nodes rather than to their leaves.
func TestWelcomePathSecret(t *testing.T) {
	for _, suite := range ciphersuite.All() {
		t.Run(suite.String(), func(t *testing.T) {
			// alice (leaf 0) adds bob (1) and charlie (2) with a path over
			// nodes 1 and 3; bob gets the path secret of node 1.
			cs := newGroupOf(t, suite, mls.GroupConfig{}, true, "alice", "bob", "charlie")
			alice, bob, charlie := cs[0], cs[1], cs[2]
			// charlie's copath is node 1, whose resolution is node 1
			// itself: only its private key lets bob decrypt.
			commitAndFan(t, charlie, mls.CommitOptions{ForcePath: true}, alice, bob)
			agree(t, alice, bob, charlie)
		})
	}
}

// TestProposalOrder: one commit with Update, Remove and Add proposals
// applies them in the order of RFC 9420, Section 12.3 (updates, removes,
// then adds), so the new member takes the leaf the removal freed.
func TestProposalOrder(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie", "dave")
	alice, bob, charlie, dave := cs[0], cs[1], cs[2], cs[3]
	eve := newClient(t, "eve", regressSuite)
	mAdd, _, err := dave.group.ProposeAdd(ctx, eve.keyPackage(t, regressSuite))
	if err != nil {
		t.Fatal(err)
	}
	mUpd, _, err := charlie.group.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mRem, _, err := dave.group.ProposeRemove(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*mls.Message{mAdd, mUpd, mRem} {
		for _, c := range []*client{alice, bob, charlie, dave} {
			if c == dave && m != mUpd || c == charlie && m == mUpd {
				continue // own proposals are queued already
			}
			c.receiveProposal(t, m)
		}
	}
	res := commitAndFan(t, alice, mls.CommitOptions{}, bob, charlie, dave)
	if bob.group.IsActive() {
		t.Fatal("bob still active")
	}
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	eve.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	if eve.group.OwnLeafIndex() != 1 {
		t.Fatalf("eve at leaf %d, want 1 (freed by the Remove applied before the Add)", eve.group.OwnLeafIndex())
	}
	agree(t, alice, charlie, dave, eve)
	commitAndFan(t, charlie, mls.CommitOptions{ForcePath: true}, alice, dave, eve)
	agree(t, alice, charlie, dave, eve)
}

// TestRandomOperations drives a group through random operations from
// random members, by value and by reference, and checks after every epoch
// that all members agree (the creation-side counterpart of the
// passive-client-random vector).
func TestRandomOperations(t *testing.T) {
	for _, private := range []bool{false, true} {
		name := "public"
		if private {
			name = "private"
		}
		t.Run(name, func(t *testing.T) { testRandomOperations(t, private) })
	}
}

func testRandomOperations(t *testing.T, private bool) {
	ctx := context.Background()
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	steps := 120
	if testing.Short() {
		steps = 30
	}
	pskID := []byte("random-psk")
	psk := bytes.Repeat([]byte{9}, 32)
	cfg := mls.GroupConfig{JoinConfig: mls.JoinConfig{WireFormatPolicy: mls.WireFormatPolicy{OutgoingPrivate: private}}}
	next := 0
	newMember := func() *client {
		next++
		c := newClient(t, fmt.Sprintf("m%d", next), regressSuite)
		if err := loaderOf(c.store, nil).StorePSK(ctx, pskID, psk); err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := newMember()
	var err error
	first.group, err = clientOf(first.store, first.id).CreateGroup(ctx, regressSuite, cfg)
	if err != nil {
		t.Fatal(err)
	}
	members := []*client{first}
	for step := range steps {
		committer := members[rng.IntN(len(members))]
		others := func(except ...*client) []*client {
			var out []*client
			for _, m := range members {
				if !slices.Contains(except, m) {
					out = append(out, m)
				}
			}
			return out
		}
		// Standalone proposals from random members, delivered to all.
		var joiners []*client
		removed := map[uint32]bool{}
		updated := map[uint32]bool{}
		for range rng.IntN(4) {
			proposer := members[rng.IntN(len(members))]
			var m *mls.Message
			switch op := rng.IntN(5); {
			case op == 0 && len(members)+len(joiners) < 12:
				j := newMember()
				m, _, err = proposer.group.ProposeAdd(ctx, j.keyPackage(t, regressSuite))
				joiners = append(joiners, j)
			case op == 1 && len(members) > 2:
				victim := members[rng.IntN(len(members))]
				l := victim.group.OwnLeafIndex()
				if victim == proposer || victim == committer || removed[l] || updated[l] {
					continue
				}
				removed[l] = true
				m, _, err = proposer.group.ProposeRemove(ctx, l)
			case op == 2:
				l := proposer.group.OwnLeafIndex()
				if proposer == committer || removed[l] || updated[l] {
					continue
				}
				updated[l] = true
				m, _, err = proposer.group.ProposeSelfUpdate(ctx)
			case op == 3 && len(members) > 2:
				l := proposer.group.OwnLeafIndex()
				if proposer == committer || removed[l] || updated[l] {
					continue
				}
				removed[l] = true
				m, _, err = proposer.group.LeaveGroup(ctx)
			default:
				continue
			}
			if err != nil {
				t.Fatalf("step %d: %s: propose: %v", step, proposer.name, err)
			}
			for _, c := range others(proposer) {
				c.receiveProposal(t, m)
			}
		}
		// A member restarts: everything it needs is in its store.
		if rng.IntN(8) == 0 {
			c := members[rng.IntN(len(members))]
			g, err := loaderOf(c.store, c.id.Signer).LoadGroup(ctx, c.group.GroupID())
			if err != nil {
				t.Fatalf("step %d: %s: LoadGroup: %v", step, c.name, err)
			}
			c.group = g
		}
		// The commit itself, with random inline proposals.
		opts := mls.CommitOptions{}
		switch rng.IntN(5) {
		case 0:
			opts.ForcePath = true
		case 1:
			if len(members)+len(joiners) < 12 {
				j := newMember()
				opts.Add = []*mls.KeyPackage{j.keyPackage(t, regressSuite)}
				joiners = append(joiners, j)
			}
		case 2:
			opts.ExternalPSKs = [][]byte{pskID}
		case 3:
			// New members cannot know this group's resumption PSKs.
			if len(joiners) == 0 {
				opts.ResumptionPSKs = []uint64{committer.group.Epoch()}
			}
		case 4:
			for _, m := range members {
				l := m.group.OwnLeafIndex()
				if m != committer && !removed[l] && !updated[l] && len(members)-len(removed) > 2 {
					opts.Remove = []uint32{l}
					removed[l] = true
					break
				}
			}
		}
		res, err := committer.group.Commit(ctx, opts)
		if err != nil {
			t.Fatalf("step %d: %s: commit: %v", step, committer.name, err)
		}
		if err := committer.group.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		var stay []*client
		for _, m := range members {
			if m != committer {
				m.processCommit(t, res.Commit)
			}
			if m.group.IsActive() {
				stay = append(stay, m)
			} else if !removed[m.group.OwnLeafIndex()] {
				t.Fatalf("step %d: %s removed unexpectedly", step, m.name)
			}
		}
		members = stay
		if len(joiners) > 0 {
			if res.Welcome == nil {
				t.Fatalf("step %d: no Welcome for %d joiners", step, len(joiners))
			}
			rt, err := committer.group.ExportRatchetTree()
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range joiners {
				j.join(t, roundTrip(t, res.Welcome), cfg.JoinConfig, rt)
				members = append(members, j)
			}
		}
		agree(t, members...)
		if n := len(members[0].group.Members()); n != len(members) {
			t.Fatalf("step %d: group has %d members, test tracks %d", step, n, len(members))
		}
	}
}

// TestProposeAddValidatesLeaf: the sender of an Add proposal validates the
// key package's leaf node, lifetime included (RFC 9420, Section 7.3: MUST
// for LeafNodes a client sends), and queues nothing on failure.
func TestProposeAddValidatesLeaf(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	charlie := newClient(t, "charlie", regressSuite)
	past := clientWith(charlie.store, charlie.id, credential.AcceptAll, mls.ClientOptions{Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }})
	expired, err := past.NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.group.ProposeAdd(ctx, expired); !errors.Is(err, tree.ErrLifetime) || !errors.Is(err, mls.ErrValidation) {
		t.Fatalf("ProposeAdd of an expired key package: %v, want a validation error for the lifetime", err)
	}
	// bob's key package is already in the group: duplicate signature key.
	if _, _, err := alice.group.ProposeAdd(ctx, bob.keyPackage(t, regressSuite)); !errors.Is(err, tree.ErrDuplicateSignatureKey) {
		t.Fatalf("ProposeAdd of a member's key package: %v, want a duplicate signature key", err)
	}
	if n := len(alice.group.PendingProposals()); n != 0 {
		t.Fatalf("%d pending proposals after failed ProposeAdd calls, want 0", n)
	}
}

// TestPSKNonceFullLength: the nonce of a PreSharedKeyID is Nh random
// octets (RFC 9420, Section 8.4) even from a randomness source that returns
// one byte per Read; a single Read used to leave all but the first octet
// zero.
func TestPSKNonceFullLength(t *testing.T) {
	ctx := context.Background()
	alice := newClient(t, "alice", regressSuite)
	c := clientWith(alice.store, alice.id, credential.AcceptAll, mls.ClientOptions{Rand: iotest.OneByteReader(rand.Reader)})
	var err error
	if alice.group, err = c.CreateGroup(ctx, regressSuite, mls.GroupConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := c.StorePSK(ctx, []byte("id"), bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	res, err := alice.group.Commit(ctx, mls.CommitOptions{ExternalPSKs: [][]byte{[]byte("id")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := res.Commit.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The nonce follows the PSK id "id" in the encoded proposal.
	at := bytes.Index(b, []byte{2, 'i', 'd'})
	if at < 0 {
		t.Fatal("PSK id not found in the commit")
	}
	if zeros := make([]byte, 16); bytes.Contains(b[at:], zeros) {
		t.Fatalf("commit has a run of 16 zero octets after the PSK id: the nonce is not random")
	}
}

// TestNewSignerWithAdd: a commit that moves the committer to a new
// signature key and adds a member; the GroupInfo in the Welcome is signed
// with the new key (RFC 9420, Section 12.4.3), and the committer signs
// with it from the next epoch on.
func TestNewSignerWithAdd(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	s, err := ciphersuite.Lookup(regressSuite)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	newID := mls.Identity{Credential: alice.id.Credential, Signer: signer}
	charlie := newClient(t, "charlie", regressSuite)
	res := commitAndFan(t, alice, mls.CommitOptions{NewIdentity: &newID, Add: []*mls.KeyPackage{charlie.keyPackage(t, regressSuite)}}, bob)
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	charlie.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob, charlie)
	alice.id = newID
	commitAndFan(t, alice, mls.CommitOptions{ForcePath: true}, bob, charlie)
	agree(t, alice, bob, charlie)
	m, err := alice.group.Seal(ctx, []byte("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := charlie.group.Process(ctx, roundTrip(t, m)); err != nil || string(p.ApplicationData) != "hi" {
		t.Fatalf("charlie: %v", err)
	}
}

// TestOwnCommitEchoed: a member's own commit, echoed by the delivery
// service, comes back from Process as its pending commit and merges.
func TestOwnCommitEchoed(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	res, err := alice.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := alice.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != mls.KindCommit || p.Commit != alice.group.PendingCommit() {
		t.Fatal("echoed own commit is not the pending commit")
	}
	if err := alice.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	bob.processCommit(t, res.Commit)
	agree(t, alice, bob)
}

// TestRatchetTreeExtension: with the ratchet_tree extension in the
// Welcome's GroupInfo (RFC 9420, Section 12.4.3.3) joiners need no tree
// of their own.
func TestRatchetTreeExtension(t *testing.T) {
	ctx := context.Background()
	cfg := mls.GroupConfig{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}
	cs := newGroupOf(t, regressSuite, cfg, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	charlie := newClient(t, "charlie", regressSuite)
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{charlie.keyPackage(t, regressSuite)}}, bob)
	sw, err := clientOf(charlie.store, charlie.id).StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sw.OwnLeafIndex() != 2 || len(sw.Members()) != 3 || sw.Sender().Index != 0 {
		t.Fatalf("staged welcome: leaf %d, %d members, sender %d", sw.OwnLeafIndex(), len(sw.Members()), sw.Sender().Index)
	}
	if charlie.group, err = sw.Join(ctx); err != nil {
		t.Fatal(err)
	}
	agree(t, alice, bob, charlie)
}
