package tree

import (
	"crypto"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// Full is a full ratchet tree of n members built directly, for tests and
// benchmarks: the tree a group reaches when every member, from leaf n-1
// down to leaf 0, has committed once with an UpdatePath (RFC 9420,
// Section 7.5). Every parent node with members on both sides is
// non-blank, no node has unmerged leaves, every leaf is signed with
// source commit and every parent-hash chain verifies (Section 7.9.2).
//
// Keys follow TreeKEM (Section 7.4): the key pair of a parent node is
// derived from its path secret, and the path secrets of the parents set
// by one commit form the chain path_secret[n] = DeriveSecret(
// path_secret[n-1], "path") along the committer's filtered direct path.
// The committer that last set parent P is the leftmost leaf below P, so
// every member can hold the private key of every parent on its direct
// path, as in the grown tree. Leaf keys and signature keys come from a
// seeded generator: a Full is deterministic for a given seed, and the
// keys are not secret.
//
// Building costs O(n) key derivations and signatures and O(n) hashes,
// spread over all cores; grown through commits the same tree costs
// O(n^2) signature checks.
type Full struct {
	suite   *ciphersuite.Suite
	groupID []byte
	n       uint32
	seed    uint64
	tree    *Tree
	leafKey [][]byte // HPKE private key of each leaf
	secrets [][]byte // path secret of each parent, indexed by x/2
	signers []crypto.Signer
}

// BuildFull builds the full tree of n >= 1 members of group groupID in
// suite s; see Full.
func BuildFull(s *ciphersuite.Suite, groupID []byte, n uint32, seed uint64) (*Full, error) {
	if n == 0 || n > MaxLeaves {
		return nil, fmt.Errorf("tree: BuildFull: %d members, want 1 to %d", n, MaxLeaves)
	}
	leaves := uint32(1)
	for leaves < n {
		leaves *= 2
	}
	w := treemath.NodeWidth(leaves)
	f := &Full{suite: s, groupID: clone(groupID), n: n, seed: seed,
		leafKey: make([][]byte, n), secrets: make([][]byte, w/2), signers: make([]crypto.Signer, n)}
	root := treemath.Root(leaves)
	// set reports whether parent x is non-blank: members on both sides.
	set := func(x NodeIndex) bool { return f.hasMembers(treemath.Right(x)) }

	// Path secrets: leaf i is the leftmost leaf of its ancestors up to
	// level tz(i) (every level for leaf 0), and the last committer of
	// those that are set.
	parallel(int(n), func(i int) {
		top := uint(bits.TrailingZeros32(uint32(i)))
		if i == 0 {
			top = treemath.Level(root)
		}
		var ps []byte
		x := LeafIndex(i).Node()
		for k := uint(1); k <= top; k++ {
			x = treemath.Parent(x, leaves)
			if !set(x) {
				continue
			}
			if ps == nil {
				ps = f.derive(x, 'p')
			} else {
				ps = s.DeriveSecret(ps, "path")
			}
			f.secrets[x/2] = ps
		}
	})

	// Key pairs of every non-blank node, and the signature keys.
	pubs := make([][]byte, w)
	sigPubs := make([][]byte, n)
	var firstErr error
	var errMu sync.Mutex
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	parallel(int(w), func(i int) {
		x := NodeIndex(i)
		switch {
		case x.IsLeaf() && uint32(x.Leaf()) < n:
			priv, pub, err := s.DeriveKeyPair(f.derive(x, 'e'))
			if err != nil {
				fail(err)
				return
			}
			f.leafKey[x.Leaf()], pubs[x] = priv, pub
			signer, err := s.GenerateSignatureKey(f.rand(x, 's'))
			if err != nil {
				fail(err)
				return
			}
			sp, err := s.SignaturePublicKey(signer)
			if err != nil {
				fail(err)
				return
			}
			f.signers[x.Leaf()], sigPubs[x.Leaf()] = signer, sp
		case !x.IsLeaf() && f.secrets[x/2] != nil:
			kp, err := nodeKeyPair(s, f.secrets[x/2])
			if err != nil {
				fail(err)
				return
			}
			pubs[x] = kp.pub
		}
	})
	if firstErr != nil {
		return nil, firstErr
	}

	caps := message.Capabilities{
		Versions: []message.ProtocolVersion{message.MLS10}, CipherSuites: []ciphersuite.ID{s.ID()},
		Extensions: []message.ExtensionType{}, Proposals: []message.ProposalType{}, Credentials: []message.CredentialType{message.CredentialBasic},
	}
	nodes := make([]node, w)
	sem := make(chan struct{}, 4)
	var blankHash func(x NodeIndex) []byte
	blankHash = func(x NodeIndex) []byte {
		if x.IsLeaf() {
			return leafHash(s, x.Leaf(), nil)
		}
		return parentHash(s, nil, blankHash(treemath.Left(x)), blankHash(treemath.Right(x)))
	}
	// build sets the subtree of x, whose top parent_hash field must be ph,
	// and returns its tree hash. The subtrees to the right of its left
	// spine were set by earlier commits whose link upwards was replaced
	// since (their parent_hash is stale, as Section 7.9.2 allows); they do
	// not depend on ph and are built concurrently.
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
				if f.hasMembers(r) {
					rights[k] = build(r, s.Hash(f.derive(r, 'h')))
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
			if !set(y) {
				continue // blank: not on the filtered direct path
			}
			p := &message.ParentNode{EncryptionKey: pubs[y], ParentHash: cur, UnmergedLeaves: []uint32{}}
			nodes[y].parent = p
			cur = parentHashOf(s, p, rights[k])
		}
		l := spine[len(spine)-1]
		ln := &message.LeafNode{
			EncryptionKey: pubs[l], SignatureKey: sigPubs[l.Leaf()],
			Credential:   message.Credential{Type: message.CredentialBasic, Identity: MemberIdentity(l.Leaf())},
			Capabilities: caps, Source: message.LeafNodeSourceCommit, ParentHash: cur, Extensions: []message.Extension{},
		}
		if err := ln.Sign(s, f.signers[l.Leaf()], f.groupID, uint32(l.Leaf())); err != nil {
			fail(err)
		}
		nodes[l].leaf = ln
		th := leafHash(s, l.Leaf(), ln)
		for k := len(parents) - 1; k >= 0; k-- {
			th = parentHash(s, nodes[parents[k]].parent, th, rights[k])
		}
		return th
	}
	th := build(root, []byte{})
	if firstErr != nil {
		return nil, firstErr
	}
	last := int(w) - 1
	for nodes[last].blank() {
		last--
	}
	sp := &message.SparseRatchetTree{Width: uint32(last + 1)}
	for i := 0; i <= last; i++ {
		switch {
		case nodes[i].leaf != nil:
			sp.Nodes = append(sp.Nodes, message.IndexedNode{Index: uint32(i), Node: &message.Node{Leaf: nodes[i].leaf}})
		case nodes[i].parent != nil:
			sp.Nodes = append(sp.Nodes, message.IndexedNode{Index: uint32(i), Node: &message.Node{Parent: nodes[i].parent}})
		}
	}
	t, err := FromSparse(s, sp, MaxLeaves)
	if err != nil {
		return nil, err
	}
	if got := t.hashOf(root); string(got) != string(th) {
		return nil, fmt.Errorf("tree: BuildFull: builder and tree disagree on the tree hash")
	}
	f.tree = t
	return f, nil
}

