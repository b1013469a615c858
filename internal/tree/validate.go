package tree

import (
	"bytes"
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// Options are the group parameters and policies leaf node validation
// (RFC 9420, Section 7.3) needs.
type Options struct {
	// GroupID is the group's ID, part of the signed content of leaves
	// with source update or commit.
	GroupID []byte
	// Now is the time lifetimes are checked against; the zero value means
	// time.Now(). Recorded traffic such as the official test vectors needs
	// a fixed time, since its lifetimes have expired.
	Now time.Time
	// SkipLifetime turns the lifetime check off. RFC 9420, Section 7.3 only
	// recommends it for LeafNodes a client receives.
	SkipLifetime bool
	// MaxLifetime, if non-zero, is the longest not_before..not_after span
	// accepted (RFC 9420, Section 7.2 asks applications to set one).
	MaxLifetime time.Duration
	// RequiredCapabilities is the group's required_capabilities extension
	// (RFC 9420, Section 11.1), if any.
	RequiredCapabilities *message.RequiredCapabilities
	// Credential, if set, validates a leaf's credential (RFC 9420, Section
	// 5.3.1); an error rejects the leaf with ErrCredential. Tree.Validate
	// calls it from several goroutines at once.
	Credential func(c *message.Credential, signatureKey []byte) error
	// Leaf, if set, is a further check of a leaf's capabilities that the
	// group's GroupContext demands (such as the components of
	// draft-ietf-mls-extensions); an error rejects the leaf with
	// ErrCapabilities. Tree.Validate calls it from several goroutines.
	Leaf func(ln *message.LeafNode) error
	// Signatures, if set, are the leaf signature checks started on the
	// tree's nodes before it was built (VerifyLeafSignatures with GroupID):
	// Tree.Validate uses their results instead of checking again. A leaf
	// they did not cover is checked by Validate.
	Signatures *LeafSignatures
}

func (o *Options) now() time.Time {
	if o == nil || o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// ValidateLeaf validates a LeafNode about to enter the tree at leaf at
// (RFC 9420, Section 7.3): its source is src, its signature verifies, its
// lifetime (source key_package) covers the validation time, its
// capabilities hold the protocol version, the required capabilities, its own credential type and every credential type in use,
// every member supports its credential type, its extensions are listed in
// its capabilities, and its encryption and signature keys are new to the
// tree.
//
// For src key_package (an Add), at is where the leaf will go; no leaf is
// replaced. For src update and commit the leaf replaces the occupant of at
// (possibly blank, for an external commit): its signature key may stay, its
// encryption key must change.
func (d *Diff) ValidateLeaf(ln *message.LeafNode, at LeafIndex, src message.LeafNodeSource, opts *Options) error {
	if ln.Source != src {
		return fail(ErrLeafSource, "7.3", at.Node(), "leaf_node_source is %d, want %d", ln.Source, src)
	}
	replace := src != message.LeafNodeSourceKeyPackage
	if err := d.checkLeaf(ln, at, replace, opts); err != nil {
		return err
	}
	if err := d.checkLeafKeys(ln, at, replace); err != nil {
		return err
	}
	return checkLeafSignature(d.base.suite, ln, at, opts)
}

// checkLeaf runs the checks of RFC 9420, Section 7.3 that need neither the
// signature nor the key indexes. If replace is set, the current occupant
// of at does not count as another member. It only reads the diff.
func (d *Diff) checkLeaf(ln *message.LeafNode, at LeafIndex, replace bool, opts *Options) error {
	x := at.Node()
	caps := &ln.Capabilities
	if !contains(caps.Versions, message.MLS10) {
		return fail(ErrCapabilities, "7.2", x, "capabilities lack protocol version mls10")
	}
	if !contains(caps.Credentials, ln.Credential.Type) {
		return fail(ErrCredentialUnsupported, "7.2", x, "credential type %d not in the leaf's own capabilities", ln.Credential.Type)
	}
	for _, e := range ln.Extensions {
		if !defaultExtension(e.Type) && !contains(caps.Extensions, e.Type) {
			return fail(ErrExtensionUnsupported, "7.3", x, "extension type 0x%04x not in capabilities", uint16(e.Type))
		}
	}
	if rc := optsRequired(opts); rc != nil {
		for _, e := range rc.Extensions {
			if !defaultExtension(e) && !message.Supports(caps.Extensions, e) {
				return fail(ErrCapabilities, "11.1", x, "required extension type 0x%04x not supported", uint16(e))
			}
		}
		for _, p := range rc.Proposals {
			if !defaultProposal(p) && !message.Supports(caps.Proposals, p) {
				return fail(ErrCapabilities, "11.1", x, "required proposal type 0x%04x not supported", uint16(p))
			}
		}
		for _, c := range rc.Credentials {
			if !message.Supports(caps.Credentials, c) {
				return fail(ErrCapabilities, "11.1", x, "required credential type 0x%04x not supported", uint16(c))
			}
		}
	}
	if opts != nil && opts.Leaf != nil {
		if err := opts.Leaf(ln); err != nil {
			return failErr(ErrCapabilities, "11.1", x, err, "")
		}
	}
	// Credential types: every other member supports ours, and we support
	// every type another member uses (RFC 9420, Section 7.3).
	ci := d.capIdx()
	var old *message.LeafNode
	if replace {
		old = d.Leaf(at)
	}
	others := ci.members
	supporters := ci.supported[ln.Credential.Type]
	if old != nil {
		others--
		if contains(old.Capabilities.Credentials, ln.Credential.Type) {
			supporters--
		}
	}
	if supporters < others {
		return fail(ErrCredentialUnsupported, "7.3", x, "credential type %d is not supported by %d other members", ln.Credential.Type, others-supporters)
	}
	for t, n := range ci.used {
		if old != nil && old.Credential.Type == t {
			n--
		}
		if n > 0 && !contains(caps.Credentials, t) {
			return fail(ErrCredentialUnsupported, "7.3", x, "leaf does not support credential type %d used by other members", t)
		}
	}
	if ln.Source == message.LeafNodeSourceKeyPackage && (opts == nil || !opts.SkipLifetime) {
		lt := ln.Lifetime
		now := opts.now().Unix()
		if now < 0 || uint64(now) < lt.NotBefore || uint64(now) > lt.NotAfter {
			return fail(ErrLifetime, "7.3", x, "validation time %d outside lifetime [%d, %d]", now, lt.NotBefore, lt.NotAfter)
		}
		if opts != nil && opts.MaxLifetime > 0 && lt.NotAfter-lt.NotBefore > uint64(opts.MaxLifetime/time.Second) {
			return fail(ErrLifetime, "7.2", x, "lifetime of %d seconds exceeds the maximum of %v", lt.NotAfter-lt.NotBefore, opts.MaxLifetime)
		}
	}
	if opts != nil && opts.Credential != nil {
		if err := opts.Credential(&ln.Credential, ln.SignatureKey); err != nil {
			return failErr(ErrCredential, "5.3.1", x, err, "")
		}
	}
	return nil
}

// checkLeafKeys checks that ln's encryption and signature keys are not
// used by another node (RFC 9420, Section 7.3), and for a replacing leaf
// that the encryption key changed (Sections 12.1.2 and 12.4.2).
func (d *Diff) checkLeafKeys(ln *message.LeafNode, at LeafIndex, replace bool) error {
	x := at.Node()
	if y, ok := d.FindEncryptionKey(ln.EncryptionKey); ok {
		if replace && y == x {
			return fail(ErrSameEncryptionKey, "7.3", x, "the new leaf keeps the encryption key it replaces")
		}
		return fail(ErrDuplicateEncryptionKey, "7.3", x, "encryption key already used by %s", nodeName(y))
	}
	if l, ok := d.FindSignatureKey(ln.SignatureKey); ok && !(replace && l == at) {
		return fail(ErrDuplicateSignatureKey, "7.3", x, "signature key already used by leaf %d", l)
	}
	return nil
}

func checkLeafSignature(s *ciphersuite.Suite, ln *message.LeafNode, at LeafIndex, opts *Options) error {
	var groupID []byte
	if opts != nil {
		groupID = opts.GroupID
	}
	if err := ln.VerifySignature(s, groupID, uint32(at)); err != nil {
		return failErr(ErrLeafSignature, "7.3", at.Node(), err, "")
	}
	return nil
}

func optsRequired(o *Options) *message.RequiredCapabilities {
	if o == nil {
		return nil
	}
	return o.RequiredCapabilities
}

// defaultExtension reports the extension types RFC 9420, Section 7.2 says
// every client supports without listing them.
func defaultExtension(t message.ExtensionType) bool { return t >= 1 && t <= 5 }

// defaultProposal reports the proposal types of RFC 9420, Section 7.2 that
// every client supports without listing them.
func defaultProposal(t message.ProposalType) bool { return t >= 1 && t <= 7 }

// Validate checks a received tree as a joiner must (RFC 9420, Section
// 12.4.3.1): the root tree hash equals treeHash (skipped if treeHash is
// nil), encryption and signature keys are unique, every unmerged_leaves
// list is consistent, every non-blank parent node is parent-hash valid
// (Section 7.9.2), and every leaf passes leaf node validation (Section 7.3)
// with opts. Leaf signatures are verified in parallel on all cores. The
// cost is linear in the size of the tree.
func (t *Tree) Validate(treeHash []byte, opts *Options) error {
	if treeHash != nil {
		if got := t.hashOf(treemath.Root(t.nLeaves)); !bytes.Equal(got, treeHash) {
			return fail(ErrTreeHash, "12.4.3.1", noNode, "tree hash %x, want %x", got, treeHash)
		}
	}
	if err := t.duplicateKey(); err != nil {
		return err
	}
	v := t.View()
	if err := v.verifyUnmerged(); err != nil {
		return err
	}
	if err := v.verifyParentHashes(); err != nil {
		return err
	}
	return v.verifyLeaves(opts)
}

// verifyUnmerged checks every unmerged_leaves list (RFC 9420, Sections 7.1
// and 12.4.3.1): sorted without repeats, each entry a non-blank leaf below
// the node, and listed by every non-blank node in between.
func (d *Diff) verifyUnmerged() error {
	w := NodeIndex(d.Width())
	for x := NodeIndex(1); x < w; x += 2 {
		p := d.at(x).parent
		if p == nil {
			continue
		}
		first, count := leafRange(x)
		for k, u := range p.UnmergedLeaves {
			if k > 0 && u <= p.UnmergedLeaves[k-1] {
				return fail(ErrUnmergedLeaves, "7.1", x, "unmerged_leaves not in strictly increasing order")
			}
			if u < first || u-first >= count {
				return fail(ErrUnmergedLeaves, "12.4.3.1", x, "unmerged leaf %d is not below the node", u)
			}
			if d.at(LeafIndex(u).Node()).leaf == nil {
				return fail(ErrUnmergedLeaves, "12.4.3.1", x, "unmerged leaf %d is blank", u)
			}
		}
	}
	// Each entry must also be listed by the next non-blank node below on
	// the way to the leaf; by induction, by every non-blank node between.
	for x := NodeIndex(1); x < w; x += 2 {
		p := d.at(x).parent
		if p == nil {
			continue
		}
		for _, u := range p.UnmergedLeaves {
			target := LeafIndex(u).Node()
			y := towards(x, target)
			for y != target && d.at(y).blank() {
				y = towards(y, target)
			}
			if y == target {
				continue
			}
			if _, ok := slices.BinarySearch(d.at(y).parent.UnmergedLeaves, u); !ok {
				return fail(ErrUnmergedLeaves, "12.4.3.1", x, "unmerged leaf %d is not unmerged at node %d below", u, y)
			}
		}
	}
	return nil
}

// towards returns the child of the parent node p on the way to its
// descendant y.
func towards(p, y NodeIndex) NodeIndex {
	if y < p {
		return treemath.Left(p)
	}
	return treemath.Right(p)
}

// verifyParentHashes checks that every non-blank parent node is parent-hash
// valid (RFC 9420, Section 7.9.2), top down: exactly one descendant's
// parent_hash must be valid with respect to it. Only a node whose nearest
// non-blank ancestor is P can be: every node between it and P must be blank
// for it to be in the resolution of P's child with nothing but P's unmerged
// leaves beside it. So each non-blank node is tried against one parent, and
// the check is linear in the tree (plus the unmerged leaves).
//
// It relies on verifyUnmerged having passed.
func (d *Diff) verifyParentHashes() error {
	// Links are counted for the non-blank parents only, so that the memory
	// follows the nodes present and not the width.
	links := make(map[NodeIndex]uint8)
	root := treemath.Root(d.nLeaves)
	type frame struct{ x, anc NodeIndex }
	stack := []frame{{root, noNode}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := d.at(f.x)
		anc := f.anc
		if !n.blank() {
			if anc != noNode {
				var ph []byte
				linked := false
				if n.parent != nil {
					ph, linked = n.parent.ParentHash, true
				} else if src, h, ok := message.LeafNodeParentHash(n.leaf); ok && src == message.LeafNodeSourceCommit {
					ph, linked = h, true
				}
				if linked && d.linksTo(f.x, ph, anc) && links[anc] < 2 {
					links[anc]++
				}
			}
			anc = f.x
		}
		if !f.x.IsLeaf() {
			stack = append(stack, frame{treemath.Right(f.x), anc}, frame{treemath.Left(f.x), anc})
		}
	}
	w := d.Width()
	for x := NodeIndex(1); uint32(x) < w; x += 2 {
		if d.at(x).parent == nil {
			continue
		}
		switch links[x] {
		case 0:
			return fail(ErrParentHash, "7.9.2", x, "no descendant's parent_hash links to the node")
		case 1:
		default:
			return fail(ErrParentHash, "7.9.2", x, "more than one descendant's parent_hash links to the node")
		}
	}
	return nil
}

// linksTo reports whether the parent hash ph of node c is valid with
// respect to its nearest non-blank ancestor p (RFC 9420, Section 7.9.2).
func (d *Diff) linksTo(c NodeIndex, ph []byte, p NodeIndex) bool {
	pn := d.at(p).parent
	child := towards(p, c)
	sibling := treemath.Left(p)
	if child == sibling {
		sibling = treemath.Right(p)
	}
	// The resolution of child must be c plus exactly P's unmerged leaves
	// below child. c is in it (everything between is blank), and the
	// unmerged leaves are (verifyUnmerged), so counting suffices.
	first, count := leafRange(child)
	n := uint32(0)
	for _, u := range pn.UnmergedLeaves {
		if c.IsLeaf() && u == uint32(c.Leaf()) {
			return false
		}
		if u >= first && u-first < count {
			n++
		}
	}
	if d.resLen(child) != n+1 {
		return false
	}
	want := parentHashOf(d.base.suite, pn, d.originalSiblingHash(sibling, pn.UnmergedLeaves))
	return bytes.Equal(ph, want)
}

// verifyLeaves validates every non-blank leaf (RFC 9420, Section 7.3) on
// GOMAXPROCS workers and returns the error of the lowest failing leaf.
// With signatures checked in the background (opts.Signatures), the other
// checks of every leaf run while those are still busy, and only then are
// their results collected, so that no core idles after the last signature.
func (d *Diff) verifyLeaves(opts *Options) error {
	var bg *LeafSignatures
	if opts != nil && opts.Signatures != nil && bytes.Equal(opts.Signatures.groupID, opts.GroupID) {
		bg = opts.Signatures
	}
	lowest, err := d.checkLeaves(opts, bg)
	if bg == nil {
		return err
	}
	// Every leaf bg checked below its lowest failure passed. A leaf's other
	// checks precede its signature.
	sigLowest, sigErr, ok := bg.result()
	var scratch []byte
	switch {
	case ok && sigLowest >= lowest:
		return err
	case ok && sigLowest < d.nLeaves && bg.covers(LeafIndex(sigLowest), d.at(LeafIndex(sigLowest).Node()).leaf, &scratch):
		return sigErr
	}
	// Stopped before finishing, or failed at a leaf that is not this
	// tree's (so the leaves above it are unchecked): check every signature
	// here.
	_, err = d.checkLeaves(opts, nil)
	return err
}

// checkLeaves validates every non-blank leaf on GOMAXPROCS workers, except
// the signatures that bg checks, and returns the lowest failing leaf (^0 if
// none) and its error.
func (d *Diff) checkLeaves(opts *Options, bg *LeafSignatures) (uint32, error) {
	n := d.nLeaves
	const chunk = 64
	workers := runtime.GOMAXPROCS(0)
	if chunks := int((n + chunk - 1) / chunk); workers > chunks {
		workers = chunks
	}
	var (
		next    atomic.Uint32
		failed  atomic.Uint32 // lowest failing leaf + 1, 0 if none yet
		mu      sync.Mutex
		lowest  = ^uint32(0)
		lowErr  error
		wg      sync.WaitGroup
		suite   = d.base.suite
		recordF = func(i uint32, err error) {
			mu.Lock()
			defer mu.Unlock()
			if i < lowest {
				lowest, lowErr = i, err
				failed.Store(i + 1)
			}
		}
	)
	for range workers {
		wg.Go(func() {
			var scratch []byte
			for {
				start := next.Add(chunk) - chunk
				if start >= n {
					return
				}
				if f := failed.Load(); f != 0 && start >= f-1 {
					return
				}
				end := min(start+chunk, n)
				for i := start; i < end; i++ {
					at := LeafIndex(i)
					ln := d.node(at.Node()).leaf
					if ln == nil {
						continue
					}
					err := d.checkLeaf(ln, at, true, opts)
					if err == nil && (bg == nil || !bg.covers(at, d.at(at.Node()).leaf, &scratch)) {
						err = checkLeafSignature(suite, ln, at, opts)
					}
					if err != nil {
						recordF(i, err)
						break
					}
				}
			}
		})
	}
	wg.Wait()
	return lowest, lowErr
}

// duplicateKey returns the first duplicate encryption or signature key. The
// one found when the tree was built is remembered; a tree changed since is
// scanned again.
func (t *Tree) duplicateKey() error {
	if t.gen == 0 {
		if t.dup != nil {
			return t.dup
		}
		return nil
	}
	enc := make(map[string]NodeIndex, t.enc.len())
	sig := make(map[string]LeafIndex, t.sig.len())
	order := make([]NodeIndex, 0, len(t.idx))
	for x, p := range t.idx {
		if !t.nodes[p].blank() {
			order = append(order, x)
		}
	}
	slices.Sort(order)
	for _, x := range order {
		n := t.at(x)
		if y, ok := enc[string(n.encryptionKey())]; ok {
			return fail(ErrDuplicateEncryptionKey, "12.4.3.1", x, "same encryption key as %s", nodeName(y))
		}
		enc[string(n.encryptionKey())] = x
		if n.leaf != nil {
			if l, ok := sig[string(n.signatureKey())]; ok {
				return fail(ErrDuplicateSignatureKey, "7.3", x, "same signature key as leaf %d", l)
			}
			sig[string(n.signatureKey())] = x.Leaf()
		}
	}
	return nil
}

// LeafSignatures verifies the signatures of the leaves of a received
// ratchet tree (RFC 9420, Section 7.3) on GOMAXPROCS goroutines in the
// background, so that a joiner's N signature checks, most of the cost of
// joining, overlap with building, hashing and validating the tree. Pass it
// to Validate in Options.Signatures; call Stop when done with it (Stop
// ends the goroutines early if the tree turned out invalid otherwise).
type LeafSignatures struct {
	groupID []byte
	leaves  []indexedLeaf // the non-blank leaves, in increasing order
	done    chan struct{}
	stop    atomic.Bool
	next    atomic.Uint32
	failed  atomic.Uint32 // lowest failing leaf + 1, 0 if none yet
	mu      sync.Mutex
	lowest  uint32 // lowest failing leaf, ^0 if none
	err     error
	stopped bool // Stop was called before the checks finished
}

// VerifyLeafSignatures starts checking the signature of every leaf of rt,
// a tree of the group groupID (the leaves of source update and commit sign
// it with their index).
func VerifyLeafSignatures(s *ciphersuite.Suite, rt *message.SparseRatchetTree, groupID []byte) *LeafSignatures {
	// Only the non-blank leaves are listed, so that the memory follows
	// the nodes present and not the width of a tree padded with blanks.
	ls := &LeafSignatures{groupID: groupID, leaves: make([]indexedLeaf, 0, len(rt.Nodes)/2+1), done: make(chan struct{}), lowest: ^uint32(0)}
	for _, in := range rt.Nodes {
		if in.Index%2 == 0 && in.Node != nil && in.Node.Leaf != nil {
			ls.leaves = append(ls.leaves, indexedLeaf{LeafIndex(in.Index / 2), in.Node.Leaf})
		}
	}
	n := uint32(len(ls.leaves))
	opts := &Options{GroupID: groupID}
	const chunk = 64
	workers := min(runtime.GOMAXPROCS(0), int((n+chunk-1)/chunk))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !ls.stop.Load() {
				start := ls.next.Add(chunk) - chunk
				if start >= n {
					return
				}
				if f := ls.failed.Load(); f != 0 && uint32(ls.leaves[start].at) >= f-1 {
					return
				}
				for _, l := range ls.leaves[start:min(start+chunk, n)] {
					if err := checkLeafSignature(s, l.leaf, l.at, opts); err != nil {
						ls.record(uint32(l.at), err)
						break
					}
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(ls.done)
	}()
	return ls
}

func (ls *LeafSignatures) record(i uint32, err error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if i < ls.lowest {
		ls.lowest, ls.err = i, err
		ls.failed.Store(i + 1)
	}
}

// Stop ends the checks and waits for the goroutines to return. A nil
// LeafSignatures is allowed.
func (ls *LeafSignatures) Stop() {
	if ls == nil {
		return
	}
	select {
	case <-ls.done:
		return
	default:
	}
	ls.stop.Store(true)
	<-ls.done
	ls.mu.Lock()
	ls.stopped = true
	ls.mu.Unlock()
}

// result waits for the checks and returns the lowest failing leaf (^0 if
// none) with its error; ok is false if they were stopped before finishing.
func (ls *LeafSignatures) result() (lowest uint32, err error, ok bool) {
	<-ls.done
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.lowest, ls.err, !ls.stopped
}

// indexedLeaf is a leaf with its index.
type indexedLeaf struct {
	at   LeafIndex
	leaf *message.LeafNode
}

// covers reports whether the checks were of the leaf encoded as enc at
// leaf i (the tree keeps leaves encoded; scratch is for encoding the one
// checked).
func (ls *LeafSignatures) covers(i LeafIndex, enc []byte, scratch *[]byte) bool {
	k, found := slices.BinarySearchFunc(ls.leaves, i, func(l indexedLeaf, i LeafIndex) int { return cmp.Compare(l.at, i) })
	return found && bytes.Equal(encodeLeaf(ls.leaves[k].leaf, scratch), enc)
}
