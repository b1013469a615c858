package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/store/sqlite"
)

// Two commits for the same epoch: the first is accepted, the second is
// refused with the group's current epoch and last sequence number, so that
// its sender can fetch, process and retry (RFC 9750, Section 5.2.1).
func Example() {
	dir, err := os.MkdirTemp("", "mlsd")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "mlsd.db"))
	if err != nil {
		panic(err)
	}
	defer s.Close()

	group := []byte("group-1")
	if err := s.CreateGroup(ctx, ds.Group{ID: group, Mode: ds.HandshakePublic, State: ds.GroupState{Epoch: 0, GroupInfo: []byte("gi0")}}); err != nil {
		panic(err)
	}
	commit := func(sender string) error {
		_, err := s.AppendCommit(ctx, ds.Commit{
			Entry:    ds.Entry{GroupID: group, Epoch: 0, Kind: ds.KindCommit, Sender: []byte(sender), Data: []byte("commit by " + sender)},
			NewState: ds.GroupState{Epoch: 1, GroupInfo: []byte("gi1 by " + sender)},
		})
		return err
	}
	fmt.Println("alice:", commit("alice"))
	var ce *ds.ConflictError
	if err := commit("bob"); errors.As(err, &ce) {
		fmt.Printf("bob: %v (group at epoch %d, last seq %d)\n", err, ce.CurrentEpoch, ce.LastSeq)
	}
	entries, err := s.Entries(ctx, group, 0, 10)
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		fmt.Printf("seq %d, epoch %d: %s\n", e.Seq, e.Epoch, e.Data)
	}
	// Output:
	// alice: <nil>
	// bob: ds: another commit was accepted for this epoch (group at epoch 1, last seq 1)
	// seq 1, epoch 0: commit by alice
}
