package tree

import (
	"bytes"
	"hash/maphash"
)

// keyMap is a tree's index of public keys (HPKE encryption keys, or leaf
// signature keys) to where they are, for the uniqueness checks of RFC 9420,
// Sections 7.3 and 12.4.3.1 in O(1). It is an open-addressing table with
// linear probing whose entries are a 32-bit keyed hash of the key and the
// position, 8 bytes each, instead of a copy of the key (a third of a loaded
// group's memory with string keys): every hit on the hash is checked
// against the key the tree holds at the position. The hash is seeded per
// process, so nobody can choose keys that collide; keys that do share a
// hash take neighbouring slots. An entry's home slot follows from its
// hash, so entries are deleted (by backward shift) and the table grown
// without reading the tree, which may already hold other keys.
type keyMap[V ~uint32] struct {
	slots []uint64       // 0: empty; else hash<<32 | position+1
	n     int            // entries in use
	keyAt func(V) []byte // the key the tree holds at a position
}

var keyMapSeed = maphash.MakeSeed()

// newKeyMap returns a map with room for size keys.
func newKeyMap[V ~uint32](size int, keyAt func(V) []byte) keyMap[V] {
	return keyMap[V]{slots: make([]uint64, roomFor(size)), keyAt: keyAt}
}

// roomFor returns the number of slots for n keys: two thirds full, where
// a lookup of a missing key probes a few slots on average.
func roomFor(n int) int { return n + n/2 + 8 }

func hashKey(key []byte) uint32 { return uint32(maphash.Bytes(keyMapSeed, key) >> 32) }

// home returns the slot where probing for hash h starts: h scaled to the
// table size.
func (m *keyMap[V]) home(h uint32) int { return int(uint64(h) * uint64(len(m.slots)) >> 32) }

// next returns the slot after i, wrapping around.
func (m *keyMap[V]) next(i int) int {
	if i++; i == len(m.slots) {
		return 0
	}
	return i
}

func entry(h uint32, v uint32) uint64 { return uint64(h)<<32 | uint64(v+1) }

// len returns the number of keys indexed.
func (m *keyMap[V]) len() int { return m.n }

// find returns the slot holding key, or the empty slot that ends its
// probe sequence.
func (m *keyMap[V]) find(key []byte, h uint32) (int, bool) {
	for i := m.home(h); ; i = m.next(i) {
		e := m.slots[i]
		if e == 0 {
			return i, false
		}
		if uint32(e>>32) == h && bytes.Equal(m.keyAt(V(uint32(e)-1)), key) {
			return i, true
		}
	}
}

// get returns the position indexed for key.
func (m *keyMap[V]) get(key []byte) (V, bool) {
	i, ok := m.find(key, hashKey(key))
	if !ok {
		return 0, false
	}
	return V(uint32(m.slots[i]) - 1), true
}

// add indexes key at v unless it is indexed already, in which case it
// returns the position indexed. The tree must already hold key at v.
func (m *keyMap[V]) add(key []byte, v V) (V, bool) {
	h := hashKey(key)
	i, ok := m.find(key, h)
	if ok {
		return V(uint32(m.slots[i]) - 1), true
	}
	m.insertAt(i, h, v)
	return v, false
}

// set indexes key at v, replacing any position indexed for it. The tree
// must already hold key at v.
func (m *keyMap[V]) set(key []byte, v V) {
	h := hashKey(key)
	i, ok := m.find(key, h)
	if ok {
		m.slots[i] = entry(h, uint32(v))
		return
	}
	m.insertAt(i, h, v)
}

// insertAt fills the empty slot i, growing the table if it gets more than
// four fifths full.
func (m *keyMap[V]) insertAt(i int, h uint32, v V) {
	m.slots[i] = entry(h, uint32(v))
	m.n++
	if 5*m.n > 4*len(m.slots) {
		m.grow()
	}
}

// grow moves the entries to a table sized by roomFor.
func (m *keyMap[V]) grow() {
	old := m.slots
	m.slots = make([]uint64, roomFor(m.n))
	for _, e := range old {
		if e == 0 {
			continue
		}
		i := m.home(uint32(e >> 32))
		for m.slots[i] != 0 {
			i = m.next(i)
		}
		m.slots[i] = e
	}
}

// del removes key if it is indexed at at. It does not read the tree, which
// may already hold another key at at.
func (m *keyMap[V]) del(key []byte, at V) { m.delEntry(hashKey(key), at) }

// delEntry removes the entry of hash h at position at, if any.
func (m *keyMap[V]) delEntry(h uint32, at V) {
	want := entry(h, uint32(at))
	i := m.home(h)
	for m.slots[i] != want {
		if m.slots[i] == 0 {
			return
		}
		i = m.next(i)
	}
	m.n--
	// Backward shift: move each following entry of the run into the gap
	// unless that would put it before its home slot.
	size := len(m.slots)
	for j := m.next(i); m.slots[j] != 0; j = m.next(j) {
		e := m.slots[j]
		if (j-m.home(uint32(e>>32))+size)%size >= (j-i+size)%size {
			m.slots[i] = e
			i = j
		}
	}
	m.slots[i] = 0
}
