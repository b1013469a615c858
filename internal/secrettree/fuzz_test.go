package secrettree

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/vectors"
)

// builtinTrees returns a tree of every suite from a fixed secret, with
// some ratchets used (the trees the corpus under testdata/fuzz holds).
func builtinTrees(t testing.TB) []*Tree {
	var trees []*Tree
	for _, id := range ciphersuite.All() {
		trees = append(trees, usedTree(t, newTree(t, suite(t, id), 8, Config{})))
	}
	return trees
}

// usedTree advances some ratchets of tr and returns it.
func usedTree(t testing.TB, tr *Tree) *Tree {
	if _, err := tr.Next(0, Application); err != nil {
		t.Fatal(err)
	}
	if tr.Leaves() > 1 {
		if err := tr.Consume(treemath.LeafIndex(tr.Leaves()-1), Handshake, 3); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// vectorTrees builds trees from the encryption secrets of secret-tree.json,
// with some ratchets used, as fuzz seeds. Without the vector files it falls
// back to trees of every suite from a fixed secret (and fails under CI).
func vectorTrees(t testing.TB) []*Tree {
	var trees []*Tree
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, "secret-tree.json")
	switch {
	case errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true":
		t.Logf("%v; seeding from built-in trees", err)
		return builtinTrees(t)
	case err != nil:
		t.Fatal(err)
	}
	var vs []struct {
		CipherSuite      ciphersuite.ID `json:"cipher_suite"`
		EncryptionSecret vectors.Hex    `json:"encryption_secret"`
		Leaves           []json.RawMessage
	}
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		tr, err := New(suite(t, v.CipherSuite), v.EncryptionSecret, uint32(len(v.Leaves)), Config{})
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, usedTree(t, tr))
	}
	if len(trees) == 0 {
		t.Fatal("secret-tree.json gave no seeds")
	}
	return trees
}

// FuzzUnmarshalBinary checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes (the encoding is canonical).
func FuzzUnmarshalBinary(f *testing.F) {
	n := 0
	for _, tr := range vectorTrees(f) {
		f.Add(state(f, tr))
		n++
	}
	fuzzcorpus.Require(f, n)
	f.Fuzz(func(t *testing.T, b []byte) {
		var tr Tree
		if err := tr.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := tr.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// FuzzUnmarshalLeaf does the same for one leaf's ratchets.
func FuzzUnmarshalLeaf(f *testing.F) {
	n := 0
	for _, tr := range vectorTrees(f) {
		if tr.Suite().ID() != 1 {
			continue
		}
		for l := range treemath.LeafIndex(tr.Leaves()) {
			if b, err := tr.MarshalLeaf(l); err == nil {
				f.Add(b)
				n++
			}
		}
	}
	fuzzcorpus.Require(f, n)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := newTree(t, suite(t, 1), 4, Config{})
		if _, err := tr.Next(0, Application); err != nil {
			t.Fatal(err)
		}
		if err := tr.UnmarshalLeaf(0, b); err != nil {
			return
		}
		out, err := tr.MarshalLeaf(0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// TestGenerateFuzzCorpus writes the corpora of FuzzUnmarshalBinary (the
// state of builtinTrees in every suite) and FuzzUnmarshalLeaf (each leaf
// of the suite 1 tree) under testdata/fuzz, and of FuzzReceive (a few
// operation sequences). It runs only with MLS_UPDATE_FUZZ_CORPUS=1.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	states := fuzzcorpus.New(".", "FuzzUnmarshalBinary")
	leaves := fuzzcorpus.New(".", "FuzzUnmarshalLeaf")
	for _, tr := range builtinTrees(t) {
		states.Add(state(t, tr))
		if tr.Suite().ID() != 1 {
			continue
		}
		for l := range treemath.LeafIndex(tr.Leaves()) {
			if b, err := tr.MarshalLeaf(l); err == nil { // ratchets not yet derived give none
				leaves.Add(b)
			}
		}
	}
	// A suite 1 tree with every leaf's ratchets used differently.
	tr := newTree(t, suite(t, 1), 8, Config{})
	for l := range treemath.LeafIndex(8) {
		for range l % 3 {
			if _, err := tr.Next(l, Application); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.Consume(l, Handshake, uint32(l)); err != nil {
			t.Fatal(err)
		}
		b, err := tr.MarshalLeaf(l)
		if err != nil {
			t.Fatal(err)
		}
		leaves.Add(b)
	}
	states.Add(state(t, tr))
	states.Write(t)
	leaves.Write(t)
	ops := fuzzcorpus.New(".", "FuzzReceive")
	for _, b := range [][]byte{{0, 3, 1, 2, 5, 0}, {10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, {200, 100, 255, 0, 1}, {1, 3, 5, 7, 9, 11, 13}, {81, 83, 1, 79}} {
		ops.Add(b)
	}
	ops.Write(t)
}

// FuzzReceive plays a sequence of Get/Consume calls on one ratchet and
// checks them against a model: a key returned is always the one a fresh
// tree derives for that generation, a generation is consumed at most once,
// and the window and distance rules hold.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 5, 0})
	f.Add([]byte{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0})
	f.Add([]byte{200, 100, 255, 0, 1})
	fuzzcorpus.Require(f, 3)
	s := suite(f, 1)
	ref := newTree(f, s, 2, Config{})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const tol, fwd = 3, 40
		tr := newTree(t, s, 2, Config{OutOfOrderTolerance: tol, MaxForwardDistance: fwd})
		consumed := map[uint32]bool{}
		next, highest := uint32(0), int64(-1)
		for _, op := range ops {
			gen := uint32(op >> 1)
			kn, err := tr.Get(1, Application, gen)
			var expect error
			switch {
			case gen >= next && gen-next > fwd:
				expect = ErrTooFarAhead
			case consumed[gen] || (gen < next && int64(gen) < highest-tol):
				expect = ErrGenerationUsed
			}
			if !errors.Is(err, expect) || (expect == nil) != (err == nil) {
				t.Fatalf("Get %d: got %v, want %v", gen, err, expect)
			}
			if err == nil {
				want, _ := ref.Get(1, Application, gen)
				if !bytes.Equal(kn.Key, want.Key) || !bytes.Equal(kn.Nonce, want.Nonce) {
					t.Fatalf("Get %d: wrong key", gen)
				}
			}
			if op&1 == 0 {
				continue
			}
			err = tr.Consume(1, Application, gen)
			if !errors.Is(err, expect) || (expect == nil) != (err == nil) {
				t.Fatalf("Consume %d: got %v, want %v", gen, err, expect)
			}
			if err == nil {
				consumed[gen] = true
				if gen >= next {
					next, highest = gen+1, int64(gen)
				}
			}
		}
	})
}
