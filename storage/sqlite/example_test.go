package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/sqlite"
)

func Example() {
	dir, err := os.MkdirTemp("", "mls-storage-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "client.db")
	ctx := context.Background()

	s, err := sqlite.Open(path)
	if err != nil {
		panic(err)
	}
	err = s.Update(ctx, func(tx storage.Tx) error {
		return tx.Put("keypackages", []byte("ref-1"), []byte("private init key"))
	})
	if err != nil {
		panic(err)
	}
	// The key package was used: delete its private key, then checkpoint
	// so that no copy is left in the write-ahead log.
	err = s.Update(ctx, func(tx storage.Tx) error {
		return tx.Delete("keypackages", []byte("ref-1"))
	})
	if err != nil {
		panic(err)
	}
	if err := s.Checkpoint(); err != nil {
		panic(err)
	}
	s.Close()

	// The file persists; reopening it finds the committed state.
	s, err = sqlite.Open(path)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	_ = s.View(ctx, func(tx storage.Tx) error {
		_, err := tx.Get("keypackages", []byte("ref-1"))
		fmt.Println(err)
		return nil
	})
	// Output:
	// storage: get in bucket "keypackages" key 7265662d31 (5 bytes): key not found
}
