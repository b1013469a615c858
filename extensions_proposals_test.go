package mls

// SelfRemove and AppDataUpdate proposals (draft-ietf-mls-extensions,
// "SelfRemove Proposal" and "Updating Application Data in the
// GroupContext"): the happy paths through the API, and each rule with a
// crafted message that a member and a PublicGroup (followerRejects, via
// reject) must refuse without a change of state.

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/storage/memory"
)

// draftCaps lists the draft's proposal types and app_data_dictionary.
var draftCaps = Capabilities{Proposals: []uint16{ProposalTypeAppDataUpdate, ProposalTypeSelfRemove}, Extensions: []uint16{ExtensionAppDataDictionary}}

// newDraftGroup is a group of n members that all support the draft's
// proposals, with an external sender ds if dsPub is set.
func newDraftGroup(t *testing.T, n int, ext []ExternalSender) *vGroup {
	t.Helper()
	return newVGroup(t, vSetup{n: n, cfg: GroupConfig{Capabilities: draftCaps, ExternalSenders: ext},
		kp: func(int) KeyPackageOptions { return KeyPackageOptions{Capabilities: draftCaps} }})
}

func selfRemoveProp() *message.Proposal {
	return &message.Proposal{Type: group.ProposalSelfRemove, Data: []byte{}}
}

// appDataProp builds an AppDataUpdate body by hand, from the draft's
// struct: component_id (uint16), op (uint8), then for update opaque<V>
// with a one-byte length (all updates here are shorter than 64 bytes).
func appDataProp(component uint16, op uint8, update string) *message.Proposal {
	b := []byte{byte(component >> 8), byte(component), op}
	if op == 1 {
		b = append(b, byte(len(update)))
		b = append(b, update...)
	}
	return &message.Proposal{Type: group.ProposalAppDataUpdate, Data: b}
}

// proposeVariant is vg.propose with authenticated data ad, so that the
// same proposal body gets a different reference.
func (vg *vGroup) proposeVariant(t *testing.T, from *vMember, p *message.Proposal, ad string) []byte {
	t.Helper()
	msg := from.proposal(t, p, func(fc *message.FramedContent) { fc.AuthenticatedData = []byte(ad) })
	var ref []byte
	for _, m := range vg.active() {
		pr, err := m.g.Process(context.Background(), wireMsg(t, msg))
		if err != nil {
			t.Fatalf("%s: proposal from %s: %v", m.name, from.name, err)
		}
		if err := m.g.StorePendingProposal(context.Background(), pr.Proposal); err != nil {
			t.Fatal(err)
		}
		ref = pr.Proposal.Ref()
	}
	return ref
}

