package mls_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

// greaseValues are the GREASE values of RFC 9420, Section 13.5, written
// out here rather than taken from the code under test.
var greaseValues = []uint16{0x0A0A, 0x1A1A, 0x2A2A, 0x3A3A, 0x4A4A, 0x5A5A, 0x6A6A, 0x7A7A,
	0x8A8A, 0x9A9A, 0xAAAA, 0xBABA, 0xCACA, 0xDADA, 0xEAEA}

func isGREASEValue(v uint16) bool { return slices.Contains(greaseValues, v) }

func countGREASE[T ~uint16](list []T) int {
	n := 0
	for _, v := range list {
		if isGREASEValue(uint16(v)) {
			n++
		}
	}
	return n
}

// checkLeafGREASE fails unless ln carries GREASE as grease.go promises:
// a GREASE value in each capabilities list and a GREASE leaf extension
// whose type its capabilities list (RFC 9420, Sections 7.3 and 13.5).
func checkLeafGREASE(t testing.TB, who string, ln *mls.LeafNode) {
	t.Helper()
	c := ln.Capabilities()
	if countGREASE(c.CipherSuites) == 0 || countGREASE(c.Extensions) == 0 || countGREASE(c.Proposals) == 0 || countGREASE(c.Credentials) == 0 {
		t.Fatalf("%s: capabilities without GREASE in every list: %+v", who, c)
	}
	found := false
	for _, e := range ln.Extensions() {
		if isGREASEValue(e.Type) {
			found = true
			if !slices.Contains(c.Extensions, e.Type) {
				t.Fatalf("%s: GREASE leaf extension 0x%04x not in capabilities", who, e.Type)
			}
		}
	}
	if !found {
		t.Fatalf("%s: no GREASE leaf extension", who)
	}
}

// TestGREASELifecycle: in every suite, a group whose members all send
// GREASE (the default: capabilities, leaf, key package and GroupInfo
// extensions) goes through adds by Welcome, a commit with a path,
// an Update proposal committed by another member, an external join and
// application messages, and every member sees the others' GREASE values
// in their leaves, ignored (RFC 9420, Section 13.5).
func TestGREASELifecycle(t *testing.T) {
	for _, suite := range append(ciphersuite.All(), ciphersuite.PostQuantum()...) {
		t.Run(suite.String(), func(t *testing.T) {
			t.Parallel()
			testGREASELifecycle(t, suite)
		})
	}
}

