package mls

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// labelWelcome is the label of the EncryptWithLabel that encrypts a new
// member's GroupSecrets (RFC 9420, Section 12.4.3.1).
const labelWelcome = "Welcome"

// WelcomeOptions are the inputs of StageWelcome besides the Welcome.
type WelcomeOptions struct {
	// JoinConfig holds the joiner's own settings for the group.
	JoinConfig
	// RatchetTree is the encoded ratchet tree (from the committer's
	// ExportRatchetTree) when the Welcome's GroupInfo does not carry the
	// ratchet_tree extension.
	// A tree (here or in the extension) needing more leaves than
	// ClientOptions.MaxTreeLeaves is rejected with an error matching
	// ErrMalformed, before the GroupInfo signature is checked or anything
	// is hashed.
	RatchetTree []byte
}

// StagedWelcome is a decrypted and validated Welcome (RFC 9420, Section
// 12.4.3.1) that has not been accepted yet: inspect the group, its members
// and who sent it, then Join.
type StagedWelcome struct {
	c       *Client
	cfg     JoinConfig
	st      *epochState
	kpRef   []byte
	lastRes bool
	signer  uint32
}

// stageWelcome decrypts a Welcome with one of the client's key packages
// (found in its store), verifies the GroupInfo, the ratchet tree and the
// key schedule, and returns the staged group. Nothing is stored until Join
// (Client.StageWelcome).
func stageWelcome(ctx context.Context, c *Client, welcome *Message, opts WelcomeOptions) (*StagedWelcome, error) {
	store, cfg := c.store, opts.JoinConfig
	if welcome == nil || welcome.m.Welcome == nil {
		return nil, fmt.Errorf("%w: not a Welcome message", ErrInvalidArgument)
	}
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	w := welcome.m.Welcome
	s, err := lookupSuite(w.CipherSuite)
	if err != nil {
		return nil, err
	}
	// Find the entry for one of our key packages.
	var egs *message.EncryptedGroupSecrets
	var rec state.KeyPackageRecord
	err = view(ctx, store, func(tx storage.Tx) error {
		for i := range w.Secrets {
			b, err := tx.Get(state.BucketKeyPackages, w.Secrets[i].NewMember)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := rec.Unmarshal(b); err != nil {
				return &classError{ErrCorruptState, fmt.Errorf("mls: stored key package %x: %w", w.Secrets[i].NewMember, err)}
			}
			egs = &w.Secrets[i]
			return nil
		}
		return ErrNoKeyPackage
	})
	if err != nil {
		return nil, err
	}
	kp, err := message.UnmarshalKeyPackage(rec.KeyPackage)
	if err != nil {
		return nil, &classError{ErrCorruptState, fmt.Errorf("mls: stored key package: %w", err)}
	}
	if kp.CipherSuite != w.CipherSuite {
		return nil, invalid("WelcomeSuite", "12.4.3.1", "welcome for suite 0x%04x, key package for 0x%04x", uint16(w.CipherSuite), uint16(kp.CipherSuite))
	}
	gsRaw, err := s.DecryptWithLabel(rec.InitPriv, labelWelcome, w.EncryptedGroupInfo, egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: group secrets: %w", ErrDecrypt, err)
	}
	gs, err := message.UnmarshalGroupSecrets(gsRaw)
	if err != nil {
		return nil, err
	}
	prior := map[string]*Group{}
	psk, err := resolvePSKs(ctx, store, s, gs.PSKs, func(id *message.PreSharedKeyID) []byte {
		// A resumption PSK of a group this client is (or was) in: a
		// reinitialized or branched group (RFC 9420, Sections 11.2 and
		// 11.3), whose state is in the same store.
		old, ok := prior[string(id.PSKGroupID)]
		if !ok {
			var err error
			if old, err = loadGroup(ctx, c, id.PSKGroupID, nil); err != nil {
				return nil
			}
			prior[string(id.PSKGroupID)] = old
		}
		return old.resumptionPSK(old.st, id)
	})
	if err != nil {
		return nil, err
	}
	joiner, err := keyschedule.NewJoinerSecret(s, gs.JoinerSecret)
	if err != nil {
		return nil, invalidErr("JoinerSecret", "12.4.3.1", err, "joiner secret")
	}
	mid, err := joiner.Intermediate(psk)
	if err != nil {
		return nil, err
	}
	giRaw, err := mid.Welcome().OpenGroupInfo(w.EncryptedGroupInfo)
	if err != nil {
		return nil, fmt.Errorf("%w: group info: %w", ErrDecrypt, err)
	}
	gi, err := message.UnmarshalGroupInfo(giRaw)
	if err != nil {
		return nil, err
	}
	gc := gi.GroupContext
	if gc.CipherSuite != w.CipherSuite || gc.Version != message.MLS10 {
		return nil, invalid("WelcomeSuite", "12.4.3.1", "group info for suite 0x%04x version %d", uint16(gc.CipherSuite), gc.Version)
	}
	if err := checkResumption(gs.PSKs, prior, &gc); err != nil {
		return nil, err
	}
	t, sigs, err := joinTree(s, &cfg, gi, opts.RatchetTree)
	if err != nil {
		return nil, err
	}
	defer sigs.Stop()
	if err := checkBranchMembers(gs.PSKs, prior, t); err != nil {
		return nil, err
	}
	st, err := joinState(s, &cfg, gi, t, sigs, func(d *tree.Diff) (tree.LeafIndex, error) {
		own, ok := d.FindEncryptionKey(kp.LeafNode.EncryptionKey)
		if !ok || !own.IsLeaf() || !bytes.Equal(d.Leaf(own.Leaf()).SignatureKey, kp.LeafNode.SignatureKey) {
			return 0, invalid("WelcomeLeaf", "12.4.3.1", "the tree has no leaf for this key package")
		}
		return own.Leaf(), nil
	})
	if err != nil {
		return nil, err
	}
	priv, err := t.View().JoinPrivateState(st.own, rec.EncryptionPriv, tree.LeafIndex(gi.Signer), gs.PathSecret)
	if err != nil {
		return nil, invalidErr("WelcomePathSecret", "12.4.3.1", err, "path secret")
	}
	st.priv = priv
	if st.keys, err = mid.Epoch(st.GCRaw); err != nil {
		return nil, err
	}
	if !st.keys.VerifyConfirmationTag(gc.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return nil, invalid("ValSem205", "12.4.3.1", "group info confirmation tag does not verify")
	}
	if st.secrets, err = newSecretTree(s, st.keys, t.NumLeaves(), cfg.secretTreeConfig()); err != nil {
		return nil, err
	}
	return &StagedWelcome{c: c, cfg: cfg, st: st, kpRef: clone(egs.NewMember), lastRes: rec.LastResort, signer: gi.Signer}, nil
}

