package mls_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/storage/memory"
)

// wantRule fails unless err is a *mls.ValidationError for rule.
func wantRule(t testing.TB, err error, rule string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", rule)
	}
	if !errors.Is(err, &mls.ValidationError{Rule: rule}) || !errors.Is(err, mls.ErrValidation) {
		t.Fatalf("got %v, want rule %s", err, rule)
	}
}

// joinExternal has c join by external commit from gi and returns the
// commit.
func (c *client) joinExternal(t testing.TB, gi *mls.Message, opts mls.ExternalJoinOptions) *mls.CommitResult {
	t.Helper()
	g, res, err := clientOf(c.store, c.id).JoinExternal(context.Background(), roundTrip(t, gi), opts)
	if err != nil {
		t.Fatalf("%s: JoinExternal: %v", c.name, err)
	}
	if res.Welcome != nil {
		t.Fatalf("%s: external commit with a Welcome", c.name)
	}
	c.group = g
	return res
}

// processExternalCommit processes and merges an external commit and
// checks what the staged commit says about its sender.
func (c *client) processExternalCommit(t testing.TB, m *mls.Message, joinerLeaf uint32, joiner credential.Credential) *mls.StagedCommit {
	t.Helper()
	ctx := context.Background()
	p, err := c.group.Process(ctx, roundTrip(t, m))
	if err != nil {
		t.Fatalf("%s: Process external commit: %v", c.name, err)
	}
	if p.Kind != mls.KindCommit || p.Sender != (mls.Sender{Type: mls.SenderNewMemberCommit, Index: joinerLeaf}) {
		t.Fatalf("%s: got %v from %+v, want a commit from a new member", c.name, p.Kind, p.Sender)
	}
	sc := p.Commit
	if s := sc.Sender(); s.Type != mls.SenderNewMemberCommit || s.Index != joinerLeaf {
		t.Fatalf("%s: staged commit sender %+v, want new member at leaf %d", c.name, s, joinerLeaf)
	}
	found := false
	for _, cr := range sc.NewCredentials() {
		found = found || cr.Equal(joiner)
	}
	if !found {
		t.Fatalf("%s: the joiner's credential is not among the new credentials", c.name)
	}
	if err := c.group.MergeStagedCommit(ctx, sc); err != nil {
		t.Fatalf("%s: merge: %v", c.name, err)
	}
	return sc
}

func exportGroupInfo(t testing.TB, c *client, withTree bool) *mls.Message {
	t.Helper()
	gi, err := c.group.ExportGroupInfo(withTree)
	if err != nil {
		t.Fatal(err)
	}
	return gi
}

// TestJoinExternal: a client joins a group of three by external commit
// (RFC 9420, Section 12.4.3.2) in every suite; the members accept it, all
// four agree on the epoch, and the joiner can send and receive.
func TestJoinExternal(t *testing.T) {
	for _, suite := range ciphersuite.All() {
		t.Run(suite.String(), func(t *testing.T) { testJoinExternal(t, suite) })
	}
}

