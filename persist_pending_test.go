package mls

// The stored form of this member's own pending commit (state.PendingRecord,
// version 4): the Welcome's encrypted_group_info and the GroupInfo's
// ratchet tree are left out and derived again on load, so that a commit
// that adds members to a large group does not store the whole tree twice.

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/storage"
)

// pendingFixture has alice, with a group of alice and bob, commit an Add
// of dave and keep it pending. withTree sets UseRatchetTreeExtension.
func pendingFixture(t *testing.T, withTree bool) (alice, dave *psMember, res *CommitResult, cfg GroupConfig) {
	t.Helper()
	ctx := context.Background()
	kind := psKind{"memory", false}
	alice, bob := newPSMember(t, kind, "", "alice"), newPSMember(t, kind, "", "bob")
	dave = newPSMember(t, kind, "", "dave")
	cfg.UseRatchetTreeExtension = withTree
	var err error
	if alice.g, err = ClientOf(alice.store, alice.id).CreateGroup(ctx, psSuite, cfg); err != nil {
		t.Fatal(err)
	}
	kp := bob.keyPackage()
	alice.commit(func(ctx context.Context, g *Group) (*CommitResult, error) { return g.AddMembers(ctx, kp) })
	if res, err = alice.g.AddMembers(ctx, dave.keyPackage()); err != nil {
		t.Fatal(err)
	}
	return alice, dave, res, cfg
}

// storedRecord returns m's stored group record.
func storedRecord(t *testing.T, m *psMember) []byte {
	t.Helper()
	var b []byte
	err := m.store.View(context.Background(), func(tx storage.Tx) error {
		var err error
		b, err = tx.Get(state.BucketGroups, m.g.GroupID())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustBytes(t *testing.T, m *Message) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkReloadedPending loads alice's group again and checks that its
// pending commit has the messages of res, that it stores the same record
// again, and that dave joins with the reloaded Welcome after the merge.
func checkReloadedPending(t *testing.T, alice, dave *psMember, res *CommitResult, cfg GroupConfig) {
	t.Helper()
	ctx := context.Background()
	g, err := LoaderOf(alice.store, alice.id.Signer).LoadGroup(ctx, alice.g.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	sc, was := g.PendingCommit(), alice.g.PendingCommit()
	for _, m := range []struct {
		name      string
		got, want *Message
	}{{"commit", sc.commit, res.Commit}, {"Welcome", sc.welcome, res.Welcome}, {"GroupInfo", sc.groupInfo, res.GroupInfo}} {
		if !bytes.Equal(mustBytes(t, m.got), mustBytes(t, m.want)) {
			t.Errorf("the reloaded pending commit has another %s", m.name)
		}
	}
	r1, err := pendingRecord(was)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := pendingRecord(sc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r1, r2) {
		t.Error("the reloaded pending commit is stored differently")
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	var rt []byte
	if !cfg.UseRatchetTreeExtension {
		rt, _ = g.ExportRatchetTree()
	}
	dave.join(sc.welcome, cfg.JoinConfig, rt)
	alice.g = g
	psAgree(t, alice, dave)
}

// TestPersistPendingWelcome: the stored pending commit holds neither the
// Welcome's encrypted GroupInfo nor (with the ratchet_tree extension) the
// tree, and a reload gives back the same messages, whose Welcome works.
func TestPersistPendingWelcome(t *testing.T) {
	for _, withTree := range []bool{true, false} {
		alice, dave, res, cfg := pendingFixture(t, withTree)
		rec := storedRecord(t, alice)
		if enc := res.Welcome.m.Welcome.EncryptedGroupInfo; bytes.Contains(rec, enc) {
			t.Errorf("tree extension %v: the record holds the encrypted GroupInfo", withTree)
		}
		rt, err := alice.g.PendingCommit().RatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(rec, rt) {
			t.Errorf("tree extension %v: the record holds the ratchet tree", withTree)
		}
		checkReloadedPending(t, alice, dave, res, cfg)
	}
}

// TestPersistPendingV3: a pending commit stored in a version 3 group
// record, with its whole Welcome and GroupInfo, still loads, merges and
// welcomes.
func TestPersistPendingV3(t *testing.T) {
	alice, dave, res, cfg := pendingFixture(t, true)
	var r state.GroupRecord
	if err := r.Unmarshal(storedRecord(t, alice)); err != nil {
		t.Fatal(err)
	}
	p := r.Pending
	p.Messages[1], p.Messages[2] = mustBytes(t, res.Welcome), mustBytes(t, res.GroupInfo)
	p.WelcomeSecret, p.TreeElided = nil, false
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Version 3 is version 4 without the empty welcome_secret and the
	// false tree_elided that end the record before its checksum.
	body := b[:len(b)-4]
	if body[0] != state.GroupRecordV4 || !bytes.HasSuffix(body, []byte{0, 0}) {
		t.Fatal("unexpected version 4 record")
	}
	v3 := state.Seal(append([]byte{state.GroupRecordV3}, body[1:len(body)-2]...))
	err = alice.store.Update(context.Background(), func(tx storage.Tx) error {
		return tx.Put(state.BucketGroups, alice.g.GroupID(), v3)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := LoaderOf(alice.store, alice.id.Signer).LoadGroup(ctx, alice.g.GroupID())
	if err != nil {
		t.Fatal(err)
	}
	sc := g.PendingCommit()
	if !bytes.Equal(mustBytes(t, sc.welcome), mustBytes(t, res.Welcome)) || !bytes.Equal(mustBytes(t, sc.groupInfo), mustBytes(t, res.GroupInfo)) {
		t.Fatal("the pending commit of a version 3 record lost its messages")
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	dave.join(sc.welcome, cfg.JoinConfig, nil)
	alice.g = g
	psAgree(t, alice, dave)
}

// TestPersistPendingBadTree: a stored pending GroupInfo whose elided tree
// does not give back its signature is reported as corrupt.
func TestPersistPendingBadTree(t *testing.T) {
	alice, _, _, _ := pendingFixture(t, true)
	var r state.GroupRecord
	if err := r.Unmarshal(storedRecord(t, alice)); err != nil {
		t.Fatal(err)
	}
	gi, err := ParseMessage(r.Pending.Messages[2])
	if err != nil {
		t.Fatal(err)
	}
	gi.m.GroupInfo.Signature[0] ^= 1
	if r.Pending.Messages[2], err = gi.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	err = alice.store.Update(context.Background(), func(tx storage.Tx) error {
		return tx.Put(state.BucketGroups, alice.g.GroupID(), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoaderOf(alice.store, alice.id.Signer).LoadGroup(context.Background(), alice.g.GroupID()); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("LoadGroup: %v, want ErrCorruptState", err)
	}
}
