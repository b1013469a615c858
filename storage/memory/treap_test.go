package memory

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkTreap verifies the search-tree order and the heap order on prio, and
// returns the keys in order.
func checkTreap(t *testing.T, n *node) []string {
	t.Helper()
	var keys []string
	var walk func(n *node, lo, hi []byte)
	walk = func(n *node, lo, hi []byte) {
		if n == nil {
			return
		}
		if lo != nil && bytes.Compare(n.key, lo) <= 0 || hi != nil && bytes.Compare(n.key, hi) >= 0 {
			t.Fatalf("key %x outside (%x, %x)", n.key, lo, hi)
		}
		for _, c := range []*node{n.left, n.right} {
			if c != nil && c.prio > n.prio {
				t.Fatalf("heap order broken: child %x prio %d > parent %x prio %d", c.key, c.prio, n.key, n.prio)
			}
		}
		walk(n.left, lo, n.key)
		keys = append(keys, string(n.key))
		walk(n.right, n.key, hi)
	}
	walk(n, nil, nil)
	return keys
}

func depth(n *node) int {
	if n == nil {
		return 0
	}
	return 1 + max(depth(n.left), depth(n.right))
}

// TestTreapInvariants applies random puts, deletes and range deletes and
// checks after each one that the treap is ordered, heap-ordered, holds
// exactly the model's keys, and that every earlier root still holds its
// own keys (persistence).
func TestTreapInvariants(t *testing.T) {
	seed := maphash.MakeSeed()
	r := rand.New(rand.NewPCG(7, 8))
	model := map[string]bool{}
	var root *node
	type version struct {
		root *node
		keys []string
	}
	var versions []version
	sorted := func() []string {
		var ks []string
		for k := range model {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	for i := range 3000 {
		k := []byte{byte(r.IntN(4)), byte(r.IntN(256))}
		switch op := r.IntN(10); {
		case op < 6:
			root = put(root, k, []byte("v"), maphash.Bytes(seed, k))
			model[string(k)] = true
		case op < 9:
			var ok bool
			root, ok = del(root, k)
			if ok != model[string(k)] {
				t.Fatalf("step %d: del(%x) reported present=%v, model says %v", i, k, ok, model[string(k)])
			}
			delete(model, string(k))
		default:
			lo := []byte{k[0]}
			var hi []byte
			if k[0] < 3 {
				hi = []byte{k[0] + 1}
			}
			root = deleteRange(root, lo, hi)
			for mk := range model {
				if mk[0] == k[0] {
					delete(model, mk)
				}
			}
		}
		got := checkTreap(t, root)
		if want := sorted(); !slices.Equal(got, want) {
			t.Fatalf("step %d: treap holds %d keys, model %d", i, len(got), len(want))
		}
		if i%100 == 0 {
			versions = append(versions, version{root, got})
		}
	}
	for i, v := range versions {
		if got := checkTreap(t, v.root); !slices.Equal(got, v.keys) {
			t.Fatalf("version %d changed after later writes", i)
		}
	}
}

// TestTreapDepth checks that sequential inserts, the worst case of a plain
// search tree, still give a logarithmic depth.
func TestTreapDepth(t *testing.T) {
	seed := maphash.MakeSeed()
	var root *node
	const n = 1 << 14
	for i := range n {
		k := binary.BigEndian.AppendUint32(nil, uint32(i))
		root = put(root, k, nil, maphash.Bytes(seed, k))
	}
	// The expected depth of a random treap is about 2.99*log2(n) = 42;
	// 100 allows generous variance but fails for a degenerate tree.
	if d := depth(root); d > 100 {
		t.Fatalf("depth %d after %d sequential inserts", d, n)
	}
}

func TestIterSeek(t *testing.T) {
	seed := maphash.MakeSeed()
	var root *node
	for _, k := range []string{"b", "d", "f"} {
		root = put(root, []byte(k), nil, maphash.Bytes(seed, []byte(k)))
	}
	for _, c := range []struct{ lo, want string }{
		{"", "b d f"}, {"a", "b d f"}, {"b", "b d f"}, {"c", "d f"}, {"f", "f"}, {"g", ""},
	} {
		var it iter
		it.seek(root, []byte(c.lo))
		var got []byte
		for n := it.next(); n != nil; n = it.next() {
			if len(got) > 0 {
				got = append(got, ' ')
			}
			got = append(got, n.key...)
		}
		if string(got) != c.want {
			t.Errorf("seek(%q) = %q, want %q", c.lo, got, c.want)
		}
	}
}
