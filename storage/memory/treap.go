package memory

import "bytes"

// node is a node of a persistent treap: a binary search tree on key that is
// a max-heap on prio. Nodes are never modified once they are reachable from
// a published root; every update copies the path from the root to the
// changed node (path copying), so old roots stay valid snapshots.
//
// Priorities come from a keyed hash of the key (see Store.prio), which keeps
// the expected depth O(log n) whatever order keys are inserted in.
type node struct {
	key, value  []byte
	prio        uint64
	left, right *node
}

// get returns the node holding key, or nil.
func get(n *node, key []byte) *node {
	for n != nil {
		switch c := bytes.Compare(key, n.key); {
		case c < 0:
			n = n.left
		case c > 0:
			n = n.right
		default:
			return n
		}
	}
	return n
}

// put returns a new root in which key maps to value. key and value must
// not be modified afterwards.
func put(n *node, key, value []byte, prio uint64) *node {
	if n == nil {
		return &node{key: key, value: value, prio: prio}
	}
	m := *n // the copy is new, so it may be changed freely below
	switch c := bytes.Compare(key, n.key); {
	case c == 0:
		m.value = value
	case c < 0:
		m.left = put(n.left, key, value, prio)
		if m.left.prio > m.prio {
			// Rotate right. m.left was created by put and is not shared.
			l := m.left
			m.left = l.right
			l.right = &m
			return l
		}
	default:
		m.right = put(n.right, key, value, prio)
		if m.right.prio > m.prio {
			r := m.right
			m.right = r.left
			r.left = &m
			return r
		}
	}
	return &m
}

// del returns a new root without key and whether key was present. If it was
// absent, the root is returned unchanged and nothing is copied.
func del(n *node, key []byte) (*node, bool) {
	if n == nil {
		return nil, false
	}
	switch c := bytes.Compare(key, n.key); {
	case c < 0:
		l, ok := del(n.left, key)
		if !ok {
			return n, false
		}
		m := *n
		m.left = l
		return &m, true
	case c > 0:
		r, ok := del(n.right, key)
		if !ok {
			return n, false
		}
		m := *n
		m.right = r
		return &m, true
	default:
		return merge(n.left, n.right), true
	}
}

// merge joins two treaps where every key of a is less than every key of b.
func merge(a, b *node) *node {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		m := *a
		m.right = merge(a.right, b)
		return &m
	default:
		m := *b
		m.left = merge(a, b.left)
		return &m
	}
}

// split divides n into the keys less than key and the keys greater than or
// equal to key.
func split(n *node, key []byte) (lt, ge *node) {
	if n == nil {
		return nil, nil
	}
	m := *n
	if bytes.Compare(n.key, key) < 0 {
		m.right, ge = split(n.right, key)
		return &m, ge
	}
	lt, m.left = split(n.left, key)
	return lt, &m
}

// deleteRange returns a new root without the keys k with lo <= k < hi; a
// nil hi means no upper bound. It costs O(log n) whatever the number of
// removed keys.
func deleteRange(n *node, lo, hi []byte) *node {
	below, rest := split(n, lo)
	if hi == nil {
		return below
	}
	_, above := split(rest, hi)
	return merge(below, above)
}

// iter walks a treap in ascending key order from a lower bound, holding
// the path to the next node on an explicit stack.
type iter struct {
	stack []*node
}

// seek positions the iterator on the first key >= lo.
func (it *iter) seek(n *node, lo []byte) {
	it.stack = it.stack[:0]
	for n != nil {
		if bytes.Compare(n.key, lo) >= 0 {
			it.stack = append(it.stack, n)
			n = n.left
		} else {
			n = n.right
		}
	}
}

// next returns the next node in order, or nil at the end.
func (it *iter) next() *node {
	if len(it.stack) == 0 {
		return nil
	}
	n := it.stack[len(it.stack)-1]
	it.stack = it.stack[:len(it.stack)-1]
	for c := n.right; c != nil; c = c.left {
		it.stack = append(it.stack, c)
	}
	return n
}
