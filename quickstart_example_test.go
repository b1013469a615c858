package mls_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/storage/memory"
)

// The README's quick start, word for word: two clients, a group, a Welcome
// and an application message.
func Example() {
	ctx := context.Background()
	suite := mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

	// A client per device: its store (memory.New() or sqlite.Open(path)), its
	// credential, its signature key (nil: generated and kept in the store)
	// and the validator that decides whose credentials to trust.
	alice, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("alice")), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte("bob")), nil, credential.AcceptAll, mls.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}

	// Bob publishes a key package; Alice creates a group and adds him.
	kp, err := bob.NewKeyPackage(ctx, suite, mls.KeyPackageOptions{})
	if err != nil {
		log.Fatal(err)
	}
	group, err := alice.CreateGroup(ctx, suite, mls.GroupConfig{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := group.AddMembers(ctx, kp) // a commit and a Welcome
	if err != nil {
		log.Fatal(err)
	}
	// Once the delivery service accepted the commit:
	if err := group.MergePendingCommit(ctx); err != nil {
		log.Fatal(err)
	}
	tree, err := group.ExportRatchetTree()
	if err != nil {
		log.Fatal(err)
	}

	// Bob looks at the Welcome, then joins.
	staged, err := bob.StageWelcome(ctx, res.Welcome, mls.WelcomeOptions{RatchetTree: tree})
	if err != nil {
		log.Fatal(err)
	}
	bobGroup, err := staged.Join(ctx)
	if err != nil {
		log.Fatal(err)
	}

	// Messages travel as bytes through the delivery service.
	msg, err := group.Seal(ctx, []byte("hi bob"), nil)
	if err != nil {
		log.Fatal(err)
	}
	wire, err := msg.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	in, err := mls.ParseMessage(wire)
	if err != nil {
		log.Fatal(err)
	}
	p, err := bobGroup.Process(ctx, in)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s at epoch %d: %q\n", p.Credential.Identity(), bobGroup.Epoch(), p.ApplicationData)
	// Output:
	// alice at epoch 1: "hi bob"
}
