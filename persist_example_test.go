package mls_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// exampleIdentity makes an identity with a fresh Ed25519 key.
func exampleIdentity(name string) mls.Identity {
	s, err := ciphersuite.Lookup(mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := s.GenerateSignatureKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	return mls.Identity{Credential: credential.NewBasic([]byte(name)), Signer: signer}
}

// exampleJoin has a member with its own store join a group: the member
// publishes a key package, the group adds it, and the member accepts the
// Welcome.
func exampleJoin(ctx context.Context, group *mls.Group, store storage.Store, id mls.Identity) *mls.Group {
	kp, err := mls.NewKeyPackage(ctx, store, group.CipherSuite(), id, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := group.AddMembers(ctx, kp)
	if err != nil {
		log.Fatal(err)
	}
	if err := group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	tree, err := group.ExportRatchetTree()
	if err != nil {
		log.Fatal(err)
	}
	staged, err := mls.StageWelcome(ctx, store, res.Welcome, mls.JoinConfig{}, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		log.Fatal(err)
	}
	g, err := staged.Join(ctx, id.Signer)
	if err != nil {
		log.Fatal(err)
	}
	return g
}

// A client keeps its groups in an SQLite file. Every operation that
// changes a group stores the change before it returns, in one
// transaction, so the application has nothing to save: after a restart
// (or a crash) it opens the file again and loads the group, which goes on
// exactly where it was.
func ExampleLoadGroup() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mls-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "alice.db")

	alice := exampleIdentity("alice")
	store, err := sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	group, err := mls.CreateGroup(ctx, store, alice, mls.GroupConfig{
		CipherSuite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		GroupID:     []byte("book club"),
	})
	if err != nil {
		log.Fatal(err)
	}
	bob := exampleJoin(ctx, group, memory.New(), exampleIdentity("bob"))

	// Alice's application stops.
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}

	// It starts again: open the file, load the group with Alice's
	// signing key.
	store, err = sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	group, err = mls.LoadGroup(ctx, store, []byte("book club"), alice.Signer)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("epoch", group.Epoch(), "with", len(group.Members()), "members")

	msg, err := group.Seal(ctx, []byte("hello after the restart"), nil)
	if err != nil {
		log.Fatal(err)
	}
	p, err := bob.Process(ctx, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob reads %q\n", p.ApplicationData)
	// Output:
	// epoch 1 with 2 members
	// bob reads "hello after the restart"
}

// A commit is stored as pending before Commit returns, with the Welcome
// and GroupInfo it produced. If the client stops between sending the
// commit and hearing that the delivery service accepted it, the loaded
// group still has the commit and merges it: losing it would lock the
// member out of the group (the OpenMLS book, "Group Lockout Upon State
// Loss").
func ExampleLoadGroup_pendingCommit() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mls-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "alice.db")

	alice := exampleIdentity("alice")
	store, err := sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	group, err := mls.CreateGroup(ctx, store, alice, mls.GroupConfig{
		CipherSuite: mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
		GroupID:     []byte("book club"),
	})
	if err != nil {
		log.Fatal(err)
	}
	bob := exampleJoin(ctx, group, memory.New(), exampleIdentity("bob"))

	// Alice updates her keys and sends the commit; then her application
	// stops before the delivery service answers.
	res, err := group.SelfUpdate(ctx)
	if err != nil {
		log.Fatal(err)
	}
	commit, err := res.Commit.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	store.Close()

	store, err = sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	group, err = mls.LoadGroup(ctx, store, []byte("book club"), alice.Signer)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pending commit for epoch", group.PendingCommit().Epoch())

	// The delivery service accepted the commit: Alice merges it, Bob
	// processes it.
	if err := group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	received, err := mls.ParseMessage(commit)
	if err != nil {
		log.Fatal(err)
	}
	p, err := bob.Process(ctx, received)
	if err != nil {
		log.Fatal(err)
	}
	if err := bob.MergeStagedCommit(ctx, p.Commit); err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice at epoch", group.Epoch(), "bob at epoch", bob.Epoch())
	// Output:
	// pending commit for epoch 2
	// alice at epoch 2 bob at epoch 2
}
