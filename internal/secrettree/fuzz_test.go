package secrettree

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/treemath"
	"github.com/mlskit/mls/internal/vectors"
)

// vectorTrees builds trees from the encryption secrets of secret-tree.json,
// with some ratchets used, as fuzz seeds. Without the vector files it falls
// back to trees of every suite from a fixed secret (and fails under CI).
func vectorTrees(t testing.TB) []*Tree {
	var trees []*Tree
	use := func(tr *Tree) *Tree {
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
	dir, err := vectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := vectors.Read(dir, "secret-tree.json")
	switch {
	case errors.Is(err, vectors.ErrNotFound) && os.Getenv("CI") != "true":
		t.Logf("%v; seeding from built-in trees", err)
		for _, id := range ciphersuite.All() {
			trees = append(trees, use(newTree(t, suite(t, id), 8, Config{})))
		}
		return trees
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
		trees = append(trees, use(tr))
	}
	if len(trees) == 0 {
		t.Fatal("secret-tree.json gave no seeds")
	}
	return trees
}

// FuzzUnmarshalBinary checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes (the encoding is canonical).
func FuzzUnmarshalBinary(f *testing.F) {
	for _, tr := range vectorTrees(f) {
		f.Add(state(f, tr))
	}
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
	if n == 0 {
		f.Fatal("no leaf seeds")
	}
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

// FuzzReceive plays a sequence of Get/Consume calls on one ratchet and
// checks them against a model: a key returned is always the one a fresh
// tree derives for that generation, a generation is consumed at most once,
// and the window and distance rules hold.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 5, 0})
	f.Add([]byte{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0})
	f.Add([]byte{200, 100, 255, 0, 1})
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
