package mls

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/credwire"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// Group is one member's view of an MLS group (RFC 9420): the ratchet tree,
// the key schedule of the current epoch, pending proposals and a pending
// commit of its own. A Group is safe for concurrent use; operations are
// serialized.
//
// Every operation that changes the group either succeeds completely or
// leaves the group exactly as it was.
type Group struct {
	mu      sync.Mutex
	store   storage.Store
	signer  crypto.Signer
	cfg     JoinConfig
	st      *epochState
	props   []*QueuedProposal
	pending *StagedCommit
	past    []*pastEpoch
	psks    map[string][]byte // resumption PSKs by epoch, see resumptionKey
	// updateKeys are the leaf private keys of this member's Update
	// proposals of the current epoch, by public key (ProposeSelfUpdate).
	updateKeys map[string][]byte
	active     bool
	// reinit holds the parameters of the ReInit commit that shut the
	// group down, once known (ReInitParams).
	reinit *ReInitParams
	// version is the stored version this handle last read or wrote (see
	// Group.update and state.Version); stale is set once a save found
	// another one, and deleted once Client.DeleteGroup removed the group.
	version        uint64
	stale, deleted bool
	// public marks the Group inside a PublicGroup, which holds no secret
	// of the group (st.keys, st.priv and st.secrets stay nil). It runs
	// only the public stage of the state machine (PublicGroup.process);
	// this flag selects its storage records and its policy (Group.policy:
	// no resumption PSK retention to check).
	public bool
}

// epochState is everything that changes from one epoch to the next.
// The public half (GroupContext, tree, transcript hashes) is the
// group.Epoch that a PublicGroup holds alone; a member adds its leaf, its
// private keys and the epoch's secrets.
type epochState struct {
	group.Epoch
	own     tree.LeafIndex
	priv    *tree.PrivateState
	keys    *keyschedule.EpochSecrets
	secrets *secrettree.Tree
}

// pastEpoch keeps what is needed to read late application messages of an
// earlier epoch (JoinConfig.MaxPastEpochs).
type pastEpoch struct {
	epoch      uint64
	gcRaw      []byte
	senderData []byte
	secrets    *secrettree.Tree
	sigKeys    map[uint32][]byte
	creds      map[uint32]message.Credential
}

// Member describes one leaf of the group. The fields are copies; LeafNode
// gives the rest of the leaf (capabilities, extensions, lifetime).
type Member struct {
	Index         uint32
	Credential    credential.Credential
	SignatureKey  []byte
	EncryptionKey []byte

	leaf *message.LeafNode // shared with the tree; never modified
}

// LeafNode returns the member's leaf node, or nil for a Member not
// obtained from a group.
func (m Member) LeafNode() *LeafNode {
	if m.leaf == nil {
		return nil
	}
	return leafNodeOf(m.leaf)
}

// LeafNode is a read-only view of a leaf node (RFC 9420, Section 7.2): a
// member's leaf, the leaf of a key package or of an Update proposal. Every
// accessor returns a copy.
type LeafNode struct {
	ln *message.LeafNode
}

func leafNodeOf(ln *message.LeafNode) *LeafNode { return &LeafNode{ln: ln} }

// LeafNodeSource says how a leaf node was created (RFC 9420, Section 7.2).
type LeafNodeSource uint8

const (
	LeafNodeSourceKeyPackage = LeafNodeSource(message.LeafNodeSourceKeyPackage)
	LeafNodeSourceUpdate     = LeafNodeSource(message.LeafNodeSourceUpdate)
	LeafNodeSourceCommit     = LeafNodeSource(message.LeafNodeSourceCommit)
)

// String returns the LeafNodeSource name of RFC 9420, Section 7.2.
func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return fmt.Sprintf("LeafNodeSource(%d)", uint8(s))
}

// Credential returns the leaf's credential.
func (l *LeafNode) Credential() credential.Credential { return credOf(l.ln.Credential) }

// SignatureKey returns the leaf's signature public key.
func (l *LeafNode) SignatureKey() []byte { return clone(l.ln.SignatureKey) }

// EncryptionKey returns the leaf's HPKE public key.
func (l *LeafNode) EncryptionKey() []byte { return clone(l.ln.EncryptionKey) }

// Source returns how the leaf node was created.
func (l *LeafNode) Source() LeafNodeSource { return LeafNodeSource(l.ln.Source) }

