package state

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/storage"
	"github.com/mlskit/mls/storage/memory"
)

var allBuckets = []string{BucketKeyPackages, BucketPSKs, BucketUpdateKeys, BucketReInit, BucketGroups, BucketVersions, BucketNodes, BucketRatchets, BucketPast, BucketClient}

func count(t *testing.T, s storage.Store) map[string]int {
	t.Helper()
	n := map[string]int{}
	err := s.View(context.Background(), func(tx storage.Tx) error {
		for _, b := range allBuckets {
			if err := tx.Scan(b, nil, func(_, _ []byte) error { n[b]++; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func update(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// putGroup writes one record of every kind a group has.
func putGroup(tx storage.Tx, gid []byte) error {
	leaf := uint32(1)
	for _, kv := range []struct {
		b    string
		k, v []byte
	}{
		{BucketGroups, gid, []byte("g")},
		{BucketVersions, gid, make([]byte, 8)},
		{BucketReInit, gid, []byte("r")},
		{BucketNodes, NodeKey(gid, 2), []byte("n")},
		{BucketRatchets, RatchetKey(gid, 1, nil), []byte("s")},
		{BucketRatchets, RatchetKey(gid, 1, &leaf), []byte("l")},
		{BucketPast, PastKey(gid, 0), []byte("p")},
		{BucketUpdateKeys, UpdateKeyName(gid, []byte("pub")), []byte("k")},
	} {
		if err := tx.Put(kv.b, kv.k, kv.v); err != nil {
			return err
		}
	}
	return nil
}

// TestDeleteGroup deletes every record of one group and none of another
// whose ID extends it: keys are prefixed by the ID as opaque<V>.
func TestDeleteGroup(t *testing.T) {
	s := memory.New()
	update(t, s, func(tx storage.Tx) error {
		if err := putGroup(tx, []byte("ab")); err != nil {
			return err
		}
		if err := putGroup(tx, []byte("abc")); err != nil {
			return err
		}
		return PutPSK(tx, []byte("psk"), []byte("secret"))
	})
	before := count(t, s)
	update(t, s, func(tx storage.Tx) error { return DeleteGroup(tx, []byte("ab")) })
	after := count(t, s)
	for _, b := range allBuckets {
		want := before[b] / 2
		if b == BucketPSKs {
			want = 1
		}
		if after[b] != want {
			t.Errorf("bucket %s: %d records after deleting one of two groups, want %d", b, after[b], want)
		}
	}
	err := s.View(context.Background(), func(tx storage.Tx) error {
		ids, err := GroupIDs(tx)
		if err != nil {
			return err
		}
		if len(ids) != 1 || string(ids[0]) != "abc" {
			t.Errorf("GroupIDs = %q", ids)
		}
		for _, id := range []string{"ab", "abc"} {
			ok, err := HasGroup(tx, []byte(id))
			if err != nil || ok != (id == "abc") {
				t.Errorf("HasGroup(%s) = %v, %v", id, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVersion: no record is version 0; a record of another length than
// eight octets is corrupt.
func TestVersion(t *testing.T) {
	s := memory.New()
	gid := []byte("g")
	update(t, s, func(tx storage.Tx) error {
		if v, err := Version(tx, gid); v != 0 || err != nil {
			t.Errorf("no record: %d, %v", v, err)
		}
		if err := PutVersion(tx, gid, 0x0102030405060708); err != nil {
			return err
		}
		if b, _ := tx.Get(BucketVersions, gid); !bytes.Equal(b, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
			t.Errorf("stored version %x", b)
		}
		if v, err := Version(tx, gid); v != 0x0102030405060708 || err != nil {
			t.Errorf("Version = %x, %v", v, err)
		}
		if err := tx.Put(BucketVersions, gid, make([]byte, 7)); err != nil {
			return err
		}
		var ce *CorruptError
		if _, err := Version(tx, gid); !errors.As(err, &ce) || ce.What != "version record" || !bytes.Equal(ce.GroupID, gid) {
			t.Errorf("short version record: %v", err)
		}
		return nil
	})
}

// failingTx fails every Scan with a store error.
type failingTx struct{ storage.Tx }

func (failingTx) Scan(string, []byte, func(k, v []byte) error) error {
	return &storage.Error{Op: "scan", Err: storage.ErrClosed}
}

// TestLoadRejects: LoadTree, LoadSecretTree and LoadPast report records
// that are missing or do not fit as *CorruptError naming what is wrong,
// and pass errors of the store through.
func TestLoadRejects(t *testing.T) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	s := memory.New()
	gid := []byte("g")
	params := SecretTreeParams{Leaves: 2, Config: secrettree.Config{OutOfOrderTolerance: 5, MaxForwardDistance: 1000}}
	check := func(name string, err error, what, msg string) {
		t.Helper()
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.What != what || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want a CorruptError for %q saying %q", name, err, what, msg)
		}
	}
	update(t, s, func(tx storage.Tx) error {
		for _, leaves := range []uint32{0, 3, 1 << 31} {
			_, err := LoadTree(tx, gid, suite, &Header{Leaves: leaves})
			check("tree leaves", err, "group record", "leaves")
		}
		if err := tx.Put(BucketNodes, append(GroupPrefix(gid), 7, 0, 0, 0, 2), []byte{1}); err != nil {
			return err
		}
		_, err := LoadTree(tx, gid, suite, &Header{Leaves: 2})
		check("node key length octet", err, "ratchet tree", "length octet")
		if err := tx.Delete(BucketNodes, append(GroupPrefix(gid), 7, 0, 0, 0, 2)); err != nil {
			return err
		}
		if err := tx.Put(BucketNodes, NodeKey(gid, 8), []byte{1}); err != nil {
			return err
		}
		_, err = LoadTree(tx, gid, suite, &Header{Leaves: 2})
		check("node beyond the tree", err, "ratchet tree", "outside")

		_, err = LoadSecretTree(tx, gid, suite, 3, params)
		check("no node secrets", err, "secret tree of epoch 3", "node secrets missing")
		if err := tx.Put(BucketRatchets, RatchetKey(gid, 3, nil), []byte("bad")); err != nil {
			return err
		}
		_, err = LoadSecretTree(tx, gid, suite, 3, params)
		check("bad checksum", err, "secret tree of epoch 3", "checksum")

		_, _, err = LoadPast(tx, gid, suite, PastRef{Epoch: 2})
		check("past record missing", err, "past epoch 2", "missing")
		p := samplePastRecord()
		p.Epoch = 2
		b, err := p.Marshal()
		if err != nil {
			return err
		}
		if err := tx.Put(BucketPast, PastKey(gid, 2), b); err != nil {
			return err
		}
		_, _, err = LoadPast(tx, gid, suite, PastRef{Epoch: 2, ID: []byte("other")})
		check("past record of another epoch", err, "past epoch 2", "another epoch")
		_, _, err = LoadPast(tx, gid, suite, PastRef{Epoch: 2, ID: EpochID(p.GroupContext)})
		check("short sender data secret", err, "past epoch 2", "sender data secret")

		// Errors of the store are not corruption.
		_, err = LoadTree(failingTx{tx}, gid, suite, &Header{Leaves: 2})
		var ce *CorruptError
		if !errors.Is(err, storage.ErrClosed) || errors.As(err, &ce) {
			t.Errorf("store error: %v", err)
		}
		_, err = LoadSecretTree(failingTx{tx}, gid, suite, 3, params)
		if !errors.Is(err, storage.ErrClosed) || errors.As(err, &ce) {
			t.Errorf("store error: %v", err)
		}
		return nil
	})
	// A damaged group record is corrupt; a missing one is not found.
	update(t, s, func(tx storage.Tx) error {
		if _, err := LoadGroupRecord(tx, gid); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("missing group record: %v", err)
		}
		if err := tx.Put(BucketGroups, gid, []byte("damaged")); err != nil {
			return err
		}
		_, err := LoadGroupRecord(tx, gid)
		check("damaged group record", err, "group record", "checksum")
		if h, err := ReadHeader(tx, gid); h != nil || err != nil {
			t.Errorf("ReadHeader of a damaged record: %v, %v (want nil: everything is written anew)", h, err)
		}
		return nil
	})
}

// TestKeyPackageRecords: records are listed in reference order, damaged
// ones reported as corrupt without stopping the listing.
func TestKeyPackageRecords(t *testing.T) {
	s := memory.New()
	update(t, s, func(tx storage.Tx) error {
		if err := PutKeyPackage(tx, []byte("r1"), &KeyPackageRecord{KeyPackage: []byte("kp1")}); err != nil {
			return err
		}
		if err := tx.Put(BucketKeyPackages, []byte("r2"), []byte("bad")); err != nil {
			return err
		}
		return PutKeyPackage(tx, []byte("r3"), &KeyPackageRecord{KeyPackage: []byte("kp3"), LastResort: true})
	})
	var got []string
	update(t, s, func(tx storage.Tx) error {
		if r, err := KeyPackage(tx, []byte("r3")); err != nil || !r.LastResort || string(r.KeyPackage) != "kp3" {
			t.Errorf("KeyPackage(r3) = %+v, %v", r, err)
		}
		var ce *CorruptError
		if _, err := KeyPackage(tx, []byte("r2")); !errors.As(err, &ce) {
			t.Errorf("KeyPackage(r2) = %v", err)
		}
		return KeyPackages(tx, func(ref []byte, r *KeyPackageRecord, err error) error {
			if err != nil {
				got = append(got, string(ref)+":corrupt")
				return nil
			}
			got = append(got, string(ref)+":"+string(r.KeyPackage))
			return nil
		})
	})
	if strings.Join(got, " ") != "r1:kp1 r2:corrupt r3:kp3" {
		t.Errorf("KeyPackages listed %v", got)
	}
}
