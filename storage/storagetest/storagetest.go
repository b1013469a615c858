package storagetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlskit/mls/storage"
)

// timeout bounds every wait in the suite, so that a deadlock fails the test
// instead of hanging it.
const timeout = 20 * time.Second

// Run runs the conformance suite. open must return a new, empty store for
// each call; it should register any cleanup (such as removing files) with
// t.Cleanup. The suite closes each store itself, possibly more than once.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"NotFound", testNotFound},
		{"EmptyValue", testEmptyValue},
		{"InvalidArguments", testInvalidArguments},
		{"SizeLimits", testSizeLimits},
		{"BucketsIndependent", testBucketsIndependent},
		{"Copies", testCopies},
		{"ScanOrder", testScanOrder},
		{"ScanPrefix", testScanPrefix},
		{"ScanStopsOnError", testScanStopsOnError},
		{"ScanReadsOwnWrites", testScanReadsOwnWrites},
		{"ScanWhileWriting", testScanWhileWriting},
		{"ManyKeys", testManyKeys},
		{"DeletePrefix", testDeletePrefix},
		{"Model", testModel},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ReadOnlyView", testReadOnlyView},
		{"TxDone", testTxDone},
		{"Isolation", testIsolation},
		{"ViewInsideUpdate", testViewInsideUpdate},
		{"Concurrent", testConcurrent},
		{"ContextCanceledBefore", testContextCanceledBefore},
		{"ContextCanceledDuring", testContextCanceledDuring},
		{"ContextWaitingForWriter", testContextWaitingForWriter},
		{"Close", testClose},
		{"Stats", testStats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// ---- helpers ----

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func update(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.Update(ctxT(t), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s storage.Store, fn func(storage.Tx) error) {
	t.Helper()
	if err := s.View(ctxT(t), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func putAll(t *testing.T, s storage.Store, bucket string, kv ...string) {
	t.Helper()
	if len(kv)%2 != 0 {
		panic("putAll: odd number of arguments")
	}
	update(t, s, func(tx storage.Tx) error {
		for i := 0; i < len(kv); i += 2 {
			if err := tx.Put(bucket, []byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

// getString reads one key; absent keys read as "<absent>".
func getString(t *testing.T, tx storage.Tx, bucket, key string) string {
	t.Helper()
	v, err := tx.Get(bucket, []byte(key))
	if errors.Is(err, storage.ErrNotFound) {
		return "<absent>"
	}
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", bucket, key, err)
	}
	return string(v)
}

func get(t *testing.T, s storage.Store, bucket, key string) string {
	t.Helper()
	var v string
	view(t, s, func(tx storage.Tx) error {
		v = getString(t, tx, bucket, key)
		return nil
	})
	return v
}

// scanTx returns "key=value" for each entry Scan reports, in order.
func scanTx(t *testing.T, tx storage.Tx, bucket string, prefix []byte) []string {
	t.Helper()
	var out []string
	err := tx.Scan(bucket, prefix, func(k, v []byte) error {
		out = append(out, string(k)+"="+string(v))
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%q, %x): %v", bucket, prefix, err)
	}
	return out
}

func dump(t *testing.T, s storage.Store, bucket string) []string {
	t.Helper()
	var out []string
	view(t, s, func(tx storage.Tx) error {
		out = scanTx(t, tx, bucket, nil)
		return nil
	})
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wantDump(t *testing.T, s storage.Store, bucket string, want ...string) {
	t.Helper()
	if got := dump(t, s, bucket); !equalStrings(got, want) {
		t.Fatalf("bucket %q holds\n  %q\nwant\n  %q", bucket, got, want)
	}
}

// wantErr checks that err wraps target and is a *storage.Error for op.
func wantErr(t *testing.T, err, target error, op string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", op, err, target)
	}
	var se *storage.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: error %v (%T) is not a *storage.Error", op, err, err)
	}
	if se.Op != op {
		t.Fatalf("error %v has Op %q, want %q", err, se.Op, op)
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

var errSentinel = errors.New("storagetest: deliberate failure")

// ---- tests ----

func testGetPutDelete(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k1", "v1", "k2", "v2")
	if got := get(t, s, "b", "k1"); got != "v1" {
		t.Fatalf("k1 = %q, want v1", got)
	}
	putAll(t, s, "b", "k1", "replaced")
	update(t, s, func(tx storage.Tx) error {
		if err := tx.Delete("b", []byte("k2")); err != nil {
			return err
		}
		// Deleting an absent key, in an existing and a missing bucket.
		if err := tx.Delete("b", []byte("never-there")); err != nil {
			return err
		}
		return tx.Delete("no-such-bucket", []byte("k"))
	})
	wantDump(t, s, "b", "k1=replaced")
	// Delete then Put again in one transaction.
	update(t, s, func(tx storage.Tx) error {
		if err := tx.Delete("b", []byte("k1")); err != nil {
			return err
		}
		if got := getString(t, tx, "b", "k1"); got != "<absent>" {
			t.Errorf("after Delete in the same tx, k1 = %q", got)
		}
		return tx.Put("b", []byte("k1"), []byte("again"))
	})
	wantDump(t, s, "b", "k1=again")
}

func testNotFound(t *testing.T, s storage.Store) {
	view(t, s, func(tx storage.Tx) error {
		_, err := tx.Get("empty", []byte("k"))
		wantErr(t, err, storage.ErrNotFound, "get")
		return nil
	})
	putAll(t, s, "b", "k", "v")
	view(t, s, func(tx storage.Tx) error {
		v, err := tx.Get("b", []byte("other"))
		wantErr(t, err, storage.ErrNotFound, "get")
		if v != nil {
			t.Errorf("Get of an absent key returned %q with the error", v)
		}
		var se *storage.Error
		errors.As(err, &se)
		if se.Bucket != "b" || !bytes.Equal(se.Key, []byte("other")) {
			t.Errorf("error names bucket %q key %q, want b, other", se.Bucket, se.Key)
		}
		if msg := err.Error(); !strings.Contains(msg, `"b"`) || !strings.Contains(msg, "6f74686572") {
			t.Errorf("error message %q does not name the bucket and key", msg)
		}
		// A key that is a prefix or an extension of a stored key.
		for _, k := range []string{"kk", "K", "k\x00"} {
			if _, err := tx.Get("b", []byte(k)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get(%q) = %v, want ErrNotFound", k, err)
			}
		}
		return nil
	})
}

func testEmptyValue(t *testing.T, s storage.Store) {
	update(t, s, func(tx storage.Tx) error {
		if err := tx.Put("b", []byte("nil"), nil); err != nil {
			return err
		}
		return tx.Put("b", []byte("empty"), []byte{})
	})
	view(t, s, func(tx storage.Tx) error {
		for _, k := range []string{"nil", "empty"} {
			v, err := tx.Get("b", []byte(k))
			if err != nil {
				t.Errorf("Get(%q): %v", k, err)
				continue
			}
			if v == nil || len(v) != 0 {
				t.Errorf("Get(%q) = %#v, want a non-nil empty slice", k, v)
			}
		}
		n := 0
		err := tx.Scan("b", nil, func(k, v []byte) error {
			n++
			if v == nil || len(v) != 0 {
				t.Errorf("Scan value for %q = %#v, want a non-nil empty slice", k, v)
			}
			return nil
		})
		if err != nil || n != 2 {
			t.Errorf("Scan saw %d keys, err %v; want 2, nil", n, err)
		}
		return nil
	})
}

func testInvalidArguments(t *testing.T, s storage.Store) {
	badBuckets := []string{"", "a\x00b", "\xff\xfe", strings.Repeat("x", storage.MaxBucketLen+1)}
	update(t, s, func(tx storage.Tx) error {
		for _, b := range badBuckets {
			_, err := tx.Get(b, []byte("k"))
			wantErr(t, err, storage.ErrInvalidBucket, "get")
			wantErr(t, tx.Put(b, []byte("k"), []byte("v")), storage.ErrInvalidBucket, "put")
			wantErr(t, tx.Delete(b, []byte("k")), storage.ErrInvalidBucket, "delete")
			wantErr(t, tx.DeletePrefix(b, nil), storage.ErrInvalidBucket, "delete prefix")
			wantErr(t, tx.Scan(b, nil, func(k, v []byte) error { return nil }), storage.ErrInvalidBucket, "scan")
		}
		for _, k := range [][]byte{nil, {}} {
			_, err := tx.Get("b", k)
			wantErr(t, err, storage.ErrInvalidKey, "get")
			wantErr(t, tx.Put("b", k, []byte("v")), storage.ErrInvalidKey, "put")
			wantErr(t, tx.Delete("b", k), storage.ErrInvalidKey, "delete")
		}
		// The transaction is still usable after rejected calls.
		return tx.Put("b", []byte("k"), []byte("v"))
	})
	wantDump(t, s, "b", "k=v")
}

func testSizeLimits(t *testing.T, s storage.Store) {
	maxBucket := strings.Repeat("é", storage.MaxBucketLen/2) // 254 bytes of UTF-8
	maxKey := bytes.Repeat([]byte{0xab}, storage.MaxKeySize)
	longKey := bytes.Repeat([]byte{0xab}, storage.MaxKeySize+1)
	bigValue := make([]byte, 1<<20)
	for i := range bigValue {
		bigValue[i] = byte(i * 7)
	}
	update(t, s, func(tx storage.Tx) error {
		_, err := tx.Get("b", longKey)
		wantErr(t, err, storage.ErrTooLarge, "get")
		wantErr(t, tx.Put("b", longKey, nil), storage.ErrTooLarge, "put")
		wantErr(t, tx.Delete("b", longKey), storage.ErrTooLarge, "delete")
		wantErr(t, tx.DeletePrefix("b", longKey), storage.ErrTooLarge, "delete prefix")
		wantErr(t, tx.Scan("b", longKey, func(k, v []byte) error { return nil }), storage.ErrTooLarge, "scan")
		if err := tx.Put(maxBucket, maxKey, bigValue); err != nil {
			return err
		}
		return nil
	})
	view(t, s, func(tx storage.Tx) error {
		v, err := tx.Get(maxBucket, maxKey)
		if err != nil {
			return err
		}
		if !bytes.Equal(v, bigValue) {
			t.Errorf("1 MiB value under the longest key did not round-trip")
		}
		return nil
	})
}

func testBucketsIndependent(t *testing.T, s storage.Store) {
	// Bucket names that are prefixes of each other must not mix.
	putAll(t, s, "a", "k", "in a", "k2", "only a")
	putAll(t, s, "ab", "k", "in ab")
	putAll(t, s, "a/b", "k", "in a/b")
	wantDump(t, s, "a", "k=in a", "k2=only a")
	wantDump(t, s, "ab", "k=in ab")
	update(t, s, func(tx storage.Tx) error { return tx.DeletePrefix("a", nil) })
	wantDump(t, s, "a")
	wantDump(t, s, "ab", "k=in ab")
	wantDump(t, s, "a/b", "k=in a/b")
	update(t, s, func(tx storage.Tx) error { return tx.Delete("ab", []byte("k")) })
	wantDump(t, s, "a/b", "k=in a/b")
}

func testCopies(t *testing.T, s storage.Store) {
	key := []byte("key")
	val := []byte("value")
	update(t, s, func(tx storage.Tx) error {
		if err := tx.Put("b", key, val); err != nil {
			return err
		}
		// Changing the caller's slices after Put, inside the transaction.
		key[0], val[0] = 'X', 'X'
		if got := getString(t, tx, "b", "key"); got != "value" {
			t.Errorf("in tx after mutating Put's arguments: %q", got)
		}
		v, err := tx.Get("b", []byte("key"))
		if err != nil {
			return err
		}
		v[0] = 'Y'
		if got := getString(t, tx, "b", "key"); got != "value" {
			t.Errorf("in tx after mutating Get's result: %q", got)
		}
		return nil
	})
	key[1], val[1] = 'Z', 'Z'
	wantDump(t, s, "b", "key=value")
	view(t, s, func(tx storage.Tx) error {
		v, err := tx.Get("b", []byte("key"))
		if err != nil {
			return err
		}
		for i := range v {
			v[i] = 0
		}
		var keep [][]byte
		err = tx.Scan("b", nil, func(k, v []byte) error {
			k[0], v[0] = 0, 0
			keep = append(keep, k, v)
			return nil
		})
		if err != nil {
			return err
		}
		if got := getString(t, tx, "b", "key"); got != "value" {
			t.Errorf("after mutating Get and Scan results: %q", got)
		}
		return nil
	})
	wantDump(t, s, "b", "key=value")
}

func testScanOrder(t *testing.T, s storage.Store) {
	// Sorted by bytes.Compare, written out by hand.
	want := []string{
		"\x00",
		"\x00\x00",
		"\x01",
		"A",
		"a",
		"a\x00",
		"a\x00\x00",
		"a\x01",
		"aa",
		"ab",
		"a\xff", // 0xff sorts after 'a' and 'b'
		"b",
		"\x7f",
		"\x80",
		"\xfe\xff\xff",
		"\xff",
		"\xff\x00",
		"\xff\xff",
		"\xff\xff\xff",
	}
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := append([]string(nil), want...)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	update(t, s, func(tx storage.Tx) error {
		for _, k := range shuffled {
			if err := tx.Put("b", []byte(k), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	var got []string
	view(t, s, func(tx storage.Tx) error {
		return tx.Scan("b", nil, func(k, v []byte) error {
			got = append(got, string(k))
			return nil
		})
	})
	if !equalStrings(got, want) {
		t.Fatalf("Scan order\n  %q\nwant\n  %q", got, want)
	}
}

// prefixKeys is a bucket for the prefix tests, chosen around the 0xff
// edge cases of computing a prefix's upper bound.
var prefixKeys = []string{
	"\x00",
	"\x01",
	"\x01\xff",
	"\x01\xff\x00",
	"\x01\xff\xff",
	"\x02",
	"a",
	"ab",
	"abc",
	"abd",
	"ac",
	"b",
	"\xfe",
	"\xfe\xff",
	"\xfe\xff\xff",
	"\xff",
	"\xff\x00",
	"\xff\xfe",
	"\xff\xff",
	"\xff\xff\x01",
}

var prefixCases = []struct {
	prefix string
	want   []string // keys with the prefix, in order, by hand
}{
	{"", prefixKeys},
	{"a", []string{"a", "ab", "abc", "abd", "ac"}},
	{"ab", []string{"ab", "abc", "abd"}},
	{"abc", []string{"abc"}},
	{"abcd", nil},
	{"aa", nil},
	{"c", nil},
	{"\x00", []string{"\x00"}},
	{"\x01", []string{"\x01", "\x01\xff", "\x01\xff\x00", "\x01\xff\xff"}},
	{"\x01\xff", []string{"\x01\xff", "\x01\xff\x00", "\x01\xff\xff"}},
	{"\x01\xff\xff", []string{"\x01\xff\xff"}},
	{"\xfe", []string{"\xfe", "\xfe\xff", "\xfe\xff\xff"}},
	{"\xfe\xff", []string{"\xfe\xff", "\xfe\xff\xff"}},
	{"\xff", []string{"\xff", "\xff\x00", "\xff\xfe", "\xff\xff", "\xff\xff\x01"}},
	{"\xff\xff", []string{"\xff\xff", "\xff\xff\x01"}},
	{"\xff\xff\xff", nil},
	{"\xff\xff\x01", []string{"\xff\xff\x01"}},
}

func putKeys(t *testing.T, s storage.Store, bucket string, keys []string) {
	t.Helper()
	update(t, s, func(tx storage.Tx) error {
		for _, k := range keys {
			if err := tx.Put(bucket, []byte(k), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
}

func testScanPrefix(t *testing.T, s storage.Store) {
	putKeys(t, s, "b", prefixKeys)
	// Neighbouring buckets must not leak into the scan.
	putKeys(t, s, "a", prefixKeys)
	putKeys(t, s, "c", prefixKeys)
	view(t, s, func(tx storage.Tx) error {
		for _, c := range prefixCases {
			var got []string
			err := tx.Scan("b", []byte(c.prefix), func(k, v []byte) error {
				got = append(got, string(k))
				return nil
			})
			if err != nil {
				return err
			}
			if !equalStrings(got, c.want) {
				t.Errorf("Scan(prefix %x) =\n  %q\nwant\n  %q", c.prefix, got, c.want)
			}
		}
		// A missing bucket scans as empty.
		if got := scanTx(t, tx, "missing", nil); len(got) != 0 {
			t.Errorf("Scan of a missing bucket = %q", got)
		}
		return nil
	})
}

func testScanStopsOnError(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "1", "a", "2", "b", "3", "c")
	view(t, s, func(tx storage.Tx) error {
		calls := 0
		err := tx.Scan("b", nil, func(k, v []byte) error {
			calls++
			if string(k) == "2" {
				return errSentinel
			}
			return nil
		})
		if err != errSentinel {
			t.Errorf("Scan returned %v, want the callback's error unchanged", err)
		}
		if calls != 2 {
			t.Errorf("callback ran %d times, want 2", calls)
		}
		return nil
	})
}

func testScanReadsOwnWrites(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "p1", "old", "p2", "old", "p3", "old", "q", "old")
	update(t, s, func(tx storage.Tx) error {
		if err := tx.Put("b", []byte("p2"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Put("b", []byte("p0"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete("b", []byte("p3")); err != nil {
			return err
		}
		got := scanTx(t, tx, "b", []byte("p"))
		want := []string{"p0=new", "p1=old", "p2=new"}
		if !equalStrings(got, want) {
			t.Errorf("Scan in the writing tx = %q, want %q", got, want)
		}
		if err := tx.DeletePrefix("b", []byte("p")); err != nil {
			return err
		}
		if got := scanTx(t, tx, "b", nil); !equalStrings(got, []string{"q=old"}) {
			t.Errorf("Scan after DeletePrefix in the writing tx = %q", got)
		}
		return nil
	})
	wantDump(t, s, "b", "q=old")
}

func testScanWhileWriting(t *testing.T, s storage.Store) {
	var keys []string
	for i := range 300 { // more than one batch for a batching backend
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	putKeys(t, s, "from", keys)
	update(t, s, func(tx storage.Tx) error {
		n := 0
		err := tx.Scan("from", nil, func(k, v []byte) error {
			n++
			if _, err := tx.Get("from", k); err != nil {
				return err
			}
			if err := tx.Put("to", k, v); err != nil {
				return err
			}
			return tx.Delete("from", k)
		})
		if err != nil {
			return err
		}
		if n != len(keys) {
			t.Errorf("moving scan visited %d keys, want %d", n, len(keys))
		}
		return nil
	})
	wantDump(t, s, "from")
	if got := dump(t, s, "to"); len(got) != len(keys) || got[0] != "k0000=v" || got[len(got)-1] != "k0299=v" {
		t.Fatalf("after the move, bucket to holds %d keys (%.3q ...)", len(got), got)
	}
}

func testManyKeys(t *testing.T, s storage.Store) {
	const n = 2000
	r := rand.New(rand.NewPCG(3, 4))
	perm := r.Perm(n)
	key := func(i int) []byte {
		k := binary.BigEndian.AppendUint16([]byte{byte(i % 3)}, uint16(i))
		return k
	}
	update(t, s, func(tx storage.Tx) error {
		for _, i := range perm {
			if err := tx.Put("b", key(i), binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
				return err
			}
		}
		return nil
	})
	check := func(prefix []byte, wantCount int) {
		t.Helper()
		view(t, s, func(tx storage.Tx) error {
			var prev []byte
			count := 0
			err := tx.Scan("b", prefix, func(k, v []byte) error {
				count++
				if prev != nil && bytes.Compare(prev, k) >= 0 {
					t.Fatalf("Scan out of order: %x after %x", k, prev)
				}
				if !bytes.HasPrefix(k, prefix) {
					t.Fatalf("Scan(%x) returned key %x", prefix, k)
				}
				i := int(binary.BigEndian.Uint16(k[1:]))
				if !bytes.Equal(v, binary.BigEndian.AppendUint32(nil, uint32(i))) {
					t.Fatalf("key %x has value %x", k, v)
				}
				prev = k
				return nil
			})
			if err != nil {
				return err
			}
			if count != wantCount {
				t.Fatalf("Scan(%x) saw %d keys, want %d", prefix, count, wantCount)
			}
			return nil
		})
	}
	// i%3 == 0: 667 keys, 1: 667, 2: 666.
	check(nil, n)
	check([]byte{0}, 667)
	check([]byte{2}, 666)
	update(t, s, func(tx storage.Tx) error { return tx.DeletePrefix("b", []byte{1}) })
	check(nil, n-667)
	check([]byte{1}, 0)
	check([]byte{2}, 666)
}

func testDeletePrefix(t *testing.T, s storage.Store) {
	for _, c := range prefixCases {
		t.Run(fmt.Sprintf("prefix=%x", c.prefix), func(t *testing.T) {
			putKeys(t, s, "b", prefixKeys)
			putKeys(t, s, "other", prefixKeys)
			update(t, s, func(tx storage.Tx) error { return tx.DeletePrefix("b", []byte(c.prefix)) })
			removed := map[string]bool{}
			for _, k := range c.want {
				removed[k] = true
			}
			var want []string
			for _, k := range prefixKeys {
				if !removed[k] {
					want = append(want, k+"=v")
				}
			}
			wantDump(t, s, "b", want...)
			if got := dump(t, s, "other"); len(got) != len(prefixKeys) {
				t.Fatalf("DeletePrefix touched another bucket: %d keys left of %d", len(got), len(prefixKeys))
			}
		})
	}
}

func testRollbackOnError(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "keep", "1", "change", "2", "drop", "3", "p/1", "4", "p/2", "5")
	before := dump(t, s, "b")
	err := s.Update(ctxT(t), func(tx storage.Tx) error {
		for _, op := range []error{
			tx.Put("b", []byte("new"), []byte("x")),
			tx.Put("b", []byte("change"), []byte("x")),
			tx.Delete("b", []byte("drop")),
			tx.DeletePrefix("b", []byte("p/")),
			tx.Put("new-bucket", []byte("k"), []byte("x")),
		} {
			if op != nil {
				return op
			}
		}
		return errSentinel
	})
	if err != errSentinel {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	wantDump(t, s, "b", before...)
	wantDump(t, s, "new-bucket")
	// The store still accepts writes.
	putAll(t, s, "b", "after", "ok")
	if got := get(t, s, "b", "after"); got != "ok" {
		t.Fatalf("write after rollback: %q", got)
	}
}

type panicValue struct{ n int }

func testRollbackOnPanic(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "keep", "1", "change", "2", "drop", "3")
	before := dump(t, s, "b")
	recovered := func() (r any) {
		defer func() { r = recover() }()
		_ = s.Update(ctxT(t), func(tx storage.Tx) error {
			if err := tx.Put("b", []byte("new"), []byte("x")); err != nil {
				return err
			}
			if err := tx.Put("b", []byte("change"), []byte("x")); err != nil {
				return err
			}
			if err := tx.Delete("b", []byte("drop")); err != nil {
				return err
			}
			panic(&panicValue{42})
		})
		return nil
	}()
	if p, ok := recovered.(*panicValue); !ok || p.n != 42 {
		t.Fatalf("recovered %#v, want the original panic value", recovered)
	}
	wantDump(t, s, "b", before...)
	// The writer lock was released: another Update runs.
	putAll(t, s, "b", "after", "ok")
	if got := get(t, s, "b", "after"); got != "ok" {
		t.Fatalf("write after panic: %q", got)
	}
	// A panic in a View also propagates and leaves the store usable.
	recovered = func() (r any) {
		defer func() { r = recover() }()
		_ = s.View(ctxT(t), func(tx storage.Tx) error { panic("view panic") })
		return nil
	}()
	if recovered != "view panic" {
		t.Fatalf("View panic: recovered %#v", recovered)
	}
	if got := get(t, s, "b", "keep"); got != "1" {
		t.Fatalf("read after View panic: %q", got)
	}
}

func testReadOnlyView(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k", "v")
	view(t, s, func(tx storage.Tx) error {
		wantErr(t, tx.Put("b", []byte("k"), []byte("x")), storage.ErrReadOnly, "put")
		wantErr(t, tx.Put("b", []byte("new"), []byte("x")), storage.ErrReadOnly, "put")
		wantErr(t, tx.Delete("b", []byte("k")), storage.ErrReadOnly, "delete")
		wantErr(t, tx.DeletePrefix("b", nil), storage.ErrReadOnly, "delete prefix")
		return nil
	})
	wantDump(t, s, "b", "k=v")
}

func testTxDone(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k", "v")
	var leaked []storage.Tx
	view(t, s, func(tx storage.Tx) error { leaked = append(leaked, tx); return nil })
	update(t, s, func(tx storage.Tx) error { leaked = append(leaked, tx); return nil })
	_ = s.Update(ctxT(t), func(tx storage.Tx) error { leaked = append(leaked, tx); return errSentinel })
	for i, tx := range leaked {
		_, err := tx.Get("b", []byte("k"))
		wantErr(t, err, storage.ErrTxDone, "get")
		wantErr(t, tx.Scan("b", nil, func(k, v []byte) error {
			t.Errorf("tx %d: Scan called fn after the transaction ended", i)
			return nil
		}), storage.ErrTxDone, "scan")
		if i > 0 { // writes on a finished read-write tx
			wantErr(t, tx.Put("b", []byte("k"), []byte("x")), storage.ErrTxDone, "put")
			wantErr(t, tx.Delete("b", []byte("k")), storage.ErrTxDone, "delete")
			wantErr(t, tx.DeletePrefix("b", nil), storage.ErrTxDone, "delete prefix")
		}
	}
	wantDump(t, s, "b", "k=v")
}

func testIsolation(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k", "v1")

	// A long View that starts before the Update and lasts past its commit.
	viewReady := make(chan struct{})
	committed := make(chan struct{})
	viewDone := make(chan error, 1)
	go func() {
		viewDone <- s.View(ctxT(t), func(tx storage.Tx) error {
			if v, err := tx.Get("b", []byte("k")); err != nil || string(v) != "v1" {
				return fmt.Errorf("long view, before commit: %q, %v", v, err)
			}
			close(viewReady)
			<-committed
			if v, err := tx.Get("b", []byte("k")); err != nil || string(v) != "v1" {
				return fmt.Errorf("long view, after commit: %q, %v (want the old snapshot)", v, err)
			}
			if _, err := tx.Get("b", []byte("k2")); !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("long view, after commit, sees k2: %v", err)
			}
			return nil
		})
	}()
	waitFor(t, viewReady, "the long View")

	written := make(chan struct{})
	proceed := make(chan struct{})
	updateDone := make(chan error, 1)
	go func() {
		updateDone <- s.Update(ctxT(t), func(tx storage.Tx) error {
			if err := tx.Put("b", []byte("k"), []byte("v2")); err != nil {
				return err
			}
			if err := tx.Put("b", []byte("k2"), []byte("x")); err != nil {
				return err
			}
			close(written)
			<-proceed
			return nil
		})
	}()
	waitFor(t, written, "the Update's writes")
	// A View during the Update sees none of its writes.
	view(t, s, func(tx storage.Tx) error {
		if got := getString(t, tx, "b", "k"); got != "v1" {
			t.Errorf("View during Update: k = %q, want v1", got)
		}
		if got := getString(t, tx, "b", "k2"); got != "<absent>" {
			t.Errorf("View during Update: k2 = %q, want absent", got)
		}
		if got := scanTx(t, tx, "b", nil); !equalStrings(got, []string{"k=v1"}) {
			t.Errorf("View during Update: Scan = %q", got)
		}
		return nil
	})
	close(proceed)
	if err := waitErr(t, updateDone, "the Update"); err != nil {
		t.Fatalf("Update: %v", err)
	}
	close(committed)
	if err := waitErr(t, viewDone, "the long View"); err != nil {
		t.Fatal(err)
	}
	wantDump(t, s, "b", "k=v2", "k2=x")
}

func testViewInsideUpdate(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k", "v1")
	update(t, s, func(tx storage.Tx) error {
		if err := tx.Put("b", []byte("k"), []byte("v2")); err != nil {
			return err
		}
		return s.View(ctxT(t), func(inner storage.Tx) error {
			if got := getString(t, inner, "b", "k"); got != "v1" {
				t.Errorf("View inside Update sees %q, want the committed v1", got)
			}
			return nil
		})
	})
	if got := get(t, s, "b", "k"); got != "v2" {
		t.Fatalf("after commit: %q", got)
	}
}

func testConcurrent(t *testing.T, s storage.Store) {
	const writers, perWriter, readers = 4, 20, 4
	// Every Update reads the counter and writes counter+1 to "n" and to
	// "m"; serialized, atomic Updates end at writers*perWriter and every
	// View sees n == m.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWriter {
				err := s.Update(context.Background(), func(tx storage.Tx) error {
					n := uint64(0)
					v, err := tx.Get("b", []byte("n"))
					switch {
					case err == nil:
						n = binary.BigEndian.Uint64(v)
					case !errors.Is(err, storage.ErrNotFound):
						return err
					}
					next := binary.BigEndian.AppendUint64(nil, n+1)
					if err := tx.Put("b", []byte("n"), next); err != nil {
						return err
					}
					return tx.Put("b", []byte("m"), next)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var rwg sync.WaitGroup
	for range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			last := uint64(0)
			// Bounded, so that spinning readers cannot starve the writers
			// on a loaded machine.
			for range 4 * perWriter {
				select {
				case <-stop:
					return
				default:
				}
				err := s.View(context.Background(), func(tx storage.Tx) error {
					n, err1 := tx.Get("b", []byte("n"))
					m, err2 := tx.Get("b", []byte("m"))
					if errors.Is(err1, storage.ErrNotFound) && errors.Is(err2, storage.ErrNotFound) {
						return nil
					}
					if err1 != nil || err2 != nil {
						return errors.Join(err1, err2)
					}
					if !bytes.Equal(n, m) {
						return fmt.Errorf("torn read: n=%x m=%x", n, m)
					}
					cur := binary.BigEndian.Uint64(n)
					if cur < last {
						return fmt.Errorf("counter went back from %d to %d", last, cur)
					}
					last = cur
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(stop); rwg.Wait(); close(done) }()
	waitFor(t, done, "the concurrent transactions")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	view(t, s, func(tx storage.Tx) error {
		v, err := tx.Get("b", []byte("n"))
		if err != nil {
			return err
		}
		if got := binary.BigEndian.Uint64(v); got != writers*perWriter {
			t.Errorf("counter = %d, want %d: Updates were not serialized", got, writers*perWriter)
		}
		return nil
	})
}

func testContextCanceledBefore(t *testing.T, s storage.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.View(ctx, func(tx storage.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("View with a canceled context: err %v, fn called %v", err, called)
	}
	err = s.Update(ctx, func(tx storage.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update with a canceled context: err %v, fn called %v", err, called)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	err = s.Update(dctx, func(tx storage.Tx) error { called = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Errorf("Update with an expired deadline: err %v, fn called %v", err, called)
	}
}

func testContextCanceledDuring(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k1", "v1", "k2", "v2", "k3", "v3")

	// fn returns nil, but the context ended: nothing is committed.
	ctx, cancel := context.WithCancel(context.Background())
	err := s.Update(ctx, func(tx storage.Tx) error {
		if err := tx.Put("b", []byte("k1"), []byte("changed")); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update whose context was canceled inside fn returned %v", err)
	}
	wantDump(t, s, "b", "k1=v1", "k2=v2", "k3=v3")

	// Calls after the cancellation fail with the context's error.
	ctx, cancel = context.WithCancel(context.Background())
	err = s.Update(ctx, func(tx storage.Tx) error {
		cancel()
		err := tx.Put("b", []byte("k1"), []byte("changed"))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put after cancel: %v", err)
		}
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update: %v", err)
	}
	wantDump(t, s, "b", "k1=v1", "k2=v2", "k3=v3")

	// A Scan stops at the cancellation.
	ctx, cancel = context.WithCancel(context.Background())
	err = s.View(ctx, func(tx storage.Tx) error {
		calls := 0
		err := tx.Scan("b", nil, func(k, v []byte) error {
			calls++
			cancel()
			return nil
		})
		if calls != 1 {
			t.Errorf("Scan called fn %d times after cancel, want 1", calls)
		}
		if _, err := tx.Get("b", []byte("k1")); !errors.Is(err, context.Canceled) {
			t.Errorf("Get after cancel: %v", err)
		}
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("View with canceled Scan: %v", err)
	}
}

func testContextWaitingForWriter(t *testing.T, s storage.Store) {
	holding := make(chan struct{})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctxT(t), func(tx storage.Tx) error {
			if err := tx.Put("b", []byte("first"), []byte("1")); err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	waitFor(t, holding, "the first Update")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	called := false
	start := time.Now()
	err := s.Update(ctx, func(tx storage.Tx) error { called = true; return nil })
	elapsed := time.Since(start)
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) || called {
		t.Errorf("Update waiting for the writer: err %v, fn called %v", err, called)
	}
	if elapsed > 5*time.Second {
		t.Errorf("Update waited %v, well past its 100ms deadline", elapsed)
	}
	if err := waitErr(t, first, "the first Update"); err != nil {
		t.Fatal(err)
	}
	wantDump(t, s, "b", "first=1")
}

func testClose(t *testing.T, s storage.Store) {
	putAll(t, s, "b", "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	called := false
	err := s.View(context.Background(), func(tx storage.Tx) error { called = true; return nil })
	if !errors.Is(err, storage.ErrClosed) || called {
		t.Errorf("View after Close: err %v, fn called %v", err, called)
	}
	err = s.Update(context.Background(), func(tx storage.Tx) error { called = true; return nil })
	if !errors.Is(err, storage.ErrClosed) || called {
		t.Errorf("Update after Close: err %v, fn called %v", err, called)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func testStats(t *testing.T, s storage.Store) {
	sr, ok := s.(storage.StatsReporter)
	if !ok {
		t.Skip("store does not implement storage.StatsReporter")
	}
	putAll(t, s, "b", "old", "x")
	before := sr.Stats()
	update(t, s, func(tx storage.Tx) error {
		for _, err := range []error{
			tx.Put("b", []byte("abc"), []byte("12345")),
			tx.Put("b", []byte("d"), nil),
			tx.Delete("b", []byte("old")),
			tx.DeletePrefix("b", []byte("zzz")),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	want := storage.Stats{Txs: 1, Puts: 2, Deletes: 2, BytesWritten: 3 + 5 + 1}
	if got := sr.Stats().Sub(before); got != want {
		t.Errorf("one Update counted %+v, want %+v", got, want)
	}
	// Rolled-back Updates and Views count nothing.
	before = sr.Stats()
	_ = s.Update(ctxT(t), func(tx storage.Tx) error {
		if err := tx.Put("b", []byte("k"), []byte("v")); err != nil {
			return err
		}
		return errSentinel
	})
	view(t, s, func(tx storage.Tx) error { _, _ = tx.Get("b", []byte("abc")); return nil })
	if got := sr.Stats().Sub(before); got != (storage.Stats{}) {
		t.Errorf("a rolled-back Update and a View counted %+v", got)
	}
}