// checkResumption checks a Welcome that resumes other groups against them
// (RFC 9420, Sections 11.2 and 11.3): a new group made by reinitialization
// or branching starts at epoch 1, and a reinitialization PSK must come
// from a group that a ReInit commit shut down with the parameters of the
// new group. prior are the groups whose resumption PSKs were found, by
// group ID.
func checkResumption(ids []message.PreSharedKeyID, prior map[string]*Group, gc *message.GroupContext) error {
	for i := range ids {
		id := &ids[i]
		if id.Type != message.PSKResumption {
			continue
		}
		old := prior[string(id.PSKGroupID)]
		switch id.Usage {
		case message.ResumptionReInit:
			if gc.Epoch != 1 {
				return invalid("ReInitWelcome", "11.2", "welcome of a reinitialized group at epoch %d, want 1", gc.Epoch)
			}
			var want *ReInitParams
			if old != nil {
				want, _ = old.ReInitParams()
			}
			if want == nil {
				return invalid("ReInitWelcome", "11.2", "group %x was not shut down by a ReInit", id.PSKGroupID)
			}
			if !bytes.Equal(want.GroupID, gc.GroupID) || want.CipherSuite != gc.CipherSuite || want.Version != uint16(gc.Version) ||
				!sameExtensions(toWireExtensions(want.Extensions), gc.Extensions) {
				return invalid("ReInitWelcome", "11.2", "the new group does not match the ReInit of group %x", id.PSKGroupID)
			}
		case message.ResumptionBranch:
			if gc.Epoch != 1 {
				return invalid("BranchWelcome", "11.3", "welcome of a branched group at epoch %d, want 1", gc.Epoch)
			}
			if old == nil {
				return invalid("BranchWelcome", "11.3", "the branched-from group %x is not in this client's store", id.PSKGroupID)
			}
			if old.st.GC.CipherSuite != gc.CipherSuite || old.st.GC.Version != gc.Version {
				return invalid("BranchWelcome", "11.3", "branch of suite 0x%04x version %d from a group of suite 0x%04x version %d",
					uint16(gc.CipherSuite), gc.Version, uint16(old.st.GC.CipherSuite), old.st.GC.Version)
			}
			if bytes.Equal(id.PSKGroupID, gc.GroupID) {
				return invalid("BranchWelcome", "11.3", "a branch with the group ID of the group it branches from")
			}
		}
	}
	return nil
}

