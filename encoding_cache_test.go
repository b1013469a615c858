package mls

import (
	"bytes"
	"context"
	"testing"

	"github.com/mlskit/mls/internal/message"
)

// TestCachedEncodings: the GroupInfo a commit returns and ExportGroupInfo
// carry the encoding made when they were signed (GroupInfo.SignMessage),
// and the ratchet tree is exported from the tree's encoding cache. Both
// must equal a fresh encoding of the same values, over several epochs
// (the cache patched by merges), and the bytes MarshalBinary hands out
// must be the caller's own.
func TestCachedEncodings(t *testing.T) {
	ctx := context.Background()
	alice, bob := newVMember(t, "alice"), newVMember(t, "bob")
	g, err := ClientOf(alice.store, alice.id).CreateGroup(ctx, vSuite, GroupConfig{JoinConfig: JoinConfig{UseRatchetTreeExtension: true}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, m *Message) {
		t.Helper()
		if m.raw == nil {
			t.Fatalf("%s: the GroupInfo carries no cached encoding", step)
		}
		want, err := message.Marshal(&m.m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: MarshalBinary differs from a fresh encoding (%v)", step, err)
		}
		got[len(got)-1] ^= 1
		if again, _ := m.MarshalBinary(); !bytes.Equal(again, want) {
			t.Fatalf("%s: changing the returned bytes changed the message", step)
		}
		gi, err := m.GroupInfo()
		if err != nil {
			t.Fatal(err)
		}
		if err := gi.gi.VerifySignature(mustSuite(t, vSuite), g.st.Tree.Leaf(g.st.own).SignatureKey); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		rt, err := g.ExportRatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		if want := message.MustMarshal(g.st.Tree.RatchetTree()); !bytes.Equal(rt, want) {
			t.Fatalf("%s: ExportRatchetTree differs from a fresh encoding", step)
		}
		x, ok := message.FindExtension(gi.gi.Extensions, message.ExtensionRatchetTree)
		if !ok || !bytes.Equal(x.Data, rt) {
			t.Fatalf("%s: the GroupInfo's ratchet_tree is not the exported tree", step)
		}
	}
	var kps []*KeyPackage
	for _, name := range []string{"c", "d", "e", "f", "g"} {
		kps = append(kps, newVMember(t, name).keyPackage(t, vSuite, KeyPackageOptions{}))
	}
	steps := []func() (*CommitResult, error){
		func() (*CommitResult, error) {
			return g.AddMembers(ctx, bob.keyPackage(t, vSuite, KeyPackageOptions{}))
		},
		func() (*CommitResult, error) { return g.AddMembers(ctx, kps...) },
		func() (*CommitResult, error) { return g.SelfUpdate(ctx) },
		func() (*CommitResult, error) { return g.RemoveMembers(ctx, 6) }, // the last leaf
		func() (*CommitResult, error) { return g.RemoveMembers(ctx, 2, 3) },
	}
	for _, step := range steps {
		res, err := step()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		check("commit", res.GroupInfo)
		m, err := g.ExportGroupInfo(true)
		if err != nil {
			t.Fatal(err)
		}
		check("export", m)
	}
}