// Capabilities returns what the leaf advertises it supports (RFC 9420,
// Section 7.2), as listed: unlike the input to NewKeyPackage no defaults
// are added. Protocol versions are not part of Capabilities; every leaf
// this package accepts lists mls10.
func (l *LeafNode) Capabilities() Capabilities {
	c := &l.ln.Capabilities
	out := Capabilities{
		CipherSuites: append([]CipherSuite{}, c.CipherSuites...),
		Extensions:   make([]uint16, len(c.Extensions)),
		Proposals:    make([]uint16, len(c.Proposals)),
		Credentials:  make([]credential.Type, len(c.Credentials)),
	}
	for i, e := range c.Extensions {
		out.Extensions[i] = uint16(e)
	}
	for i, p := range c.Proposals {
		out.Proposals[i] = uint16(p)
	}
	for i, ct := range c.Credentials {
		out.Credentials[i] = credential.Type(ct)
	}
	return out
}

// Extensions returns the leaf node's extensions (not those of a key
// package that holds it; see KeyPackage.Extensions).
func (l *LeafNode) Extensions() []Extension { return fromWireExtensions(l.ln.Extensions) }

// Lifetime returns the validity period of a leaf node from a key package
// (RFC 9420, Section 7.2), or false for a leaf created by an Update or a
// commit, which has none. Times beyond the year 9999 (such as the
// all-ones "never expires") are returned as the end of 9999.
func (l *LeafNode) Lifetime() (notBefore, notAfter time.Time, ok bool) {
	if l.ln.Source != message.LeafNodeSourceKeyPackage {
		return time.Time{}, time.Time{}, false
	}
	return unixTime(l.ln.Lifetime.NotBefore), unixTime(l.ln.Lifetime.NotAfter), true
}

// maxUnixTime is 9999-12-31T23:59:59Z.
const maxUnixTime = 253402300799

func unixTime(v uint64) time.Time {
	if v > maxUnixTime {
		v = maxUnixTime
	}
	return time.Unix(int64(v), 0).UTC()
}

func (c *JoinConfig) rand() io.Reader { return c.client.rand() }

func (c *JoinConfig) secretTreeConfig() secrettree.Config {
	return secrettree.Config{OutOfOrderTolerance: c.SenderRatchet.OutOfOrderTolerance, MaxForwardDistance: c.SenderRatchet.MaxForwardDistance}
}

// treeOptions are the leaf validation options for the current group.
func (g *Group) treeOptions(_ *epochState, gc *message.GroupContext) tree.Options {
	return g.policy().TreeOptions(gc)
}

