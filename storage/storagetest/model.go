package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mlskit/mls/storage"
)

// testModel runs random transactions against the store and against a plain
// map, and compares every read. Keys are short strings over the bytes most
// likely to expose ordering and prefix-bound mistakes (0x00, 0x01, 0xfe,
// 0xff); a third of the transactions roll back.
func testModel(t *testing.T, s storage.Store) {
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte{0x00, 0x01, 'a', 0xfe, 0xff}
	randKey := func(min int) []byte {
		k := make([]byte, min+r.IntN(4-min))
		for i := range k {
			k[i] = alphabet[r.IntN(len(alphabet))]
		}
		return k
	}
	buckets := []string{"x", "y"}
	model := map[string]map[string]string{"x": {}, "y": {}}

	modelScan := func(m map[string]string, prefix []byte) []string {
		var keys []string
		for k := range m {
			if bytes.HasPrefix([]byte(k), prefix) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys) // Go compares strings bytewise, like bytes.Compare
		out := make([]string, len(keys))
		for i, k := range keys {
			out[i] = k + "=" + m[k]
		}
		return out
	}

	for txn := range 60 {
		// The transaction works on a copy of the model, kept only on commit.
		work := map[string]map[string]string{}
		for b, m := range model {
			work[b] = maps.Clone(m)
		}
		rollback := r.IntN(3) == 0
		err := s.Update(ctxT(t), func(tx storage.Tx) error {
			for op := range 25 {
				b := buckets[r.IntN(len(buckets))]
				where := fmt.Sprintf("tx %d op %d", txn, op)
				switch r.IntN(6) {
				case 0, 1:
					k := randKey(1)
					v := fmt.Sprintf("%d.%d", txn, op)
					if err := tx.Put(b, k, []byte(v)); err != nil {
						return err
					}
					work[b][string(k)] = v
				case 2:
					k := randKey(1)
					if err := tx.Delete(b, k); err != nil {
						return err
					}
					delete(work[b], string(k))
				case 3:
					if r.IntN(4) != 0 {
						continue // keep DeletePrefix rarer
					}
					p := randKey(0)
					if err := tx.DeletePrefix(b, p); err != nil {
						return err
					}
					for k := range work[b] {
						if bytes.HasPrefix([]byte(k), p) {
							delete(work[b], k)
						}
					}
				case 4:
					k := randKey(1)
					v, err := tx.Get(b, k)
					want, ok := work[b][string(k)]
					switch {
					case !ok && !errors.Is(err, storage.ErrNotFound):
						t.Fatalf("%s: Get(%x) = %q, %v; want ErrNotFound", where, k, v, err)
					case ok && (err != nil || string(v) != want):
						t.Fatalf("%s: Get(%x) = %q, %v; want %q", where, k, v, err, want)
					}
				case 5:
					p := randKey(0)
					if got, want := scanTx(t, tx, b, p), modelScan(work[b], p); !equalStrings(got, want) {
						t.Fatalf("%s: Scan(%x) =\n  %q\nwant\n  %q", where, p, got, want)
					}
				}
			}
			if rollback {
				return errSentinel
			}
			return nil
		})
		switch {
		case rollback && err != errSentinel:
			t.Fatalf("tx %d: rolled-back Update returned %v", txn, err)
		case !rollback && err != nil:
			t.Fatalf("tx %d: %v", txn, err)
		case !rollback:
			model = work
		}
		for _, b := range buckets {
			if got, want := dump(t, s, b), modelScan(model[b], nil); !equalStrings(got, want) {
				t.Fatalf("after tx %d (rollback %v), bucket %q =\n  %q\nwant\n  %q", txn, rollback, b, got, want)
			}
		}
	}
}
