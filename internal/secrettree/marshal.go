package secrettree

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// ErrInvalidState: a restored piece of state contradicts the rest of the
// tree (a leaf's ratchets restored while a node secret on its path is
// still held, or the reverse).
var ErrInvalidState = errors.New("inconsistent secret tree state")

// stateVersion is the first octet of every encoding this file produces.
const stateVersion = 1

// The encodings use the TLS presentation language of RFC 9420, Section 2.1,
// so that the wire package can parse them with its caps:
//
//	struct {
//	    uint8 version = 1;
//	    CipherSuite cipher_suite;
//	    uint32 leaves;
//	    uint32 out_of_order_tolerance;
//	    uint32 max_forward_distance;
//	    NodeSecret nodes<V>;   /* ascending node index */
//	    LeafRatchets leafs<V>; /* ascending leaf index */
//	} TreeState;
//
//	struct { uint32 node; opaque secret<V>; } NodeSecret;
//	struct { uint32 leaf; Ratchet handshake; Ratchet application; } LeafRatchets;
//	struct {
//	    uint64 next;           /* at most 2^32 */
//	    opaque secret<V>;      /* empty once next == 2^32 */
//	    SkippedKey skipped<V>; /* ascending generation */
//	} Ratchet;
//	struct { uint32 generation; opaque key<V>; opaque nonce<V>; } SkippedKey;
//
// MarshalLeaf writes uint8 version followed by the two Ratchets, and
// MarshalNodes uint8 version followed by nodes<V>.

// MarshalBinary encodes the whole tree, secrets included; the caller must
// store the result as carefully as the tree itself.
func (t *Tree) MarshalBinary() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := wire.NewEncoder(nil)
	e.U8(stateVersion)
	e.U16(uint16(t.suite.ID()))
	e.U32(t.leaves)
	e.U32(t.cfg.OutOfOrderTolerance)
	e.U32(t.cfg.MaxForwardDistance)
	t.encodeNodes(e)
	e.Vector(func(e *wire.Encoder) {
		for _, l := range sortedKeys(t.leafs) {
			e.U32(uint32(l))
			encodeLeaf(e, t.leafs[l])
		}
	})
	return e.Bytes()
}

// MarshalNodes encodes only the node secrets. They change only when a leaf
// is used for the first time in the epoch (see Initialized); together with
// MarshalLeaf of every initialised leaf they make up the whole tree.
func (t *Tree) MarshalNodes() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := wire.NewEncoder(nil)
	e.U8(stateVersion)
	t.encodeNodes(e)
	return e.Bytes()
}

// MarshalLeaf encodes the two ratchets of one leaf: what changes when a
// message from or to that leaf is processed. It fails with ErrUnavailable
// if the leaf's ratchets were not initialised yet.
func (t *Tree) MarshalLeaf(leaf treemath.LeafIndex) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.leafs[leaf]
	if st == nil {
		return nil, fmt.Errorf("secrettree: MarshalLeaf leaf %d: %w: ratchets not initialised", leaf, ErrUnavailable)
	}
	e := wire.NewEncoder(nil)
	e.U8(stateVersion)
	encodeLeaf(e, st)
	return e.Bytes()
}

func (t *Tree) encodeNodes(e *wire.Encoder) {
	e.Vector(func(e *wire.Encoder) {
		for _, x := range sortedKeys(t.nodes) {
			e.U32(uint32(x))
			e.Opaque(t.nodes[x])
		}
	})
}

func encodeLeaf(e *wire.Encoder, st *leafState) {
	for i := range st.r {
		r := &st.r[i]
		e.U64(r.next)
		e.Opaque(r.secret)
		e.Vector(func(e *wire.Encoder) {
			for _, g := range sortedKeys(r.skipped) {
				kn := r.skipped[g]
				e.U32(g)
				e.Opaque(kn.Key)
				e.Opaque(kn.Nonce)
			}
		})
	}
}