// createGroup creates a one-member group (RFC 9420, Section 11) with the
// client c as its creator and stores it (Client.CreateGroup).
func createGroup(ctx context.Context, c *Client, suite CipherSuite, cfg GroupConfig) (*Group, error) {
	s, err := lookupSuite(suite)
	if err != nil {
		return nil, err
	}
	id := c.identity()
	g := &Group{store: c.store, signer: id.Signer, cfg: cfg.JoinConfig, active: true}
	groupID := clone(cfg.GroupID)
	if groupID == nil {
		groupID = make([]byte, 16)
		if _, err := io.ReadFull(g.cfg.rand(), groupID); err != nil {
			return nil, err
		}
	}
	sigPub, err := s.SignaturePublicKey(id.Signer)
	if err != nil {
		return nil, fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	// RFC 9420, Section 5.3: the certificate must hold the signature key.
	if err := id.Credential.CheckSignatureKey(sigPub); err != nil {
		return nil, fmt.Errorf("%w: the client's credential does not fit its signature key: %w", ErrInvalidArgument, err)
	}
	encPriv, encPub, err := s.GenerateKeyPair(g.cfg.rand())
	if err != nil {
		return nil, err
	}
	now := g.cfg.now()
	lifetime := cfg.Lifetime
	if lifetime == 0 {
		lifetime = defaultLifetime
	}
	leaf := &message.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    wireCred(id.Credential),
		Capabilities:  wireCapabilities(cfg.Capabilities, suite, id.Credential.Type()),
		Source:        message.LeafNodeSourceKeyPackage,
		Lifetime:      message.Lifetime{NotBefore: uint64(now.Add(-1 * 3600e9).Unix()), NotAfter: uint64(now.Add(lifetime).Unix())},
		Extensions:    toWireExtensions(cfg.LeafExtensions),
	}
	exts, err := groupExtensions(&cfg)
	if err != nil {
		return nil, err
	}
	for _, e := range exts {
		if !group.IsDefaultExtension(e.Type) {
			leaf.Capabilities.Extensions = appendUnique(leaf.Capabilities.Extensions, e.Type)
		}
	}
	realCaps := leaf.Capabilities
	if err := c.greaseLeaf(leaf); err != nil {
		return nil, err
	}
	if err := leaf.Sign(s, id.Signer, nil, 0); err != nil {
		return nil, classify(err)
	}
	t := tree.New(s, leaf)
	priv, err := tree.NewPrivateState(s, 0, encPriv)
	if err != nil {
		return nil, err
	}
	gc := message.GroupContext{
		Version:                 message.MLS10,
		CipherSuite:             suite,
		GroupID:                 groupID,
		Epoch:                   0,
		TreeHash:                t.TreeHash(),
		ConfirmedTranscriptHash: []byte{},
		Extensions:              exts,
	}
	if rc, err := group.RequiredCapabilities(exts); err == nil && rc != nil {
		if err := group.CheckRequiredCapabilities(rc, &realCaps); err != nil {
			return nil, err
		}
	}
	if check := componentCheck(exts); check != nil {
		if err := check(leaf); err != nil {
			return nil, invalidErr("ValSem106", "11.1", err, "the creator's leaf")
		}
	}
	gcRaw, err := message.Marshal(&gc)
	if err != nil {
		return nil, err
	}
	// A fresh random epoch secret (Section 11): derived here from a random
	// init secret and zero commit and PSK secrets, which is a random value
	// of the same distribution.
	init, err := keyschedule.GenerateInitSecret(s, g.cfg.rand())
	if err != nil {
		return nil, err
	}
	keys, err := epochFrom(s, init, make([]byte, s.HashSize()), keyschedule.ZeroPSKSecret(s), gcRaw)
	if err != nil {
		return nil, err
	}
	st := &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: gcRaw, Tree: t}, own: 0, priv: priv, keys: keys.epoch}
	if st.secrets, err = newSecretTree(s, keys.epoch, t.NumLeaves(), g.cfg.secretTreeConfig()); err != nil {
		return nil, err
	}
	st.ConfTag = keys.epoch.ConfirmationTag(gc.ConfirmedTranscriptHash)
	st.Interim = keyschedule.InterimTranscriptHash(s, gc.ConfirmedTranscriptHash, st.ConfTag)
	g.st = st
	err = view(ctx, c.store, func(tx storage.Tx) error {
		if ok, err := state.HasGroup(tx, groupID); err != nil || !ok {
			return err
		}
		return fmt.Errorf("%w: the store already holds group %x", ErrInvalidArgument, groupID)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if err := g.save(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// groupExtensions builds the group context extensions of a new group.
func groupExtensions(cfg *GroupConfig) ([]message.Extension, error) {
	exts := toWireExtensions(cfg.GroupContextExtensions)
	if len(cfg.RequiredExtensions)+len(cfg.RequiredProposals)+len(cfg.RequiredCredentials) > 0 {
		rc := message.RequiredCapabilities{Extensions: []message.ExtensionType{}, Proposals: []message.ProposalType{}, Credentials: []message.CredentialType{}}
		for _, e := range cfg.RequiredExtensions {
			rc.Extensions = append(rc.Extensions, message.ExtensionType(e))
		}
		for _, p := range cfg.RequiredProposals {
			rc.Proposals = append(rc.Proposals, message.ProposalType(p))
		}
		for _, c := range cfg.RequiredCredentials {
			rc.Credentials = append(rc.Credentials, message.CredentialType(c))
		}
		ext, err := message.NewExtension(&rc)
		if err != nil {
			return nil, err
		}
		exts = append(exts, ext)
	}
	if len(cfg.ExternalSenders) > 0 {
		es := make(message.ExternalSenders, 0, len(cfg.ExternalSenders))
		for _, x := range cfg.ExternalSenders {
			es = append(es, message.ExternalSender{SignatureKey: clone(x.SignatureKey), Credential: wireCred(x.Credential)})
		}
		ext, err := message.NewExtension(&es)
		if err != nil {
			return nil, err
		}
		exts = append(exts, ext)
	}
	if err := message.CheckExtensions(exts); err != nil {
		return nil, fmt.Errorf("%w: group context extensions: %v", ErrInvalidArgument, err)
	}
	return exts, nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// GroupID returns the group's ID.
func (g *Group) GroupID() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return clone(g.st.GC.GroupID)
}

// Epoch returns the current epoch.
func (g *Group) Epoch() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.GC.Epoch
}

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.st.GC.CipherSuite }

// OwnLeafIndex returns this member's leaf index.
func (g *Group) OwnLeafIndex() uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return uint32(g.st.own)
}

// IsActive reports whether this client is still a member: false once a
// commit removing it has been merged.
func (g *Group) IsActive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

// Members returns the group's members in leaf order.
func (g *Group) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return membersOf(g.st.Tree.View())
}