func testJoinExternal(t *testing.T, suite mls.CipherSuite) {
	ctx := context.Background()
	cs := newGroupOf(t, suite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	dave := newClient(t, "dave", suite)
	epoch := alice.group.Epoch()
	res := dave.joinExternal(t, exportGroupInfo(t, bob, true), mls.ExternalJoinOptions{})
	if res.Commit.WireFormat() != mls.WireFormatPublicMessage {
		t.Fatalf("external commit sent as %v", res.Commit.WireFormat())
	}
	if dave.group.Epoch() != epoch+1 || dave.group.OwnLeafIndex() != 3 || !dave.group.IsActive() {
		t.Fatalf("joiner at epoch %d leaf %d, want epoch %d leaf 3", dave.group.Epoch(), dave.group.OwnLeafIndex(), epoch+1)
	}
	for _, c := range []*client{alice, bob, charlie} {
		c.processExternalCommit(t, res.Commit, 3, dave.id.Credential)
	}
	agree(t, alice, bob, charlie, dave)
	if n := len(alice.group.Members()); n != 4 {
		t.Fatalf("%d members, want 4", n)
	}

	// The joiner sends to the group and receives a commit from it.
	m, err := dave.group.Seal(ctx, []byte("hi from dave"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob, charlie} {
		p, err := c.group.Process(ctx, roundTrip(t, m))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(p.ApplicationData) != "hi from dave" || p.Sender.Index != 3 {
			t.Fatalf("%s: got %q from %+v", c.name, p.ApplicationData, p.Sender)
		}
	}
	commitAndFan(t, charlie, mls.CommitOptions{ForcePath: true}, alice, bob, dave)
	agree(t, alice, bob, charlie, dave)

	// The GroupInfo the joiner got back serves the next external joiner;
	// this one has no ratchet_tree extension, so the tree comes apart.
	eve := newClient(t, "eve", suite)
	gi := exportGroupInfo(t, dave, false)
	rt, err := dave.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	res = eve.joinExternal(t, gi, mls.ExternalJoinOptions{RatchetTree: rt})
	for _, c := range []*client{alice, bob, charlie, dave} {
		c.processExternalCommit(t, res.Commit, 4, eve.id.Credential)
	}
	agree(t, alice, bob, charlie, dave, eve)
}

// TestJoinExternalFillsBlankLeaf: the joiner takes the leftmost blank
// leaf, and the CommitResult's GroupInfo lets a second client join next.
func TestJoinExternalFillsBlankLeaf(t *testing.T) {
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie", "dave")
	alice, bob, charlie, dave := cs[0], cs[1], cs[2], cs[3]
	commitAndFan(t, alice, mls.CommitOptions{Remove: []uint32{1}}, charlie, dave)
	eve := newClient(t, "eve", regressSuite)
	res := eve.joinExternal(t, exportGroupInfo(t, alice, true), mls.ExternalJoinOptions{})
	if eve.group.OwnLeafIndex() != 1 {
		t.Fatalf("joiner at leaf %d, want the blank leaf 1", eve.group.OwnLeafIndex())
	}
	for _, c := range []*client{alice, charlie, dave} {
		c.processExternalCommit(t, res.Commit, 1, eve.id.Credential)
	}
	agree(t, alice, charlie, dave, eve)
	_ = bob

	// The joiner's state is stored: reload it.
	g, err := loaderOf(eve.store, eve.id.Signer).LoadGroup(context.Background(), eve.group.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	if g.OwnLeafIndex() != 1 || !bytes.Equal(g.EpochAuthenticator(), alice.group.EpochAuthenticator()) {
		t.Fatalf("reloaded joiner at leaf %d, out of step", g.OwnLeafIndex())
	}
	eve.group = g

	// The joiner's own CommitResult.GroupInfo is good for the next join.
	frank := newClient(t, "frank", regressSuite)
	rt, err := eve.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	res2 := frank.joinExternal(t, res.GroupInfo, mls.ExternalJoinOptions{RatchetTree: rt})
	for _, c := range []*client{alice, charlie, dave, eve} {
		c.processExternalCommit(t, res2.Commit, 4, frank.id.Credential)
	}
	agree(t, alice, charlie, dave, eve, frank)
}

// TestJoinExternalResync: a member that lost its state rejoins with an
// external commit that removes its old leaf (RFC 9420, Section 12.4.3.2,
// "resync"). Its old state sees itself removed.
func TestJoinExternalResync(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	// Same identity and signature key, empty store.
	bob2 := &client{name: "bob2", id: bob.id, store: memory.New()}
	gi := exportGroupInfo(t, alice, true)

	// Without removing the old leaf the signature key is taken.
	if _, _, err := clientOf(bob2.store, bob2.id).JoinExternal(ctx, gi, mls.ExternalJoinOptions{}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("join with a signature key in use: got %v, want ErrInvalidArgument", err)
	}
	// A blank leaf cannot be removed.
	missing := uint32(7)
	_, _, err := clientOf(bob2.store, bob2.id).JoinExternal(ctx, gi, mls.ExternalJoinOptions{RemoveLeaf: &missing})
	wantRule(t, err, "ValSem108")

	old := bob.group.OwnLeafIndex()
	res := bob2.joinExternal(t, gi, mls.ExternalJoinOptions{RemoveLeaf: &old})
	if bob2.group.OwnLeafIndex() != old {
		t.Fatalf("rejoined at leaf %d, want the freed leaf %d", bob2.group.OwnLeafIndex(), old)
	}
	for _, c := range []*client{alice, charlie} {
		sc := c.processExternalCommit(t, res.Commit, old, bob.id.Credential)
		rm := sc.RemoveProposals()
		if len(rm) != 1 {
			t.Fatalf("%s: %d Remove proposals, want 1", c.name, len(rm))
		}
		if r, _ := rm[0].Removed(); r != old {
			t.Fatalf("%s: removed leaf %d, want %d", c.name, r, old)
		}
		op, err := mls.NewRemoveOperation(rm[0], c.group)
		if err != nil {
			t.Fatal(err)
		}
		if op.Kind != mls.TheyWereRemovedBy || op.By != (mls.Sender{Type: mls.SenderNewMemberCommit, Index: old}) {
			t.Fatalf("%s: remove operation %+v", c.name, op)
		}
	}
	agree(t, alice, charlie, bob2)
	// The stale copy of bob learns it was replaced.
	p, err := bob.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Commit.SelfRemoved() {
		t.Fatal("old copy not told it was removed")
	}
	if err := bob.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	if bob.group.IsActive() {
		t.Fatal("old copy still active")
	}
	commitAndFan(t, bob2, mls.CommitOptions{ForcePath: true}, alice, charlie)
	agree(t, alice, charlie, bob2)
}

// TestJoinExternalPSK: an external commit may inject external PSKs
// (RFC 9420, Section 12.2); a member without the PSK cannot process it.
func TestJoinExternalPSK(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	dave := newClient(t, "dave", regressSuite)
	id, secret := []byte("shared psk"), bytes.Repeat([]byte{7}, 32)
	for _, c := range []*client{alice, bob, dave} {
		if err := loaderOf(c.store, nil).StorePSK(ctx, id, secret); err != nil {
			t.Fatal(err)
		}
	}
	gi := exportGroupInfo(t, alice, true)
	// The joiner must hold the PSK itself.
	_, _, err := clientOf(memory.New(), dave.id).JoinExternal(ctx, gi, mls.ExternalJoinOptions{ExternalPSKs: [][]byte{[]byte("unknown")}})
	wantRule(t, err, "PSKMissing")

	res := dave.joinExternal(t, gi, mls.ExternalJoinOptions{ExternalPSKs: [][]byte{id}})
	for _, c := range []*client{alice, bob} {
		sc := c.processExternalCommit(t, res.Commit, 3, dave.id.Credential)
		psks := sc.PSKProposals()
		if len(psks) != 1 {
			t.Fatalf("%d PSK proposals, want 1", len(psks))
		}
		if got, ok := psks[0].PSKID(); !ok || !bytes.Equal(got, id) {
			t.Fatalf("PSK id %q, want %q", got, id)
		}
	}
	agree(t, alice, bob, dave)
	_, err = charlie.group.Process(ctx, roundTrip(t, res.Commit))
	wantRule(t, err, "PSKMissing")
}

// TestJoinExternalBadGroupInfo: JoinExternal verifies the GroupInfo and
// the tree before it builds anything (RFC 9420, Sections 12.4.3.1 and
// 12.4.3.2).
func TestJoinExternalBadGroupInfo(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	s, _ := ciphersuite.Lookup(regressSuite)
	dave := newClient(t, "dave", regressSuite)
	giMsg := exportGroupInfo(t, alice, true)
	parse := func() *message.GroupInfo {
		b, err := giMsg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		m, err := message.UnmarshalMLSMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		return m.GroupInfo
	}
	wrap := func(gi *message.GroupInfo) *mls.Message {
		b, err := message.Marshal(&message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatGroupInfo, GroupInfo: gi})
		if err != nil {
			t.Fatal(err)
		}
		m, err := mls.ParseMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	join := func(gi *mls.Message, opts mls.ExternalJoinOptions) error {
		_, _, err := clientOf(memory.New(), dave.id).JoinExternal(ctx, gi, opts)
		return err
	}

	t.Run("no_external_pub", func(t *testing.T) {
		gi := parse()
		var kept []message.Extension
		for _, e := range gi.Extensions {
			if e.Type != message.ExtensionExternalPub {
				kept = append(kept, e)
			}
		}
		gi.Extensions = kept
		if err := gi.Sign(s, alice.id.Signer); err != nil {
			t.Fatal(err)
		}
		wantRule(t, join(wrap(gi), mls.ExternalJoinOptions{}), "ExternalPub")
	})
	t.Run("bad_signature", func(t *testing.T) {
		gi := parse()
		gi.Signature[0] ^= 1
		wantRule(t, join(wrap(gi), mls.ExternalJoinOptions{}), "GroupInfoSignature")
	})
	t.Run("signed_by_another_member", func(t *testing.T) {
		gi := parse()
		if err := gi.Sign(s, bob.id.Signer); err != nil { // Signer field still says alice
			t.Fatal(err)
		}
		wantRule(t, join(wrap(gi), mls.ExternalJoinOptions{}), "GroupInfoSignature")
	})
	t.Run("no_tree", func(t *testing.T) {
		err := join(exportGroupInfo(t, alice, false), mls.ExternalJoinOptions{})
		if !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("got %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("tree_of_another_epoch", func(t *testing.T) {
		stale, err := alice.group.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		commitAndFan(t, bob, mls.CommitOptions{ForcePath: true}, alice)
		wantRule(t, join(exportGroupInfo(t, alice, false), mls.ExternalJoinOptions{RatchetTree: stale}), "TreeValidation")
	})
	t.Run("not_a_group_info", func(t *testing.T) {
		kp, err := dave.keyPackage(t, regressSuite).MarshalMessage()
		if err != nil {
			t.Fatal(err)
		}
		m, err := mls.ParseMessage(kp)
		if err != nil {
			t.Fatal(err)
		}
		if err := join(m, mls.ExternalJoinOptions{}); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("got %v, want ErrInvalidArgument", err)
		}
		if err := join(nil, mls.ExternalJoinOptions{}); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("got %v, want ErrInvalidArgument", err)
		}
	})
}

// externalForger re-signs a genuine external commit after a change, as a
// malicious joiner could.
type externalForger struct {
	t       *testing.T
	s       *ciphersuite.Suite
	gcRaw   []byte // the GroupContext the commit is signed with
	genuine *message.PublicMessage
	signer  crypto.Signer
}

func newExternalForger(t *testing.T, s *ciphersuite.Suite, gi, commit *mls.Message, signer crypto.Signer) *externalForger {
	t.Helper()
	parse := func(m *mls.Message) *message.MLSMessage {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out, err := message.UnmarshalMLSMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	gcRaw, err := message.Marshal(&parse(gi).GroupInfo.GroupContext)
	if err != nil {
		t.Fatal(err)
	}
	return &externalForger{t: t, s: s, gcRaw: gcRaw, genuine: parse(commit).PublicMessage, signer: signer}
}

// forge applies change to a copy of the genuine commit's content and
// signs it with signer (the joiner's key unless nil); tag, if not nil,
// edits the framed message afterwards.
func (f *externalForger) forge(change func(fc *message.FramedContent), signer crypto.Signer, tag func(pm *message.PublicMessage)) *mls.Message {
	t := f.t
	t.Helper()
	fc := f.genuine.Content
	c := *fc.Commit
	c.Proposals = append([]message.ProposalOrRef(nil), c.Proposals...)
	fc.Commit = &c
	if change != nil {
		change(&fc)
	}
	if signer == nil {
		signer = f.signer
	}
	ac, err := framing.SignContent(f.s, signer, message.WireFormatPublicMessage, &fc, f.gcRaw)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = f.genuine.Auth.ConfirmationTag
	pm, err := framing.ProtectPublic(f.s, ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tag != nil {
		tag(pm)
	}
	b, err := message.Marshal(&message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatPublicMessage, PublicMessage: pm})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mls.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExternalCommitValidation: the rules for external commits (RFC 9420,
// Sections 12.2 and 12.4.3.2; OpenMLS ValSem240-ValSem246), each with a
// crafted commit that a member must reject without changing its state:
// after all of them it still accepts the genuine commit.
func TestExternalCommitValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := ciphersuite.Lookup(regressSuite)
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob := cs[0], cs[1]
	// A proposal bob holds, to be referenced.
	pm, _, err := alice.group.ProposeRemove(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	queued := bob.receiveProposal(t, pm)
	if err := alice.group.RemovePendingProposal(ctx, queued.Ref()); err != nil {
		t.Fatal(err)
	}

	dave := newClient(t, "dave", regressSuite)
	gi := exportGroupInfo(t, alice, true)
	g, res, err := clientOf(dave.store, dave.id).JoinExternal(ctx, roundTrip(t, gi), mls.ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := newExternalForger(t, s, gi, res.Commit, dave.id.Signer)
	kpRaw, err := newClient(t, "eve", regressSuite).keyPackage(t, regressSuite).MarshalMessage()
	if err != nil {
		t.Fatal(err)
	}
	kpMsg, err := message.UnmarshalMLSMessage(kpRaw)
	if err != nil {
		t.Fatal(err)
	}
	inline := func(p *message.Proposal) func(fc *message.FramedContent) {
		return func(fc *message.FramedContent) {
			fc.Commit.Proposals = append(fc.Commit.Proposals, message.ProposalOrRef{Proposal: p})
		}
	}
	epoch := bob.group.Epoch()
	auth := bob.group.EpochAuthenticator()
	reject := func(t *testing.T, m *mls.Message, rule string) {
		t.Helper()
		_, err := bob.group.Process(ctx, m)
		wantRule(t, err, rule)
		if bob.group.Epoch() != epoch || !bytes.Equal(bob.group.EpochAuthenticator(), auth) {
			t.Fatal("a rejected commit changed the group")
		}
	}

	t.Run("ValSem240", func(t *testing.T) {
		reject(t, f.forge(func(fc *message.FramedContent) { fc.Commit.Proposals = []message.ProposalOrRef{} }, nil, nil), "ValSem240")
	})
	t.Run("ValSem241", func(t *testing.T) {
		ei := f.genuine.Content.Commit.Proposals[0].Proposal
		if ei.Type != message.ProposalExternalInit {
			t.Fatalf("first proposal of type %d", ei.Type)
		}
		reject(t, f.forge(inline(ei), nil, nil), "ValSem241")
	})
	t.Run("ValSem242", func(t *testing.T) {
		leaf := f.genuine.Content.Commit.Path.LeafNode
		leaf.Source = message.LeafNodeSourceUpdate
		for name, p := range map[string]*message.Proposal{
			"add":    {Type: message.ProposalAdd, Add: &message.AddProposal{KeyPackage: *kpMsg.KeyPackage}},
			"update": {Type: message.ProposalUpdate, Update: &message.UpdateProposal{LeafNode: leaf}},
			"gce":    {Type: message.ProposalGroupContextExtensions, GroupContextExtensions: &message.GroupContextExtensionsProposal{Extensions: []message.Extension{}}},
			"reinit": {Type: message.ProposalReInit, ReInit: &message.ReInitProposal{GroupID: []byte("new"), Version: message.MLS10, CipherSuite: regressSuite, Extensions: []message.Extension{}}},
			"custom": {Type: 0xff00, Data: []byte("x")},
		} {
			t.Run(name, func(t *testing.T) { reject(t, f.forge(inline(p), nil, nil), "ValSem242") })
		}
		t.Run("two_removes", func(t *testing.T) {
			rm := func(l uint32) *message.Proposal {
				return &message.Proposal{Type: message.ProposalRemove, Remove: &message.RemoveProposal{Removed: l}}
			}
			reject(t, f.forge(func(fc *message.FramedContent) { inline(rm(1))(fc); inline(rm(2))(fc) }, nil, nil), "ValSem242")
		})
	})
	t.Run("ValSem244", func(t *testing.T) {
		reject(t, f.forge(func(fc *message.FramedContent) {
			fc.Commit.Proposals = append(fc.Commit.Proposals, message.ProposalOrRef{Reference: queued.Ref()})
		}, nil, nil), "ValSem244")
	})
	t.Run("ValSem245", func(t *testing.T) {
		reject(t, f.forge(func(fc *message.FramedContent) { fc.Commit.Path = nil }, nil, nil), "ValSem245")
	})
	t.Run("ValSem246", func(t *testing.T) {
		// Signed by a member instead of the path's leaf key.
		m := f.forge(nil, alice.id.Signer, nil)
		reject(t, m, "ValSem246")
		_, err := bob.group.Process(ctx, m)
		wantRule(t, err, "ValSem010")
	})
	t.Run("bad_kem_output", func(t *testing.T) {
		reject(t, f.forge(func(fc *message.FramedContent) {
			fc.Commit.Proposals[0] = message.ProposalOrRef{Proposal: &message.Proposal{Type: message.ProposalExternalInit, ExternalInit: &message.ExternalInitProposal{KEMOutput: []byte{1, 2, 3}}}}
		}, nil, nil), "ExternalInit")
	})
	t.Run("wrong_confirmation_tag", func(t *testing.T) {
		reject(t, f.forge(nil, nil, func(pm *message.PublicMessage) { pm.Auth.ConfirmationTag = make([]byte, s.HashSize()) }), "ValSem205")
	})

	// Nothing changed: the genuine commit still goes through.
	dave.group = g
	bob.processExternalCommit(t, res.Commit, 3, dave.id.Credential)
	agree(t, bob, dave)
}

// TestJoinProposal: a client outside the group asks to join with an
// external Add proposal (RFC 9420, Section 12.1.8, new_member_proposal);
// a member commits it and the client joins from the Welcome.
func TestJoinProposal(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	eve := newClient(t, "eve", regressSuite)
	kp := eve.keyPackage(t, regressSuite)
	gi := exportGroupInfo(t, alice, false)

	if _, err := mls.NewJoinProposal(kp, bob.id.Signer, gi); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("join proposal signed by another key: got %v, want ErrInvalidArgument", err)
	}
	other := newClient(t, "other", mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256)
	if _, err := mls.NewJoinProposal(other.keyPackage(t, mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256), other.id.Signer, gi); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("join proposal for another suite: got %v, want ErrInvalidArgument", err)
	}

	m, err := mls.NewJoinProposal(kp, eve.id.Signer, gi)
	if err != nil {
		t.Fatal(err)
	}
	if m.WireFormat() != mls.WireFormatPublicMessage || !bytes.Equal(m.GroupID(), alice.group.GroupID()) || m.Epoch() != alice.group.Epoch() {
		t.Fatalf("join proposal: %v for group %x epoch %d", m.WireFormat(), m.GroupID(), m.Epoch())
	}
	for _, c := range []*client{alice, bob} {
		p, err := c.group.Process(ctx, roundTrip(t, m))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.Kind != mls.KindProposal || p.Sender.Type != mls.SenderNewMemberProposal || p.Proposal.Type() != mls.ProposalAdd {
			t.Fatalf("%s: got %v %v from %+v", c.name, p.Kind, p.Proposal, p.Sender)
		}
		if cr, _ := p.Proposal.AddedCredential(); !cr.Equal(eve.id.Credential) {
			t.Fatalf("%s: proposal adds %v", c.name, cr)
		}
		if !p.Credential.Equal(eve.id.Credential) {
			t.Fatalf("%s: sender credential %v", c.name, p.Credential)
		}
		if err := c.group.StorePendingProposal(ctx, p.Proposal); err != nil {
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
	alice.processCommit(t, res.Commit)
	rt, err := bob.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	eve.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob, eve)

	// A join proposal for an epoch that has passed is refused.
	_, err = alice.group.Process(ctx, roundTrip(t, m))
	if !errors.Is(err, mls.ErrPastEpoch) {
		t.Fatalf("stale join proposal: got %v, want ErrPastEpoch", err)
	}
	// A join proposal whose signature does not verify is refused.
	gi = exportGroupInfo(t, alice, false)
	frank := newClient(t, "frank", regressSuite)
	m, err = mls.NewJoinProposal(frank.keyPackage(t, regressSuite), frank.id.Signer, gi)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.MarshalBinary()
	b[len(b)-1] ^= 1 // last octet of the signature
	bad, err := mls.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.group.Process(ctx, bad)
	wantRule(t, err, "ValSem010")
}

// dsGroup is a group of alice, bob and charlie whose external_senders
// extension lists a delivery service key at index 0.
func dsGroup(t *testing.T) ([]*client, crypto.Signer) {
	t.Helper()
	s, _ := ciphersuite.Lookup(regressSuite)
	ds, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := s.SignaturePublicKey(ds)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mls.GroupConfig{ExternalSenders: []mls.ExternalSender{{SignatureKey: pub, Credential: credential.NewBasic([]byte("ds"))}}}
	return newGroupOf(t, regressSuite, cfg, false, "alice", "bob", "charlie"), ds
}

// TestExternalProposal: an external sender listed in external_senders
// (RFC 9420, Section 12.1.8.1) proposes removing and adding members; the
// members process, store and commit the proposals.
func TestExternalProposal(t *testing.T) {
	ctx := context.Background()
	cs, ds := dsGroup(t)
	alice, bob, charlie := cs[0], cs[1], cs[2]
	send := func(p mls.Proposal) *mls.Message {
		t.Helper()
		m, err := mls.NewExternalProposal(alice.group.GroupID(), alice.group.Epoch(), regressSuite, 0, ds, p)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	receive := func(c *client, m *mls.Message, want mls.ProposalType) *mls.QueuedProposal {
		t.Helper()
		p, err := c.group.Process(ctx, roundTrip(t, m))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.Kind != mls.KindProposal || p.Sender != (mls.Sender{Type: mls.SenderExternal, Index: 0}) || p.Proposal.Type() != want {
			t.Fatalf("%s: got %v from %+v", c.name, p.Kind, p.Sender)
		}
		if !p.Credential.Equal(credential.NewBasic([]byte("ds"))) {
			t.Fatalf("%s: sender credential %v", c.name, p.Credential)
		}
		if err := c.group.StorePendingProposal(ctx, p.Proposal); err != nil {
			t.Fatal(err)
		}
		return p.Proposal
	}

	// Remove charlie.
	m := send(mls.RemoveProposal(2))
	for _, c := range cs {
		receive(c, m, mls.ProposalRemove)
	}
	res, err := bob.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.processCommit(t, res.Commit)
	p, err := charlie.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	op, err := mls.NewRemoveOperation(p.Commit.RemoveProposals()[0], charlie.group)
	if err != nil {
		t.Fatal(err)
	}
	if op.Kind != mls.WeWereRemovedBy || op.By.Type != mls.SenderExternal {
		t.Fatalf("remove operation %+v", op)
	}
	if err := charlie.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	if charlie.group.IsActive() {
		t.Fatal("charlie still active")
	}
	agree(t, alice, bob)

	// Add eve, and inject a PSK, by external proposals.
	eve := newClient(t, "eve", regressSuite)
	psk := []byte("ds psk")
	for _, c := range []*client{alice, bob, eve} {
		if err := loaderOf(c.store, nil).StorePSK(ctx, psk, bytes.Repeat([]byte{3}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	add, pskMsg := send(mls.AddProposal(eve.keyPackage(t, regressSuite))), send(mls.ExternalPSKProposal(psk))
	for _, c := range []*client{alice, bob} {
		receive(c, add, mls.ProposalAdd)
		receive(c, pskMsg, mls.ProposalPSK)
	}
	res, err = alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.processCommit(t, res.Commit)
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	eve.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	agree(t, alice, bob, eve)

	// An index outside external_senders, or the wrong key, is refused.
	m, err = mls.NewExternalProposal(alice.group.GroupID(), alice.group.Epoch(), regressSuite, 1, ds, mls.RemoveProposal(1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.group.Process(ctx, m)
	wantRule(t, err, "ExternalSender")
	m, err = mls.NewExternalProposal(alice.group.GroupID(), alice.group.Epoch(), regressSuite, 0, bob.id.Signer, mls.RemoveProposal(1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.group.Process(ctx, m)
	wantRule(t, err, "ValSem010")
}

// TestExternalProposalRules: what an external sender may not send.
func TestExternalProposalRules(t *testing.T) {
	ctx := context.Background()
	cs, ds := dsGroup(t)
	alice := cs[0]
	s, _ := ciphersuite.Lookup(regressSuite)
	groupID, epoch := alice.group.GroupID(), alice.group.Epoch()

	// The constructor refuses proposal types RFC 9420, Section 12.1.8
	// does not allow, and incomplete proposals.
	for name, p := range map[string]mls.Proposal{
		"zero":         {},
		"add_nil_kp":   mls.AddProposal(nil),
		"psk_no_id":    mls.ExternalPSKProposal(nil),
		"reinit_suite": mls.ReInitProposal(mls.ReInitParams{GroupID: []byte("x"), CipherSuite: 0x7777}),
	} {
		if _, err := mls.NewExternalProposal(groupID, epoch, regressSuite, 0, ds, p); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := mls.NewExternalProposal(groupID, epoch, regressSuite, 0, ds, mls.AddProposal(newClient(t, "p", mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256).keyPackage(t, mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256))); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Errorf("add for another suite: got %v, want ErrInvalidArgument", err)
	}

	// A crafted external proposal of a custom type is malformed.
	fc := &message.FramedContent{GroupID: groupID, Epoch: epoch, Sender: message.Sender{Type: message.SenderExternal}, AuthenticatedData: []byte{},
		ContentType: message.ContentProposal, Proposal: &message.Proposal{Type: 0xff00, Data: []byte("x")}}
	ac, err := framing.SignContent(s, ds, message.WireFormatPublicMessage, fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := framing.ProtectPublic(s, ac, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := message.Marshal(&message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatPublicMessage, PublicMessage: pm})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mls.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.group.Process(ctx, m)
	wantRule(t, err, "ExternalProposalType")
	if len(alice.group.PendingProposals()) != 0 {
		t.Fatal("a rejected proposal was queued")
	}
}

// TestProposePSK: a member proposes an external PSK (RFC 9420, Section
// 12.1.4); another commits the proposal by reference.
func TestProposePSK(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	id := []byte("team psk")
	if _, _, err := bob.group.ProposePSK(ctx, id); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("PSK not stored: got %v, want ErrNotFound", err)
	}
	if _, _, err := bob.group.ProposePSK(ctx, nil); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("empty PSK id: got %v, want ErrInvalidArgument", err)
	}
	for _, c := range cs {
		if err := loaderOf(c.store, nil).StorePSK(ctx, id, bytes.Repeat([]byte{9}, 32)); err != nil {
			t.Fatal(err)
		}
	}
	m, _, err := bob.group.ProposePSK(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, charlie} {
		q := c.receiveProposal(t, m)
		if got, ok := q.PSKID(); q.Type() != mls.ProposalPSK || !ok || !bytes.Equal(got, id) {
			t.Fatalf("%s: proposal %v for PSK %q", c.name, q, got)
		}
	}
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, charlie} {
		p, err := c.group.Process(ctx, roundTrip(t, res.Commit))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := len(p.Commit.PSKProposals()); n != 1 {
			t.Fatalf("%s: %d PSK proposals committed", c.name, n)
		}
		if err := c.group.MergeStagedCommit(ctx, p.Commit); err != nil {
			t.Fatal(err)
		}
	}
	agree(t, alice, bob, charlie)
}

// TestProposeGroupContextExtensions: a member proposes new group context
// extensions (RFC 9420, Section 12.1.7); they apply when committed.
func TestProposeGroupContextExtensions(t *testing.T) {
	ctx := context.Background()
	caps := mls.Capabilities{Extensions: []uint16{0xff01}}
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{Capabilities: caps}, false, "alice")
	alice := cs[0]
	bob, charlie := newClient(t, "bob", regressSuite), newClient(t, "charlie", regressSuite)
	var kps []*mls.KeyPackage
	for _, c := range []*client{bob, charlie} {
		kp, err := clientOf(c.store, c.id).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{Capabilities: caps})
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	res := commitAndFan(t, alice, mls.CommitOptions{Add: kps})
	rt, _ := alice.group.ExportRatchetTree()
	bob.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	charlie.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)

	// Unsupported extension types and malformed lists are refused.
	_, _, err := bob.group.ProposeGroupContextExtensions(ctx, []mls.Extension{{Type: 0xff02, Data: []byte{}}})
	wantRule(t, err, "ValSem209")
	_, _, err = bob.group.ProposeGroupContextExtensions(ctx, []mls.Extension{{Type: 0xff01}, {Type: 0xff01}})
	wantRule(t, err, "ValSem209")

	exts := []mls.Extension{{Type: 0xff01, Data: []byte("policy v2")}}
	m, _, err := bob.group.ProposeGroupContextExtensions(ctx, exts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, charlie} {
		q := c.receiveProposal(t, m)
		if got, ok := q.GroupContextExtensions(); !ok || len(got) != 1 || got[0].Type != 0xff01 || string(got[0].Data) != "policy v2" {
			t.Fatalf("%s: proposal carries %v", c.name, got)
		}
	}
	commitAndFan(t, charlie, mls.CommitOptions{}, alice, bob)
	agree(t, alice, bob, charlie)
	for _, c := range []*client{alice, bob, charlie} {
		got := c.group.Extensions()
		if len(got) != 1 || got[0].Type != 0xff01 || string(got[0].Data) != "policy v2" {
			t.Fatalf("%s: extensions %v", c.name, got)
		}
	}
}

// TestProposeCustom: a proposal of a type RFC 9420 does not define, which
// every member supports (ValSem113, RFC 9420, Section 12.2).
func TestProposeCustom(t *testing.T) {
	ctx := context.Background()
	const custom = 0xff10
	caps := mls.Capabilities{Proposals: []uint16{custom}}
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{Capabilities: caps}, false, "alice")
	alice := cs[0]
	bob, charlie := newClient(t, "bob", regressSuite), newClient(t, "charlie", regressSuite)
	kpB, err := clientOf(bob.store, bob.id).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	res := commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{kpB}})
	rt, _ := alice.group.ExportRatchetTree()
	bob.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)

	if _, _, err := bob.group.ProposeCustom(ctx, uint16(mls.ProposalRemove), nil); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("custom proposal of an RFC type: got %v, want ErrInvalidArgument", err)
	}
	m, _, err := bob.group.ProposeCustom(ctx, custom, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	q := alice.receiveProposal(t, m)
	if data, ok := q.CustomData(); q.Type() != custom || !ok || string(data) != "payload" {
		t.Fatalf("received %v with data %q", q, data)
	}
	res, err = alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := bob.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if ps := p.Commit.Proposals(); len(ps) != 1 || ps[0].Type() != custom {
		t.Fatalf("commit covers %v, want the custom proposal", ps)
	}
	if err := bob.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatal(err)
	}
	agree(t, alice, bob)

	// Charlie does not support the type: nobody may propose it now.
	res = commitAndFan(t, alice, mls.CommitOptions{Add: []*mls.KeyPackage{charlie.keyPackage(t, regressSuite)}}, bob)
	rt, _ = alice.group.ExportRatchetTree()
	charlie.join(t, roundTrip(t, res.Welcome), mls.JoinConfig{}, rt)
	_, _, err = bob.group.ProposeCustom(ctx, custom, []byte("payload"))
	wantRule(t, err, "ValSem113")
}

// TestReInit: a member proposes reinitializing the group (RFC 9420,
// Sections 11.2 and 12.1.5); a commit that covers the ReInit alone shuts
// the group down and tells the parameters of the new group.
func TestReInit(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	newSuite := mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	exts := []mls.Extension{{Type: 0xff05, Data: []byte("e")}}

	if _, _, err := bob.group.ProposeReInit(ctx, []byte("g2"), 0x7777, nil); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("ReInit to an unknown suite: got %v, want ErrInvalidArgument", err)
	}
	m, _, err := bob.group.ProposeReInit(ctx, []byte("g2"), newSuite, exts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, charlie} {
		q := c.receiveProposal(t, m)
		if r, ok := q.ReInit(); !ok || string(r.GroupID) != "g2" || r.CipherSuite != newSuite || r.Version != 1 {
			t.Fatalf("%s: ReInit proposal %+v", c.name, r)
		}
	}

	// With another proposal pending, a commit leaves the ReInit out
	// (RFC 9420, Section 12.2) and the group goes on.
	rm, _, err := charlie.group.ProposeRemove(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	alice.receiveProposal(t, rm)
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := charlie.group.Process(ctx, roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Commit.ReInit(); ok || len(p.Commit.Proposals()) != 1 {
		t.Fatalf("commit covers %d proposals, ReInit included", len(p.Commit.Proposals()))
	}
	if err := alice.group.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	// A ReInit commit cannot carry anything else.
	if _, err := alice.group.Commit(ctx, mls.CommitOptions{ReInit: &mls.ReInitParams{GroupID: []byte("g3"), CipherSuite: newSuite}}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("inline ReInit with pending proposals: got %v, want ErrInvalidArgument", err)
	}
	if err := alice.group.RemovePendingProposal(ctx, p.Commit.Proposals()[0].Ref()); err != nil {
		t.Fatal(err)
	}

	// Now the ReInit goes alone.
	res, err = alice.group.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, charlie} {
		p, err := c.group.Process(ctx, roundTrip(t, res.Commit))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r, ok := p.Commit.ReInit(); !ok || string(r.GroupID) != "g2" {
			t.Fatalf("%s: staged commit ReInit %+v", c.name, r)
		}
		if err := c.group.MergeStagedCommit(ctx, p.Commit); err != nil {
			t.Fatal(err)
		}
	}
	agree(t, alice, bob, charlie)
	for _, c := range cs {
		if c.group.IsActive() {
			t.Fatalf("%s: still active after ReInit", c.name)
		}
		r, ok := c.group.ReInitParams()
		if !ok || string(r.GroupID) != "g2" || r.CipherSuite != newSuite || len(r.Extensions) != 1 || r.Extensions[0].Type != 0xff05 {
			t.Fatalf("%s: ReInitParams %+v", c.name, r)
		}
	}
	if _, err := alice.group.Seal(ctx, []byte("x"), nil); !errors.Is(err, mls.ErrInactive) {
		t.Fatalf("Seal after ReInit: got %v, want ErrInactive", err)
	}
	if _, err := alice.group.SelfUpdate(ctx); !errors.Is(err, mls.ErrInactive) {
		t.Fatalf("commit after ReInit: got %v, want ErrInactive", err)
	}
	// The parameters survive a reload.
	g, err := loaderOf(bob.store, bob.id.Signer).LoadGroup(ctx, bob.group.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := g.ReInitParams(); g.IsActive() || !ok || string(r.GroupID) != "g2" {
		t.Fatalf("reloaded: active %v, ReInitParams %+v", g.IsActive(), r)
	}
}

// TestReInitInline: CommitOptions.ReInit commits a ReInit directly; an
// active group has no ReInit parameters.
func TestReInitInline(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	if _, ok := bob.group.ReInitParams(); ok {
		t.Fatal("active group has ReInit parameters")
	}
	commitAndFan(t, alice, mls.CommitOptions{ReInit: &mls.ReInitParams{GroupID: []byte("g2"), CipherSuite: regressSuite}}, bob)
	agree(t, alice, bob)
	if r, ok := bob.group.ReInitParams(); bob.group.IsActive() || !ok || string(r.GroupID) != "g2" {
		t.Fatalf("after ReInit commit: active %v, params %+v", bob.group.IsActive(), r)
	}
	if _, err := bob.group.Process(ctx, roundTrip(t, exportGroupInfo(t, alice, false))); !errors.Is(err, mls.ErrInactive) {
		t.Fatalf("Process after ReInit: got %v, want ErrInactive", err)
	}
}

// TestReInitGroup: the whole reinitialization of RFC 9420, Section 11.2:
// after the ReInit commit a member creates the new group with the new
// suite, and the others join it from a Welcome that resumes the old group
// with a reinit PSK found in their stores.
func TestReInitGroup(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob", "charlie")
	alice, bob, charlie := cs[0], cs[1], cs[2]
	if _, _, err := alice.group.ReInitGroup(ctx, clientOf(alice.store, alice.id), mls.GroupConfig{}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("ReInitGroup of an active group: got %v, want ErrInvalidArgument", err)
	}
	newSuite := mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256
	exts := []mls.Extension{{Type: 0xff05, Data: []byte("v2")}}
	m, _, err := bob.group.ProposeReInit(ctx, []byte("group v2"), newSuite, exts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, charlie} {
		c.receiveProposal(t, m)
	}
	commitAndFan(t, alice, mls.CommitOptions{}, bob, charlie)
	oldID, oldEpoch := alice.group.GroupID(), alice.group.Epoch()

	// Everyone gets an identity and a key package for the new suite, in
	// the store that holds the old group; dave was never in it.
	dave := newClient(t, "dave", newSuite)
	caps := mls.Capabilities{Extensions: []uint16{0xff05}}
	ids := map[*client]mls.Identity{}
	var kps []*mls.KeyPackage
	for _, c := range []*client{alice, bob, charlie, dave} {
		s, _ := ciphersuite.Lookup(newSuite)
		signer, err := s.GenerateSignatureKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[c] = mls.Identity{Credential: c.id.Credential, Signer: signer}
		if c == charlie {
			continue
		}
		kp, err := clientOf(c.store, ids[c]).NewKeyPackage(ctx, newSuite, mls.KeyPackageOptions{Capabilities: caps})
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	if _, _, err := charlie.group.ReInitGroup(ctx, clientOf(charlie.store, ids[charlie]), mls.GroupConfig{ExternalSenders: []mls.ExternalSender{{}}}, kps...); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("ReInitGroup adding extensions: got %v, want ErrInvalidArgument", err)
	}
	ng, res, err := charlie.group.ReInitGroup(ctx, clientOf(charlie.store, ids[charlie]), mls.GroupConfig{Capabilities: caps}, kps...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if string(ng.GroupID()) != "group v2" || ng.CipherSuite() != newSuite || ng.Epoch() != 1 {
		t.Fatalf("new group %q suite %v epoch %d", ng.GroupID(), ng.CipherSuite(), ng.Epoch())
	}
	rt, err := ng.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	next := []*client{{name: "charlie2", group: ng}}
	for _, c := range []*client{alice, bob} {
		sw, err := clientOf(c.store, ids[c]).StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{RatchetTree: rt})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		g, err := sw.Join(ctx)
		if err != nil {
			t.Fatal(err)
		}
		next = append(next, &client{name: c.name + "2", group: g})
	}
	agree(t, next...)
	if got := next[1].group.Extensions(); len(got) != 1 || got[0].Type != 0xff05 || string(got[0].Data) != "v2" {
		t.Fatalf("new group extensions %v", got)
	}
	// Dave's store has no state of the old group, so no reinit PSK.
	_, err = clientOf(dave.store, ids[dave]).StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{RatchetTree: rt})
	wantRule(t, err, "PSKMissing")
	// The old groups stay, inactive, at the ReInit epoch.
	old, err := clientOf(alice.store, alice.id).LoadGroup(ctx, oldID)
	if err != nil {
		t.Fatal(err)
	}
	if old.IsActive() || old.Epoch() != oldEpoch {
		t.Fatalf("old group active %v at epoch %d", old.IsActive(), old.Epoch())
	}
}

// BenchmarkExternalJoin measures an external join (RFC 9420, Section
// 12.4.3.2) into the benchmark groups of bench_test.go: the joiner
// verifying the GroupInfo and tree and building the commit, and a member
// processing the commit (not merged, so every round sees the same group).
func BenchmarkExternalJoin(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if testing.Short() && n > shortMaxN {
				b.Skipf("N=%d: setup takes too long for -short (limit N=%d)", n, shortMaxN)
			}
			ctx := context.Background()
			g := cachedBenchGroup(b, n, "fresh")
			gi, err := g.bob.group.ExportGroupInfo(true)
			if err != nil {
				b.Fatal(err)
			}
			joiner := newBenchMember(b, "external joiner")
			_, res, err := clientOf(joiner.store, joiner.id).JoinExternal(ctx, gi, mls.ExternalJoinOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.Run("JoinExternal", func(b *testing.B) {
				for b.Loop() {
					if _, _, err := clientOf(joiner.store, joiner.id).JoinExternal(ctx, gi, mls.ExternalJoinOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ProcessExternalCommit", func(b *testing.B) { benchProcess(b, g, res.Commit) })
		})
	}
}

// External commits (OpenMLS's external_commit_builder): a member publishes
// a GroupInfo, and a client joins with it on its own, without a Welcome.
func ExampleClient_JoinExternal() {
	ctx := context.Background()
	cs := exGroup("alice", "bob")
	alice, bob := cs[0], cs[1]
	gi, err := bob.group.ExportGroupInfo(true) // with the ratchet tree
	if err != nil {
		log.Fatal(err)
	}
	dave := newExClient("dave")
	g, res, err := dave.client.JoinExternal(ctx, exWire(gi), mls.ExternalJoinOptions{})
	if err != nil {
		log.Fatal(err)
	}
	// Once the delivery service accepted res.Commit, dave is in.
	p, err := alice.group.Process(ctx, exWire(res.Commit))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Kind, "from a new member at leaf", p.Commit.Sender().Index)
	if err := alice.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		log.Fatal(err)
	}
	fmt.Println(exNames(alice.group.Members()))
	fmt.Println(g.Epoch() == alice.group.Epoch(), bytes.Equal(g.EpochAuthenticator(), alice.group.EpochAuthenticator()))
	// Output:
	// commit from a new member at leaf 2
	// alice, bob, dave
	// true true
}

// External proposals (RFC 9420, Section 12.1.8): a delivery service listed
// in the external_senders extension proposes to remove a member.
func ExampleNewExternalProposal() {
	ctx := context.Background()
	s, err := ciphersuite.Lookup(exampleSuite)
	if err != nil {
		log.Fatal(err)
	}
	ds, err := s.GenerateSignatureKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	dsPub, err := s.SignaturePublicKey(ds)
	if err != nil {
		log.Fatal(err)
	}
	alice := newExClient("alice")
	alice.group, err = alice.client.CreateGroup(ctx, exampleSuite, mls.GroupConfig{ExternalSenders: []mls.ExternalSender{{SignatureKey: dsPub, Credential: credential.NewBasic([]byte("ds"))}}})
	if err != nil {
		log.Fatal(err)
	}
	bob := newExClient("bob")
	if _, err := alice.group.AddMembers(ctx, bob.keyPackage()); err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}

	m, err := mls.NewExternalProposal(alice.group.GroupID(), alice.group.Epoch(), exampleSuite, 0, ds, mls.RemoveProposal(1))
	if err != nil {
		log.Fatal(err)
	}
	p, err := alice.group.Process(ctx, exWire(m))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Kind, "from", string(p.Credential.Identity()))
	if err := alice.group.StorePendingProposal(ctx, p.Proposal); err != nil {
		log.Fatal(err)
	}
	if _, err := alice.group.CommitPendingProposals(ctx); err != nil {
		log.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(exNames(alice.group.Members()))
	// Output:
	// proposal from ds
	// alice
}

// TestExternalUnderPrivateOnlyPolicy: a group whose members accept only
// PrivateMessage handshakes still accepts external commits and proposals,
// which non-members can only send as PublicMessage (as OpenMLS does).
func TestExternalUnderPrivateOnlyPolicy(t *testing.T) {
	ctx := context.Background()
	policy := mls.WireFormatPolicy{OutgoingPrivate: true, Incoming: mls.AcceptPrivateOnly}
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{JoinConfig: mls.JoinConfig{WireFormatPolicy: policy}}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	dave := newClient(t, "dave", regressSuite)
	m, err := mls.NewJoinProposal(dave.keyPackage(t, regressSuite), dave.id.Signer, exportGroupInfo(t, alice, false))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := alice.group.Process(ctx, roundTrip(t, m)); err != nil || p.Kind != mls.KindProposal {
		t.Fatalf("join proposal under a private-only policy: %v", err)
	}
	res := dave.joinExternal(t, exportGroupInfo(t, alice, true), mls.ExternalJoinOptions{JoinConfig: mls.JoinConfig{WireFormatPolicy: policy}})
	for _, c := range []*client{alice, bob} {
		c.processExternalCommit(t, res.Commit, 2, dave.id.Credential)
	}
	agree(t, alice, bob, dave)
	// The joiner's own handshakes follow its policy.
	res2 := commitAndFan(t, dave, mls.CommitOptions{ForcePath: true}, alice, bob)
	if res2.Commit.WireFormat() != mls.WireFormatPrivateMessage {
		t.Fatalf("joiner's commit sent as %v", res2.Commit.WireFormat())
	}
	agree(t, alice, bob, dave)
}

// FuzzJoinExternal feeds arbitrary GroupInfo messages (and ratchet trees)
// to JoinExternal, and arbitrary messages to a member as external commits
// and proposals: nothing may panic, and a member must not move without a
// merge. The corpus (testdata/fuzz/FuzzJoinExternal, written by
// TestGenerateFuzzCorpus) holds real GroupInfos, trees, external commits
// and a join proposal of the fixture's group.
func FuzzJoinExternal(f *testing.F) {
	fuzzcorpus.Require(f, 0)
	ctx := context.Background()
	var fx *externalFixture
	f.Fuzz(func(t *testing.T, b, tree []byte) {
		if fx == nil {
			fx = newExternalFixture(t)
		}
		m, err := mls.ParseMessage(b)
		if err != nil {
			return
		}
		if m.WireFormat() == mls.WireFormatGroupInfo {
			// Success is possible (a seed); failure must be an error.
			_, _, _ = fuzzClient(memory.New(), fx.dave.id).JoinExternal(ctx, m, mls.ExternalJoinOptions{RatchetTree: tree})
			return
		}
		_, err = fx.bob.group.Process(ctx, m)
		if fx.bob.group.Epoch() != fx.epoch || !bytes.Equal(fx.bob.group.EpochAuthenticator(), fx.auth) {
			t.Fatalf("processing changed the group (err %v)", err)
		}
	})
}

// TestReInitWelcomeOtherBranch: two members committed different ReInits
// for the same epoch; the reinit PSK of one branch (RFC 9420, Section
// 11.2) does not open the Welcome of the other, so alice cannot be pulled
// into bob's new group.
func TestReInitWelcomeOtherBranch(t *testing.T) {
	ctx := context.Background()
	cs := newGroupOf(t, regressSuite, mls.GroupConfig{}, false, "alice", "bob")
	alice, bob := cs[0], cs[1]
	if _, err := bob.group.Commit(ctx, mls.CommitOptions{ReInit: &mls.ReInitParams{GroupID: []byte("bob's v2"), CipherSuite: regressSuite}}); err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.group.Commit(ctx, mls.CommitOptions{ReInit: &mls.ReInitParams{GroupID: []byte("alice's v2"), CipherSuite: regressSuite}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := ciphersuite.Lookup(regressSuite)
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := clientOf(alice.store, mls.Identity{Credential: alice.id.Credential, Signer: signer}).NewKeyPackage(ctx, regressSuite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := bob.group.ReInitGroup(ctx, clientOf(bob.store, bob.id), mls.GroupConfig{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}, kp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = clientOf(alice.store, alice.id).StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{})
	if !errors.Is(err, mls.ErrDecrypt) {
		t.Fatalf("Welcome of the other branch: got %v, want ErrDecrypt", err)
	}
}
