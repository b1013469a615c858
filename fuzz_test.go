package mls_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mlskit/mls"
)

// FuzzProcess feeds arbitrary bytes to a member as if they came from the
// delivery service: parsing and processing must never panic, and whatever
// is rejected must leave the group as it was (same epoch and epoch
// authenticator). The corpus is seeded with real messages of every kind.
func FuzzProcess(f *testing.F) {
	ctx := context.Background()
	cs := newGroupOf(f, regressSuite, mls.GroupConfig{}, true, "alice", "bob", "carol")
	alice, bob := cs[0], cs[1]
	seeds := 0
	add := func(m *mls.Message, err error) {
		if err != nil {
			f.Fatal(err)
		}
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		seeds++
	}
	add(alice.group.Seal(ctx, []byte("hello"), []byte("aad")))
	add(msgOnly(alice.group.ProposeSelfUpdate(ctx)))
	add(msgOnly(alice.group.ProposeRemove(ctx, 2)))
	res, err := alice.group.CommitPendingProposals(ctx)
	if err != nil {
		f.Fatal(err)
	}
	add(res.Commit, nil)
	add(res.GroupInfo, nil)
	if seeds == 0 {
		f.Fatal("no seeds")
	}
	epoch, auth := bob.group.Epoch(), bob.group.EpochAuthenticator()
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mls.ParseMessage(b)
		if err != nil {
			return
		}
		// Accepting a fuzzed message is fine (a seed, or a valid
		// mutation); either way the group must not move without a merge.
		_, err = bob.group.Process(ctx, m)
		if bob.group.Epoch() != epoch || !bytes.Equal(bob.group.EpochAuthenticator(), auth) {
			t.Fatalf("processing changed the group (err %v)", err)
		}
	})
}