func membersOf(d *tree.Diff) []Member {
	var out []Member
	for i := uint32(0); i < d.NumLeaves(); i++ {
		ln := d.Leaf(tree.LeafIndex(i))
		if ln == nil {
			continue
		}
		out = append(out, memberOf(i, ln))
	}
	return out
}

func memberOf(i uint32, ln *message.LeafNode) Member {
	return Member{Index: i, Credential: credOf(ln.Credential), SignatureKey: clone(ln.SignatureKey), EncryptionKey: clone(ln.EncryptionKey), leaf: ln}
}

// credOf wraps a wire credential (see internal/credwire).
func credOf(c message.Credential) credential.Credential {
	return credwire.FromWire(c).(credential.Credential)
}

// wireCred returns the wire form of a credential (see internal/credwire).
func wireCred(c credential.Credential) message.Credential { return credwire.ToWire(c) }

// Member returns the member at leaf i.
func (g *Group) Member(i uint32) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln := g.st.Tree.Leaf(tree.LeafIndex(i))
	if ln == nil {
		return Member{}, false
	}
	return memberOf(i, ln), true
}

// EpochAuthenticator returns the epoch authenticator (RFC 9420, Section
// 8.7): a value all members share, for comparing out of band.
func (g *Group) EpochAuthenticator() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.keys.EpochAuthenticator()
}

// ExportSecret derives a secret for the application from the current
// epoch (RFC 9420, Section 8.5, MLS-Exporter). A length outside 0 to
// 255 times the suite's hash size (the limit of HKDF-Expand) gives
// ErrInvalidArgument.
func (g *Group) ExportSecret(label string, context []byte, length int) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkHandle(); err != nil {
		return nil, err
	}
	out, err := g.st.keys.Export(label, context, length)
	if err != nil {
		return nil, &classError{ErrInvalidArgument, err}
	}
	return out, nil
}

// ExportRatchetTree returns the public ratchet tree in the form of the
// ratchet_tree extension (RFC 9420, Section 12.4.3.3), for joiners when the
// group does not use that extension.
func (g *Group) ExportRatchetTree() ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkHandle(); err != nil {
		return nil, err
	}
	return g.st.Tree.EncodeRatchetTree()
}

// Extensions returns the group context extensions.
func (g *Group) Extensions() []Extension {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fromWireExtensions(g.st.GC.Extensions)
}

// GroupInfo builds and signs a GroupInfo for the current epoch (RFC 9420,
// Section 12.4.3), with the external_pub extension so that others can join
// by external commit, and the ratchet tree if withTree.
func (g *Group) ExportGroupInfo(withTree bool) (*Message, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkHandle(); err != nil {
		return nil, err
	}
	gi, raw, err := g.groupInfoFor(g.st, g.st.Tree.View(), g.signer, withTree, true)
	if err != nil {
		return nil, classify(err)
	}
	return wrapGroupInfoRaw(gi, raw), nil
}

// signerT is the signer type groups use.
type signerT = crypto.Signer

// groupInfoFor builds the GroupInfo of epoch st whose tree is view, signed
// by signer (RFC 9420, Section 12.4.3), and returns it with the encoding
// of the MLSMessage carrying it.
func (g *Group) groupInfoFor(st *epochState, view *tree.Diff, signer signerT, withTree, withExternalPub bool) (*message.GroupInfo, []byte, error) {
	var exts []message.Extension
	if withTree {
		rt, err := view.EncodeRatchetTree()
		if err != nil {
			return nil, nil, err
		}
		exts = append(exts, message.Extension{Type: message.ExtensionRatchetTree, Data: rt})
	}
	if withExternalPub {
		kp, err := st.keys.ExternalKeyPair()
		if err != nil {
			return nil, nil, err
		}
		ext, err := message.NewExtension(&message.ExternalPub{ExternalPub: kp.PublicKey()})
		if err != nil {
			return nil, nil, err
		}
		exts = append(exts, ext)
	}
	exts, err := g.cfg.client.greaseExtensions(exts)
	if err != nil {
		return nil, nil, err
	}
	if exts == nil {
		exts = []message.Extension{}
	}
	gi := &message.GroupInfo{
		GroupContext:    st.GC,
		Extensions:      exts,
		ConfirmationTag: clone(st.ConfTag),
		Signer:          uint32(st.own),
	}
	raw, err := gi.SignMessage(st.Suite, signer)
	if err != nil {
		return nil, nil, classify(err)
	}
	return gi, raw, nil
}

// ownLeaf returns this member's current LeafNode.
func (st *epochState) ownLeaf() *message.LeafNode { return st.Tree.Leaf(st.own) }
