package memory

import (
	"context"
	"testing"

	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return New() })
}

func TestLen(t *testing.T) {
	s := New()
	err := s.Update(context.Background(), func(tx storage.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if err := tx.Put("x", []byte(k), nil); err != nil {
				return err
			}
		}
		if err := tx.Put("y", []byte("a"), nil); err != nil {
			return err
		}
		if s.Len("x") != 0 {
			t.Error("Len counts uncommitted keys")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Len("x"); got != 3 {
		t.Errorf("Len(x) = %d, want 3", got)
	}
	if got := s.Len("missing"); got != 0 {
		t.Errorf("Len(missing) = %d", got)
	}
}
