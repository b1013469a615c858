package tree

import "testing"

// TestKeyMapCollision drives the overflow path of keyMap, which a seeded
// 64-bit hash makes too rare to reach otherwise: a key whose hash slot
// holds another key goes to the overflow map, lookups check the key held
// at the position, and deletes remove only the entry pointing at the
// given position.
func TestKeyMapCollision(t *testing.T) {
	held := map[LeafIndex][]byte{1: []byte("key one"), 2: []byte("key two"), 3: []byte("key three")}
	m := newKeyMap(4, func(l LeafIndex) []byte { return held[l] })
	m.set(held[1], 1)
	// Make "key two" collide with "key one": its slot holds position 1.
	m.byHash[hashKey(held[2])] = 1
	m.set(held[2], 2)
	if len(m.overflow) != 1 {
		t.Fatalf("colliding key not in the overflow map: %d entries", len(m.overflow))
	}
	for l := LeafIndex(1); l <= 2; l++ {
		if v, ok := m.get(held[l]); !ok || v != l {
			t.Fatalf("get(%q) = %d, %v; want %d", held[l], v, ok, l)
		}
	}
	if _, ok := m.get(held[3]); ok {
		t.Fatal("found a key never indexed")
	}
	m.del(held[2], 3) // wrong position: nothing happens
	if v, ok := m.get(held[2]); !ok || v != 2 {
		t.Fatal("del at another position removed the key")
	}
	m.del(held[2], 2)
	if _, ok := m.get(held[2]); ok || len(m.overflow) != 0 {
		t.Fatal("del did not remove the overflow entry")
	}
	// The tree now holds "key one" at 3; the stale slot answers nothing.
	held[3], held[1] = held[1], []byte("new key")
	if _, ok := m.get(held[3]); ok {
		t.Fatal("get returned a position that holds another key")
	}
	m.del(held[3], 1)
	m.set(held[3], 3)
	if v, ok := m.get(held[3]); !ok || v != 3 || m.len() != 2 {
		t.Fatalf("after moving the key: get = %d, %v, %d entries", v, ok, m.len())
	}
}
