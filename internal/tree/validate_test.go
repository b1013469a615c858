package tree

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
	"time"

	"github.com/mlskit/mls/internal/message"
)

// unmergedTree is get_tree(7) of the vector README plus a member added
// without a path: leaf 7 is unmerged at nodes 11 and 7.
func unmergedTree(t testing.TB) *sim {
	t.Helper()
	g := growTree(t, suite1, 7, 11)
	g.addWithoutPath(1)
	v := g.t.View()
	if u := v.Parent(11).UnmergedLeaves; len(u) != 1 || u[0] != 7 {
		t.Fatalf("node 11 unmerged leaves %v, want [7]", u)
	}
	if u := v.Parent(7).UnmergedLeaves; len(u) != 1 || u[0] != 7 {
		t.Fatalf("node 7 unmerged leaves %v, want [7]", u)
	}
	return g
}

// tamper exports the tree, lets f change a deep copy of it, and imports
// the result.
func tamper(t *testing.T, g *sim, f func(rt message.RatchetTree) message.RatchetTree) *Tree {
	t.Helper()
	var rt message.RatchetTree
	if err := message.Unmarshal(message.MustMarshal(g.t.RatchetTree()), &rt); err != nil {
		t.Fatal(err)
	}
	rt = f(rt)
	tr, err := FromRatchetTree(g.s, rt)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// wantRule checks that err is an *Error for rule at node x.
func wantRule(t *testing.T, what string, err, rule error, x NodeIndex) {
	t.Helper()
	if !errors.Is(err, rule) {
		t.Errorf("%s: got %v, want %v", what, err, rule)
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("%s: %T is not a *tree.Error", what, err)
		return
	}
	if x != noNode && e.Node != x {
		t.Errorf("%s: error names %s, want %s: %v", what, nodeName(e.Node), nodeName(x), err)
	}
}

func TestValidateTree(t *testing.T) {
	g := unmergedTree(t)
	opts := &Options{GroupID: g.groupID}
	if err := g.t.Validate(g.t.TreeHash(), opts); err != nil {
		t.Fatalf("valid tree: %v", err)
	}
	// A fresh import of the same tree validates too.
	fresh := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree { return rt })
	if err := fresh.Validate(g.t.TreeHash(), opts); err != nil {
		t.Fatalf("imported tree: %v", err)
	}

	t.Run("TreeHash", func(t *testing.T) {
		wrong := g.t.TreeHash()
		wrong[0] ^= 1
		wantRule(t, "wrong tree hash", g.t.Validate(wrong, opts), ErrTreeHash, noNode)
	})
	t.Run("LeafSignature", func(t *testing.T) {
		// Leaf 5 made the last path, so no parent hash covers its leaf.
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[10].Leaf.Signature[3] ^= 1
			return rt
		})
		wantRule(t, "bad signature", tr.Validate(nil, opts), ErrLeafSignature, 10)
		wantRule(t, "wrong group", g.t.Validate(nil, &Options{GroupID: []byte("other")}), ErrLeafSignature, noNode)
	})
	t.Run("ParentHashField", func(t *testing.T) {
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[9].Parent.ParentHash[0] ^= 1
			return rt
		})
		wantRule(t, "parent_hash changed", tr.Validate(nil, opts), ErrParentHash, noNode)
	})
	t.Run("ParentKey", func(t *testing.T) {
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[11].Parent.EncryptionKey = bytes.Repeat([]byte{7}, 32)
			return rt
		})
		wantRule(t, "encryption key changed", tr.Validate(nil, opts), ErrParentHash, noNode)
	})
	t.Run("MergedLeafClaimedUnmerged", func(t *testing.T) {
		// Leaf 6 was merged at node 11 by leaf 5's path; listing it as
		// unmerged at 11 and 7 is consistent, but breaks 11's parent hash.
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[11].Parent.UnmergedLeaves = []uint32{6, 7}
			rt[7].Parent.UnmergedLeaves = []uint32{6, 7}
			return rt
		})
		wantRule(t, "merged leaf listed as unmerged", tr.Validate(nil, opts), ErrParentHash, 11)
	})
	t.Run("UnmergedBelowOnly", func(t *testing.T) {
		// Leaf 7 unmerged at node 11 but not at node 7: the lists are
		// consistent and 11's parent hash still matches, but the
		// resolution of 11 is not 11 plus 7's unmerged leaves, so 11 and 7
		// were not set by the same path.
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[7].Parent.UnmergedLeaves = []uint32{}
			return rt
		})
		wantRule(t, "unmerged only below", tr.Validate(nil, opts), ErrParentHash, 7)
	})
	t.Run("DuplicateEncryptionKey", func(t *testing.T) {
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[4].Leaf.EncryptionKey = rt[6].Leaf.EncryptionKey
			return rt
		})
		wantRule(t, "two leaves", tr.Validate(nil, opts), ErrDuplicateEncryptionKey, 6)
		tr = tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[1].Parent.EncryptionKey = rt[12].Leaf.EncryptionKey
			return rt
		})
		wantRule(t, "parent and leaf", tr.Validate(nil, opts), ErrDuplicateEncryptionKey, 12)
	})
	t.Run("DuplicateSignatureKey", func(t *testing.T) {
		tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree {
			rt[4].Leaf.SignatureKey = rt[6].Leaf.SignatureKey
			return rt
		})
		wantRule(t, "two leaves", tr.Validate(nil, opts), ErrDuplicateSignatureKey, 6)
	})
	t.Run("UnmergedLeaves", func(t *testing.T) {
		for _, c := range []struct {
			name string
			f    func(rt message.RatchetTree)
			at   NodeIndex
		}{
			{"repeated", func(rt message.RatchetTree) { rt[7].Parent.UnmergedLeaves = []uint32{7, 7} }, 7},
			{"unsorted", func(rt message.RatchetTree) {
				rt[7].Parent.UnmergedLeaves = []uint32{7, 6}
				rt[11].Parent.UnmergedLeaves = []uint32{6, 7}
			}, 7},
			{"not a descendant", func(rt message.RatchetTree) { rt[3].Parent.UnmergedLeaves = []uint32{7} }, 3},
			{"missing below", func(rt message.RatchetTree) { rt[11].Parent.UnmergedLeaves = []uint32{} }, 7},
			{"blank leaf", func(rt message.RatchetTree) {
				rt[1].Parent.UnmergedLeaves = []uint32{1}
				rt[2] = nil
			}, 1},
		} {
			tr := tamper(t, g, func(rt message.RatchetTree) message.RatchetTree { c.f(rt); return rt })
			wantRule(t, c.name, tr.Validate(nil, opts), ErrUnmergedLeaves, c.at)
		}
	})
	t.Run("ValidAfterCommits", func(t *testing.T) {
		// Later commits merge leaf 7 and the tree stays valid.
		g.commit(7, 1)
		if err := g.t.Validate(g.t.TreeHash(), opts); err != nil {
			t.Fatal(err)
		}
		g.commit(2, 0, 7)
		if err := g.t.Validate(g.t.TreeHash(), opts); err != nil {
			t.Fatal(err)
		}
	})
}

