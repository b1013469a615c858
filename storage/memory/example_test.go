package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

func Example() {
	ctx := context.Background()
	s := memory.New()
	defer s.Close()

	// One Update is one atomic state change.
	err := s.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Put("epochs", []byte("g1/0001"), []byte("secret 1")); err != nil {
			return err
		}
		return tx.Put("epochs", []byte("g1/0002"), []byte("secret 2"))
	})
	if err != nil {
		panic(err)
	}

	// A failed Update changes nothing.
	err = s.Update(ctx, func(tx storage.Tx) error {
		if err := tx.DeletePrefix("epochs", []byte("g1/")); err != nil {
			return err
		}
		return errors.New("validation failed")
	})
	fmt.Println("update:", err)

	_ = s.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("epochs", []byte("g1/"), func(k, v []byte) error {
			fmt.Printf("%s = %s\n", k, v)
			return nil
		})
	})
	// Output:
	// update: validation failed
	// g1/0001 = secret 1
	// g1/0002 = secret 2
}
