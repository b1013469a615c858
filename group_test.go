package mls_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// client is one test participant: an identity and its own store.
type client struct {
	name  string
	id    mls.Identity
	store storage.Store
	group *mls.Group
}

func newClient(t testing.TB, name string, suite mls.CipherSuite) *client {
	t.Helper()
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{name: name, id: mls.Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}, store: memory.New()}
}

func (c *client) keyPackage(t testing.TB, suite mls.CipherSuite) *mls.KeyPackage {
	t.Helper()
	kp, err := clientOf(c.store, c.id).NewKeyPackage(context.Background(), suite, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func (c *client) join(t testing.TB, welcome *mls.Message, cfg mls.JoinConfig, tree []byte) {
	t.Helper()
	ctx := context.Background()
	sw, err := clientOf(c.store, c.id).StageWelcome(ctx, welcome, mls.WelcomeOptions{JoinConfig: cfg, RatchetTree: tree})
	if err != nil {
		t.Fatalf("%s: StageWelcome: %v", c.name, err)
	}
	g, err := sw.Join(ctx)
	if err != nil {
		t.Fatalf("%s: Join: %v", c.name, err)
	}
	c.group = g
}

// roundTrip marshals and parses a message, as the wire would.
func roundTrip(t testing.TB, m *mls.Message) *mls.Message {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := mls.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *client) processCommit(t testing.TB, m *mls.Message) {
	t.Helper()
	ctx := context.Background()
	p, err := c.group.Process(ctx, roundTrip(t, m))
	if err != nil {
		t.Fatalf("%s: Process commit: %v", c.name, err)
	}
	if p.Kind != mls.KindCommit {
		t.Fatalf("%s: got %v, want commit", c.name, p.Kind)
	}
	if err := c.group.MergeStagedCommit(ctx, p.Commit); err != nil {
		t.Fatalf("%s: merge: %v", c.name, err)
	}
}

func agree(t testing.TB, cs ...*client) {
	t.Helper()
	a := cs[0].group.EpochAuthenticator()
	for _, c := range cs[1:] {
		if c.group.Epoch() != cs[0].group.Epoch() {
			t.Fatalf("%s at epoch %d, %s at %d", cs[0].name, cs[0].group.Epoch(), c.name, c.group.Epoch())
		}
		if !bytes.Equal(c.group.EpochAuthenticator(), a) {
			t.Fatalf("%s and %s disagree on the epoch authenticator", cs[0].name, c.name)
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	for _, suite := range ciphersuite.All() {
		t.Run(suite.String(), func(t *testing.T) { testLifecycle(t, suite) })
	}
}

func testLifecycle(t *testing.T, suite mls.CipherSuite) {
	ctx := context.Background()
	alice, bob, charlie := newClient(t, "alice", suite), newClient(t, "bob", suite), newClient(t, "charlie", suite)
	cfg := mls.GroupConfig{}
	var err error
	alice.group, err = clientOf(alice.store, alice.id).CreateGroup(ctx, suite, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.group.AddMembers(ctx, bob.keyPackage(t, suite), charlie.keyPackage(t, suite))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	rt, err := alice.group.ExportRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	bob.join(t, roundTrip(t, res.Welcome), cfg.JoinConfig, rt)
	charlie.join(t, roundTrip(t, res.Welcome), cfg.JoinConfig, rt)
	agree(t, alice, bob, charlie)

	// Application messages.
	m, err := alice.group.Seal(ctx, []byte("hello"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{bob, charlie} {
		p, err := c.group.Process(ctx, roundTrip(t, m))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p.Kind != mls.KindApplication || string(p.ApplicationData) != "hello" || string(p.AuthenticatedData) != "aad" {
			t.Fatalf("%s: got %+v", c.name, p)
		}
	}

	// Bob self-updates.
	res, err = bob.group.SelfUpdate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.processCommit(t, res.Commit)
	charlie.processCommit(t, res.Commit)
	agree(t, alice, bob, charlie)

	// Alice removes Charlie.
	res, err = alice.group.RemoveMembers(ctx, charlie.group.OwnLeafIndex())
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.group.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.processCommit(t, res.Commit)
	charlie.processCommit(t, res.Commit)
	if charlie.group.IsActive() {
		t.Fatal("charlie still active after removal")
	}
	agree(t, alice, bob)
	if n := len(alice.group.Members()); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
}