// resign re-signs a copy of ln after f changed it.
func resign(t *testing.T, g *sim, ln *message.LeafNode, signer crypto.Signer, at LeafIndex, f func(*message.LeafNode)) *message.LeafNode {
	t.Helper()
	c := *ln
	c.Capabilities.Credentials = append([]message.CredentialType(nil), ln.Capabilities.Credentials...)
	f(&c)
	var groupID []byte
	if c.Source != message.LeafNodeSourceKeyPackage {
		groupID = g.groupID
	}
	if err := c.Sign(g.s, signer, groupID, uint32(at)); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestValidateLeaf(t *testing.T) {
	g := growTree(t, suite1, 3, 12)
	d := g.t.Diff()
	opts := &Options{GroupID: g.groupID}
	kp, signer, _ := g.keyPackageLeaf()
	const at = LeafIndex(3)
	x := at.Node()
	if err := d.ValidateLeaf(kp, at, message.LeafNodeSourceKeyPackage, opts); err != nil {
		t.Fatalf("valid key package leaf: %v", err)
	}
	mod := func(f func(*message.LeafNode)) *message.LeafNode { return resign(t, g, kp, signer, 0, f) }

	wantRule(t, "source", d.ValidateLeaf(kp, at, message.LeafNodeSourceUpdate, opts), ErrLeafSource, x)

	timed := mod(func(l *message.LeafNode) { l.Lifetime = message.Lifetime{NotBefore: 1000, NotAfter: 2000} })
	wantRule(t, "expired", d.ValidateLeaf(timed, at, message.LeafNodeSourceKeyPackage, &Options{Now: time.Unix(3000, 0)}), ErrLifetime, x)
	wantRule(t, "not yet valid", d.ValidateLeaf(timed, at, message.LeafNodeSourceKeyPackage, &Options{Now: time.Unix(999, 0)}), ErrLifetime, x)
	if err := d.ValidateLeaf(timed, at, message.LeafNodeSourceKeyPackage, &Options{Now: time.Unix(1500, 0)}); err != nil {
		t.Errorf("within lifetime: %v", err)
	}
	wantRule(t, "too long", d.ValidateLeaf(timed, at, message.LeafNodeSourceKeyPackage, &Options{Now: time.Unix(1500, 0), MaxLifetime: 999 * time.Second}), ErrLifetime, x)
	if err := d.ValidateLeaf(timed, at, message.LeafNodeSourceKeyPackage, &Options{Now: time.Unix(3000, 0), SkipLifetime: true}); err != nil {
		t.Errorf("lifetime check skipped: %v", err)
	}

	ext := mod(func(l *message.LeafNode) { l.Extensions = []message.Extension{{Type: 0x0a0a, Data: []byte{}}} })
	wantRule(t, "extension", d.ValidateLeaf(ext, at, message.LeafNodeSourceKeyPackage, opts), ErrExtensionUnsupported, x)
	ext = mod(func(l *message.LeafNode) {
		l.Extensions = []message.Extension{{Type: 0x0a0a, Data: []byte{}}, {Type: message.ExtensionApplicationID, Data: []byte{}}}
		l.Capabilities.Extensions = []message.ExtensionType{0x0a0a}
	})
	if err := d.ValidateLeaf(ext, at, message.LeafNodeSourceKeyPackage, opts); err != nil {
		t.Errorf("listed extension and default application_id: %v", err)
	}

	noVersion := mod(func(l *message.LeafNode) { l.Capabilities.Versions = []message.ProtocolVersion{} })
	wantRule(t, "version", d.ValidateLeaf(noVersion, at, message.LeafNodeSourceKeyPackage, opts), ErrCapabilities, x)

	for name, rc := range map[string]*message.RequiredCapabilities{
		"required extension":  {Extensions: []message.ExtensionType{0x0a0a}},
		"required proposal":   {Proposals: []message.ProposalType{0x0b0b}},
		"required credential": {Credentials: []message.CredentialType{message.CredentialX509}},
	} {
		wantRule(t, name, d.ValidateLeaf(kp, at, message.LeafNodeSourceKeyPackage, &Options{GroupID: g.groupID, RequiredCapabilities: rc}), ErrCapabilities, x)
	}
	if err := d.ValidateLeaf(kp, at, message.LeafNodeSourceKeyPackage, &Options{RequiredCapabilities: &message.RequiredCapabilities{
		Extensions: []message.ExtensionType{message.ExtensionExternalSenders}, Credentials: []message.CredentialType{message.CredentialBasic},
	}}); err != nil {
		t.Errorf("required capabilities that the leaf has: %v", err)
	}

	ownCred := mod(func(l *message.LeafNode) {
		l.Capabilities.Credentials = []message.CredentialType{message.CredentialX509}
	})
	wantRule(t, "own credential type", d.ValidateLeaf(ownCred, at, message.LeafNodeSourceKeyPackage, opts), ErrCredentialUnsupported, x)
	x509 := mod(func(l *message.LeafNode) {
		l.Credential = message.Credential{Type: message.CredentialX509, Certificates: [][]byte{{1}}}
		l.Capabilities.Credentials = []message.CredentialType{message.CredentialBasic, message.CredentialX509}
	})
	wantRule(t, "credential type others lack", d.ValidateLeaf(x509, at, message.LeafNodeSourceKeyPackage, opts), ErrCredentialUnsupported, x)

	dupEnc := mod(func(l *message.LeafNode) { l.EncryptionKey = d.Leaf(1).EncryptionKey })
	wantRule(t, "encryption key of leaf 1", d.ValidateLeaf(dupEnc, at, message.LeafNodeSourceKeyPackage, opts), ErrDuplicateEncryptionKey, x)
	dupParent := mod(func(l *message.LeafNode) { l.EncryptionKey = d.EncryptionKey(1) })
	wantRule(t, "encryption key of node 1", d.ValidateLeaf(dupParent, at, message.LeafNodeSourceKeyPackage, opts), ErrDuplicateEncryptionKey, x)
	dupSig := mod(func(l *message.LeafNode) { l.SignatureKey = d.Leaf(1).SignatureKey })
	wantRule(t, "signature key of leaf 1", d.ValidateLeaf(dupSig, at, message.LeafNodeSourceKeyPackage, opts), ErrDuplicateSignatureKey, x)

	badSig := mod(func(*message.LeafNode) {})
	badSig.Signature[0] ^= 1
	wantRule(t, "signature", d.ValidateLeaf(badSig, at, message.LeafNodeSourceKeyPackage, opts), ErrLeafSignature, x)

	hookErr := errors.New("unknown identity")
	err := d.ValidateLeaf(kp, at, message.LeafNodeSourceKeyPackage, &Options{Credential: func(c *message.Credential, key []byte) error {
		if !bytes.Equal(key, kp.SignatureKey) || c.Type != message.CredentialBasic {
			t.Error("validator called with the wrong credential")
		}
		return hookErr
	}})
	wantRule(t, "credential validator", err, ErrCredential, x)
	if !errors.Is(err, hookErr) {
		t.Errorf("credential validator error not wrapped: %v", err)
	}

	// Updates of leaf 1 by its own member.
	m1 := g.members[1]
	old := d.Leaf(1)
	fresh, _, _ := g.keyPackageLeaf()
	update := resign(t, g, old, m1.signer, 1, func(l *message.LeafNode) {
		l.Source = message.LeafNodeSourceUpdate
		l.Lifetime = message.Lifetime{}
		l.ParentHash = nil
		l.EncryptionKey = fresh.EncryptionKey
	})
	if err := d.ValidateLeaf(update, 1, message.LeafNodeSourceUpdate, opts); err != nil {
		t.Errorf("valid update keeping the signature key: %v", err)
	}
	wantRule(t, "update signed for another group", d.ValidateLeaf(update, 1, message.LeafNodeSourceUpdate, &Options{GroupID: []byte("x")}), ErrLeafSignature, 2)
	same := resign(t, g, old, m1.signer, 1, func(l *message.LeafNode) {
		l.Source = message.LeafNodeSourceUpdate
		l.Lifetime = message.Lifetime{}
		l.ParentHash = nil
	})
	wantRule(t, "update keeping the encryption key", d.ValidateLeaf(same, 1, message.LeafNodeSourceUpdate, opts), ErrSameEncryptionKey, 2)
	wantRule(t, "update with leaf 2's signature key", d.ValidateLeaf(update, 2, message.LeafNodeSourceUpdate, opts), ErrDuplicateSignatureKey, 4)
}

// TestValidateLeafCredentialInUse: a leaf whose credential type every
// member supports must itself support the types the members use.
func TestValidateLeafCredentialInUse(t *testing.T) {
	const custom = message.CredentialType(0xf0f0)
	mk := func(k byte, cred message.CredentialType, caps ...message.CredentialType) *message.Node {
		n := fakeLeaf(k)
		n.Leaf.Credential.Type = cred
		n.Leaf.Capabilities = message.Capabilities{Versions: []message.ProtocolVersion{message.MLS10}, Credentials: caps}
		return n
	}
	tr := mustTree(t, message.RatchetTree{mk(0, message.CredentialBasic, message.CredentialBasic, custom), nil, mk(1, message.CredentialBasic, message.CredentialBasic, custom)})
	d := tr.Diff()
	ln := mk(2, custom, custom).Leaf
	ln.Source = message.LeafNodeSourceKeyPackage
	wantRule(t, "basic in use", d.ValidateLeaf(ln, 2, message.LeafNodeSourceKeyPackage, &Options{SkipLifetime: true}), ErrCredentialUnsupported, 4)
	// With basic supported too, the capability checks pass and only the
	// (fake) signature fails.
	ln.Capabilities.Credentials = []message.CredentialType{custom, message.CredentialBasic}
	err := d.ValidateLeaf(ln, 2, message.LeafNodeSourceKeyPackage, &Options{SkipLifetime: true})
	wantRule(t, "both supported", err, ErrLeafSignature, 4)
}
