package secrettree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/wire"
)

// busyTree returns a tree with initialised and uninitialised leaves, sent
// generations, skipped keys and an exhausted-free history.
func busyTree(t testing.TB, id ciphersuite.ID) *Tree {
	t.Helper()
	tr := newTree(t, suite(t, id), 8, Config{OutOfOrderTolerance: 4, MaxForwardDistance: 50})
	for range 3 {
		if _, err := tr.Next(0, Application); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Next(0, Handshake); err != nil {
		t.Fatal(err)
	}
	if err := tr.Consume(5, Application, 7); err != nil {
		t.Fatal(err)
	}
	if err := tr.Consume(5, Application, 5); err != nil {
		t.Fatal(err)
	}
	if err := tr.Consume(2, Handshake, 0); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, id := range ciphersuite.All() {
		tr := busyTree(t, id)
		b := state(t, tr)
		var back Tree
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("%v: %v", id, err)
		}
		if !bytes.Equal(state(t, &back), b) {
			t.Fatalf("%v: re-encoding differs", id)
		}
		if back.Suite() != tr.Suite() || back.Leaves() != 8 || back.Config() != tr.Config() {
			t.Fatalf("%v: parameters lost", id)
		}
		// Both trees behave the same from here on.
		for _, c := range []struct {
			leaf treemath.LeafIndex
			typ  RatchetType
			gen  uint32
		}{{0, Application, 3}, {5, Application, 4}, {5, Application, 6}, {5, Application, 8}, {7, Handshake, 2}, {2, Handshake, 1}} {
			a, errA := tr.Get(c.leaf, c.typ, c.gen)
			b, errB := back.Get(c.leaf, c.typ, c.gen)
			if errA != nil || errB != nil || !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Nonce, b.Nonce) {
				t.Errorf("%v %+v: %v %v", id, c, errA, errB)
			}
		}
		if _, err := back.Get(5, Application, 5); !errors.Is(err, ErrGenerationUsed) {
			t.Errorf("%v: consumed generation available after round trip: %v", id, err)
		}
	}
}

func TestIncrementalPersistence(t *testing.T) {
	s := suite(t, 1)
	tr := newTree(t, s, 8, Config{})
	// A fresh copy of the tree, as a store would load it at epoch start.
	stored := newTree(t, s, 8, Config{})
	apply := func(leaf treemath.LeafIndex, wasInit bool) {
		t.Helper()
		if !wasInit {
			nb, err := tr.MarshalNodes()
			if err != nil {
				t.Fatal(err)
			}
			if err := stored.UnmarshalNodes(nb); err != nil {
				t.Fatal(err)
			}
		}
		lb, err := tr.MarshalLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if err := stored.UnmarshalLeaf(leaf, lb); err != nil {
			t.Fatal(err)
		}
	}
	ops := []struct {
		leaf treemath.LeafIndex
		gen  uint32
	}{{3, 0}, {3, 4}, {6, 2}, {3, 2}, {0, 0}, {6, 3}}
	for _, op := range ops {
		was := tr.Initialized(op.leaf)
		if err := tr.Consume(op.leaf, Application, op.gen); err != nil {
			t.Fatal(err)
		}
		apply(op.leaf, was)
		if !bytes.Equal(state(t, tr), state(t, stored)) {
			t.Fatalf("after %+v the incrementally stored tree differs", op)
		}
	}
	if _, err := tr.MarshalLeaf(1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("MarshalLeaf of an uninitialised leaf: %v", err)
	}
}

func TestUnmarshalLeafInconsistent(t *testing.T) {
	s := suite(t, 1)
	a := newTree(t, s, 4, Config{})
	if _, err := a.Next(1, Application); err != nil {
		t.Fatal(err)
	}
	lb, err := a.MarshalLeaf(1)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newTree(t, s, 4, Config{})
	before := state(t, fresh)
	if err := fresh.UnmarshalLeaf(1, lb); !errors.Is(err, ErrInvalidState) {
		t.Errorf("leaf restored under a held root secret: %v", err)
	}
	if err := fresh.UnmarshalLeaf(4, lb); !errors.Is(err, ErrLeafOutOfRange) {
		t.Errorf("leaf 4 of 4: %v", err)
	}
	nb, err := fresh.MarshalNodes()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.UnmarshalNodes(nb); !errors.Is(err, ErrInvalidState) {
		t.Errorf("root secret restored over an initialised leaf: %v", err)
	}
	if !bytes.Equal(before, state(t, fresh)) {
		t.Error("failed restore changed the tree")
	}
}