// deliver gives a proposal to every active member but from, which stores
// it, or a commit, which they process and merge; it returns what each
// processed.
func (vg *vGroup) deliver(t *testing.T, from *vMember, msg *Message) map[string]*Processed {
	t.Helper()
	ctx := context.Background()
	out := map[string]*Processed{}
	for _, m := range vg.active() {
		if m == from {
			continue
		}
		p, err := m.g.Process(ctx, wireMsg(t, msg))
		if err != nil {
			t.Fatalf("%s: message from %s: %v", m.name, from.name, err)
		}
		switch p.Kind {
		case KindProposal:
			err = m.g.StorePendingProposal(ctx, p.Proposal)
		case KindCommit:
			err = m.g.MergeStagedCommit(ctx, p.Commit)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[m.name] = p
	}
	return out
}

func commitOf(t *testing.T, msg *Message) *message.Commit {
	t.Helper()
	pm := wireMsg(t, msg).m.PublicMessage
	if pm == nil || pm.Content.Commit == nil {
		t.Fatal("not a commit in a PublicMessage")
	}
	return pm.Content.Commit
}

// TestSelfRemove: Bob proposes his own removal, Alice commits it by
// reference with a path; Charlie and Bob process it, Bob is out.
func TestSelfRemove(t *testing.T) {
	ctx := context.Background()
	vg := newDraftGroup(t, 3, nil)
	alice, bob, charlie := vg.m[0], vg.m[1], vg.m[2]
	msg, ref, err := bob.g.ProposeSelfRemove(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.WireFormat() != WireFormatPublicMessage {
		t.Fatalf("SelfRemove sent as %v, the draft wants a PublicMessage", msg.WireFormat())
	}
	if _, _, err := bob.g.ProposeSelfRemove(ctx); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("second SelfRemove in one epoch: got %v, want ErrInvalidArgument", err)
	}
	vg.deliver(t, bob, msg)
	// Charlie's Remove of Bob is pending too: the committer drops it, as
	// the draft makes it invalid next to the SelfRemove.
	rm, _, err := charlie.g.ProposeRemove(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, charlie, rm)
	res, err := alice.g.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := commitOf(t, res.Commit)
	if len(c.Proposals) != 1 || !bytes.Equal(c.Proposals[0].Reference, ref) {
		t.Fatalf("commit covers %d proposals, want Bob's SelfRemove by reference", len(c.Proposals))
	}
	if c.Path == nil {
		t.Fatal("commit with a SelfRemove has no path; the draft says Path Required: Y")
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	got := vg.deliver(t, alice, res.Commit)
	if !got["bob"].Commit.SelfRemoved() || got["charlie"].Commit.SelfRemoved() {
		t.Fatalf("SelfRemoved: bob %v charlie %v", got["bob"].Commit.SelfRemoved(), got["charlie"].Commit.SelfRemoved())
	}
	if bob.g.IsActive() {
		t.Fatal("Bob still active after his SelfRemove was committed")
	}
	if n := len(alice.g.Members()); n != 2 {
		t.Fatalf("%d members after the SelfRemove, want 2", n)
	}
	vg.agree(t)
	vg.stillWorks(t, charlie)
}

// TestSelfRemoveNotCapable: a group where a member does not list
// SelfRemove is not self-remove-capable.
func TestSelfRemoveNotCapable(t *testing.T) {
	vg := newVGroup(t, vSetup{n: 2})
	refuse(t, vg.m[1], rule("ValSem113"), func(ctx context.Context) error {
		_, _, err := vg.m[1].g.ProposeSelfRemove(ctx)
		return err
	})
}

// TestSelfRemoveRules: each rule of the draft's SelfRemove section.
func TestSelfRemoveRules(t *testing.T) {
	s := mustSuite(t, vSuite)
	ds, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dsPub, err := s.SignaturePublicKey(ds)
	if err != nil {
		t.Fatal(err)
	}
	vg := newDraftGroup(t, 4, []ExternalSender{{SignatureKey: dsPub, Credential: credential.NewBasic([]byte("ds"))}})
	alice, bob, charlie, dave := vg.m[0], vg.m[1], vg.m[2], vg.m[3]
	path := func(ps ...message.ProposalOrRef) forgery { return forgery{props: ps, path: true} }

	t.Run("SelfRemoveInline", func(t *testing.T) {
		// Only by reference (the draft: "SelfRemove proposals are only
		// allowed in a Commit by reference").
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, path(inline(selfRemoveProp())...))), rule("SelfRemoveInline"))
	})
	t.Run("SelfRemoveNonMember", func(t *testing.T) {
		// "SelfRemove cannot be sent as an external proposal."
		fc := alice.content(message.ContentProposal)
		fc.Sender = message.Sender{Type: message.SenderExternal, SenderIndex: 0}
		fc.Proposal = selfRemoveProp()
		sig := alice.signRaw(t, message.WireFormatPublicMessage, fc, ds)
		reject(t, charlie, wireMsg(t, alice.publicRaw(fc, message.FramedContentAuthData{Signature: sig})), rule("SelfRemoveNonMember"))
	})
	t.Run("SelfRemoveMalformed", func(t *testing.T) {
		// SelfRemove is struct {}.
		reject(t, charlie, wireMsg(t, bob.proposal(t, &message.Proposal{Type: group.ProposalSelfRemove, Data: []byte{0}}, nil)), rule("SelfRemoveMalformed"))
	})

	t.Run("SelfRemovePrivate", func(t *testing.T) {
		// "these proposals MUST be sent in an MLS PublicMessage".
		fc := bob.content(message.ContentProposal)
		fc.Proposal = selfRemoveProp()
		reject(t, charlie, wireMsg(t, bob.protect(t, bob.sign(t, message.WireFormatPrivateMessage, fc, nil))), rule("SelfRemovePrivate"))
	})

	ref := vg.propose(t, bob, selfRemoveProp())
	t.Run("SelfRemoveCommitter", func(t *testing.T) {
		reject(t, charlie, wireMsg(t, bob.forgeCommit(t, path(byRef(ref)))), rule("SelfRemoveCommitter"))
	})
	t.Run("ValSem201", func(t *testing.T) {
		// "Path Required: Y".
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, forgery{props: []message.ProposalOrRef{byRef(ref)}})), rule("ValSem201"))
	})
	t.Run("SelfRemoveAndRemove", func(t *testing.T) {
		rmRef := vg.propose(t, dave, removeProp(1))
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, path(byRef(ref), byRef(rmRef)))), rule("SelfRemoveAndRemove"))
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, path(byRef(rmRef), byRef(ref)))), rule("SelfRemoveAndRemove"))
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, path(byRef(ref), inline(removeProp(1))[0]))), rule("SelfRemoveAndRemove"))
	})
	t.Run("SelfRemoveTwice", func(t *testing.T) {
		// "A client MUST NOT issue more than one SelfRemove proposal per
		// epoch."
		ref2 := vg.proposeVariant(t, bob, selfRemoveProp(), "again")
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, path(byRef(ref), byRef(ref2)))), rule("SelfRemoveTwice"))
	})
	t.Run("ProposalSameLeaf", func(t *testing.T) {
		upRef := vg.propose(t, bob, updateProp(bob.updateLeaf(t, nil)))
		reject(t, charlie, wireMsg(t, alice.forgeCommit(t, path(byRef(upRef), byRef(ref)))), rule("ProposalSameLeaf"))
	})
	// The forging helper, with the same proposal list, makes a commit
	// that is accepted: the rejections above come from their mutation.
	accept(t, charlie, wireMsg(t, alice.forgeCommit(t, path(byRef(ref)))))
}

