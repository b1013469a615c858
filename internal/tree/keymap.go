package tree

import (
	"bytes"
	"hash/maphash"
)

// keyMap is a tree's index of public keys (HPKE encryption keys, or leaf
// signature keys) to where they are, for the uniqueness checks of RFC 9420,
// Sections 7.3 and 12.4.3.1 in O(1). It keys its map by a 64-bit keyed hash
// of the public key instead of the key itself, so that an entry costs a
// few machine words instead of a copy of the key (a third of a loaded
// group's memory with string keys). Every hit is checked against the key
// the tree holds at that position; a key whose hash is taken by another
// key goes to the overflow map, keyed by the key itself. The hash is
// seeded per process, so nobody can choose keys that collide.
type keyMap[V ~uint32] struct {
	byHash   map[uint64]V
	overflow map[string]V
	keyAt    func(V) []byte // the key the tree holds at a position
}

var keyMapSeed = maphash.MakeSeed()

func newKeyMap[V ~uint32](size int, keyAt func(V) []byte) keyMap[V] {
	return keyMap[V]{byHash: make(map[uint64]V, size), keyAt: keyAt}
}

func hashKey(key []byte) uint64 { return maphash.Bytes(keyMapSeed, key) }

// len returns the number of keys indexed.
func (m *keyMap[V]) len() int { return len(m.byHash) + len(m.overflow) }

// get returns the position indexed for key.
func (m *keyMap[V]) get(key []byte) (V, bool) {
	if v, ok := m.byHash[hashKey(key)]; ok && bytes.Equal(m.keyAt(v), key) {
		return v, true
	}
	v, ok := m.overflow[string(key)]
	return v, ok
}

// set indexes key at v, replacing any position indexed for it. The tree
// must already hold key at v.
func (m *keyMap[V]) set(key []byte, v V) {
	h := hashKey(key)
	if e, ok := m.byHash[h]; ok && !bytes.Equal(m.keyAt(e), key) {
		if m.overflow == nil {
			m.overflow = make(map[string]V)
		}
		m.overflow[string(key)] = v
		return
	}
	m.byHash[h] = v
	delete(m.overflow, string(key))
}

// del removes key if it is indexed at at. It does not read the tree, which
// may already hold another key at at.
func (m *keyMap[V]) del(key []byte, at V) {
	h := hashKey(key)
	if e, ok := m.byHash[h]; ok && e == at {
		delete(m.byHash, h)
		return
	}
	if e, ok := m.overflow[string(key)]; ok && e == at {
		delete(m.overflow, string(key))
	}
}
