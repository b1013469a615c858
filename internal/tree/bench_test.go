package tree

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// fullTree is a tree of n members in which every member has committed:
// every parent with members on both sides is set, with valid parent-hash
// chains and signatures, as after commits from leaf n-1 down to leaf 0.
type fullTree struct {
	s       *ciphersuite.Suite
	n       uint32
	t       *Tree
	rt      message.RatchetTree
	groupID []byte
	encPriv [][]byte // HPKE private key of every non-blank node
}

var (
	fullTreesMu sync.Mutex
	fullTrees   = map[uint32]*fullTree{}
)

// getFullTree builds the full tree of n members once per process.
func getFullTree(tb testing.TB, n uint32) *fullTree {
	fullTreesMu.Lock()
	defer fullTreesMu.Unlock()
	if ft, ok := fullTrees[n]; ok {
		return ft
	}
	ft := buildFullTree(tb, n)
	fullTrees[n] = ft
	return ft
}

func seedFor(x NodeIndex, what byte) []byte {
	var b [32]byte
	b[0] = what
	binary.BigEndian.PutUint32(b[1:], uint32(x))
	return b[:]
}

func (ft *fullTree) signer(i LeafIndex) crypto.Signer {
	return ed25519.NewKeyFromSeed(seedFor(i.Node(), 's'))
}

// hasMembers reports whether the subtree of x holds a member.
func (ft *fullTree) hasMembers(x NodeIndex) bool {
	first, _ := leafRange(x)
	return first < ft.n
}

func buildFullTree(tb testing.TB, n uint32) *fullTree {
	s := mustSuite(tb, suite1)
	leaves := uint32(1)
	for leaves < n {
		leaves *= 2
	}
	w := treemath.NodeWidth(leaves)
	ft := &fullTree{s: s, n: n, groupID: []byte("benchmark group"), encPriv: make([][]byte, w)}
	nodes := make([]node, w)
	pubs := make([][]byte, w)
	sigPubs := make([][]byte, w)
	// Key pairs for every node that will be non-blank, on all cores.
	parallel(int(w), func(i int) {
		x := NodeIndex(i)
		if !ft.hasMembers(x) || (!x.IsLeaf() && !ft.hasMembers(treemath.Right(x))) {
			return
		}
		priv, pub, err := s.DeriveKeyPair(seedFor(x, 'e'))
		if err != nil {
			panic(err)
		}
		ft.encPriv[x], pubs[x] = priv, pub
		if x.IsLeaf() {
			sigPubs[x] = ft.signer(x.Leaf()).Public().(ed25519.PublicKey)
		}
	})
	caps := message.Capabilities{
		Versions: []message.ProtocolVersion{message.MLS10}, CipherSuites: []ciphersuite.ID{s.ID()},
		Extensions: []message.ExtensionType{}, Proposals: []message.ProposalType{}, Credentials: []message.CredentialType{message.CredentialBasic},
	}
	sem := make(chan struct{}, 2*runtime.GOMAXPROCS(0))
	blankHash := func(x NodeIndex) []byte {
		var h func(NodeIndex) []byte
		h = func(x NodeIndex) []byte {
			if x.IsLeaf() {
				return leafHash(s, x.Leaf(), nil)
			}
			return parentHash(s, nil, h(treemath.Left(x)), h(treemath.Right(x)))
		}
		return h(x)
	}
	// build sets the subtree of x, whose parent_hash field must be ph, and
	// returns its tree hash. The subtrees hanging to the right of the left
	// spine do not depend on ph and are built concurrently.
	var build func(x NodeIndex, ph []byte) []byte
	build = func(x NodeIndex, ph []byte) []byte {
		var spine []NodeIndex
		for y := x; ; y = treemath.Left(y) {
			spine = append(spine, y)
			if y.IsLeaf() {
				break
			}
		}
		parents := spine[:len(spine)-1]
		rights := make([][]byte, len(parents))
		var wg sync.WaitGroup
		for k, y := range parents {
			r := treemath.Right(y)
			job := func() {
				if ft.hasMembers(r) {
					rights[k] = build(r, s.Hash(seedFor(r, 'p'))) // an earlier, stale link
				} else {
					rights[k] = blankHash(r)
				}
			}
			select {
			case sem <- struct{}{}:
				wg.Go(func() { job(); <-sem })
			default:
				job()
			}
		}
		wg.Wait()
		cur := ph
		for k, y := range parents {
			if !ft.hasMembers(treemath.Right(y)) {
				continue // blank: not on the filtered direct path
			}
			p := &message.ParentNode{EncryptionKey: pubs[y], ParentHash: cur, UnmergedLeaves: []uint32{}}
			nodes[y].parent = p
			cur = parentHashOf(s, p, rights[k])
		}
		l := spine[len(spine)-1]
		ln := &message.LeafNode{
			EncryptionKey: pubs[l], SignatureKey: sigPubs[l],
			Credential:   message.Credential{Type: message.CredentialBasic, Identity: fmt.Appendf(nil, "member %d", l.Leaf())},
			Capabilities: caps, Source: message.LeafNodeSourceCommit, ParentHash: cur, Extensions: []message.Extension{},
		}
		if err := ln.Sign(s, ft.signer(l.Leaf()), ft.groupID, uint32(l.Leaf())); err != nil {
			panic(err)
		}
		nodes[l].leaf = ln
		th := leafHash(s, l.Leaf(), ln)
		for k := len(parents) - 1; k >= 0; k-- {
			th = parentHash(s, nodes[parents[k]].parent, th, rights[k])
		}
		return th
	}
	root := treemath.Root(leaves)
	th := build(root, []byte{})
	last := int(w) - 1
	for nodes[last].blank() {
		last--
	}
	ft.rt = make(message.RatchetTree, last+1)
	for i := range ft.rt {
		switch {
		case nodes[i].leaf != nil:
			ft.rt[i] = &message.Node{Leaf: nodes[i].leaf}
		case nodes[i].parent != nil:
			ft.rt[i] = &message.Node{Parent: nodes[i].parent}
		}
	}
	t, err := FromRatchetTree(s, ft.rt)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(t.TreeHash(), th) {
		tb.Fatal("builder and tree disagree on the tree hash")
	}
	ft.t = t
	return ft
}

