package tree

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
)

// TestTreeKEMAllSuites runs a small group through commits with paths,
// adds, removes and adds without a path in every suite.
func TestTreeKEMAllSuites(t *testing.T) {
	for _, id := range ciphersuite.All() {
		t.Run(id.String(), func(t *testing.T) {
			g := growTree(t, id, 5, uint64(id))
			g.commit(4, 2, 1)
			g.addWithoutPath(2)
			g.commit(6, 0, 3)
			g.commit(0, 1)
			if err := g.t.Validate(g.t.TreeHash(), &Options{GroupID: g.groupID}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// pathFixture is a group of six with an UpdatePath from leaf 0.
type pathFixture struct {
	g      *sim
	c      *CreatedPath
	gc     []byte
	raw    []byte
	before []byte
}

func newPathFixture(t testing.TB) *pathFixture {
	g := growTree(t, suite1, 6, 21)
	d := g.t.Diff()
	c, err := d.CreatePath(0, d.Leaf(0), g.members[0].signer, g.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	gc := testGroupContext(d.TreeHash())
	up, err := c.Encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	return &pathFixture{g: g, c: c, gc: gc, raw: message.MustMarshal(up), before: message.MustMarshal(g.t.RatchetTree())}
}

func (f *pathFixture) path(t *testing.T) *message.UpdatePath {
	var up message.UpdatePath
	if err := message.Unmarshal(f.raw, &up); err != nil {
		t.Fatal(err)
	}
	return &up
}

// resignLeaf re-signs the path's leaf after f changed it.
func (f *pathFixture) resignLeaf(t *testing.T, up *message.UpdatePath, change func(*message.LeafNode)) {
	change(&up.LeafNode)
	if err := up.LeafNode.Sign(f.g.s, f.g.members[0].signer, f.g.groupID, 0); err != nil {
		t.Fatal(err)
	}
}

func TestApplyPathRejects(t *testing.T) {
	f := newPathFixture(t)
	if n := len(f.path(t).Nodes); n != 3 {
		t.Fatalf("path of %d nodes, want 3", n)
	}
	for _, c := range []struct {
		name   string
		sender LeafIndex
		change func(up *message.UpdatePath)
		rule   error
	}{
		{"missing node", 0, func(up *message.UpdatePath) { up.Nodes = up.Nodes[:2] }, ErrUpdatePath},
		{"extra ciphertext", 0, func(up *message.UpdatePath) {
			up.Nodes[1].EncryptedPathSecret = append(up.Nodes[1].EncryptedPathSecret, up.Nodes[1].EncryptedPathSecret[0])
		}, ErrUpdatePath},
		{"key already in the tree", 0, func(up *message.UpdatePath) {
			up.Nodes[1].EncryptionKey = f.g.t.Leaf(3).EncryptionKey
		}, ErrDuplicateEncryptionKey},
		{"key repeated in the path", 0, func(up *message.UpdatePath) { up.Nodes[2].EncryptionKey = up.Nodes[0].EncryptionKey }, ErrDuplicateEncryptionKey},
		{"node key replaced", 0, func(up *message.UpdatePath) {
			kp, _, _ := f.g.keyPackageLeaf()
			up.Nodes[2].EncryptionKey = kp.EncryptionKey
		}, ErrParentHash},
		{"leaf parent hash", 0, func(up *message.UpdatePath) {
			f.resignLeaf(t, up, func(l *message.LeafNode) { l.ParentHash = append([]byte{1}, l.ParentHash[1:]...) })
		}, ErrParentHash},
		{"leaf signature", 0, func(up *message.UpdatePath) { up.LeafNode.Signature[1] ^= 1 }, ErrLeafSignature},
		{"leaf signed by another position", 1, func(up *message.UpdatePath) {}, ErrDuplicateSignatureKey},
		{"leaf source", 0, func(up *message.UpdatePath) {
			f.resignLeaf(t, up, func(l *message.LeafNode) { l.Source, l.ParentHash = message.LeafNodeSourceUpdate, nil })
		}, ErrLeafSource},
		{"old encryption key", 0, func(up *message.UpdatePath) {
			f.resignLeaf(t, up, func(l *message.LeafNode) { l.EncryptionKey = f.g.t.Leaf(0).EncryptionKey })
		}, ErrSameEncryptionKey},
		{"sender outside the tree", 8, func(up *message.UpdatePath) {}, ErrBlankLeaf},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := f.path(t)
			c.change(up)
			d := f.g.t.Diff()
			hash := d.TreeHash()
			_, err := d.ApplyPath(c.sender, up, f.g.opts(nil))
			wantRule(t, c.name, err, c.rule, noNode)
			if !bytes.Equal(d.TreeHash(), hash) || !bytes.Equal(message.MustMarshal(d.RatchetTree()), f.before) {
				t.Error("a rejected path changed the diff")
			}
		})
	}
	if !bytes.Equal(message.MustMarshal(f.g.t.RatchetTree()), f.before) {
		t.Error("the tree changed")
	}
}

func TestDecryptRejects(t *testing.T) {
	f := newPathFixture(t)
	apply := func() *AppliedPath {
		d := f.g.t.Diff()
		a, err := d.ApplyPath(0, f.path(t), f.g.opts(nil))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := apply()
	if _, err := a.Decrypt(f.g.members[3].priv, f.gc); err != nil {
		t.Fatalf("valid path: %v", err)
	}
	_, err := a.Decrypt(f.g.members[3].priv, testGroupContext([]byte("another tree")))
	wantRule(t, "wrong group context", err, ErrPathSecret, 3)
	if !errors.Is(err, ciphersuite.ErrDecrypt) {
		t.Errorf("wrong group context: %v does not wrap ErrDecrypt", err)
	}
	_, err = a.Decrypt(f.g.members[0].priv, f.gc)
	wantRule(t, "receiver is the sender", err, ErrPathSecret, 0)

	// Leaf 5 without its node keys: the root's secret is encrypted to
	// node 9 only, whose key it does not hold.
	priv, _, _ := f.g.s.GenerateKeyPair(testRand(98))
	bare, err := NewPrivateState(f.g.s, 5, priv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Decrypt(bare, f.gc)
	wantRule(t, "no key in the resolution", err, ErrPathSecret, 11)
}

// TestDerivedKeyMismatch: a sender that encrypts a path secret that does
// not lead to the public keys it sent is caught by the receivers that
// decrypt it (RFC 9420, Section 7.5, step 6).
func TestDerivedKeyMismatch(t *testing.T) {
	g := growTree(t, suite1, 6, 22)
	d := g.t.Diff()
	c, err := d.CreatePath(0, d.Leaf(0), g.members[0].signer, g.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	// The root's secret goes to leaves 4 and 5 only.
	c.secrets[len(c.secrets)-1] = bytes.Repeat([]byte{9}, 32)
	gc := testGroupContext(d.TreeHash())
	up, err := c.Encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	for j, want := range map[LeafIndex]error{1: nil, 2: nil, 4: ErrPathSecret, 5: ErrPathSecret} {
		dj := g.t.Diff()
		a, err := dj.ApplyPath(0, up, g.opts(nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Decrypt(g.members[j].priv, gc)
		if want == nil && err != nil {
			t.Errorf("leaf %d: %v", j, err)
		}
		if want != nil {
			wantRule(t, fmt.Sprintf("leaf %d", j), err, want, 7)
		}
	}
}

func TestJoinPrivateState(t *testing.T) {
	g := growTree(t, suite1, 3, 23)
	d := g.t.Diff()
	kp, _, encPriv := g.keyPackageLeaf()
	i, err := d.Add(kp)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.CreatePath(1, d.Leaf(1), g.members[1].signer, g.opts([]LeafIndex{i}))
	if err != nil {
		t.Fatal(err)
	}
	secret, at, ok := c.PathSecret(i)
	if !ok || at != 3 {
		t.Fatalf("path secret for leaf %d at node %d, %v; want node 3", i, at, ok)
	}
	p, err := d.JoinPrivateState(i, encPriv, 1, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Nodes(); len(got) != 1 || got[0] != 3 {
		t.Errorf("joiner holds keys for %v, want [3]", got)
	}
	if err := p.Check(d); err != nil {
		t.Error(err)
	}
	wrong := append([]byte(nil), secret...)
	wrong[0] ^= 1
	_, err = d.JoinPrivateState(i, encPriv, 1, wrong)
	wantRule(t, "wrong path secret", err, ErrPathSecret, 3)
	otherPriv, _, _ := g.s.GenerateKeyPair(testRand(99))
	_, err = d.JoinPrivateState(i, otherPriv, 1, secret)
	wantRule(t, "wrong leaf key", err, ErrPrivateState, i.Node())
}

// TestPrivateStatePrune: keys of nodes that an Update blanked are dropped;
// the old state no longer fits the staged tree.
func TestPrivateStatePrune(t *testing.T) {
	g := growTree(t, suite1, 4, 24)
	p := g.members[1].priv
	if got := p.Nodes(); len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("leaf 1 holds keys for %v, want [1 3]", got)
	}
	d := g.t.Diff()
	kp, _, _ := g.keyPackageLeaf()
	if err := d.Update(0, kp); err != nil {
		t.Fatal(err)
	}
	wantRule(t, "stale state", p.Check(d), ErrPrivateState, 1)
	q := p.Prune(d)
	if len(q.Nodes()) != 0 {
		t.Errorf("after pruning, keys for %v remain", q.Nodes())
	}
	if err := q.Check(d); err != nil {
		t.Error(err)
	}
	if len(p.Nodes()) != 2 {
		t.Error("Prune changed the original state")
	}
	if s := fmt.Sprint(p); bytes.Contains([]byte(s), p.own.priv) || !bytes.Contains([]byte(s), []byte("2 node keys")) {
		t.Errorf("String: %q", s)
	}
}

// TestCreatePathDeterministic: the leaf secret comes from PathOptions.Rand,
// so the same randomness gives the same keys.
func TestCreatePathDeterministic(t *testing.T) {
	keys := func() [][]byte {
		g := growTree(t, suite1, 4, 25)
		d := g.t.Diff()
		c, err := d.CreatePath(2, d.Leaf(2), g.members[2].signer, &PathOptions{Options: Options{GroupID: g.groupID}, Rand: testRand(7)})
		if err != nil {
			t.Fatal(err)
		}
		out := [][]byte{c.Leaf().EncryptionKey, c.CommitSecret()}
		return append(out, c.pubs...)
	}
	a, b := keys(), keys()
	if len(a) != 4 {
		t.Fatalf("%d keys, want leaf, commit secret and 2 nodes", len(a))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Errorf("value %d differs between runs with the same randomness", i)
		}
	}
}

// TestExternalJoinPath: a joiner takes a reserved blank leaf and commits a
// path from it (RFC 9420, Section 12.4.3.2).
func TestExternalJoinPath(t *testing.T) {
	g := growTree(t, suite1, 4, 26)
	kp, signer, _ := g.keyPackageLeaf()
	d := g.t.Diff()
	i, err := d.ReserveLeaf()
	if err != nil {
		t.Fatal(err)
	}
	if i != 4 || d.NumLeaves() != 8 {
		t.Fatalf("reserved leaf %d of %d", i, d.NumLeaves())
	}
	c, err := d.CreatePath(i, kp, signer, g.opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	gc := testGroupContext(d.TreeHash())
	up, err := c.Encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	for j := range LeafIndex(4) {
		dj := g.t.Diff()
		if k, err := dj.ReserveLeaf(); err != nil || k != i {
			t.Fatalf("receiver reserved %d, %v", k, err)
		}
		a, err := dj.ApplyPath(i, up, g.opts(nil))
		if err != nil {
			t.Fatalf("leaf %d: %v", j, err)
		}
		r, err := a.Decrypt(g.members[j].priv, gc)
		if err != nil {
			t.Fatalf("leaf %d: %v", j, err)
		}
		if !bytes.Equal(r.CommitSecret(), c.CommitSecret()) {
			t.Errorf("leaf %d: commit secret differs", j)
		}
	}
	if err := d.Merge(); err != nil {
		t.Fatal(err)
	}
	if err := g.t.Validate(g.t.TreeHash(), &Options{GroupID: g.groupID}); err != nil {
		t.Fatal(err)
	}
}
