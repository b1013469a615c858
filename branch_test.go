package mls_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

func apiClient(t *testing.T, name string) *mls.Client {
	t.Helper()
	c, err := mls.NewClient(context.Background(), memory.New(), credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBranchAndInteropAPI covers the API the interop client added: a
// branch (RFC 9420, Section 11.3) joined by a member, the out-of-band
// tree of a pending commit, resumption PSK proposals, key package
// private keys and the external_senders encoding.
func TestBranchAndInteropAPI(t *testing.T) {
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	alice, bob := apiClient(t, "alice"), apiClient(t, "bob")
	ga, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{GroupID: []byte("main")})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ga.SetRatchetTreeExtension(false)
	res, err := ga.AddMembers(ctx, kp)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := ga.PendingCommit().RatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if now, _ := ga.ExportRatchetTree(); !bytes.Equal(now, tree) {
		t.Fatal("StagedCommit.RatchetTree differs from the tree after the merge")
	}
	// Without the extension the Welcome needs the tree out of band.
	if _, err := bob.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{}); err == nil {
		t.Fatal("Welcome without ratchet tree and no tree given: accepted")
	}
	sw, err := bob.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		t.Fatal(err)
	}
	gb, err := sw.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A resumption PSK proposal of epoch 1 (bob joined there), committed.
	m, _, err := gb.ProposeResumptionPSK(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ga.Process(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.StorePendingProposal(ctx, p.Proposal); err != nil {
		t.Fatal(err)
	}
	res, err = ga.CommitPendingProposals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	pc, err := gb.Process(ctx, res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.Commit.PSKProposals()) != 1 {
		t.Fatalf("%d PSK proposals, want 1", len(pc.Commit.PSKProposals()))
	}
	if err := gb.MergeStagedCommit(ctx, pc.Commit); err != nil {
		t.Fatal(err)
	}

	// Branch: bob's fresh key package, moved through another client to
	// check KeyPackagePrivateKeys and ImportKeyPackage.
	if _, _, err := ga.Branch(ctx, alice, nil, mls.GroupConfig{}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("Branch without group ID: %v", err)
	}
	other := apiClient(t, "bob")
	kp2, err := other.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip, ep, err := other.KeyPackagePrivateKeys(ctx, kp2.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.KeyPackagePrivateKeys(ctx, []byte("nope")); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("unknown key package: %v", err)
	}
	bob2, err := mls.NewClient(ctx, bob.Store(), other.Credential(), other.Signer(), credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := kp2.MarshalBinary()
	if _, err := bob2.ImportKeyPackage(ctx, raw, ip, ep, false); err != nil {
		t.Fatal(err)
	}
	withTree := mls.GroupConfig{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}
	nb, bres, err := ga.Branch(ctx, alice, []byte("sub"), withTree, kp2)
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	sw, err = bob2.StageWelcome(ctx, bres.Welcome, mls.WelcomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nbb, err := sw.Join(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if nb.Epoch() != 1 || !bytes.Equal(nb.EpochAuthenticator(), nbb.EpochAuthenticator()) || string(nbb.GroupID()) != "sub" {
		t.Fatalf("branch: epoch %d, group %q, authenticators equal %v", nb.Epoch(), nbb.GroupID(), bytes.Equal(nb.EpochAuthenticator(), nbb.EpochAuthenticator()))
	}
	// Only members of the parent group can be in the branch (the joiner
	// side of this and the other Section 11.3 checks: TestBranchRules).
	stranger := apiClient(t, "carol")
	kp3, _ := stranger.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if _, _, err := ga.Branch(ctx, alice, []byte("sub2"), withTree, kp3); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("Branch with a non-member: %v, want ErrInvalidArgument", err)
	}

	// external_senders round trip.
	x := mls.ExternalSender{SignatureKey: []byte("0123456789abcdef0123456789abcdef"), Credential: credential.NewBasic([]byte("ds"))}
	ext, err := mls.ExternalSendersExtension([]mls.ExternalSender{x, x})
	if err != nil {
		t.Fatal(err)
	}
	got, err := mls.ParseExternalSenders(ext.Data)
	if err != nil || len(got) != 2 || !bytes.Equal(got[1].SignatureKey, x.SignatureKey) || string(got[1].Credential.Identity()) != "ds" {
		t.Fatalf("ParseExternalSenders: %v %v", got, err)
	}
	one, err := mls.MarshalExternalSender(x)
	if err != nil {
		t.Fatal(err)
	}
	if y, err := mls.ParseExternalSender(one); err != nil || !bytes.Equal(y.SignatureKey, x.SignatureKey) {
		t.Fatalf("ParseExternalSender: %v", err)
	}
	if _, err := mls.ParseExternalSender([]byte{0xff}); !errors.Is(err, mls.ErrMalformed) {
		t.Fatalf("malformed external sender: %v", err)
	}
}