func testGREASELifecycle(t *testing.T, suite mls.CipherSuite) {
	ctx := context.Background()
	alice, bob, charlie, dave := newPQMember(t, "alice", suite), newPQMember(t, "bob", suite), newPQMember(t, "charlie", suite), newPQMember(t, "dave", suite)
	var err error
	if alice.group, err = alice.client.CreateGroup(ctx, suite, mls.GroupConfig{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}); err != nil {
		t.Fatal(err)
	}
	checkLeafGREASE(t, "alice's own leaf", alice.group.Members()[0].LeafNode())

	var kps []*mls.KeyPackage
	for _, m := range []*pqMember{bob, charlie} {
		kp, err := m.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := kp.MarshalBinary()
		back, err := mls.ParseKeyPackage(raw)
		if err != nil {
			t.Fatalf("%s's key package with GREASE does not parse: %v", m.name, err)
		}
		checkLeafGREASE(t, m.name+"'s key package", back.LeafNode())
		n := 0
		for _, e := range back.Extensions() {
			if isGREASEValue(e.Type) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s's key package has %d GREASE extensions, want 1", m.name, n)
		}
		if back.IsLastResort() {
			t.Fatalf("a GREASE extension made %s's key package last resort", m.name)
		}
		// A GREASE suite is never offered as a common suite.
		if got := mls.CommonCipherSuites(back); !slices.Equal(got, []mls.CipherSuite{suite}) {
			t.Fatalf("CommonCipherSuites = %v, want [%v]", got, suite)
		}
		kps = append(kps, back)
	}
	res, err := alice.group.AddMembers(ctx, kps...)
	if err != nil {
		t.Fatalf("adding members whose key packages carry GREASE: %v", err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pqMember{bob, charlie} {
		sw, err := m.client.StageWelcome(ctx, roundTrip(t, res.Welcome), mls.WelcomeOptions{})
		if err != nil {
			t.Fatalf("%s: StageWelcome: %v", m.name, err)
		}
		if m.group, err = sw.Join(ctx); err != nil {
			t.Fatalf("%s: Join: %v", m.name, err)
		}
	}
	pqAgree(t, alice, bob, charlie)

	// A commit with an UpdatePath: bob's new leaf keeps its GREASE.
	if res, err = bob.group.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.process(t, res.Commit)
	charlie.process(t, res.Commit)
	pqAgree(t, alice, bob, charlie)

	// An Update proposal from charlie, committed by alice.
	msg, _, err := charlie.group.ProposeSelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pqMember{alice, bob} {
		p, err := m.group.Process(ctx, roundTrip(t, msg))
		if err != nil || p.Kind != mls.KindProposal {
			t.Fatalf("%s: Update proposal: %v %v", m.name, p, err)
		}
		if err := m.group.StorePendingProposal(ctx, p.Proposal); err != nil {
			t.Fatal(err)
		}
	}
	if res, err = alice.group.CommitPendingProposals(ctx); err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.process(t, res.Commit)
	charlie.process(t, res.Commit)
	pqAgree(t, alice, bob, charlie)

	// An external join: dave's leaf, created by JoinExternal, has GREASE.
	gi, err := bob.group.ExportGroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	giRaw, _ := gi.MarshalBinary()
	parsed, err := mls.ParseGroupInfo(giRaw)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range parsed.Extensions() {
		if isGREASEValue(e.Type) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("GroupInfo has %d GREASE extensions, want 1", n)
	}
	if dave.group, res, err = dave.client.JoinExternal(ctx, roundTrip(t, gi), mls.ExternalJoinOptions{}); err != nil {
		t.Fatalf("dave: JoinExternal: %v", err)
	}
	for _, m := range []*pqMember{alice, bob, charlie} {
		m.process(t, res.Commit)
	}
	pqAgree(t, alice, bob, charlie, dave)
	pqReceive(t, dave, "grease", alice, bob, charlie)
	pqReceive(t, alice, "ignored", bob, charlie, dave)

	// New capabilities in a commit (without new leaf extensions): the
	// leaf keeps its GREASE extension, whose type the new capabilities
	// list again, and gets new GREASE values.
	if res, err = alice.group.Commit(ctx, mls.CommitOptions{LeafCapabilities: &mls.Capabilities{Proposals: []uint16{0xF0F0}}}); err != nil {
		t.Fatalf("commit with new leaf capabilities: %v", err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*pqMember{bob, charlie, dave} {
		m.process(t, res.Commit)
	}
	pqAgree(t, alice, bob, charlie, dave)
	if !slices.Contains(alice.group.Members()[0].LeafNode().Capabilities().Proposals, 0xF0F0) {
		t.Fatal("the new capabilities did not reach alice's leaf")
	}

	// Every member holds every leaf with its GREASE values: received GREASE
	// is kept and ignored, never stripped or rejected.
	for _, m := range []*pqMember{alice, bob, charlie, dave} {
		for _, mem := range m.group.Members() {
			checkLeafGREASE(t, m.name+"'s view of leaf "+string(mem.Credential.Identity()), mem.LeafNode())
		}
	}
}

// TestGREASEDisabled: ClientOptions.DisableGREASE leaves key packages and
// the creator's leaf without any GREASE value.
func TestGREASEDisabled(t *testing.T) {
	ctx := context.Background()
	c, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("plain")), nil, credential.AcceptAll, mls.ClientOptions{DisableGREASE: true})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.NewKeyPackage(ctx, mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for who, ln := range map[string]*mls.LeafNode{"key package": kp.LeafNode(), "creator": g.Members()[0].LeafNode()} {
		c := ln.Capabilities()
		if n := countGREASE(c.CipherSuites) + countGREASE(c.Extensions) + countGREASE(c.Proposals) + countGREASE(c.Credentials); n != 0 {
			t.Fatalf("%s: %d GREASE values in capabilities with GREASE disabled", who, n)
		}
		if len(ln.Extensions()) != 0 {
			t.Fatalf("%s: leaf extensions %v with GREASE disabled", who, ln.Extensions())
		}
	}
	if len(kp.Extensions()) != 0 {
		t.Fatalf("key package extensions %v with GREASE disabled", kp.Extensions())
	}
	gi, err := g.ExportGroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := gi.MarshalBinary()
	parsed, err := mls.ParseGroupInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range parsed.Extensions() {
		if isGREASEValue(e.Type) {
			t.Fatalf("GroupInfo extension 0x%04x with GREASE disabled", e.Type)
		}
	}
}

// TestGREASENeverSupported: a GREASE value in capabilities never counts as
// support (RFC 9420, Section 13.5: a client's own capabilities contain no
// GREASE). A group requiring a GREASE extension, proposal or credential
// type cannot be created even by a creator whose capabilities list it, and
// a GREASE proposal type is refused even when every member lists it.
func TestGREASENeverSupported(t *testing.T) {
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	for _, v := range greaseValues {
		caps := mls.Capabilities{Extensions: []uint16{v}, Proposals: []uint16{v}, Credentials: []credential.Type{credential.Type(v)}}
		c, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("x")), nil, credential.AcceptAll, mls.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for name, cfg := range map[string]mls.GroupConfig{
			"extension":  {Capabilities: caps, RequiredExtensions: []uint16{v}},
			"proposal":   {Capabilities: caps, RequiredProposals: []uint16{v}},
			"credential": {Capabilities: caps, RequiredCredentials: []credential.Type{credential.Type(v)}},
		} {
			_, err := c.CreateGroup(ctx, suite, cfg)
			var ve *mls.ValidationError
			if !errors.As(err, &ve) || ve.Rule != "ValSem106" {
				t.Fatalf("required %s type 0x%04x (listed in the creator's capabilities): got %v, want ValSem106", name, v, err)
			}
		}
	}

	// Every member lists 0x0A0A and 0xF0F0 as proposal types: the private
	// use 0xF0F0 is accepted, the GREASE 0x0A0A never.
	caps := mls.Capabilities{Proposals: []uint16{0x0A0A, 0xF0F0}}
	alice, bob := newPQMember(t, "alice", suite), newPQMember(t, "bob", suite)
	var err error
	if alice.group, err = alice.client.CreateGroup(ctx, suite, mls.GroupConfig{Capabilities: caps, JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}); err != nil {
		t.Fatal(err)
	}
	kp, err := bob.client.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{Capabilities: caps})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.group.AddMembers(ctx, kp)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	sw, err := bob.client.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if bob.group, err = sw.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.group.ProposeCustom(ctx, 0xF0F0, []byte("ok")); err != nil {
		t.Fatalf("private-use proposal type every member lists: %v", err)
	}
	_, _, err = alice.group.ProposeCustom(ctx, 0x0A0A, []byte("grease"))
	var ve *mls.ValidationError
	if !errors.As(err, &ve) || ve.Rule != "ValSem113" {
		t.Fatalf("GREASE proposal type: got %v, want ValSem113", err)
	}
	epoch := alice.group.Epoch()
	if _, err := alice.group.Commit(ctx, mls.CommitOptions{Custom: []mls.CustomProposal{{Type: 0x0A0A}}}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("inline GREASE proposal: got %v, want ErrInvalidArgument", err)
	}
	if alice.group.Epoch() != epoch {
		t.Fatal("a refused commit moved the group")
	}
}