// privateState returns the private state of leaf i: its leaf key and the
// keys of the non-blank nodes on its direct path.
func (ft *fullTree) privateState(tb testing.TB, i LeafIndex) *PrivateState {
	p, err := NewPrivateState(ft.s, i, ft.encPriv[i.Node()])
	if err != nil {
		tb.Fatal(err)
	}
	for _, x := range treemath.DirectPath(i.Node(), ft.t.NumLeaves()) {
		if ft.encPriv[x] != nil {
			if p, err = p.WithNodeKey(x, ft.encPriv[x]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return p
}

func (ft *fullTree) opts() *PathOptions {
	return &PathOptions{Options: Options{GroupID: ft.groupID}}
}

// TestFullTreeBuilder checks the benchmark trees: valid, full, and usable
// by every member.
func TestFullTreeBuilder(t *testing.T) {
	for _, n := range []uint32{2, 3, 10, 33} {
		ft := getFullTree(t, n)
		if err := ft.t.Validate(ft.t.TreeHash(), &Options{GroupID: ft.groupID}); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		v := ft.t.View()
		if leafCount(v) != int(n) {
			t.Fatalf("n=%d: %d members", n, leafCount(v))
		}
		for x := NodeIndex(1); uint32(x) < v.Width(); x += 2 {
			if v.IsBlank(x) == (ft.hasMembers(treemath.Left(x)) && ft.hasMembers(treemath.Right(x))) {
				t.Fatalf("n=%d: node %d blank=%v", n, x, v.IsBlank(x))
			}
		}
		d := ft.t.Diff()
		c, err := d.CreatePath(0, ft.t.Leaf(0), ft.signer(0), ft.opts())
		if err != nil {
			t.Fatal(err)
		}
		gc := testGroupContext(d.TreeHash())
		up, err := c.Encrypt(gc)
		if err != nil {
			t.Fatal(err)
		}
		for j := LeafIndex(1); uint32(j) < n; j++ {
			p := ft.privateState(t, j)
			if err := p.Check(ft.t.View()); err != nil {
				t.Fatal(err)
			}
			a, err := ft.t.Diff().ApplyPath(0, up, ft.opts())
			if err != nil {
				t.Fatal(err)
			}
			r, err := a.Decrypt(p, gc)
			if err != nil {
				t.Fatalf("n=%d, leaf %d: %v", n, j, err)
			}
			if !bytes.Equal(r.CommitSecret(), c.CommitSecret()) {
				t.Fatalf("n=%d, leaf %d: commit secret differs", n, j)
			}
		}
	}
}

var benchSizes = []uint32{10, 100, 1000, 10000, 100000}

func forSizes(b *testing.B, f func(b *testing.B, ft *fullTree)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if n > 10000 && testing.Short() {
				b.Skip("N=100000 skipped in -short mode")
			}
			ft := getFullTree(b, n)
			b.ResetTimer()
			f(b, ft)
		})
	}
}

