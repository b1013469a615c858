package mls_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// TestClientStoredSigner: a client built without a signer generates one
// and keeps it in its store; built again over the same store (a restart),
// it signs with the same key and can load and use its groups.
func TestClientStoredSigner(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alice.db")
	store, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cred := credential.NewBasic([]byte("alice"))
	c, err := mls.NewClient(ctx, store, cred, nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pub1, err := c.SignatureKey(staleSuite)
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, staleSuite, mls.GroupConfig{GroupID: []byte("g")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	if store, err = sqlite.Open(path); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c2, err := mls.NewClient(ctx, store, cred, nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pub2, err := c2.SignatureKey(staleSuite)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub1, pub2) {
		t.Fatal("the client generated a new signature key on restart")
	}
	g2, err := c2.LoadGroup(ctx, []byte("g"))
	if err != nil {
		t.Fatal(err)
	}
	if g2.PendingCommit() == nil {
		t.Fatal("the pending commit was lost")
	}
	if err := g2.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if g2.Epoch() != 1 {
		t.Fatalf("epoch %d after merging, want 1", g2.Epoch())
	}
	// A signature key that does not fit the suite is an invalid argument.
	if _, err := c2.SignatureKey(mls.MLS_128_DHKEMP256_AES128GCM_SHA256_P256); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("Ed25519 key for a P-256 suite: %v", err)
	}
	if _, err := c2.SignatureKey(0x7777); !errors.Is(err, mls.ErrUnsupported) {
		t.Fatalf("unknown suite: %v", err)
	}
}

// TestClientGroups: Groups lists what the store holds, DeleteGroup removes
// every record of a group, and a second group with an existing ID is
// refused.
func TestClientGroups(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	c := clientOf(store, newClient(t, "alice", staleSuite).id)
	for _, id := range []string{"b", "a", "c"} {
		if _, err := c.CreateGroup(ctx, staleSuite, mls.GroupConfig{GroupID: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateGroup(ctx, staleSuite, mls.GroupConfig{GroupID: []byte("a")}); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("creating group a twice: %v", err)
	}
	ids, err := c.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(ids, [][]byte{[]byte("a"), []byte("b"), []byte("c")}, bytes.Equal) {
		t.Fatalf("Groups = %q", ids)
	}
	before := store.Len("nodes")
	if err := c.DeleteGroup(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteGroup(ctx, []byte("b")); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("deleting a deleted group: %v", err)
	}
	if ids, _ = c.Groups(ctx); len(ids) != 2 {
		t.Fatalf("Groups after delete = %q", ids)
	}
	if after := store.Len("nodes"); after != before-1 {
		t.Fatalf("%d node records before deleting a one-member group, %d after", before, after)
	}
	for _, b := range []string{"ratchets", "versions"} {
		if n := store.Len(b); n != 2 {
			t.Fatalf("%d records in %s after deleting one of three groups, want 2", n, b)
		}
	}
	// A group created again under the deleted ID is new: no old handle
	// can write to it.
	if _, err := c.CreateGroup(ctx, staleSuite, mls.GroupConfig{GroupID: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {}} {
		if err := c.DeleteGroup(ctx, bad); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("DeleteGroup(%q): %v", bad, err)
		}
		if _, err := c.LoadGroup(ctx, bad); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("LoadGroup(%q): %v", bad, err)
		}
	}
}

// TestClientKeyPackages: a client lists the key packages it holds keys
// for, a used one disappears (a last-resort one stays), DeleteKeyPackage
// removes one, and expired ones are pruned, last-resort ones included.
func TestClientKeyPackages(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	bob := newClient(t, "bob", staleSuite)
	c := clientWith(bob.store, bob.id, credential.AcceptAll, mls.ClientOptions{Now: clock})
	short, err := c.NewKeyPackage(ctx, staleSuite, mls.KeyPackageOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	normal, err := c.NewKeyPackage(ctx, staleSuite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lastResort, err := c.NewKeyPackage(ctx, staleSuite, mls.KeyPackageOptions{LastResort: true})
	if err != nil {
		t.Fatal(err)
	}
	refs := func() [][]byte {
		t.Helper()
		kps, err := c.KeyPackages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, kp := range kps {
			out = append(out, kp.Ref())
		}
		return out
	}
	has := func(kp *mls.KeyPackage) bool {
		return slices.ContainsFunc(refs(), func(r []byte) bool { return bytes.Equal(r, kp.Ref()) })
	}
	if n := len(refs()); n != 3 {
		t.Fatalf("%d key packages, want 3", n)
	}

	// Alice adds bob twice through the last-resort key package: it stays.
	alice := newClient(t, "alice", staleSuite)
	ac := clientOf(alice.store, alice.id)
	withTree := mls.GroupConfig{JoinConfig: mls.JoinConfig{UseRatchetTreeExtension: true}}
	for i := range 2 {
		g, err := ac.CreateGroup(ctx, staleSuite, withTree)
		if err != nil {
			t.Fatal(err)
		}
		res, err := g.AddMembers(ctx, lastResort)
		if err != nil {
			t.Fatal(err)
		}
		sw, err := c.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if _, err := sw.Join(ctx); err != nil {
			t.Fatal(err)
		}
		if !has(lastResort) {
			t.Fatalf("the last-resort key package is gone after join %d", i)
		}
	}
	// A normal key package is used once.
	g, err := ac.CreateGroup(ctx, staleSuite, withTree)
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.AddMembers(ctx, normal)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := c.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if has(normal) {
		t.Fatal("a used key package is still listed")
	}
	if _, err := c.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{}); !errors.Is(err, mls.ErrNoKeyPackage) {
		t.Fatalf("a second join from one Welcome: %v", err)
	}

	// Two hours later the short one has expired.
	now = now.Add(2 * time.Hour)
	n, err := c.PruneKeyPackages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || has(short) || !has(lastResort) {
		t.Fatalf("pruned %d; short listed %v, last resort listed %v", n, has(short), has(lastResort))
	}
	if err := c.DeleteKeyPackage(ctx, lastResort.Ref()); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteKeyPackage(ctx, lastResort.Ref()); !errors.Is(err, mls.ErrNotFound) {
		t.Fatalf("deleting a deleted key package: %v", err)
	}
	if n := len(refs()); n != 0 {
		t.Fatalf("%d key packages left, want 0", n)
	}
}

// TestClientNilArguments: the Client's entry points refuse nil and empty
// arguments with ErrInvalidArgument instead of panicking.
func TestClientNilArguments(t *testing.T) {
	ctx := context.Background()
	alice := newClient(t, "alice", staleSuite)
	c := clientOf(alice.store, alice.id)
	var nilCtx context.Context // what a careless caller passes
	checks := map[string]error{}
	_, checks["NewClient nil ctx"] = mls.NewClient(nilCtx, alice.store, alice.id.Credential, nil, credential.AcceptAll, mls.ClientOptions{})
	_, checks["NewClient nil store"] = mls.NewClient(ctx, nil, alice.id.Credential, nil, credential.AcceptAll, mls.ClientOptions{})
	_, checks["NewClient nil validator"] = mls.NewClient(ctx, alice.store, alice.id.Credential, nil, nil, mls.ClientOptions{})
	_, checks["NewClient empty credential"] = mls.NewClient(ctx, alice.store, credential.Credential{}, nil, credential.AcceptAll, mls.ClientOptions{})
	_, checks["NewKeyPackage nil ctx"] = c.NewKeyPackage(nilCtx, staleSuite, mls.KeyPackageOptions{})
	_, checks["CreateGroup nil ctx"] = c.CreateGroup(nilCtx, staleSuite, mls.GroupConfig{})
	_, checks["StageWelcome nil"] = c.StageWelcome(ctx, nil, mls.WelcomeOptions{})
	_, _, checks["JoinExternal nil"] = c.JoinExternal(ctx, nil, mls.ExternalJoinOptions{})
	_, checks["LoadGroupWithSigner nil signer"] = c.LoadGroupWithSigner(ctx, []byte("g"), nil)
	_, checks["Groups nil ctx"] = c.Groups(nilCtx)
	checks["DeleteKeyPackage empty"] = c.DeleteKeyPackage(ctx, nil)
	checks["StorePSK empty"] = c.StorePSK(ctx, nil, nil)
	_, checks["PruneKeyPackages nil ctx"] = c.PruneKeyPackages(nilCtx)
	for name, err := range checks {
		if !errors.Is(err, mls.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := c.CreateGroup(ctx, 0x7777, mls.GroupConfig{}); err == nil {
		t.Error("CreateGroup with an unknown suite succeeded")
	}
}

// TestClientWireFormatPolicy: a client's wire format policy applies to the
// groups it creates and joins unless their JoinConfig sets one.
func TestClientWireFormatPolicy(t *testing.T) {
	ctx := context.Background()
	private := mls.WireFormatPolicy{OutgoingPrivate: true, Incoming: mls.AcceptPrivateOnly}
	alice := newClient(t, "alice", staleSuite)
	c := clientWith(alice.store, alice.id, credential.AcceptAll, mls.ClientOptions{WireFormatPolicy: private})
	g, err := c.CreateGroup(ctx, staleSuite, mls.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit.WireFormat() != mls.WireFormatPrivateMessage {
		t.Fatalf("commit sent as %v under the client's private policy", res.Commit.WireFormat())
	}
	if err := g.ClearPendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	public := mls.WireFormatPolicy{Incoming: mls.AcceptPublicOnly}
	g2, err := c.CreateGroup(ctx, staleSuite, mls.GroupConfig{JoinConfig: mls.JoinConfig{WireFormatPolicy: public}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err = g2.SelfUpdate(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Commit.WireFormat() != mls.WireFormatPublicMessage {
		t.Fatalf("commit sent as %v under the group's own public policy", res.Commit.WireFormat())
	}
	// A nil context is an invalid argument, not a panic.
	var nilCtx context.Context
	if _, err := g2.Seal(nilCtx, []byte("x"), nil); !errors.Is(err, mls.ErrInvalidArgument) {
		t.Fatalf("Seal with a nil context: %v", err)
	}
}
