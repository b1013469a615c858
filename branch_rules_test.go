package mls

import (
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/storage/memory"
)

// branchWorld is a group of alice, bob and carol, each with a client on
// its own store, and dave, who is in no group.
type branchWorld struct {
	t       *testing.T
	clients map[string]*Client
	groups  map[string]*Group
}

func newBranchWorld(t *testing.T) *branchWorld {
	ctx := context.Background()
	w := &branchWorld{t: t, clients: map[string]*Client{}, groups: map[string]*Group{}}
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		c, err := NewClient(ctx, memory.New(), credential.NewBasic([]byte(n)), nil, credential.AcceptAll, ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.clients[n] = c
	}
	g, err := w.clients["alice"].CreateGroup(ctx, vSuite, GroupConfig{GroupID: []byte("main"), JoinConfig: JoinConfig{UseRatchetTreeExtension: true}})
	if err != nil {
		t.Fatal(err)
	}
	w.groups["alice"] = g
	res, err := g.AddMembers(ctx, w.kp("bob", vSuite), w.kp("carol", vSuite))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bob", "carol"} {
		sw, err := w.clients[n].StageWelcome(ctx, res.Welcome, WelcomeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if w.groups[n], err = sw.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *branchWorld) kp(name string, suite CipherSuite) *KeyPackage {
	w.t.Helper()
	kp, err := w.clients[name].NewKeyPackage(context.Background(), suite, KeyPackageOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return kp
}

// branchPSK is the resumption PSK with usage branch of alice's group in
// its current epoch, as Branch holds it.
func (w *branchWorld) branchPSK() *heldPSK {
	g := w.groups["alice"]
	return &heldPSK{
		id: message.PreSharedKeyID{Type: message.PSKResumption, Usage: message.ResumptionBranch, PSKGroupID: clone(g.st.GC.GroupID), PSKEpoch: g.st.GC.Epoch,
			Nonce: make([]byte, g.st.Suite.HashSize())},
		secret: g.st.keys.ResumptionPSK(),
	}
}

// TestBranchRules: the subgroup checks of RFC 9420, Section 11.3, on both
// sides. The creator refuses a key package of a non-member; a joiner
// refuses a branch Welcome with another suite, at an epoch other than 1,
// with a member the old group does not have, or from a group it does not
// hold; a PreSharedKey proposal with usage branch is invalid (ValSem402).
func TestBranchRules(t *testing.T) {
	ctx := context.Background()
	w := newBranchWorld(t)
	alice := w.groups["alice"]

	// The happy path: alice branches with bob.
	ng, res, err := alice.Branch(ctx, w.clients["alice"], []byte("sub"), GroupConfig{JoinConfig: JoinConfig{UseRatchetTreeExtension: true}}, w.kp("bob", vSuite))
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	sw, err := w.clients["bob"].StageWelcome(ctx, res.Welcome, WelcomeOptions{})
	if err != nil {
		t.Fatalf("bob joining the branch: %v", err)
	}
	if sw.Epoch() != 1 || len(sw.Members()) != 2 {
		t.Fatalf("branch staged at epoch %d with %d members", sw.Epoch(), len(sw.Members()))
	}

	// The creator: only members of the group.
	if _, _, err := alice.Branch(ctx, w.clients["alice"], []byte("sub2"), GroupConfig{}, w.kp("dave", vSuite)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Branch with a non-member's key package: %v, want ErrInvalidArgument", err)
	}

	// A crafted branch: a new group of alice's with the branch PSK and
	// the given key packages, committed at the given epoch.
	craft := func(id string, suite CipherSuite, extraEpochs int, kps ...*KeyPackage) *Message {
		t.Helper()
		g, err := w.clients["alice"].CreateGroup(ctx, suite, GroupConfig{GroupID: []byte(id), JoinConfig: JoinConfig{UseRatchetTreeExtension: true}})
		if err != nil {
			t.Fatal(err)
		}
		for range extraEpochs {
			if _, err := g.SelfUpdate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := g.MergePendingCommit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		res, err := g.Commit(ctx, CommitOptions{Add: kps, reinitPSK: w.branchPSK()})
		if err != nil {
			t.Fatal(err)
		}
		return res.Welcome
	}
	for _, tc := range []struct {
		name    string
		welcome func() *Message
		joiner  string
		rule    string
	}{
		{"other suite", func() *Message {
			return craft("x-suite", MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, 0, w.kp("bob", MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519))
		}, "bob", "BranchWelcome"},
		{"epoch 2", func() *Message { return craft("x-epoch", vSuite, 1, w.kp("bob", vSuite)) }, "bob", "BranchWelcome"},
		{"a non-member", func() *Message { return craft("x-dave", vSuite, 0, w.kp("bob", vSuite), w.kp("dave", vSuite)) }, "bob", "BranchMembers"},
		{"joiner without the old group", func() *Message { return craft("x-old", vSuite, 0, w.kp("dave", vSuite)) }, "dave", "PSKMissing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			welcome := tc.welcome()
			c := w.clients[tc.joiner]
			before, err := c.KeyPackages(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.StageWelcome(ctx, welcome, WelcomeOptions{})
			if !errors.Is(err, &ValidationError{Rule: tc.rule}) {
				t.Fatalf("StageWelcome: %v, want rule %s", err, tc.rule)
			}
			after, _ := c.KeyPackages(ctx)
			if len(after) != len(before) {
				t.Fatal("a rejected Welcome used a key package")
			}
		})
	}

	// A PreSharedKey proposal with usage branch is invalid (RFC 9420,
	// Section 11.3).
	vg := newVGroup(t, vSetup{n: 2})
	id := message.PreSharedKeyID{Type: message.PSKResumption, Usage: message.ResumptionBranch, PSKGroupID: vg.m[0].g.GroupID(), PSKEpoch: vg.m[0].g.Epoch(), Nonce: make([]byte, vg.s.HashSize())}
	reject(t, vg.m[1], wireMsg(t, vg.m[0].proposal(t, pskProp(id), nil)), rule("ValSem402"))
}
