package mls_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
	"github.com/mlskit/mls/storage/sqlite"
)

// openClient opens the client named name over store: its credential, the
// signature key it generated on its first run and keeps in store, and a
// validator (the examples accept every credential; a real application
// checks them).
func openClient(ctx context.Context, store storage.Store, name string) *mls.Client {
	c, err := mls.NewClient(ctx, store, credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// exampleJoin has a client join a group: the client publishes a key
// package, the group adds it, and the client accepts the Welcome.
func exampleJoin(ctx context.Context, group *mls.Group, c *mls.Client) *mls.Group {
	kp, err := c.NewKeyPackage(ctx, group.CipherSuite(), mls.KeyPackageOptions{})
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
	staged, err := c.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		log.Fatal(err)
	}
	g, err := staged.Join(ctx)
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
func ExampleClient_LoadGroup() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mls-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "alice.db")

	store, err := sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	group, err := openClient(ctx, store, "alice").CreateGroup(ctx, mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.GroupConfig{
		GroupID: []byte("book club"),
	})
	if err != nil {
		log.Fatal(err)
	}
	bob := exampleJoin(ctx, group, openClient(ctx, memory.New(), "bob"))

	// Alice's application stops.
	if err := store.Close(); err != nil {
		log.Fatal(err)
	}

	// It starts again: open the file and the client, whose signing key is
	// in the file, and load the group.
	store, err = sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	group, err = openClient(ctx, store, "alice").LoadGroup(ctx, []byte("book club"))
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
func ExampleClient_LoadGroup_pendingCommit() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "mls-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "alice.db")

	store, err := sqlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	group, err := openClient(ctx, store, "alice").CreateGroup(ctx, mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, mls.GroupConfig{
		GroupID: []byte("book club"),
	})
	if err != nil {
		log.Fatal(err)
	}
	bob := exampleJoin(ctx, group, openClient(ctx, memory.New(), "bob"))

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
	group, err = openClient(ctx, store, "alice").LoadGroup(ctx, []byte("book club"))
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
