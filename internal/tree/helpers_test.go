package tree

import (
	"bytes"
	"crypto"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
)

// testRand returns a deterministic randomness source.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return rand.NewChaCha8(s)
}

func mustSuite(tb testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	tb.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// member is one simulated client.
type member struct {
	signer crypto.Signer
	priv   *PrivateState
}

// sim is a small group driven through the tree API only: adds, removes,
// updates and commits with UpdatePaths, every member processing every
// commit. It checks that all members agree after each commit.
type sim struct {
	tb      testing.TB
	s       *ciphersuite.Suite
	t       *Tree
	rnd     io.Reader
	groupID []byte
	members map[LeafIndex]*member
	names   int
}

func newSim(tb testing.TB, id ciphersuite.ID, seed uint64) *sim {
	tb.Helper()
	g := &sim{tb: tb, s: mustSuite(tb, id), rnd: testRand(seed), groupID: []byte("group"), members: map[LeafIndex]*member{}}
	ln, signer, encPriv := g.keyPackageLeaf()
	g.t = New(g.s, ln)
	p, err := NewPrivateState(g.s, 0, encPriv)
	if err != nil {
		tb.Fatal(err)
	}
	g.members[0] = &member{signer: signer, priv: p}
	return g
}

func (g *sim) capabilities() message.Capabilities {
	return message.Capabilities{
		Versions:     []message.ProtocolVersion{message.MLS10},
		CipherSuites: []ciphersuite.ID{g.s.ID()},
		Extensions:   []message.ExtensionType{},
		Proposals:    []message.ProposalType{},
		Credentials:  []message.CredentialType{message.CredentialBasic},
	}
}

// keyPackageLeaf makes a signed LeafNode with source key_package for a new
// client.
func (g *sim) keyPackageLeaf() (*message.LeafNode, crypto.Signer, []byte) {
	g.tb.Helper()
	signer, err := g.s.GenerateSignatureKey(g.rnd)
	if err != nil {
		g.tb.Fatal(err)
	}
	sigPub, err := g.s.SignaturePublicKey(signer)
	if err != nil {
		g.tb.Fatal(err)
	}
	encPriv, encPub, err := g.s.GenerateKeyPair(g.rnd)
	if err != nil {
		g.tb.Fatal(err)
	}
	g.names++
	ln := &message.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    message.Credential{Type: message.CredentialBasic, Identity: fmt.Appendf(nil, "member-%d", g.names)},
		Capabilities:  g.capabilities(),
		Source:        message.LeafNodeSourceKeyPackage,
		Lifetime:      message.Lifetime{NotBefore: 0, NotAfter: ^uint64(0)},
		Extensions:    []message.Extension{},
	}
	if err := ln.Sign(g.s, signer, nil, 0); err != nil {
		g.tb.Fatal(err)
	}
	return ln, signer, encPriv
}

func (g *sim) opts(exclude []LeafIndex) *PathOptions {
	return &PathOptions{Options: Options{GroupID: g.groupID}, Exclude: exclude, Rand: g.rnd}
}

func testGroupContext(treeHash []byte) []byte { return append([]byte("group context "), treeHash...) }

