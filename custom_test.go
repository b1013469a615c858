package mls_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls"
)

// customGroup makes alice, bob and charlie, in one group, with the
// proposal types each lists in its capabilities.
func customGroup(t *testing.T, types ...[]uint16) []*pqMember {
	t.Helper()
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	ms := []*pqMember{newPQMember(t, "alice", suite), newPQMember(t, "bob", suite), newPQMember(t, "charlie", suite)}
	var err error
	ms[0].group, err = ms[0].client.CreateGroup(ctx, suite, mls.GroupConfig{Capabilities: mls.Capabilities{Proposals: types[0]},
		JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}})
	if err != nil {
		t.Fatal(err)
	}
	var kps []*mls.KeyPackage
	for i, m := range ms[1:] {
		kp, err := m.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{Capabilities: mls.Capabilities{Proposals: types[i+1]}})
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	res, err := ms[0].group.AddMembers(ctx, kps...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ms[0].group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		sw, err := m.client.StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m.group, err = sw.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

// checkCustom processes a commit at m and checks that it covers exactly
// one custom proposal of type typ with data, before merging it.
func checkCustom(t *testing.T, m *pqMember, commit *mls.Message, typ uint16, data string) {
	t.Helper()
	ctx := context.Background()
	p, err := m.group.Process(ctx, roundTrip(t, commit))
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	props := p.Commit.Proposals()
	if len(props) != 1 {
		t.Fatalf("%s: commit covers %d proposals, want 1", m.name, len(props))
	}
	gotType, ok := props[0].CustomType()
	gotData, ok2 := props[0].CustomData()
	if !ok || !ok2 || gotType != typ || string(gotData) != data {
		t.Fatalf("%s: proposal type %d (%v) data %q (%v), want %d %q", m.name, gotType, ok, gotData, ok2, typ, data)
	}
	if err := m.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
}

// TestCustomProposalByValue: CommitOptions.Custom commits a custom proposal
// inline; every member sees it in the staged commit, and the members'
// leaves are unchanged (a custom proposal is a no-op to the tree).
func TestCustomProposalByValue(t *testing.T) {
	ctx := context.Background()
	both := []uint16{0xF0F0}
	ms := customGroup(t, both, both, both)
	alice := ms[0]
	before := alice.group.Members()
	res, err := alice.group.Commit(ctx, mls.CommitOptions{Custom: []mls.CustomProposal{{Type: 0xF0F0, Data: []byte("by value")}}})
	if err != nil {
		t.Fatal(err)
	}
	pc := alice.group.PendingCommit()
	if ps := pc.Proposals(); len(ps) != 1 {
		t.Fatalf("pending commit covers %d proposals", len(ps))
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		checkCustom(t, m, res.Commit, 0xF0F0, "by value")
	}
	pqAgree(t, ms...)
	after := alice.group.Members()
	for i := range before {
		if string(before[i].EncryptionKey) != string(after[i].EncryptionKey) && i != 0 {
			t.Fatalf("leaf %d changed", i)
		}
	}
}

// TestCustomProposalByReference: ProposeCustom, stored by the others and
// committed by bob.
func TestCustomProposalByReference(t *testing.T) {
	ctx := context.Background()
	both := []uint16{0xF0F0}
	ms := customGroup(t, both, both, both)
	alice, bob, charlie := ms[0], ms[1], ms[2]
	msg, _, err := alice.group.ProposeCustom(ctx, 0xF0F0, []byte("by reference"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pqMember{bob, charlie} {
		p, err := m.group.Process(ctx, roundTrip(t, msg))
		if err != nil {
			t.Fatal(err)
		}
		if typ, ok := p.Proposal.CustomType(); !ok || typ != 0xF0F0 {
			t.Fatalf("%s: proposal type %d %v", m.name, typ, ok)
		}
		if err := m.group.StorePendingProposal(ctx, p.Proposal); err != nil {
			t.Fatal(err)
		}
	}
	res, err := bob.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	checkCustom(t, alice, res.Commit, 0xF0F0, "by reference")
	checkCustom(t, charlie, res.Commit, 0xF0F0, "by reference")
	pqAgree(t, ms...)
}

// TestCustomProposalUnsupported: a custom type that charlie does not list
// is refused by value and by reference with ValSem113 (RFC 9420, Section
// 12.2), and the group does not move; types 0 and RFC 9420's own are not
// custom. A receiver's rejection of such a commit is testValSem113.
func TestCustomProposalUnsupported(t *testing.T) {
	ctx := context.Background()
	ms := customGroup(t, []uint16{0xF0F1}, []uint16{0xF0F1}, nil)
	alice := ms[0]
	epoch := alice.group.Epoch()
	_, err := alice.group.Commit(ctx, mls.CommitOptions{Custom: []mls.CustomProposal{{Type: 0xF0F1, Data: []byte("x")}}})
	var ve *mls.ValidationError
	if !errors.As(err, &ve) || ve.Rule != "ValSem113" {
		t.Fatalf("by value: got %v, want ValSem113", err)
	}
	if _, _, err := alice.group.ProposeCustom(ctx, 0xF0F1, nil); !errors.As(err, &ve) || ve.Rule != "ValSem113" {
		t.Fatalf("by reference: got %v, want ValSem113", err)
	}
	for _, typ := range []uint16{0, 1, 7} {
		if _, err := alice.group.Commit(ctx, mls.CommitOptions{Custom: []mls.CustomProposal{{Type: typ}}}); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("type %d: got %v, want ErrInvalidArgument", typ, err)
		}
	}
	if alice.group.Epoch() != epoch || alice.group.PendingCommit() != nil {
		t.Fatal("a refused commit changed the group")
	}
	pqAgree(t, ms...)
}
