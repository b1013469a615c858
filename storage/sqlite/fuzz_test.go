package sqlite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlskit/mls/storage"
)

// smallStoreFile returns the bytes of a closed store holding a few keys.
func smallStoreFile(f *testing.F) []byte {
	path := filepath.Join(f.TempDir(), "seed.db")
	s, err := Open(path)
	if err != nil {
		f.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx storage.Tx) error {
		for i := range 20 {
			if err := tx.Put("b", []byte{'k', byte(i)}, bytes.Repeat([]byte{byte(i)}, 30)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// FuzzOpen feeds arbitrary files to Open and, when Open accepts one, reads
// and writes it. Nothing may panic, and every failure must be typed: an
// *OpenError from Open, a *storage.Error from a transaction.
//
// Each input costs an SQLite open (about a millisecond), so minimizing the
// kilobyte-sized seeds is slow; run with a short -fuzzminimizetime, e.g.
//
//	go test ./storage/sqlite -run XXX -fuzz FuzzOpen -fuzzminimizetime 5s
func FuzzOpen(f *testing.F) {
	good := smallStoreFile(f)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("SQLite format 3\x00"))
	f.Add(good[:len(good)/2])
	damaged := bytes.Clone(good)
	damaged[len(damaged)-100] ^= 0xff
	f.Add(damaged)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, WithMaxConns(2))
		if err != nil {
			var oe *OpenError
			if !errors.As(err, &oe) {
				t.Fatalf("Open error %v (%T) is not an *OpenError", err, err)
			}
			return
		}
		defer s.Close()
		ctx := context.Background()
		check := func(err error) {
			t.Helper()
			var se *storage.Error
			if err != nil && !errors.As(err, &se) {
				t.Fatalf("transaction error %v (%T) is not a *storage.Error", err, err)
			}
		}
		check(s.View(ctx, func(tx storage.Tx) error {
			if _, err := tx.Get("b", []byte{'k', 3}); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			return tx.Scan("b", nil, func(k, v []byte) error { return nil })
		}))
		check(s.Update(ctx, func(tx storage.Tx) error {
			if err := tx.Put("b", []byte{'k', 200}, []byte("new")); err != nil {
				return err
			}
			return tx.DeletePrefix("b", []byte{'k', 1})
		}))
	})
}
