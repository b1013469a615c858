package storage_test

import (
	"context"
	"fmt"

	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

// Stats lets a test check that a state change writes only what it
// changed.
func ExampleStats() {
	var s storage.Store = memory.New()
	defer s.Close()
	ctx := context.Background()
	sr := s.(storage.StatsReporter)

	before := sr.Stats()
	_ = s.Update(ctx, func(tx storage.Tx) error {
		return tx.Put("ratchets", []byte("g1/leaf7"), make([]byte, 40))
	})
	fmt.Printf("%+v\n", sr.Stats().Sub(before))
	// Output:
	// {Txs:1 Puts:1 Deletes:0 BytesWritten:48}
}