// BenchmarkCreateUpdatePath: leaf 0 of a full tree creates a commit path:
// key derivation, parent hashes, leaf signature, tree hash, and one
// encryption per copath node (in parallel).
func BenchmarkCreateUpdatePath(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) {
		signer := ft.signer(0)
		for b.Loop() {
			d := ft.t.Diff()
			c, err := d.CreatePath(0, ft.t.Leaf(0), signer, ft.opts())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Encrypt(testGroupContext(d.TreeHash())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// applyBench measures a receiver at leaf r processing leaf 0's path:
// leaf validation (signature), path checks, parent hashes, merging into a
// diff, the new tree hash, decryption and key derivation.
func applyBench(b *testing.B, ft *fullTree, r LeafIndex) {
	d := ft.t.Diff()
	c, err := d.CreatePath(0, ft.t.Leaf(0), ft.signer(0), ft.opts())
	if err != nil {
		b.Fatal(err)
	}
	up, err := c.Encrypt(testGroupContext(d.TreeHash()))
	if err != nil {
		b.Fatal(err)
	}
	priv := ft.privateState(b, r)
	b.ResetTimer()
	for b.Loop() {
		d := ft.t.Diff()
		a, err := d.ApplyPath(0, up, ft.opts())
		if err != nil {
			b.Fatal(err)
		}
		res, err := a.Decrypt(priv, testGroupContext(d.TreeHash()))
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(res.CommitSecret(), c.CommitSecret()) {
			b.Fatal("commit secret differs")
		}
	}
}

// BenchmarkApplyUpdatePath: the last member (in the other half of the
// tree, like half of all receivers) processes leaf 0's path.
func BenchmarkApplyUpdatePath(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) { applyBench(b, ft, LeafIndex(ft.n-1)) })
}

// BenchmarkApplyUpdatePathNearest: leaf 1, the sender's sibling, which
// derives the key of every node on the path (the worst case).
func BenchmarkApplyUpdatePathNearest(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) { applyBench(b, ft, 1) })
}

// BenchmarkValidateTree: a joiner imports the (decoded) ratchet tree,
// computing every tree hash, and validates it: parent hashes, unmerged
// leaves, key uniqueness and every leaf signature on all cores.
func BenchmarkValidateTree(b *testing.B) {
	forSizes(b, func(b *testing.B, ft *fullTree) {
		want := ft.t.TreeHash()
		for b.Loop() {
			t, err := FromRatchetTree(ft.s, ft.rt)
			if err != nil {
				b.Fatal(err)
			}
			if err := t.Validate(want, &Options{GroupID: ft.groupID}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