// checkBranchMembers checks the tree of a group branched from another
// (RFC 9420, Section 11.3): each of its leaves must match a member of the
// old group, by the identity its credential presents.
func checkBranchMembers(ids []message.PreSharedKeyID, prior map[string]*Group, t *tree.Tree) error {
	for i := range ids {
		id := &ids[i]
		if id.Type != message.PSKResumption || id.Usage != message.ResumptionBranch {
			continue
		}
		old := prior[string(id.PSKGroupID)]
		known := map[string]bool{}
		for _, m := range old.Members() {
			known[string(m.Credential.Identity())] = true
		}
		for _, m := range membersOf(t.View()) {
			if !known[string(m.Credential.Identity())] {
				return invalid("BranchMembers", "11.3", "leaf %d (%s) is not a member of group %x", m.Index, m.Credential, id.PSKGroupID)
			}
		}
	}
	return nil
}

// sameExtensions reports whether two extension lists are equal, in order.
func sameExtensions(a, b []message.Extension) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// joinTree returns the ratchet tree of a GroupInfo, from its ratchet_tree
// extension or from the encoded tree given, after checking the GroupInfo
// signature (RFC 9420, Section 12.4.3.1). The order bounds what a hostile
// tree can cost: the tree is first decoded without allocating for its
// blank nodes and stopping at the client's leaf limit
// (ClientOptions.MaxTreeLeaves), then the signer's leaf is looked up in
// it and the GroupInfo signature verified with its key (the leaf
// signature checks start alongside, and stop if it fails), and only then
// is the tree built and hashed (one hash per node). A tree over the
// limit, or that does not decode, is ErrMalformed.
func joinTree(s *ciphersuite.Suite, cfg *JoinConfig, gi *message.GroupInfo, given []byte) (*tree.Tree, *tree.LeafSignatures, error) {
	if err := message.CheckExtensions(gi.Extensions); err != nil {
		return nil, nil, fmt.Errorf("%w: group info extensions: %w", ErrMalformed, err)
	}
	raw := given
	if x, ok := message.FindExtension(gi.Extensions, message.ExtensionRatchetTree); ok {
		raw = x.Data
	} else if given == nil {
		return nil, nil, fmt.Errorf("%w: the GroupInfo has no ratchet_tree extension and no tree was given", ErrInvalidArgument)
	}
	maxLeaves := cfg.maxTreeLeaves()
	rt, err := message.UnmarshalSparseRatchetTree(raw, uint32(min(2*uint64(maxLeaves)-1, math.MaxUint32)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ratchet tree (at most %d leaves): %w", ErrMalformed, maxLeaves, err)
	}
	if n := tree.LeavesFor(rt.Width); n > uint64(maxLeaves) {
		return nil, nil, fmt.Errorf("%w: ratchet tree of %d nodes needs %d leaves, more than the limit of %d", ErrMalformed, rt.Width, n, maxLeaves)
	}
	// The signer's leaf, found without building the tree.
	at := uint32(2 * uint64(gi.Signer))
	k, found := slices.BinarySearchFunc(rt.Nodes, at, func(n message.IndexedNode, x uint32) int { return cmp.Compare(n.Index, x) })
	if !found || gi.Signer >= 1<<31 || rt.Nodes[k].Node.Leaf == nil {
		return nil, nil, invalid("GroupInfoSigner", "12.4.3.1", "group info signer %d is not a member", gi.Signer)
	}
	// The leaf signatures, most of the cost of a join, are checked in the
	// background while the GroupInfo signature is checked (a bad one stops
	// them) and the tree is built, hashed and validated; joinState collects
	// the results (Tree.Validate).
	sigs := tree.VerifyLeafSignatures(s, rt, gi.GroupContext.GroupID)
	if err := gi.VerifySignature(s, rt.Nodes[k].Node.Leaf.SignatureKey); err != nil {
		sigs.Stop()
		return nil, nil, invalidErr("GroupInfoSignature", "12.4.3.1", err, "group info signature")
	}
	t, err := tree.FromSparse(s, rt, maxLeaves)
	if err != nil {
		sigs.Stop()
	}
	if errors.Is(err, tree.ErrTooManyLeaves) {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err != nil {
		return nil, nil, invalidErr("RatchetTree", "12.4.3.1", err, "ratchet tree")
	}
	return t, sigs, nil
}

// joinState validates a received tree and GroupInfo (RFC 9420, Section
// 12.4.3.1, shared by Welcome and external joins) and returns an epoch
// state without keys. joinTree has verified the GroupInfo signature.
func joinState(s *ciphersuite.Suite, cfg *JoinConfig, gi *message.GroupInfo, t *tree.Tree, sigs *tree.LeafSignatures, findOwn func(*tree.Diff) (tree.LeafIndex, error)) (*epochState, error) {
	gc := gi.GroupContext
	g := &Group{cfg: *cfg}
	opts := g.treeOptions(nil, &gc)
	// The lifetimes of the leaves already in the tree are not checked:
	// RFC 9420, Section 7.3 only recommends it for received trees, and a
	// member who joined long ago and never updated would otherwise make
	// every new join fail. Leaves are checked when they enter the group
	// (Add, Update, Commit), where the check applies.
	opts.SkipLifetime = true
	opts.Signatures = sigs
	if err := t.Validate(gc.TreeHash, &opts); err != nil {
		return nil, invalidErr("TreeValidation", "12.4.3.1", err, "ratchet tree")
	}
	gcRaw, err := message.Marshal(&gc)
	if err != nil {
		return nil, err
	}
	st := &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: gcRaw, Tree: t, ConfTag: clone(gi.ConfirmationTag)}}
	st.Interim = st.InterimHash()
	if findOwn != nil {
		if st.own, err = findOwn(t.View()); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// GroupID returns the ID of the group the Welcome is for.
func (sw *StagedWelcome) GroupID() []byte { return clone(sw.st.GC.GroupID) }

// Epoch returns the epoch the joiner enters.
func (sw *StagedWelcome) Epoch() uint64 { return sw.st.GC.Epoch }

// CipherSuite returns the group's cipher suite.
func (sw *StagedWelcome) CipherSuite() CipherSuite { return sw.st.GC.CipherSuite }

// Members returns the members of the group.
func (sw *StagedWelcome) Members() []Member { return membersOf(sw.st.Tree.View()) }

// Sender returns the member who signed the GroupInfo (the committer who
// added this client).
func (sw *StagedWelcome) Sender() Member {
	return memberOf(sw.signer, sw.st.Tree.Leaf(tree.LeafIndex(sw.signer)))
}

// OwnLeafIndex returns the leaf this client will occupy.
func (sw *StagedWelcome) OwnLeafIndex() uint32 { return uint32(sw.st.own) }

// Extensions returns the group context extensions.
func (sw *StagedWelcome) Extensions() []Extension { return fromWireExtensions(sw.st.GC.Extensions) }

// Join accepts the Welcome: the group is stored and the key package's
// private keys are deleted (unless it is a last-resort key package), in one
// transaction. The client's key signed the key package, so it signs in the
// group too.
func (sw *StagedWelcome) Join(ctx context.Context) (*Group, error) {
	if ctx == nil {
		return nil, fmt.Errorf("%w: nil context", ErrInvalidArgument)
	}
	signer := sw.c.signer
	pub, err := sw.st.Suite.SignaturePublicKey(signer)
	if err != nil {
		return nil, fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	if !bytes.Equal(pub, sw.st.ownLeaf().SignatureKey) {
		return nil, fmt.Errorf("%w: signer does not match the key package", ErrInvalidArgument)
	}
	g := &Group{store: sw.c.store, signer: signer, cfg: sw.cfg, st: sw.st, active: true}
	var del [][]byte
	if !sw.lastRes {
		del = append(del, sw.kpRef)
	}
	if err := g.saveWith(ctx, func(tx storage.Tx) error {
		for _, ref := range del {
			if err := state.DeleteKeyPackage(tx, ref); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return sw.c.adopt(g), nil
}
