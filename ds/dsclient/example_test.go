package dsclient_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mlskit/mls"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/dsclient"
	dssqlite "github.com/mlskit/mls/ds/store/sqlite"
	"github.com/mlskit/mls/storage/memory"
)

// Alice and Bob chat through an mlsd: Bob publishes key packages, Alice
// creates a group, registers it and adds Bob, Bob joins from his Welcome
// mailbox, and Alice's message reaches him through the group's log.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "dsclient-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// An mlsd on a loopback port, over a SQLite database.
	store, err := dssqlite.Open(ctx, filepath.Join(dir, "mlsd.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	url, stop, err := ds.Listen(ctx, "127.0.0.1:0", store, ds.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	connect := func(name string) *dsclient.Client {
		mc, err := mls.NewClient(ctx, memory.New(), credential.NewBasic([]byte(name)), nil, credential.AcceptAll, mls.ClientOptions{})
		if err != nil {
			log.Fatal(err)
		}
		c, err := dsclient.Dial(ctx, url, mc, dsclient.Options{})
		if err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice, bob := connect("alice"), connect("bob")

	if _, err := bob.PublishKeyPackages(ctx, 5, true); err != nil {
		log.Fatal(err)
	}
	g, err := alice.MLS().CreateGroup(ctx, alice.Suite(), mls.GroupConfig{GroupID: []byte("lunch")})
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.CreateGroup(ctx, g, dsclient.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	kp, err := alice.FetchKeyPackage(ctx, []byte("bob"))
	if err != nil {
		log.Fatal(err)
	}
	posted, err := alice.Commit(ctx, g, func(g *mls.Group, ctx context.Context) (*mls.CommitResult, error) {
		return g.AddMembers(ctx, kp)
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Alice's commit created epoch", posted.Epoch)

	joined, err := bob.Join(ctx, mls.JoinConfig{})
	if err != nil || len(joined) != 1 {
		log.Fatal(err)
	}
	bg := joined[0].Group
	fmt.Printf("Bob joined %q at epoch %d\n", bg.GroupID(), bg.Epoch())

	if _, err := alice.Send(ctx, g, []byte("noon?"), nil); err != nil {
		log.Fatal(err)
	}
	if _, err := bob.Sync(ctx, bg, func(ev dsclient.Event) error {
		fmt.Printf("Bob reads %q from %s\n", ev.Processed.ApplicationData, ev.Sender)
		return nil
	}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// Alice's commit created epoch 1
	// Bob joined "lunch" at epoch 1
	// Bob reads "noon?" from alice
}
