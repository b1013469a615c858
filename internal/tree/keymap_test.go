package tree

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestKeyMapStale: a position whose key changed in the tree answers
// nothing for the old key, and del by the old key and position removes the
// entry without reading the tree.
func TestKeyMapStale(t *testing.T) {
	held := map[LeafIndex][]byte{1: []byte("key one"), 2: []byte("key two"), 3: []byte("key three")}
	m := newKeyMap(4, func(l LeafIndex) []byte { return held[l] })
	m.set(held[1], 1)
	m.set(held[2], 2)
	if _, ok := m.get(held[3]); ok {
		t.Fatal("found a key never indexed")
	}
	m.del(held[2], 3) // wrong position: nothing happens
	if v, ok := m.get(held[2]); !ok || v != 2 {
		t.Fatal("del at another position removed the key")
	}
	m.del(held[2], 2)
	if _, ok := m.get(held[2]); ok || m.len() != 1 {
		t.Fatal("del did not remove the entry")
	}
	// The tree now holds "key one" at 3; the stale entry answers nothing.
	held[3], held[1] = held[1], []byte("new key")
	if _, ok := m.get(held[3]); ok {
		t.Fatal("get returned a position that holds another key")
	}
	m.del(held[3], 1)
	m.set(held[3], 3)
	if v, ok := m.get(held[3]); !ok || v != 3 || m.len() != 1 {
		t.Fatalf("after moving the key: get = %d, %v, %d entries", v, ok, m.len())
	}
	if v, dup := m.add(held[3], 7); !dup || v != 3 {
		t.Fatalf("add of an indexed key = %d, %v", v, dup)
	}
}

// TestKeyMapCollisions forces keys onto one hash value (which the seeded
// hash makes too rare to meet otherwise), and onto the last slots so that
// their runs wrap around: every key stays reachable through inserts and
// backward-shift deletes.
func TestKeyMapCollisions(t *testing.T) {
	for _, h := range []uint32{0, 1 << 31, ^uint32(0)} {
		t.Run(fmt.Sprintf("hash=%#x", h), func(t *testing.T) {
			held := map[NodeIndex][]byte{}
			m := newKeyMap(0, func(x NodeIndex) []byte { return held[x] })
			in := map[NodeIndex]bool{}
			put := func(x NodeIndex) {
				held[x] = fmt.Appendf(nil, "key %d", x)
				i, ok := m.find(held[x], h)
				if ok {
					t.Fatalf("key %d found before it was added", x)
				}
				m.insertAt(i, h, x)
				in[x] = true
			}
			check := func(step string) {
				t.Helper()
				n := 0
				for _, ok := range in {
					if ok {
						n++
					}
				}
				if m.len() != n {
					t.Fatalf("%s: %d entries, want %d", step, m.len(), n)
				}
				for x := range held {
					i, ok := m.find(held[x], h)
					if ok != in[x] || (ok && NodeIndex(uint32(m.slots[i])-1) != x) {
						t.Fatalf("%s: key %d found %v, want %v", step, x, ok, in[x])
					}
				}
			}
			for x := range NodeIndex(20) {
				put(x)
			}
			check("inserted")
			for _, x := range []NodeIndex{0, 7, 19, 3} {
				m.delEntry(h, x)
				in[x] = false
				check(fmt.Sprintf("deleted %d", x))
			}
			m.delEntry(h, 7) // gone already
			put(7)
			check("reinserted")
		})
	}
}

// TestKeyMapRandom compares a keyMap with a Go map over random adds,
// moves and deletes, growing from empty.
func TestKeyMapRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	held := map[NodeIndex][]byte{} // what the "tree" holds at each position
	m := newKeyMap(0, func(x NodeIndex) []byte { return held[x] })
	want := map[string]NodeIndex{}
	for step := range 20000 {
		x := NodeIndex(rng.IntN(3000))
		switch old, ok := held[x]; {
		case ok && rng.IntN(2) == 0: // the node goes blank
			m.del(old, x)
			delete(want, string(old))
			delete(held, x)
		case ok: // the node gets a new key
			m.del(old, x)
			delete(want, string(old))
			held[x] = fmt.Appendf(nil, "%d/%d", x, step)
			m.set(held[x], x)
			want[string(held[x])] = x
		default:
			held[x] = fmt.Appendf(nil, "%d/%d", x, step)
			if _, dup := m.add(held[x], x); dup {
				t.Fatalf("step %d: new key reported as a duplicate", step)
			}
			want[string(held[x])] = x
		}
		if m.len() != len(want) {
			t.Fatalf("step %d: %d entries, want %d", step, m.len(), len(want))
		}
		if step%1000 == 0 {
			for k, x := range want {
				if v, ok := m.get([]byte(k)); !ok || v != x {
					t.Fatalf("step %d: get(%q) = %d, %v; want %d", step, k, v, ok, x)
				}
			}
			if _, ok := m.get([]byte("absent")); ok {
				t.Fatalf("step %d: found an absent key", step)
			}
		}
	}
	if 5*m.len() > 4*len(m.slots) {
		t.Fatalf("table over four fifths full: %d of %d", m.len(), len(m.slots))
	}
}