// TestAppDataUpdate: updates and removes of app_data_dictionary entries,
// by reference and inline, with no UpdatePath; an external sender's
// proposal too.
func TestAppDataUpdate(t *testing.T) {
	ctx := context.Background()
	s := mustSuite(t, vSuite)
	ds, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dsPub, err := s.SignaturePublicKey(ds)
	if err != nil {
		t.Fatal(err)
	}
	vg := newDraftGroup(t, 3, []ExternalSender{{SignatureKey: dsPub, Credential: credential.NewBasic([]byte("ds"))}})
	alice, bob := vg.m[0], vg.m[1]
	dict := func(m *vMember) AppDataDictionary {
		t.Helper()
		d, ok, err := FindAppDataDictionary(m.g.Extensions())
		if err != nil || !ok {
			t.Fatalf("%s: app_data_dictionary: %v %v", m.name, ok, err)
		}
		return d
	}
	// A PublicGroup follows the proposals and the commit to the same
	// dictionary.
	pg, err := alice.g.PublicGroup(ctx, memory.New(), credential.AcceptAll)
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{"one", "two"} {
		msg, _, err := alice.g.ProposeAppDataUpdate(ctx, 0x8001, AppDataOpUpdate, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		vg.deliver(t, alice, msg)
		pp, err := pg.Process(ctx, wireMsg(t, msg))
		if err != nil {
			t.Fatalf("PublicGroup: %v", err)
		}
		if err := pg.StorePendingProposal(ctx, pp.Proposal); err != nil {
			t.Fatal(err)
		}
	}
	res, err := bob.g.Commit(ctx, CommitOptions{AppDataUpdates: []AppDataUpdate{{Component: 0x8000, Op: AppDataOpUpdate, Data: []byte("zero")}}})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := pg.Process(ctx, wireMsg(t, res.Commit))
	if err != nil {
		t.Fatalf("PublicGroup: %v", err)
	}
	if err := pg.Merge(ctx, pp.Commit); err != nil {
		t.Fatal(err)
	}
	if c := commitOf(t, res.Commit); c.Path != nil || len(c.Proposals) != 3 {
		t.Fatalf("commit of AppDataUpdates: path %v, %d proposals; want no path, 3 proposals", c.Path != nil, len(c.Proposals))
	}
	if err := bob.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, bob, res.Commit)
	vg.agree(t)
	if !bytes.Equal(pg.GroupContext(), alice.g.st.GCRaw) {
		t.Fatal("the PublicGroup's GroupContext differs from the members'")
	}
	for _, m := range vg.m {
		d := dict(m)
		// Sorted by component, the last update wins (ReplaceAppData).
		if len(d) != 2 || d[0].ID != 0x8000 || string(d[0].Data) != "zero" || d[1].ID != 0x8001 || string(d[1].Data) != "two" {
			t.Fatalf("%s: dictionary %v", m.name, d)
		}
	}
	// An external sender removes one entry.
	fc := alice.content(message.ContentProposal)
	fc.Sender = message.Sender{Type: message.SenderExternal, SenderIndex: 0}
	fc.Proposal = appDataProp(0x8000, 2, "")
	sig := alice.signRaw(t, message.WireFormatPublicMessage, fc, ds)
	ext := wireMsg(t, alice.publicRaw(fc, message.FramedContentAuthData{Signature: sig}))
	for _, m := range vg.m {
		p := accept(t, m, ext)
		if err := m.g.StorePendingProposal(ctx, p.Proposal); err != nil {
			t.Fatal(err)
		}
	}
	res, err = alice.g.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, alice, res.Commit)
	vg.agree(t)
	if d := dict(bob); len(d) != 1 || d[0].ID != 0x8001 {
		t.Fatalf("after the remove: %v", d)
	}
	// An external joiner updates an entry in its external commit.
	gi, err := alice.g.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	dave := newVMember(t, "dave")
	dg, res, err := ClientOf(dave.store, dave.id).JoinExternal(ctx, gi, ExternalJoinOptions{Capabilities: draftCaps,
		AppDataUpdates: []AppDataUpdate{{Component: 0x8001, Op: AppDataOpUpdate, Data: []byte("dave")}}})
	if err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, dave, res.Commit)
	dave.g = dg
	vg.m = append(vg.m, dave)
	vg.agree(t)
	if d := dict(dave); len(d) != 1 || string(d[0].Data) != "dave" {
		t.Fatalf("after the external commit: %v", d)
	}
	vg.stillWorks(t, bob)
}

