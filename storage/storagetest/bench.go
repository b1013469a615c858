package storagetest

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/mlskit/mls/storage"
)

// benchKeys is how many keys the read benchmarks preload.
const benchKeys = 10000

func benchKey(i int) []byte {
	return binary.BigEndian.AppendUint64([]byte("group/leaf/"), uint64(i))
}

// Bench runs the shared storage benchmarks on s, which it closes at the
// end:
//
//   - PutCommit: one Update that Puts a 100-byte value and commits.
//   - Get: one View that Gets a 100-byte value, among 10,000 keys.
//   - GetInView: Gets of 100-byte values inside a single View.
func Bench(b *testing.B, s storage.Store) {
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte(i)
	}

	b.Run("PutCommit", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			err := s.Update(ctx, func(tx storage.Tx) error {
				return tx.Put("bench-put", benchKey(i%benchKeys), value)
			})
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	err := s.Update(ctx, func(tx storage.Tx) error {
		for i := range benchKeys {
			if err := tx.Put("bench-get", benchKey(i), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			err := s.View(ctx, func(tx storage.Tx) error {
				_, err := tx.Get("bench-get", benchKey(i*7919%benchKeys))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	b.Run("GetInView", func(b *testing.B) {
		b.ReportAllocs()
		err := s.View(ctx, func(tx storage.Tx) error {
			i := 0
			for b.Loop() {
				if _, err := tx.Get("bench-get", benchKey(i*7919%benchKeys)); err != nil {
					return err
				}
				i++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}