func TestUnmarshalRejectsPrefixes(t *testing.T) {
	tr := busyTree(t, 1)
	b := state(t, tr)
	for i := range len(b) {
		var back Tree
		err := back.UnmarshalBinary(b[:i])
		if err == nil {
			t.Fatalf("prefix of %d of %d bytes accepted", i, len(b))
		}
		var we *wire.Error
		if !errors.As(err, &we) && !errors.Is(err, ErrInvalidParameter) {
			t.Fatalf("prefix %d: untyped error %v", i, err)
		}
	}
	var back Tree
	if err := back.UnmarshalBinary(append(b, 0)); !errors.Is(err, wire.ErrTrailingData) {
		t.Errorf("trailing byte: %v", err)
	}
	lb, err := tr.MarshalLeaf(5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(lb) {
		if err := tr.UnmarshalLeaf(5, lb[:i]); err == nil {
			t.Fatalf("leaf prefix %d accepted", i)
		}
	}
	if err := tr.UnmarshalLeaf(5, append(lb, 0)); !errors.Is(err, wire.ErrTrailingData) {
		t.Errorf("leaf trailing byte: %v", err)
	}
	nb, err := tr.MarshalNodes()
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(nb) {
		if err := tr.UnmarshalNodes(nb[:i]); err == nil {
			t.Fatalf("nodes prefix %d accepted", i)
		}
	}
}

// enc builds a TreeState by hand for the rejection tests.
type enc struct {
	suite            uint16
	leaves, tol, fwd uint32 // zero tol and fwd mean 5 and 1000
	zeroTol, zeroFwd bool   // write zero instead
	nodes            func(e *wire.Encoder)
	leafs            func(e *wire.Encoder)
}

func (c enc) bytes() []byte {
	e := wire.NewEncoder(nil)
	e.U8(1)
	e.U16(c.suite)
	e.U32(c.leaves)
	tol, fwd := c.tol, c.fwd
	if tol == 0 && !c.zeroTol {
		tol = 5
	}
	if fwd == 0 && !c.zeroFwd {
		fwd = 1000
	}
	e.U32(tol)
	e.U32(fwd)
	e.Vector(func(e *wire.Encoder) {
		if c.nodes != nil {
			c.nodes(e)
		}
	})
	e.Vector(func(e *wire.Encoder) {
		if c.leafs != nil {
			c.leafs(e)
		}
	})
	return e.MustBytes()
}

func node(x uint32, n int) func(e *wire.Encoder) {
	return func(e *wire.Encoder) { e.U32(x); e.Opaque(seq(n)) }
}

func ratchetEnc(next uint64, secretLen int, skipped ...[3]uint32) func(e *wire.Encoder) {
	return func(e *wire.Encoder) {
		e.U64(next)
		e.Opaque(seq(secretLen))
		e.Vector(func(e *wire.Encoder) {
			for _, s := range skipped {
				e.U32(s[0])
				e.Opaque(seq(int(s[1])))
				e.Opaque(seq(int(s[2])))
			}
		})
	}
}

func leafEnc(l uint32, hs, app func(e *wire.Encoder)) func(e *wire.Encoder) {
	return func(e *wire.Encoder) { e.U32(l); hs(e); app(e) }
}

func both(fs ...func(e *wire.Encoder)) func(e *wire.Encoder) {
	return func(e *wire.Encoder) {
		for _, f := range fs {
			f(e)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	ok := ratchetEnc(0, 32)
	valid := enc{suite: 1, leaves: 4, tol: 5, fwd: 1000, nodes: both(node(1, 32), node(6, 32)), leafs: leafEnc(2, ok, ratchetEnc(3, 32, [3]uint32{1, 16, 12}))}
	var tr Tree
	if err := tr.UnmarshalBinary(valid.bytes()); err != nil {
		t.Fatalf("valid state rejected: %v", err)
	}
	for name, c := range map[string]struct {
		enc
		want error
	}{
		"unknown suite":          {enc{suite: 99, leaves: 4}, ciphersuite.ErrUnsupported},
		"no leaves":              {enc{suite: 1, leaves: 0}, ErrInvalidParameter},
		"too many leaves":        {enc{suite: 1, leaves: MaxLeaves + 1}, ErrInvalidParameter},
		"zero tolerance":         {enc{suite: 1, leaves: 4, zeroTol: true}, wire.ErrInvalidValue},
		"zero distance":          {enc{suite: 1, leaves: 4, zeroFwd: true}, wire.ErrInvalidValue},
		"node outside tree":      {enc{suite: 1, leaves: 4, nodes: node(7, 32)}, wire.ErrInvalidValue},
		"node secret short":      {enc{suite: 1, leaves: 4, nodes: node(3, 31)}, wire.ErrInvalidValue},
		"nodes out of order":     {enc{suite: 1, leaves: 4, nodes: both(node(5, 32), node(1, 32))}, wire.ErrInvalidValue},
		"duplicate node":         {enc{suite: 1, leaves: 4, nodes: both(node(1, 32), node(1, 32))}, wire.ErrInvalidValue},
		"node below node":        {enc{suite: 1, leaves: 4, nodes: both(node(1, 32), node(3, 32))}, ErrInvalidState},
		"leaf under node":        {enc{suite: 1, leaves: 4, nodes: node(1, 32), leafs: leafEnc(0, ok, ok)}, ErrInvalidState},
		"leaf out of range":      {enc{suite: 1, leaves: 4, leafs: leafEnc(4, ok, ok)}, ErrLeafOutOfRange},
		"leafs out of order":     {enc{suite: 1, leaves: 4, leafs: both(leafEnc(2, ok, ok), leafEnc(1, ok, ok))}, wire.ErrInvalidValue},
		"ratchet secret short":   {enc{suite: 1, leaves: 4, leafs: leafEnc(0, ratchetEnc(0, 16), ok)}, wire.ErrInvalidValue},
		"next beyond 2^32":       {enc{suite: 1, leaves: 4, leafs: leafEnc(0, ratchetEnc(1<<32+1, 0), ok)}, wire.ErrInvalidValue},
		"exhausted with secret":  {enc{suite: 1, leaves: 4, leafs: leafEnc(0, ratchetEnc(1<<32, 32), ok)}, wire.ErrInvalidValue},
		"skipped not below next": {enc{suite: 1, leaves: 4, tol: 5, leafs: leafEnc(0, ratchetEnc(3, 32, [3]uint32{3, 16, 12}), ok)}, wire.ErrInvalidValue},
		"skipped outside window": {enc{suite: 1, leaves: 4, tol: 2, leafs: leafEnc(0, ratchetEnc(10, 32, [3]uint32{6, 16, 12}), ok)}, wire.ErrInvalidValue},
		"skipped out of order":   {enc{suite: 1, leaves: 4, tol: 5, leafs: leafEnc(0, ratchetEnc(10, 32, [3]uint32{8, 16, 12}, [3]uint32{7, 16, 12}), ok)}, wire.ErrInvalidValue},
		"skipped key short":      {enc{suite: 1, leaves: 4, tol: 5, leafs: leafEnc(0, ratchetEnc(10, 32, [3]uint32{8, 15, 12}), ok)}, wire.ErrInvalidValue},
		"skipped nonce long":     {enc{suite: 1, leaves: 4, tol: 5, leafs: leafEnc(0, ratchetEnc(10, 32, [3]uint32{8, 16, 13}), ok)}, wire.ErrInvalidValue},
	} {
		before := state(t, &tr)
		if err := tr.UnmarshalBinary(c.bytes()); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
		if !bytes.Equal(before, state(t, &tr)) {
			t.Errorf("%s: failed UnmarshalBinary changed the tree", name)
		}
	}
	b := valid.bytes()
	b[0] = 2
	if err := tr.UnmarshalBinary(b); !errors.Is(err, wire.ErrInvalidValue) {
		t.Errorf("version 2: %v", err)
	}
}