// TestAppDataUpdateRules: each rule of the draft's AppDataUpdate section,
// with a crafted commit.
func TestAppDataUpdateRules(t *testing.T) {
	ctx := context.Background()
	vg := newDraftGroup(t, 3, nil)
	alice, bob, charlie := vg.m[0], vg.m[1], vg.m[2]
	// Component 0x8001 has data.
	res, err := alice.g.Commit(ctx, CommitOptions{AppDataUpdates: []AppDataUpdate{{Component: 0x8001, Op: AppDataOpUpdate, Data: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, alice, res.Commit)
	f := func(ps ...*message.Proposal) *Message {
		return wireMsg(t, alice.forgeCommit(t, forgery{props: inline(ps...)}))
	}

	t.Run("AppDataUpdateRemoveTwice", func(t *testing.T) {
		reject(t, bob, f(appDataProp(0x8001, 2, ""), appDataProp(0x8001, 2, "")), rule("AppDataUpdateRemoveTwice"))
	})
	t.Run("AppDataUpdateMixed", func(t *testing.T) {
		reject(t, bob, f(appDataProp(0x8001, 1, "y"), appDataProp(0x8001, 2, "")), rule("AppDataUpdateMixed"))
	})
	t.Run("AppDataUpdateRemoveAbsent", func(t *testing.T) {
		reject(t, bob, f(appDataProp(0x8002, 2, "")), rule("AppDataUpdateRemoveAbsent"))
	})
	t.Run("AppDataUpdateMalformed", func(t *testing.T) {
		bad := appDataProp(0x8001, 3, "")
		reject(t, bob, f(bad), rule("AppDataUpdateMalformed"))
		reject(t, bob, wireMsg(t, charlie.proposal(t, bad, nil)), rule("AppDataUpdateMalformed"))
		trailing := appDataProp(0x8001, 2, "")
		trailing.Data = append(trailing.Data, 0)
		reject(t, bob, f(trailing), rule("AppDataUpdateMalformed"))
	})
	t.Run("AppDataUpdateRejected", func(t *testing.T) {
		// Bob's application knows component 0x8001 only.
		unknown := errors.New("unknown component")
		bob.g.cfg.client.opts.AppData = func(c ComponentID, _ []byte, _ bool, ups [][]byte) ([]byte, error) {
			if c != 0x8001 {
				return nil, unknown
			}
			return ups[len(ups)-1], nil
		}
		defer func() { bob.g.cfg.client.opts.AppData = nil }()
		err := tryReject(t, bob, f(appDataProp(0x9000, 1, "z")), rule("AppDataUpdateRejected"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = bob.g.Process(ctx, f(appDataProp(0x9000, 1, "z")))
		if !errors.Is(err, unknown) {
			t.Fatalf("the application's error is not in the chain: %v", err)
		}
	})
	t.Run("AppDataDictionaryByGCE", func(t *testing.T) {
		// With AppDataUpdate required, a GroupContextExtensions proposal
		// leaves app_data_dictionary alone.
		rc := message.RequiredCapabilities{Proposals: []message.ProposalType{group.ProposalAppDataUpdate}}
		rcExt, err := message.NewExtension(&rc)
		if err != nil {
			t.Fatal(err)
		}
		res, err := alice.g.Commit(ctx, CommitOptions{GroupContextExtensions: append(alice.g.Extensions(), Extension{Type: uint16(rcExt.Type), Data: rcExt.Data})})
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		vg.deliver(t, alice, res.Commit)
		var kept []message.Extension
		for _, e := range alice.g.st.GC.Extensions {
			if e.Type != group.ExtensionAppDataDictionary {
				kept = append(kept, e)
			}
		}
		reject(t, bob, wireMsg(t, alice.forgeCommit(t, forgery{props: inline(gceProp(kept...)), path: true})), rule("AppDataDictionaryByGCE"))
		refuse(t, alice, rule("AppDataDictionaryByGCE"), commitOp(func(ctx context.Context) (*CommitResult, error) {
			return alice.g.Commit(ctx, CommitOptions{GroupContextExtensions: fromWireExtensions(kept)})
		}))
	})
	// The group goes on: a valid list of the same kinds, committed for
	// real, is accepted.
	res, err = alice.g.Commit(ctx, CommitOptions{AppDataUpdates: []AppDataUpdate{{Component: 0x8001, Op: AppDataOpUpdate, Data: []byte("a")}, {Component: 0x8001, Op: AppDataOpUpdate, Data: []byte("b")}, {Component: 0x8002, Op: AppDataOpUpdate, Data: []byte("c")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, alice, res.Commit)
	vg.agree(t)
	vg.stillWorks(t, charlie)
}

// TestSelfRemoveExternalCommit: an external joiner covers the pending
// SelfRemove by reference (draft-ietf-mls-extensions: it "MUST fetch any
// pending SelfRemove Proposals along with the GroupInfo"); every member,
// the leaving one included, processes the commit; the joiner takes the
// freed leaf.
func TestSelfRemoveExternalCommit(t *testing.T) {
	ctx := context.Background()
	vg := newDraftGroup(t, 3, nil)
	alice, bob, charlie := vg.m[0], vg.m[1], vg.m[2]
	sr, ref, err := bob.g.ProposeSelfRemove(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vg.deliver(t, bob, sr)
	gi, err := alice.g.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	dave := newVMember(t, "dave")
	opts := ExternalJoinOptions{Capabilities: draftCaps}

	t.Run("bad SelfRemove", func(t *testing.T) {
		bad := wireMsg(t, sr)
		bad.m.PublicMessage.Auth.Signature = flip(bad.m.PublicMessage.Auth.Signature)
		o := opts
		o.SelfRemoves = []*Message{bad}
		if _, _, err := ClientOf(dave.store, dave.id).JoinExternal(ctx, gi, o); !errors.Is(err, rule("ValSem010")) {
			t.Fatalf("SelfRemove with a bad signature: got %v, want ValSem010", err)
		}
		o.SelfRemoves = []*Message{wireMsg(t, bob.proposal(t, removeProp(2), nil))}
		if _, _, err := ClientOf(dave.store, dave.id).JoinExternal(ctx, gi, o); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("a Remove as SelfRemove: got %v, want ErrInvalidArgument", err)
		}
	})

	opts.SelfRemoves = []*Message{wireMsg(t, sr)}
	dg, res, err := ClientOf(dave.store, dave.id).JoinExternal(ctx, gi, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := commitOf(t, res.Commit)
	var byRefs int
	for _, p := range c.Proposals {
		if p.Proposal == nil {
			byRefs++
			if !bytes.Equal(p.Reference, ref) {
				t.Fatal("external commit references something other than the SelfRemove")
			}
		}
	}
	if byRefs != 1 {
		t.Fatalf("external commit covers %d proposals by reference, want 1", byRefs)
	}
	if dg.OwnLeafIndex() != 1 {
		t.Fatalf("joiner at leaf %d, want Bob's freed leaf 1", dg.OwnLeafIndex())
	}
	got := vg.deliver(t, dave, res.Commit)
	if !got["bob"].Commit.SelfRemoved() || got["alice"].Commit.SelfRemoved() || got["charlie"].Commit.SelfRemoved() {
		t.Fatal("SelfRemoved wrong after the external commit")
	}
	dave.g = dg
	vg.m = append(vg.m, dave)
	vg.agree(t)
	vg.stillWorks(t, charlie)
}