// commit has sender commit adding adds new members and removing the given
// leaves, with an UpdatePath; every member processes it, new members join
// from the path secret, and the diff is merged.
func (g *sim) commit(sender LeafIndex, adds int, removes ...LeafIndex) {
	g.tb.Helper()
	d := g.t.Diff()
	for _, r := range removes {
		if err := d.Remove(r); err != nil {
			g.tb.Fatal(err)
		}
	}
	var added []LeafIndex
	newMembers := map[LeafIndex]*member{}
	encPrivs := map[LeafIndex][]byte{}
	for range adds {
		ln, signer, encPriv := g.keyPackageLeaf()
		i, err := d.Add(ln)
		if err != nil {
			g.tb.Fatal(err)
		}
		added = append(added, i)
		newMembers[i] = &member{signer: signer}
		encPrivs[i] = encPriv
	}
	// Every receiver stages its own copy of the same proposals.
	m := g.members[sender]
	c, err := d.CreatePath(sender, d.Leaf(sender), m.signer, g.opts(added))
	if err != nil {
		g.tb.Fatal(err)
	}
	th := d.TreeHash()
	gc := testGroupContext(th)
	up, err := c.Encrypt(gc)
	if err != nil {
		g.tb.Fatal(err)
	}
	raw := message.MustMarshal(up)
	for j, mj := range g.members {
		if j == sender || contains(removes, j) {
			continue
		}
		dj := g.t.Diff()
		for _, r := range removes {
			if err := dj.Remove(r); err != nil {
				g.tb.Fatal(err)
			}
		}
		for _, i := range added {
			if _, err := dj.Add(d.Leaf(i)); err != nil {
				g.tb.Fatal(err)
			}
		}
		var in message.UpdatePath
		if err := message.Unmarshal(raw, &in); err != nil {
			g.tb.Fatal(err)
		}
		a, err := dj.ApplyPath(sender, &in, g.opts(added))
		if err != nil {
			g.tb.Fatalf("leaf %d applying the path of %d: %v", j, sender, err)
		}
		if !bytes.Equal(dj.TreeHash(), th) {
			g.tb.Fatalf("leaf %d: tree hash differs from the sender's", j)
		}
		res, err := a.Decrypt(mj.priv, gc)
		if err != nil {
			g.tb.Fatalf("leaf %d decrypting the path of %d: %v", j, sender, err)
		}
		if !bytes.Equal(res.CommitSecret(), c.CommitSecret()) {
			g.tb.Fatalf("leaf %d: commit secret differs from the sender's", j)
		}
		mj.priv = res.PrivateState()
		if err := mj.priv.Check(dj); err != nil {
			g.tb.Fatalf("leaf %d: %v", j, err)
		}
	}
	for _, r := range removes {
		delete(g.members, r)
	}
	m.priv = c.PrivateState()
	for i, nm := range newMembers {
		secret, _, ok := c.PathSecret(i)
		if !ok {
			g.tb.Fatalf("no path secret for new member %d", i)
		}
		p, err := d.JoinPrivateState(i, encPrivs[i], sender, secret)
		if err != nil {
			g.tb.Fatalf("new member %d: %v", i, err)
		}
		nm.priv = p
		g.members[i] = nm
	}
	if err := d.Merge(); err != nil {
		g.tb.Fatal(err)
	}
	for i, mi := range g.members {
		if err := mi.priv.Check(g.t.View()); err != nil {
			g.tb.Fatalf("member %d after merge: %v", i, err)
		}
	}
}

// growTree builds get_tree(n) of the vector README: leaf i commits adding
// leaf i+1, for i = 0 .. n-2.
func growTree(tb testing.TB, id ciphersuite.ID, n int, seed uint64) *sim {
	g := newSim(tb, id, seed)
	for i := 0; i+1 < n; i++ {
		g.commit(LeafIndex(i), 1)
	}
	return g
}

// rebuilt returns the tree exported and imported again, so every cache is
// computed from scratch.
func rebuilt(tb testing.TB, d *Diff) *Tree {
	tb.Helper()
	var rt message.RatchetTree
	if err := message.Unmarshal(message.MustMarshal(d.RatchetTree()), &rt); err != nil {
		tb.Fatal(err)
	}
	t, err := FromRatchetTree(d.Suite(), rt)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// leafCount counts non-blank leaves.
func leafCount(d *Diff) int {
	n := 0
	for i := range LeafIndex(d.NumLeaves()) {
		if d.Leaf(i) != nil {
			n++
		}
	}
	return n
}

// addWithoutPath commits adds new members without an UpdatePath, leaving
// them unmerged at the non-blank parents above them.
func (g *sim) addWithoutPath(n int) []LeafIndex {
	g.tb.Helper()
	d := g.t.Diff()
	var added []LeafIndex
	for range n {
		ln, signer, encPriv := g.keyPackageLeaf()
		if err := d.ValidateLeaf(ln, 0, message.LeafNodeSourceKeyPackage, &Options{GroupID: g.groupID}); err != nil {
			g.tb.Fatal(err)
		}
		i, err := d.Add(ln)
		if err != nil {
			g.tb.Fatal(err)
		}
		p, err := d.JoinPrivateState(i, encPriv, 0, nil)
		if err != nil {
			g.tb.Fatal(err)
		}
		g.members[i] = &member{signer: signer, priv: p}
		added = append(added, i)
	}
	if err := d.Merge(); err != nil {
		g.tb.Fatal(err)
	}
	return added
}
