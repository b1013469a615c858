package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"testing"
	"testing/cryptotest"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/fuzzcorpus"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/vectors"
)

// vectorTrees returns the ratchet trees of the official tree-validation
// and treekem vectors, with their cipher suites. Without the vector files
// it returns none (and fails under CI=true).
func vectorTrees(tb testing.TB) (trees [][]byte, suites []uint16) {
	dir, err := vectors.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	for file, field := range map[string]string{"tree-validation.json": "tree", "treekem.json": "ratchet_tree"} {
		raw, err := vectors.Read(dir, file)
		if err != nil {
			if os.Getenv("CI") == "true" || !errors.Is(err, vectors.ErrNotFound) {
				tb.Fatal(err)
			}
			tb.Logf("seeding without the vectors: %v", err)
			return nil, nil
		}
		var vs []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &vs); err != nil {
			tb.Fatal(err)
		}
		for _, v := range vs {
			var h vectors.Hex
			var s uint16
			if json.Unmarshal(v[field], &h) != nil || json.Unmarshal(v["cipher_suite"], &s) != nil {
				tb.Fatalf("%s: bad vector", file)
			}
			trees = append(trees, h)
			suites = append(suites, s)
		}
	}
	if len(trees) == 0 {
		tb.Fatal("no ratchet trees found in the vectors")
	}
	return trees, suites
}

// FuzzRatchetTree feeds arbitrary ratchet_tree encodings through import,
// validation, export and tree operations: nothing may panic, and a tree
// that imports must export to its own encoding. The seeds are the trees
// of real groups in every suite under testdata/fuzz (written by the root
// package's TestGenerateFuzzCorpus), a tree with unmerged leaves, and the
// trees of the official vectors when they are present.
func FuzzRatchetTree(f *testing.F) {
	trees, suites := vectorTrees(f)
	for i := range trees {
		f.Add(suites[i], []byte(trees[i]))
	}
	g := unmergedTree(f)
	f.Add(uint16(g.s.ID()), message.MustMarshal(g.t.RatchetTree()))
	fuzzcorpus.Require(f, len(trees)+1)
	f.Fuzz(func(t *testing.T, suite uint16, b []byte) {
		s, err := ciphersuite.Lookup(ciphersuite.ID(suite))
		if err != nil {
			return
		}
		var rt message.RatchetTree
		if err := message.Unmarshal(b, &rt); err != nil {
			return
		}
		tr, err := FromRatchetTree(s, rt)
		if err != nil {
			return
		}
		if enc, err := message.Marshal(rt); err == nil && bytes.Equal(enc, b) {
			if got := message.MustMarshal(tr.RatchetTree()); !bytes.Equal(got, b) {
				t.Fatalf("export differs from the input:\n%x\n%x", got, b)
			}
		}
		_ = tr.Validate(tr.TreeHash(), &Options{SkipLifetime: true})
		v := tr.View()
		for x := range NodeIndex(min(v.Width(), 64)) {
			v.Resolution(x)
		}
		d := tr.Diff()
		if d.Leaf(0) != nil {
			if err := d.Remove(0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Add(&message.LeafNode{EncryptionKey: []byte("new"), SignatureKey: []byte("new"), Source: message.LeafNodeSourceUpdate}); err != nil {
			return
		}
		d.TreeHash()
		if err := d.Merge(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tr.TreeHash(), rebuilt(t, tr.View()).TreeHash()) {
			t.Fatal("merged tree hash differs from a rebuilt tree")
		}
	})
}

// FuzzUpdatePath feeds arbitrary UpdatePaths to a member of a fixed group:
// nothing may panic, and a rejected path must leave the diff unchanged.
// The corpus (testdata/fuzz/FuzzUpdatePath, from TestGenerateFuzzCorpus)
// holds paths of the fixture's members.
func FuzzUpdatePath(f *testing.F) {
	fx := newPathFixture(f)
	f.Add(uint32(0), fx.raw)
	f.Add(uint32(1), fx.raw)
	fuzzcorpus.Require(f, 2)
	f.Fuzz(func(t *testing.T, sender uint32, b []byte) {
		var up message.UpdatePath
		if err := message.Unmarshal(b, &up); err != nil {
			return
		}
		d := fx.g.t.Diff()
		hash := d.TreeHash()
		a, err := d.ApplyPath(LeafIndex(sender), &up, fx.g.opts(nil))
		if err != nil {
			if !bytes.Equal(d.TreeHash(), hash) {
				t.Fatal("a rejected path changed the diff")
			}
			return
		}
		for j, m := range fx.g.members {
			if uint32(j) != sender {
				_, _ = a.Decrypt(m.priv, fx.gc) // only panics matter
			}
		}
	})
}

// TestGenerateFuzzCorpus writes testdata/fuzz/FuzzUpdatePath: the
// UpdatePath of each member of newPathFixture's group, each as from its
// sender and as from the next leaf, and cut short. The tree is the same on
// every run (growTree draws from a seeded source); the HPKE encryptions
// draw from crypto/rand, which a fixed seed and one thread make
// deterministic. It runs only with MLS_UPDATE_FUZZ_CORPUS=1. The corpus of
// FuzzRatchetTree comes from the root package's generator.
func TestGenerateFuzzCorpus(t *testing.T) {
	if !fuzzcorpus.Updating(t) {
		return
	}
	cryptotest.SetGlobalRandom(t, 9420)
	procs := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	fx := newPathFixture(t)
	c := fuzzcorpus.New(".", "FuzzUpdatePath")
	n := LeafIndex(fx.g.t.View().NumLeaves())
	for sender := range n {
		d := fx.g.t.Diff()
		if d.Leaf(sender) == nil {
			continue
		}
		cp, err := d.CreatePath(sender, d.Leaf(sender), fx.g.members[sender].signer, fx.g.opts(nil))
		if err != nil {
			t.Fatal(err)
		}
		up, err := cp.Encrypt(testGroupContext(d.TreeHash()))
		if err != nil {
			t.Fatal(err)
		}
		raw := message.MustMarshal(up)
		c.Add(uint32(sender), raw)
		c.Add(uint32((sender+1)%n), raw)
		c.Add(uint32(sender), raw[:len(raw)-1])
	}
	c.Write(t)
}
