package tree

import (
	"slices"
	"sync"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// encCache is the encoding of a Tree's nodes in the ratchet_tree form
// (RFC 9420, Section 12.4.3.3), kept so that exporting the tree (the
// ratchet_tree extension of every GroupInfo and Welcome, and
// ExportRatchetTree) copies the bytes of the nodes that did not change
// instead of encoding every node again: O(N) bytes copied, O(log N) nodes
// encoded per commit.
//
// buf holds the optional<Node> encodings of nodes 0..len(off)-2 back to
// back, node x at buf[off[x]:off[x+1]]. stale lists the nodes changed by
// merges since buf was encoded; their bytes in buf are out of date. It is
// built on the first export, so a tree that is never exported pays no
// memory for it.
type encCache struct {
	mu    sync.Mutex
	buf   []byte
	off   []uint32
	stale map[NodeIndex]struct{}
}

// width is the number of nodes whose encodings buf holds.
func (c *encCache) width() NodeIndex { return NodeIndex(len(c.off) - 1) }

// encodeNode appends optional<Node> for n.
func encodeNode(e *wire.Encoder, n packed) {
	if n.blank() {
		e.U8(0)
		return
	}
	e.U8(1)
	encodeNonBlank(e, n)
}

// encodeNonBlank appends the Node n (RFC 9420, Section 12.4.3.3), which is
// not blank.
func encodeNonBlank(e *wire.Encoder, n packed) {
	if n.leaf != nil {
		e.U8(uint8(message.NodeTypeLeaf))
		e.Raw(n.leaf)
		return
	}
	(&message.Node{Parent: n.parent}).Encode(e)
}

// EncodedNodes calls f with every non-blank node of the tree, in
// increasing order, and its encoding as a Node (RFC 9420, Section
// 12.4.3.3), which f must neither keep nor modify. It stops at the first
// error f returns. Unlike Sparse it decodes nothing.
func (t *Tree) EncodedNodes(f func(x NodeIndex, node []byte) error) error {
	xs := make([]NodeIndex, 0, len(t.idx))
	for x, p := range t.idx {
		if !t.nodes[p].blank() {
			xs = append(xs, x)
		}
	}
	slices.Sort(xs)
	var buf []byte
	for _, x := range xs {
		e := wire.NewEncoder(buf[:0])
		encodeNonBlank(e, t.at(x))
		b, err := e.Bytes()
		if err != nil {
			return err
		}
		if err := f(x, b); err != nil {
			return err
		}
		buf = b
	}
	return nil
}

// lastNonBlank returns the last non-blank node of the tree, found in
// O(log N) from the resolution sizes: a subtree has an empty resolution
// exactly when all its nodes are blank.
func (d *Diff) lastNonBlank() (NodeIndex, bool) {
	x := treemath.Root(d.nLeaves)
	if d.nLeaves == 0 || d.resLen(x) == 0 {
		return 0, false
	}
	for !x.IsLeaf() {
		if r := treemath.Right(x); d.resLen(r) != 0 {
			x = r
			continue
		}
		if !d.at(x).blank() {
			return x, true
		}
		x = treemath.Left(x)
	}
	return x, true
}

// EncodeRatchetTree returns the encoding of the tree in the ratchet_tree
// extension form, optional<Node> ratchet_tree<V> with the trailing blank
// nodes stripped (RFC 9420, Section 12.4.3.3): the bytes message.Marshal
// gives for RatchetTree(). The nodes the diff and the merges since the
// tree's encoding cache was built did not change are copied from the
// cache. Like the other reads of a Diff it may write to the diff's caches;
// the tree's encoding cache is locked.
func (d *Diff) EncodeRatchetTree() ([]byte, error) {
	last, ok := d.lastNonBlank()
	if !ok {
		return message.Marshal(message.RatchetTree{})
	}
	c := d.base.encoded()
	defer c.mu.Unlock()
	// Nodes below bound are read from the cache unless changed.
	bound := min(c.width(), d.limit, last+1)
	fresh := make([]NodeIndex, 0, len(c.stale)+len(d.nodes))
	for x := range c.stale {
		if x < bound {
			fresh = append(fresh, x)
		}
	}
	for x := range d.nodes {
		if x < bound {
			fresh = append(fresh, x)
		}
	}
	slices.Sort(fresh)
	fresh = slices.Compact(fresh)
	// The body is written after 4 bytes reserved for the vector's length
	// header (at most 4 bytes, RFC 9420, Section 2.1.2), which is then
	// written right-aligned against it, so that the body is never moved.
	const hdr = 4
	// Room for each node encoded afresh, so that the buffer (the size of
	// the tree) is not reallocated for a larger leaf: a leaf with a basic
	// credential takes about 300 bytes.
	size := hdr + int(c.off[bound]) + 1024*(len(fresh)+int(last+1-bound))
	e := wire.NewEncoder(make([]byte, hdr, size))
	pos := NodeIndex(0)
	for _, x := range fresh {
		e.Raw(c.buf[c.off[pos]:c.off[x]])
		encodeNode(e, d.at(x))
		pos = x + 1
	}
	e.Raw(c.buf[c.off[pos]:c.off[bound]])
	for x := bound; x <= last; x++ {
		encodeNode(e, d.at(x))
	}
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	n := len(b) - hdr
	if n > wire.MaxVarint {
		return nil, fail(ErrMalformedTree, "12.4.3.3", noNode, "encoded tree of %d bytes exceeds 2^30", n)
	}
	h := wire.AppendVarint(nil, uint64(n))
	copy(b[hdr-len(h):], h)
	return b[hdr-len(h):], nil
}

// maxStale is the number of stale nodes above which the encoding cache of
// a tree of width w is rebuilt rather than patched.
func maxStale(w NodeIndex) int { return staleSlack + int(w/16) }

// staleSlack is a variable so that tests can exercise the rebuilds.
var staleSlack = 256

// encoded returns the tree's encoding cache, locked, building it if there
// is none or if too many of its nodes are stale.
func (t *Tree) encoded() *encCache {
	t.ecOnce.Do(func() { t.ec = &encCache{} })
	c := t.ec
	c.mu.Lock()
	if c.off != nil && len(c.stale) <= maxStale(t.width()) {
		return c
	}
	w := t.width()
	e := wire.NewEncoder(make([]byte, 0, len(c.buf)+int(w)))
	off := make([]uint32, w+1)
	for x := NodeIndex(0); x < w; x++ {
		off[x] = uint32(e.Len())
		encodeNode(e, t.at(x))
	}
	off[w] = uint32(e.Len())
	c.buf, c.off, c.stale = e.MustBytes(), off, nil
	return c
}

// mergeEncoded marks the nodes a merged diff changed as stale in the
// encoding cache, and forgets the nodes from w on: those beyond the new
// width, or that the diff truncated away (and may have added again).
func (t *Tree) mergeEncoded(d *Diff, w NodeIndex) {
	c := t.ec
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off == nil {
		return
	}
	if c.width() > w {
		c.off = c.off[:w+1]
		for x := range c.stale {
			if x >= w {
				delete(c.stale, x)
			}
		}
	}
	if len(c.stale)+len(d.nodes) > maxStale(t.width()) {
		// Rebuilt on the next export; the memory is released now.
		c.buf, c.off, c.stale = nil, nil, nil
		return
	}
	for x := range d.nodes {
		if x < c.width() {
			if c.stale == nil {
				c.stale = make(map[NodeIndex]struct{})
			}
			c.stale[x] = struct{}{}
		}
	}
}
