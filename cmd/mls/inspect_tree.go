package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/internal/treemath"
)

// keyPrefix is how many bytes of an encryption key the tree text shows.
const keyPrefix = 8

// treeView prints a ratchet tree as text, one line per node of the
// ratchet_tree vector (RFC 9420, Section 12.4.3.3):
//
//	node 0  leaf 0  key 3f9a1b2c04d5e6f7  identity "alice"
//	node 1  parent  key 77aa01de33445566  unmerged [2]
//	node 2  leaf 1  blank
type treeView struct{ rt message.RatchetTree }

func (v *treeView) write(out io.Writer) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	leaves := (len(v.rt) + 1) / 2
	fmt.Fprintf(w, "ratchet tree: %d nodes, %d leaves\n", len(v.rt), leaves)
	idxWidth := len(fmt.Sprint(len(v.rt)))
	leafWidth := len(fmt.Sprint(leaves))
	pad := func(b []byte, n int) []byte {
		for range n {
			b = append(b, ' ')
		}
		return b
	}
	var line []byte
	for i, n := range v.rt {
		// "node I  leaf L  " or "node I  parent  ", columns aligned.
		line = append(line[:0], "node "...)
		at := len(line)
		line = strconv.AppendInt(line, int64(i), 10)
		line = pad(line, idxWidth-(len(line)-at)+2)
		if i%2 == 0 {
			line = append(line, "leaf "...)
			at = len(line)
			line = strconv.AppendInt(line, int64(i/2), 10)
			line = pad(line, leafWidth-(len(line)-at)+2)
		} else {
			line = pad(append(line, "parent"...), leafWidth-1+2)
		}
		switch {
		case n == nil:
			line = append(line, "blank"...)
		case n.Leaf != nil:
			line = append(line, "key "+prefix(n.Leaf.EncryptionKey)+"  identity "+identity(&n.Leaf.Credential)...)
			if i%2 != 0 {
				line = append(line, "  (leaf node at a parent position)"...)
			}
		case n.Parent != nil:
			line = append(line, "key "+prefix(n.Parent.EncryptionKey)...)
			if len(n.Parent.UnmergedLeaves) > 0 {
				line = fmt.Appendf(line, "  unmerged %v", n.Parent.UnmergedLeaves)
			}
			if i%2 == 0 {
				line = append(line, "  (parent node at a leaf position)"...)
			}
		}
		w.Write(append(line, '\n'))
	}
}

func prefix(k []byte) string {
	if len(k) <= keyPrefix {
		return hex.EncodeToString(k)
	}
	return hex.EncodeToString(k[:keyPrefix]) + "…"
}

// identity names a leaf's credential: a basic identity quoted when
// printable and in hex otherwise, an X.509 leaf certificate's subject.
func identity(c *message.Credential) string {
	switch c.Type {
	case message.CredentialBasic:
		if s, ok := printable(c.Identity); ok {
			return fmt.Sprintf("%q", s)
		}
		return "0x" + hex.EncodeToString(c.Identity)
	case message.CredentialX509:
		if len(c.Certificates) == 0 {
			return "x509 (no certificate)"
		}
		if cert, err := x509.ParseCertificate(c.Certificates[0]); err == nil {
			return fmt.Sprintf("x509 %q", cert.Subject.String())
		}
		return "x509 (unparsable certificate)"
	}
	return "credential type " + enumName(c.Type, 4, credentialNames)
}

// verifyCheck is one verification step and its outcome.
type verifyCheck struct {
	name string
	err  error // nil: passed
	// extra JSON fields (computed and expected hashes).
	detail *obj
}

// verifyReport holds the checks of a GroupInfo against a ratchet tree.
type verifyReport struct{ checks []verifyCheck }

func (r *verifyReport) ok() bool {
	for _, c := range r.checks {
		if c.err != nil {
			return false
		}
	}
	return true
}

func (r *verifyReport) json() *obj {
	o := newObj()
	for _, c := range r.checks {
		co := newObj()
		if c.err == nil {
			co.add("ok", true)
		} else {
			co.add("ok", false).add("error", c.err.Error())
		}
		if c.detail != nil {
			co.merge(c.detail)
		}
		o.add(c.name, co)
	}
	return o
}

func (r *verifyReport) writeText(w io.Writer) {
	fmt.Fprintln(w)
	for _, c := range r.checks {
		if c.err == nil {
			fmt.Fprintf(w, "check %s: ok\n", c.name)
		} else {
			fmt.Fprintf(w, "check %s: FAILED: %v\n", c.name, c.err)
		}
	}
}

// verifyGroupInfo checks gi against the ratchet tree rt, as a joiner does
// (RFC 9420, Section 12.4.3.1), with the library's own tree and message
// code:
//   - tree_hash: the tree hash of rt (Section 7.8) equals
//     group_context.tree_hash;
//   - signature: the GroupInfo signature verifies with the signature key of
//     the signer's leaf (Section 12.4.3);
//   - tree: rt is a valid tree (parent hashes, unmerged leaves, unique keys,
//     leaf signatures and capabilities; Section 12.4.3.1), lifetimes aside,
//     since a recorded GroupInfo may be old.
//
// Each check runs even when another failed, so the report says which ones
// failed. A tree that cannot be built at all fails all three.
func verifyGroupInfo(gi *message.GroupInfo, rt message.RatchetTree) *verifyReport {
	r := &verifyReport{}
	names := []string{"tree_hash", "signature", "tree"}
	failAll := func(err error) *verifyReport {
		for _, n := range names {
			r.checks = append(r.checks, verifyCheck{name: n, err: err})
		}
		return r
	}
	suite, err := ciphersuite.Lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return failAll(fmt.Errorf("group_context.cipher_suite: %w", err))
	}
	t, err := tree.FromRatchetTree(suite, rt)
	if err != nil {
		return failAll(err)
	}

	got := t.TreeHash()
	c := verifyCheck{name: "tree_hash", detail: newObj().add("computed", hx(got)).add("expected", hx(gi.GroupContext.TreeHash))}
	if !bytes.Equal(got, gi.GroupContext.TreeHash) {
		c.err = fmt.Errorf("tree hash of the tree %x differs from group_context.tree_hash %x (RFC 9420, Section 7.8)", got, gi.GroupContext.TreeHash)
	}
	r.checks = append(r.checks, c)

	c = verifyCheck{name: "signature", detail: newObj().add("signer", gi.Signer)}
	if gi.Signer >= t.NumLeaves() || t.Leaf(treemath.LeafIndex(gi.Signer)) == nil {
		c.err = fmt.Errorf("signer %d is not a member: its leaf is blank or outside the tree of %d leaves", gi.Signer, t.NumLeaves())
	} else if err := gi.VerifySignature(suite, t.Leaf(treemath.LeafIndex(gi.Signer)).SignatureKey); err != nil {
		c.err = err
	}
	r.checks = append(r.checks, c)

	opts := &tree.Options{GroupID: gi.GroupContext.GroupID, SkipLifetime: true}
	var rc message.RequiredCapabilities
	if ok, err := message.ParseExtension(gi.GroupContext.Extensions, &rc); ok && err == nil {
		opts.RequiredCapabilities = &rc
	}
	c = verifyCheck{name: "tree"}
	if err := t.Validate(nil, opts); err != nil {
		c.err = err
	}
	r.checks = append(r.checks, c)
	return r
}