func sortedKeys[K ~uint32, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// UnmarshalBinary replaces t with a tree encoded by MarshalBinary. It
// rejects anything MarshalBinary would not produce: unknown versions or
// suites, secrets of the wrong length, indices out of range or out of
// order, skipped keys outside the out-of-order window, node secrets held
// below another node secret or on the path of an initialised leaf. On
// error t is unchanged.
func (t *Tree) UnmarshalBinary(b []byte) error {
	d := wire.NewDecoder(b)
	d.Struct("TreeState")
	version(d)
	id := ciphersuite.ID(d.U16("cipher_suite"))
	leaves := d.U32("leaves")
	cfg := Config{OutOfOrderTolerance: d.U32("out_of_order_tolerance"), MaxForwardDistance: d.U32("max_forward_distance")}
	if d.Err() == nil && (cfg.OutOfOrderTolerance == 0 || cfg.MaxForwardDistance == 0) {
		// MarshalBinary writes the normalized values, never zero.
		d.Failf("config", "zero out_of_order_tolerance or max_forward_distance")
	}
	if err := d.Err(); err != nil {
		return decodeErr("UnmarshalBinary", err)
	}
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		return decodeErr("UnmarshalBinary", err)
	}
	nt, err := newEmpty(s, leaves, cfg)
	if err != nil {
		return decodeErr("UnmarshalBinary", err)
	}
	nt.decodeNodes(d)
	var prev int64 = -1
	d.Vector("leafs", func(d *wire.Decoder) {
		l := d.U32("leaf")
		if d.Err() != nil {
			return
		}
		if l >= nt.leaves {
			d.Fail("leaf", fmt.Errorf("%w: leaf %d of %d", ErrLeafOutOfRange, l, nt.leaves))
			return
		}
		if int64(l) <= prev {
			d.Failf("leaf", "leaf %d out of order", l)
			return
		}
		prev = int64(l)
		st := nt.decodeLeaf(d)
		if d.Err() == nil {
			nt.leafs[treemath.LeafIndex(l)] = st
		}
	})
	if err := d.Finish(); err != nil {
		return decodeErr("UnmarshalBinary", err)
	}
	if err := nt.consistent(); err != nil {
		return decodeErr("UnmarshalBinary", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.suite, t.leaves, t.size, t.cfg, t.nodes, t.leafs = nt.suite, nt.leaves, nt.size, nt.cfg, nt.nodes, nt.leafs
	return nil
}

// UnmarshalNodes replaces the node secrets of t with ones encoded by
// MarshalNodes. On error t is unchanged.
func (t *Tree) UnmarshalNodes(b []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := wire.NewDecoder(b)
	d.Struct("NodeSecrets")
	version(d)
	nt := &Tree{suite: t.suite, leaves: t.leaves, size: t.size, cfg: t.cfg, nodes: make(map[treemath.NodeIndex][]byte), leafs: t.leafs}
	nt.decodeNodes(d)
	if err := d.Finish(); err != nil {
		return decodeErr("UnmarshalNodes", err)
	}
	if err := nt.consistent(); err != nil {
		return decodeErr("UnmarshalNodes", err)
	}
	t.nodes = nt.nodes
	return nil
}

// UnmarshalLeaf replaces the ratchets of leaf with ones encoded by
// MarshalLeaf. On error t is unchanged.
func (t *Tree) UnmarshalLeaf(leaf treemath.LeafIndex, b []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	op := fmt.Sprintf("UnmarshalLeaf leaf %d", leaf)
	if uint32(leaf) >= t.leaves {
		return decodeErr(op, fmt.Errorf("%w: tree has %d leaves", ErrLeafOutOfRange, t.leaves))
	}
	d := wire.NewDecoder(b)
	d.Struct("LeafRatchets")
	version(d)
	st := t.decodeLeaf(d)
	if err := d.Finish(); err != nil {
		return decodeErr(op, err)
	}
	if x, ok := t.ancestorWithSecret(leaf); ok {
		return decodeErr(op, fmt.Errorf("%w: node %d on the leaf's path still holds a secret", ErrInvalidState, x))
	}
	if old := t.leafs[leaf]; old != nil {
		old.r[0].wipe()
		old.r[1].wipe()
	}
	t.leafs[leaf] = st
	return nil
}

func version(d *wire.Decoder) {
	if v := d.U8("version"); d.Err() == nil && v != stateVersion {
		d.Failf("version", "unknown state version %d", v)
	}
}

func decodeErr(op string, err error) error {
	return fmt.Errorf("secrettree: %s: %w", op, err)
}

func (t *Tree) decodeNodes(d *wire.Decoder) {
	width := treemath.NodeWidth(t.size)
	var prev int64 = -1
	d.Vector("nodes", func(d *wire.Decoder) {
		x := d.U32("node")
		secret := d.Opaque("secret")
		switch {
		case d.Err() != nil:
			return
		case x >= width:
			d.Failf("node", "node %d outside a tree of %d nodes", x, width)
		case int64(x) <= prev:
			d.Failf("node", "node %d out of order", x)
		case len(secret) != t.suite.HashSize():
			d.Failf("secret", "node secret of %d bytes, want %d", len(secret), t.suite.HashSize())
		default:
			prev = int64(x)
			t.nodes[treemath.NodeIndex(x)] = secret
		}
	})
}

func (t *Tree) decodeLeaf(d *wire.Decoder) *leafState {
	st := &leafState{}
	for i := range st.r {
		r := &st.r[i]
		r.next = d.U64("next")
		r.secret = d.Opaque("secret")
		if d.Err() != nil {
			return nil
		}
		switch {
		case r.next > math.MaxUint32+1:
			d.Failf("next", "generation %d beyond 2^32", r.next)
		case r.next == math.MaxUint32+1 && len(r.secret) != 0:
			d.Failf("secret", "exhausted ratchet holds a secret")
		case r.next <= math.MaxUint32 && len(r.secret) != t.suite.HashSize():
			d.Failf("secret", "ratchet secret of %d bytes, want %d", len(r.secret), t.suite.HashSize())
		}
		if r.next == math.MaxUint32+1 {
			r.secret = nil
		}
		var prev int64 = -1
		d.Vector("skipped", func(d *wire.Decoder) {
			g := d.U32("generation")
			key := d.Opaque("key")
			nonce := d.Opaque("nonce")
			switch {
			case d.Err() != nil:
				return
			case int64(g) <= prev:
				d.Failf("generation", "skipped generation %d out of order", g)
			case uint64(g) >= r.next:
				d.Failf("generation", "skipped generation %d not below next generation %d", g, r.next)
			case r.next-1-uint64(g) > uint64(t.cfg.OutOfOrderTolerance):
				d.Failf("generation", "skipped generation %d outside the out-of-order window of %d", g, t.cfg.OutOfOrderTolerance)
			case len(key) != t.suite.AEADKeySize():
				d.Failf("key", "key of %d bytes, want %d", len(key), t.suite.AEADKeySize())
			case len(nonce) != t.suite.AEADNonceSize():
				d.Failf("nonce", "nonce of %d bytes, want %d", len(nonce), t.suite.AEADNonceSize())
			default:
				prev = int64(g)
				if r.skipped == nil {
					r.skipped = make(map[uint32]KeyNonce)
				}
				r.skipped[g] = KeyNonce{Generation: g, Key: key, Nonce: nonce}
			}
		})
	}
	if d.Err() != nil {
		return nil
	}
	return st
}

// consistent checks that no held node secret lies below another one or on
// the path of an initialised leaf (RFC 9420, Section 9.2 deletes those).
func (t *Tree) consistent() error {
	root := treemath.Root(t.size)
	for x := range t.nodes {
		for a := x; a != root; {
			a = treemath.Parent(a, t.size)
			if _, ok := t.nodes[a]; ok {
				return fmt.Errorf("%w: node %d and its ancestor %d both hold secrets", ErrInvalidState, x, a)
			}
		}
	}
	for l := range t.leafs {
		if x, ok := t.ancestorWithSecret(l); ok {
			return fmt.Errorf("%w: leaf %d is initialised but node %d on its path still holds a secret", ErrInvalidState, l, x)
		}
	}
	return nil
}

var (
	_ encoding.BinaryMarshaler   = (*Tree)(nil)
	_ encoding.BinaryUnmarshaler = (*Tree)(nil)
	_ fmt.Formatter              = (*Tree)(nil)
	_ fmt.Formatter              = KeyNonce{}
)
