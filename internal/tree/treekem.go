package tree

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/treemath"
)

// labelUpdatePathNode is the EncryptWithLabel label for path secrets
// (RFC 9420, Section 7.6).
const labelUpdatePathNode = "UpdatePathNode"

// PathOptions configure creating and processing an UpdatePath.
type PathOptions struct {
	// Options validate the UpdatePath's LeafNode; GroupID is also the
	// group_id the sender signs its new leaf with.
	Options
	// Exclude lists the leaves added by the same commit: path secrets are
	// not encrypted to them (RFC 9420, Sections 7.5 and 7.6).
	Exclude []LeafIndex
	// Rand is the source of the new leaf secret; nil means crypto/rand.
	// (HPKE encryption draws its ephemeral keys from crypto/rand.)
	Rand io.Reader
}

func (o *PathOptions) leafOptions() *Options {
	if o == nil {
		return nil
	}
	return &o.Options
}

func (o *PathOptions) exclude() []LeafIndex {
	if o == nil {
		return nil
	}
	return o.Exclude
}

// CreatedPath is an UpdatePath made by this member and applied to a Diff
// (RFC 9420, Sections 7.4 and 7.5). Encrypt it with the provisional
// GroupContext, which needs the tree hash of the Diff with the path in it.
type CreatedPath struct {
	d       *Diff
	sender  LeafIndex
	leaf    *message.LeafNode
	path    []NodeIndex
	pubs    [][]byte
	secrets [][]byte   // path_secret[k] for path[k]
	targets [][][]byte // public keys of the resolution of each copath child
	commit  []byte
	priv    *PrivateState
}