// MemberIdentity is the basic credential identity of the member at leaf i
// of a Full tree.
func MemberIdentity(i LeafIndex) []byte { return fmt.Appendf(nil, "member %d", i) }

// derive returns a 32-byte value for node x and purpose what, from the
// seed.
func (f *Full) derive(x NodeIndex, what byte) []byte {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:], f.seed)
	binary.BigEndian.PutUint32(b[8:], uint32(x))
	b[12] = what
	return f.suite.Hash(b[:])
}

// rand returns a generator seeded for node x and purpose what.
func (f *Full) rand(x NodeIndex, what byte) *rand.ChaCha8 {
	return rand.NewChaCha8([32]byte(f.derive(x, what)[:32]))
}

// hasMembers reports whether the subtree of x holds a member.
func (f *Full) hasMembers(x NodeIndex) bool {
	first, _ := leafRange(x)
	return first < f.n
}

// Tree returns the tree. It is shared: change it only through a Diff.
func (f *Full) Tree() *Tree { return f.tree }

// Members returns the number of members, n.
func (f *Full) Members() uint32 { return f.n }

// GroupID returns the group ID the leaves are signed for.
func (f *Full) GroupID() []byte { return clone(f.groupID) }

// Suite returns the tree's suite.
func (f *Full) Suite() *ciphersuite.Suite { return f.suite }

// Signer returns the signature key of the member at leaf i.
func (f *Full) Signer(i LeafIndex) crypto.Signer { return f.signers[i] }

// LeafPrivateKey returns the HPKE private key of leaf i.
func (f *Full) LeafPrivateKey(i LeafIndex) []byte { return clone(f.leafKey[i]) }

// PathSecret returns the path secret of parent x, nil if x is blank.
func (f *Full) PathSecret(x NodeIndex) []byte {
	if x.IsLeaf() || int(x/2) >= len(f.secrets) {
		return nil
	}
	return clone(f.secrets[x/2])
}

// PrivateState returns the private state of the member at leaf i: its
// leaf key and the keys of every parent on its direct path, derived from
// their path secrets (RFC 9420, Section 7.4).
func (f *Full) PrivateState(i LeafIndex) (*PrivateState, error) {
	if uint32(i) >= f.n {
		return nil, fmt.Errorf("tree: leaf %d of a tree of %d members", i, f.n)
	}
	p, err := NewPrivateState(f.suite, i, f.leafKey[i])
	if err != nil {
		return nil, err
	}
	for _, x := range treemath.DirectPath(i.Node(), f.tree.NumLeaves()) {
		if ps := f.secrets[x/2]; ps != nil {
			kp, err := nodeKeyPair(f.suite, ps)
			if err != nil {
				return nil, err
			}
			p.nodes[x] = kp
		}
	}
	return p, nil
}
