package sqlite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/storage"
)

// smallStoreFile returns the bytes of a closed store holding a few keys,
// the same bytes on every run.
func smallStoreFile(f testing.TB) []byte {
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
	// The migration records when it ran; a fixed time keeps the file, and
	// so the generated corpus, the same on every run.
	if _, err := s.db.Exec(`UPDATE schema_version SET applied_at = 0`); err != nil {
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

// openSeeds are FuzzOpen's seeds: a small store, empty and header-only
// files, the store cut in half and the store with a damaged page.
func openSeeds(tb testing.TB) [][]byte {
	good := smallStoreFile(tb)
	damaged := bytes.Clone(good)
	damaged[len(damaged)-100] ^= 0xff
	return [][]byte{good, {}, []byte("SQLite format 3\x00"), good[:len(good)/2], damaged}
}

// TestGenerateFuzzCorpus writes testdata/fuzz/FuzzOpen from openSeeds; it
// checks that the store file is the same on every run. It runs only with
// MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	if !bytes.Equal(smallStoreFile(t), smallStoreFile(t)) {
		t.Fatal("two stores written alike differ; the corpus would change on every run")
	}
	c := fuzzcorpus.New(".", "FuzzOpen")
	for _, b := range openSeeds(t) {
		c.Add(b)
	}
	c.Write(t)
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
	for _, b := range openSeeds(f) {
		f.Add(b)
	}
	fuzzcorpus.Require(f, 1)
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