// CreatePath updates the direct path of sender in d (RFC 9420, Sections
// 7.4 and 7.5): it blanks the direct path, draws a leaf secret from
// opts.Rand, derives the path secrets of the filtered direct path, the
// node key pairs and the commit secret, sets the new public keys with
// their parent hashes (Section 7.9) and a new leaf with source commit made
// from template (its encryption key, source, parent hash and signature are
// set here), signed by signer with opts.GroupID.
//
// Add and Remove proposals of the commit must already be applied to d.
func (d *Diff) CreatePath(sender LeafIndex, template *message.LeafNode, signer crypto.Signer, opts *PathOptions) (*CreatedPath, error) {
	s := d.base.suite
	if uint64(sender) >= uint64(d.nLeaves) {
		return nil, fail(ErrBlankLeaf, "7.5", sender.Node(), "sender outside the tree")
	}
	if template == nil {
		return nil, fail(ErrLeafSource, "7.5", sender.Node(), "no leaf node template")
	}
	rnd := io.Reader(rand.Reader)
	if opts != nil && opts.Rand != nil {
		rnd = opts.Rand
	}
	leafSecret := make([]byte, s.HashSize())
	if _, err := io.ReadFull(rnd, leafSecret); err != nil {
		return nil, err
	}
	path, copath := d.filteredPath(sender)
	c := &CreatedPath{d: d, sender: sender, path: path}

	// path_secret[0] = DeriveSecret(leaf_secret, "path"), each next one
	// derived from the previous; the commit secret is the one after the
	// last (RFC 9420, Sections 7.4 and 12.4.1).
	secrets := make([][]byte, len(path)+1)
	prev := leafSecret
	for k := range secrets {
		prev = s.DeriveSecret(prev, "path")
		secrets[k] = prev
	}
	c.secrets, c.commit = secrets[:len(path)], secrets[len(path)]

	// The leaf's and the nodes' key pairs, derived in parallel.
	pairs := make([]keyPair, len(path)+1)
	errs := make([]error, len(path)+1)
	parallel(len(pairs), func(k int) {
		if k == len(path) {
			pairs[k], errs[k] = nodeKeyPair(s, leafSecret)
			return
		}
		pairs[k], errs[k] = nodeKeyPair(s, secrets[k])
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	c.pubs = make([][]byte, len(path))
	for k := range path {
		c.pubs[k] = pairs[k].pub
	}

	// Whom each path secret goes to, excluding the new members.
	c.targets = make([][][]byte, len(path))
	for k, cp := range copath {
		res := d.Resolution(cp, opts.exclude()...)
		keys := make([][]byte, len(res))
		for j, x := range res {
			keys[j] = d.EncryptionKey(x)
		}
		c.targets[k] = keys
	}

	parents, leafPH := d.pathParents(c.pubs, copath)
	leaf := *template
	leaf.EncryptionKey = pairs[len(path)].pub
	leaf.Source = message.LeafNodeSourceCommit
	leaf.Lifetime = message.Lifetime{}
	leaf.ParentHash = leafPH
	leaf.Signature = nil
	if err := d.checkLeaf(&leaf, sender, true, opts.leafOptions()); err != nil {
		return nil, err
	}
	var groupID []byte
	if opts != nil {
		groupID = opts.GroupID
	}
	if err := leaf.Sign(s, signer, groupID, uint32(sender)); err != nil {
		return nil, err
	}
	c.leaf = &leaf

	d.applyPath(sender, &leaf, path, parents)

	priv := &PrivateState{suite: s, leaf: sender, own: pairs[len(path)], nodes: make(map[NodeIndex]keyPair, len(path))}
	for k, x := range path {
		priv.nodes[x] = pairs[k]
	}
	c.priv = priv
	return c, nil
}

// pathParents builds the parent nodes of a filtered direct path with the
// given public keys and computes their parent hashes from the root down
// (RFC 9420, Section 7.9), returning them and the parent hash for the leaf.
// It reads the tree hashes of the copath children, which the path does not
// change.
func (d *Diff) pathParents(pubs [][]byte, copath []NodeIndex) ([]*message.ParentNode, []byte) {
	parents := make([]*message.ParentNode, len(pubs))
	ph := []byte{}
	for k := len(pubs) - 1; k >= 0; k-- {
		p := &message.ParentNode{EncryptionKey: pubs[k], ParentHash: ph, UnmergedLeaves: []uint32{}}
		parents[k] = p
		ph = parentHashOf(d.base.suite, p, d.hash(copath[k]))
	}
	return parents, ph
}

// applyPath merges a path into the tree (RFC 9420, Section 7.5): blank the
// direct path, set the filtered direct path nodes, set the leaf.
func (d *Diff) applyPath(sender LeafIndex, leaf *message.LeafNode, path []NodeIndex, parents []*message.ParentNode) {
	d.blankDirectPath(sender)
	for k, x := range path {
		d.set(x, node{parent: parents[k]})
	}
	d.set(sender.Node(), node{leaf: leaf})
}

// Sender returns the committer's leaf.
func (c *CreatedPath) Sender() LeafIndex { return c.sender }

// Leaf returns the committer's new LeafNode.
func (c *CreatedPath) Leaf() *message.LeafNode { return c.leaf }

// CommitSecret returns the commit secret (RFC 9420, Section 12.4.1).
func (c *CreatedPath) CommitSecret() []byte { return clone(c.commit) }

// PrivateState returns the committer's new private state: the new leaf key
// and the keys of its filtered direct path.
func (c *CreatedPath) PrivateState() *PrivateState { return c.priv.Clone() }

// PathSecret returns the path secret of the lowest node shared by the
// direct paths of the committer and leaf, for a new member's Welcome
// (RFC 9420, Section 12.4.3.1), and that node. ok is false if the node is
// not on the committer's filtered direct path.
func (c *CreatedPath) PathSecret(leaf LeafIndex) (secret []byte, at NodeIndex, ok bool) {
	lca := treemath.CommonAncestor(c.sender.Node(), leaf.Node())
	for k, x := range c.path {
		if x == lca {
			return clone(c.secrets[k]), x, true
		}
	}
	return nil, 0, false
}

// Encrypt returns the UpdatePath: the new leaf and, for each node of the
// filtered direct path, its public key and its path secret encrypted to
// every node of the copath child's resolution (RFC 9420, Section 7.6),
// with groupContext (the encoded provisional GroupContext) as context.
// The encryptions run in parallel.
func (c *CreatedPath) Encrypt(groupContext []byte) (*message.UpdatePath, error) {
	s := c.d.base.suite
	up := &message.UpdatePath{LeafNode: *c.leaf, Nodes: make([]message.UpdatePathNode, len(c.path))}
	type job struct{ k, j int }
	var jobs []job
	for k := range c.path {
		up.Nodes[k] = message.UpdatePathNode{EncryptionKey: c.pubs[k], EncryptedPathSecret: make([]message.HPKECiphertext, len(c.targets[k]))}
		for j := range c.targets[k] {
			jobs = append(jobs, job{k, j})
		}
	}
	errs := make([]error, len(jobs))
	parallel(len(jobs), func(i int) {
		k, j := jobs[i].k, jobs[i].j
		kem, ct, err := s.EncryptWithLabel(c.targets[k][j], labelUpdatePathNode, groupContext, c.secrets[k])
		up.Nodes[k].EncryptedPathSecret[j] = message.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		errs[i] = err
	})
	for i, err := range errs {
		if err != nil {
			return nil, failErr(ErrUpdatePath, "7.6", c.path[jobs[i].k], err, "encrypting the path secret")
		}
	}
	return up, nil
}

// AppliedPath is a received UpdatePath merged into a Diff, waiting for the
// provisional GroupContext to decrypt its path secret.
type AppliedPath struct {
	d       *Diff
	sender  LeafIndex
	path    []NodeIndex
	copath  []NodeIndex
	up      *message.UpdatePath
	exclude []LeafIndex
}

// ApplyPath validates the UpdatePath up sent by sender and merges it into
// d (RFC 9420, Sections 7.5, 7.6 and 12.4.2): the LeafNode passes leaf
// validation with source commit, the path has one node per node of the
// sender's filtered direct path with one ciphertext per member of the
// copath child's resolution (new members excluded), no public key of the
// path is in the tree already, and the leaf's parent_hash matches the
// parent hashes computed for the path. On error d is unchanged.
func (d *Diff) ApplyPath(sender LeafIndex, up *message.UpdatePath, opts *PathOptions) (*AppliedPath, error) {
	if uint64(sender) >= uint64(d.nLeaves) {
		return nil, fail(ErrBlankLeaf, "12.4.2", sender.Node(), "sender outside the tree")
	}
	if err := d.ValidateLeaf(&up.LeafNode, sender, message.LeafNodeSourceCommit, opts.leafOptions()); err != nil {
		return nil, err
	}
	path, copath := d.filteredPath(sender)
	if len(up.Nodes) != len(path) {
		return nil, fail(ErrUpdatePath, "7.6", sender.Node(), "%d path nodes, the filtered direct path has %d", len(up.Nodes), len(path))
	}
	exclude := opts.exclude()
	seen := make(map[string]struct{}, len(path)+1)
	seen[string(up.LeafNode.EncryptionKey)] = struct{}{}
	pubs := make([][]byte, len(path))
	for k, cp := range copath {
		n := &up.Nodes[k]
		if want := d.resolutionSize(cp, exclude); len(n.EncryptedPathSecret) != want {
			return nil, fail(ErrUpdatePath, "7.6", path[k], "%d encrypted path secrets, the copath resolution has %d nodes", len(n.EncryptedPathSecret), want)
		}
		if y, ok := d.FindEncryptionKey(n.EncryptionKey); ok {
			return nil, fail(ErrDuplicateEncryptionKey, "12.4.2", path[k], "path public key already used by %s", nodeName(y))
		}
		if _, dup := seen[string(n.EncryptionKey)]; dup {
			return nil, fail(ErrDuplicateEncryptionKey, "12.4.2", path[k], "public key repeated within the path")
		}
		seen[string(n.EncryptionKey)] = struct{}{}
		pubs[k] = n.EncryptionKey
	}
	parents, leafPH := d.pathParents(pubs, copath)
	if !bytes.Equal(up.LeafNode.ParentHash, leafPH) {
		return nil, fail(ErrParentHash, "7.9.2", sender.Node(), "leaf parent_hash %x, computed %x", up.LeafNode.ParentHash, leafPH)
	}
	d.applyPath(sender, &up.LeafNode, path, parents)
	return &AppliedPath{d: d, sender: sender, path: path, copath: copath, up: up, exclude: exclude}, nil
}

// resolutionSize is the size of the resolution of x without the excluded
// leaves.
func (d *Diff) resolutionSize(x NodeIndex, exclude []LeafIndex) int {
	if len(exclude) == 0 {
		return int(d.resLen(x))
	}
	return len(d.Resolution(x, exclude...))
}

// Decrypt recovers the path secrets the receiver priv is entitled to
// (RFC 9420, Section 7.5): it finds the lowest node of the sender's
// filtered direct path above the receiver, decrypts its path secret with
// the receiver's key in the copath child's resolution, using groupContext
// (the encoded provisional GroupContext) as context, derives the secrets
// above it, checks every derived public key against the path, and returns
// the commit secret and the receiver's new private state. priv is not
// changed.
func (a *AppliedPath) Decrypt(priv *PrivateState, groupContext []byte) (*Decrypted, error) {
	s := a.d.base.suite
	r := priv.leaf
	if r == a.sender {
		return nil, fail(ErrPathSecret, "7.5", r.Node(), "the receiver is the sender")
	}
	lca := treemath.CommonAncestor(r.Node(), a.sender.Node())
	k := -1
	for i, x := range a.path {
		if x == lca {
			k = i
			break
		}
	}
	if k < 0 {
		return nil, fail(ErrPathSecret, "7.5", lca, "the common ancestor of the sender and leaf %d is not on the filtered direct path", r)
	}
	res := a.d.Resolution(a.copath[k], a.exclude...)
	j := -1
	var key []byte
	for i, x := range res {
		if kp, ok := priv.key(x); ok {
			j, key = i, kp
			break
		}
	}
	if j < 0 {
		return nil, fail(ErrPathSecret, "7.5", a.copath[k], "leaf %d holds no private key in the resolution", r)
	}
	if j >= len(a.up.Nodes[k].EncryptedPathSecret) {
		return nil, fail(ErrUpdatePath, "7.6", a.path[k], "no ciphertext for resolution entry %d", j)
	}
	ct := a.up.Nodes[k].EncryptedPathSecret[j]
	secret, err := s.DecryptWithLabel(key, labelUpdatePathNode, groupContext, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, failErr(ErrPathSecret, "7.5", a.path[k], err, "decrypting the path secret for leaf %d", r)
	}

	n := len(a.path) - k
	secrets := make([][]byte, n+1)
	secrets[0] = secret
	for i := 1; i <= n; i++ {
		secrets[i] = s.DeriveSecret(secrets[i-1], "path")
	}
	pairs := make([]keyPair, n)
	errs := make([]error, n)
	parallel(n, func(i int) { pairs[i], errs[i] = nodeKeyPair(s, secrets[i]) })
	for i := range n {
		x := a.path[k+i]
		if errs[i] != nil {
			return nil, failErr(ErrPathSecret, "7.4", x, errs[i], "deriving the node key pair")
		}
		if !bytes.Equal(pairs[i].pub, a.up.Nodes[k+i].EncryptionKey) {
			return nil, fail(ErrPathSecret, "7.5", x, "derived public key differs from the path's")
		}
	}
	next := priv.Prune(a.d)
	for i := range n {
		next.nodes[a.path[k+i]] = pairs[i]
	}
	return &Decrypted{node: a.path[k], pathSecret: secret, commit: secrets[n], priv: next}, nil
}

// Decrypted is the outcome of processing an UpdatePath.
type Decrypted struct {
	node       NodeIndex
	pathSecret []byte
	commit     []byte
	priv       *PrivateState
}

// CommitSecret returns the commit secret (RFC 9420, Section 12.4.2).
func (r *Decrypted) CommitSecret() []byte { return clone(r.commit) }

// PathSecret returns the decrypted path secret and the node it belongs to:
// the lowest node of the sender's filtered direct path above the receiver.
func (r *Decrypted) PathSecret() (NodeIndex, []byte) { return r.node, clone(r.pathSecret) }

// PrivateState returns the receiver's new private state: outdated node
// keys dropped, the keys derived from the path added.
func (r *Decrypted) PrivateState() *PrivateState { return r.priv.Clone() }

// JoinPrivateState builds the private state of a new member at leaf from
// its leaf key and the path secret of its Welcome (RFC 9420, Section
// 12.4.3.1): the secret belongs to the lowest common ancestor of leaf and
// committer; each non-blank node above it gets the next derived secret.
// Every derived public key must match the tree. pathSecret may be nil (no
// path in the commit).
func (d *Diff) JoinPrivateState(leaf LeafIndex, leafKey []byte, committer LeafIndex, pathSecret []byte) (*PrivateState, error) {
	p, err := NewPrivateState(d.base.suite, leaf, leafKey)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(d.EncryptionKey(leaf.Node()), p.own.pub) {
		return nil, fail(ErrPrivateState, "12.4.3.1", leaf.Node(), "the leaf's public key does not match the private key")
	}
	if pathSecret == nil {
		return p, nil
	}
	if uint64(committer) >= uint64(d.nLeaves) || committer == leaf {
		return nil, fail(ErrPathSecret, "12.4.3.1", committer.Node(), "invalid committer")
	}
	s := d.base.suite
	root := treemath.Root(d.nLeaves)
	x := treemath.CommonAncestor(leaf.Node(), committer.Node())
	if d.IsBlank(x) {
		return nil, fail(ErrPathSecret, "12.4.3.1", x, "common ancestor of the joiner and the committer is blank")
	}
	secret := pathSecret
	for {
		if !d.IsBlank(x) {
			kp, err := nodeKeyPair(s, secret)
			if err != nil {
				return nil, failErr(ErrPathSecret, "7.4", x, err, "deriving the node key pair")
			}
			if !bytes.Equal(kp.pub, d.EncryptionKey(x)) {
				return nil, fail(ErrPathSecret, "12.4.3.1", x, "derived public key differs from the tree's")
			}
			p.nodes[x] = kp
			secret = s.DeriveSecret(secret, "path")
		}
		if x == root {
			return p, nil
		}
		x = treemath.Parent(x, d.nLeaves)
	}
}

// parallel calls f(0..n-1) on up to GOMAXPROCS goroutines, the caller's
// among them: it takes work too instead of waiting to be woken, which
// spares a goroutine start and a wake-up per call on the commit path.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			f(i)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
