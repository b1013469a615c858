package mls

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// Group state lives in the store in the records of internal/state, which
// owns their layout and encoding; this file converts between the group's
// types and those records, and runs the transactions. A state change is
// one transaction (Group.update), and writes are incremental: a commit
// writes the tree nodes it changed, an application message one sender's
// ratchets (RFC 9420, Sections 7.8 and 9).

// ErrCorruptState is wrapped by errors for stored group state that cannot
// be decoded or does not fit together.
var ErrCorruptState = errors.New("mls: stored group state is corrupt")

// CorruptStateError names the group whose stored state is bad and why.
type CorruptStateError struct {
	GroupID []byte
	What    string // which record or check, e.g. "group record", "ratchet tree"
	Err     error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("mls: stored state of group %x is corrupt: %s: %v", e.GroupID, e.What, e.Err)
}

func (e *CorruptStateError) Unwrap() []error { return []error{ErrCorruptState, e.Err} }

func corrupt(groupID []byte, what string, err error) *CorruptStateError {
	return &CorruptStateError{GroupID: clone(groupID), What: what, Err: err}
}

// stateErr turns the corruption errors of internal/state into
// *CorruptStateError (storeErr runs it on every store error); other errors
// pass through.
func stateErr(err error) error {
	var se *state.CorruptError
	if errors.As(err, &se) && !errors.Is(err, ErrCorruptState) {
		return corrupt(se.GroupID, se.What, se.Err)
	}
	return err
}

// save writes the group state in one transaction.
func (g *Group) save(ctx context.Context) error { return g.persist(ctx, nil, nil) }

// saveWith writes the group state and runs extra in the same transaction.
func (g *Group) saveWith(ctx context.Context, extra func(storage.Tx) error) error {
	return g.persist(ctx, nil, extra)
}

// saveMerged is saveWith after merging sc: it writes only the tree nodes
// that sc's diff changed.
func (g *Group) saveMerged(ctx context.Context, sc *StagedCommit, extra func(storage.Tx) error) error {
	return g.persist(ctx, sc, extra)
}

// persist writes the group record and brings the node, ratchet and past
// records in line with it (state.WriteGroup), in one transaction. merged,
// if not nil, is the commit just merged, whose diff says which nodes
// changed.
func (g *Group) persist(ctx context.Context, merged *StagedCommit, extra func(storage.Tx) error) error {
	rec, err := g.record()
	if err != nil {
		return err
	}
	b, err := rec.Marshal()
	if err != nil {
		return err
	}
	st := g.st
	snap := &state.Snapshot{
		Record:  b,
		Header:  &rec.Header,
		Tree:    st.Tree,
		Current: state.Epoch{Number: st.GC.Epoch, ID: state.EpochID(st.GCRaw), Secrets: st.secrets},
		OwnLeaf: uint32(st.own),
	}
	snap.Merged = merged.changes(st.Tree)
	for i, p := range g.past {
		snap.Past = append(snap.Past, state.Epoch{Number: p.epoch, ID: rec.Past[i].ID, Secrets: p.secrets, Past: p.record})
	}
	id := st.GC.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		if err := state.WriteGroup(tx, id, snap); err != nil {
			return err
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
}

// saveRatchet writes one sender's ratchet state (and, on the sender's first
// message of the epoch, the secret tree's node secrets) after a message:
// an incremental write whose size does not depend on the group size.
func (g *Group) saveRatchet(ctx context.Context, st *epochState, leaf uint32) error {
	id := st.GC.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		return state.SyncLeaf(tx, id, st.GC.Epoch, st.secrets, leaf)
	})
}

// savePastRatchet is saveRatchet for an application message of a kept
// earlier epoch (processPast).
func (g *Group) savePastRatchet(ctx context.Context, p *pastEpoch, leaf uint32) error {
	id := g.st.GC.GroupID
	return g.update(ctx, id, func(tx storage.Tx) error {
		return state.SyncLeaf(tx, id, p.epoch, p.secrets, leaf)
	})
}

// record returns the group's record (state.GroupRecord).
// changes is what a merged commit changed in t, for an incremental save,
// or nil when sc is nil or was not merged into t.
func (sc *StagedCommit) changes(t *tree.Tree) *state.Merged {
	if sc == nil || !sc.diff.MergedInto(t) {
		return nil
	}
	return &state.Merged{BaseTreeHash: sc.base.GC.TreeHash, Changes: sc.diff.Changes()}
}

// header is the record header of an epoch: its GroupContext and the size
// and hash of the tree, which tell a save which nodes it must write.
func (st *epochState) header() state.Header {
	return state.Header{Epoch: st.GC.Epoch, GroupContext: st.GCRaw, TreeHash: st.Tree.TreeHash(), Leaves: st.Tree.NumLeaves()}
}

func (g *Group) record() (*state.GroupRecord, error) {
	st := g.st
	r := &state.GroupRecord{Header: st.header()}
	for _, p := range g.past {
		r.Past = append(r.Past, state.PastRef{Epoch: p.epoch, ID: state.EpochID(p.gcRaw)})
	}
	c := &g.cfg
	r.Config = state.Config{
		OutgoingPrivate:        c.WireFormatPolicy.OutgoingPrivate,
		Incoming:               uint8(c.WireFormatPolicy.Incoming),
		PaddingSize:            uint32(c.PaddingSize),
		MaxPastEpochs:          uint32(c.MaxPastEpochs),
		OutOfOrderTolerance:    c.SenderRatchet.OutOfOrderTolerance,
		MaxForwardDistance:     c.SenderRatchet.MaxForwardDistance,
		RatchetTreeExtension:   c.UseRatchetTreeExtension,
		SkipLifetimeCheck:      c.SkipLifetimeCheck,
		ResumptionPSKRetention: int32(c.ResumptionPSKRetention),
	}
	r.Active, r.OwnLeaf = g.active, uint32(st.own)
	r.Private = state.PrivateOf(st.priv)
	var err error
	if r.EpochSecrets, err = st.keys.MarshalBinary(); err != nil {
		return nil, err
	}
	r.SecretTree = state.ParamsOf(st.secrets)
	r.ConfirmationTag = st.ConfTag
	r.Proposals = proposalRecords(g.props)
	r.ResumptionPSKs = g.psks
	if g.pending != nil {
		if r.Pending, err = pendingRecord(g.pending); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// configOf returns the stored part of a group's configuration, and checks
// its ranges.
func configOf(r *state.GroupRecord) (JoinConfig, error) {
	var c JoinConfig
	rc := &r.Config
	c.WireFormatPolicy.OutgoingPrivate = rc.OutgoingPrivate
	c.WireFormatPolicy.Incoming = IncomingPolicy(rc.Incoming)
	c.PaddingSize = int(rc.PaddingSize)
	c.MaxPastEpochs = int(rc.MaxPastEpochs)
	c.SenderRatchet.OutOfOrderTolerance = rc.OutOfOrderTolerance
	c.SenderRatchet.MaxForwardDistance = rc.MaxForwardDistance
	c.UseRatchetTreeExtension = rc.RatchetTreeExtension
	c.SkipLifetimeCheck = rc.SkipLifetimeCheck
	c.ResumptionPSKRetention = int(rc.ResumptionPSKRetention)
	if c.WireFormatPolicy.Incoming > AcceptPrivateOnly {
		return c, fmt.Errorf("incoming wire format policy %d", c.WireFormatPolicy.Incoming)
	}
	if c.PaddingSize < 0 || c.MaxPastEpochs < 0 || uint32(c.PaddingSize) > 1<<16 {
		return c, fmt.Errorf("padding %d or max past epochs %d out of range", c.PaddingSize, c.MaxPastEpochs)
	}
	if len(r.Past) > c.MaxPastEpochs {
		return c, fmt.Errorf("%d past epochs stored, at most %d kept", len(r.Past), c.MaxPastEpochs)
	}
	return c, nil
}

func proposalRecords(qs []*QueuedProposal) []state.Proposal {
	out := make([]state.Proposal, len(qs))
	for i, q := range qs {
		out[i] = state.Proposal{Ref: q.ref, Sender: q.sender, Proposal: q.p}
	}
	return out
}

func queuedOf(rs []state.Proposal) []*QueuedProposal {
	var out []*QueuedProposal
	for _, r := range rs {
		out = append(out, &QueuedProposal{p: r.Proposal, ref: r.Ref, sender: r.Sender})
	}
	return out
}

func leafNumbers(ls []tree.LeafIndex) []uint32 {
	out := make([]uint32, len(ls))
	for i, l := range ls {
		out[i] = uint32(l)
	}
	return out
}

// pendingRecord returns the record of this member's own pending commit.
func pendingRecord(sc *StagedCommit) (*state.PendingRecord, error) {
	next := sc.next
	if next == nil || !sc.own {
		return nil, fmt.Errorf("mls: pending commit without a next epoch")
	}
	r := &state.PendingRecord{GroupContext: next.GCRaw, Private: state.PrivateOf(next.priv), ConfirmationTag: next.ConfTag}
	var err error
	if r.EpochSecrets, err = next.keys.MarshalBinary(); err != nil {
		return nil, err
	}
	if r.SecretTree, err = next.secrets.MarshalBinary(); err != nil {
		return nil, err
	}
	r.Changes = *sc.diff.Changes()
	a := sc.a
	r.Proposals = proposalRecords(sc.props)
	r.Added, r.Removed = leafNumbers(a.Added), leafNumbers(a.Removed)
	for l := range a.Updated {
		r.Updated = append(r.Updated, uint32(l))
	}
	slices.Sort(r.Updated)
	r.ExternalLeaf, r.NeedsPath, r.SelfRemoved, r.Sender = uint32(a.ExternalLeaf), a.NeedsPath, a.SelfGone, sc.sender
	if now, was := sc.diff.Leaf(sc.base.own), sc.base.ownLeaf(); now != nil && was != nil && !bytes.Equal(now.SignatureKey, was.SignatureKey) {
		r.NewSignatureKey = now.SignatureKey
	}
	if r.Messages[0], err = sc.commit.encoded(); err != nil {
		return nil, err
	}
	if r.Messages[1], r.WelcomeSecret, err = sc.welcomeRecord(); err != nil {
		return nil, err
	}
	if sc.groupInfo != nil {
		r.TreeElided = sc.treeInGroupInfo
		if r.Messages[2], err = sc.groupInfoRecord(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// welcomeRecord returns the stored form of the pending commit's Welcome,
// if any: without its encrypted_group_info, which sealing the GroupInfo
// with the welcome_secret returned gives again, and which holds the whole
// tree when the group uses the ratchet_tree extension.
func (sc *StagedCommit) welcomeRecord() (welcome, welcomeSecret []byte, err error) {
	if sc.welcome == nil {
		return nil, nil, nil
	}
	if sc.welcomeSecret == nil {
		b, err := sc.welcome.encoded()
		return b, nil, err
	}
	w := *sc.welcome.m.Welcome
	w.EncryptedGroupInfo = []byte{}
	b, err := message.Marshal(&message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatWelcome, Welcome: &w})
	return b, sc.welcomeSecret.Bytes(), err
}

// groupInfoRecord returns the stored form of the pending commit's
// GroupInfo: if it carries the tree (treeInGroupInfo), with an empty
// ratchet_tree extension, which encoding the diff's tree fills again.
func (sc *StagedCommit) groupInfoRecord() ([]byte, error) {
	if !sc.treeInGroupInfo {
		return sc.groupInfo.encoded()
	}
	gi := *sc.groupInfo.m.GroupInfo
	gi.Extensions = slices.Clone(gi.Extensions)
	i := ratchetTreeExtension(gi.Extensions)
	if i < 0 {
		return nil, errors.New("mls: pending GroupInfo without its ratchet_tree extension")
	}
	gi.Extensions[i].Data = []byte{}
	return message.Marshal(&message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatGroupInfo, GroupInfo: &gi})
}

// ratchetTreeExtension returns the index of the ratchet_tree extension in
// exts, or -1.
func ratchetTreeExtension(exts []message.Extension) int {
	return slices.IndexFunc(exts, func(x message.Extension) bool { return x.Type == message.ExtensionRatchetTree })
}

// restoreMessages sets the messages of a restored pending commit from its
// record, filling in what pendingRecord left out: the GroupInfo's
// ratchet_tree extension from sc.diff, checked against the GroupInfo's
// signature, and the Welcome's encrypted_group_info.
func (sc *StagedCommit) restoreMessages(r *state.PendingRecord) error {
	var msgs [3]*Message
	var err error
	for i, b := range r.Messages {
		if b == nil {
			continue
		}
		if msgs[i], err = ParseMessage(b); err != nil {
			return err
		}
	}
	if msgs[0] == nil || msgs[0].WireFormat() != WireFormatPublicMessage && msgs[0].WireFormat() != WireFormatPrivateMessage ||
		msgs[1] != nil && msgs[1].WireFormat() != WireFormatWelcome || msgs[2] != nil && msgs[2].WireFormat() != WireFormatGroupInfo {
		return errors.New("pending commit messages of the wrong kinds")
	}
	sc.commit, sc.welcome, sc.groupInfo, sc.treeInGroupInfo = msgs[0], msgs[1], msgs[2], r.TreeElided
	s := sc.base.Suite
	if gim := sc.groupInfo; gim != nil {
		gim.raw = r.Messages[2]
		if r.TreeElided {
			gi := gim.m.GroupInfo
			i := ratchetTreeExtension(gi.Extensions)
			if i < 0 || len(gi.Extensions[i].Data) != 0 {
				return errors.New("pending GroupInfo without an empty ratchet_tree extension")
			}
			if gi.Extensions[i].Data, err = sc.diff.EncodeRatchetTree(); err != nil {
				return err
			}
			if gim.raw, err = message.Marshal(&gim.m); err != nil {
				return err
			}
			signer := sc.diff.Leaf(tree.LeafIndex(gi.Signer))
			if signer == nil {
				return fmt.Errorf("pending GroupInfo signed by blank leaf %d", gi.Signer)
			}
			if err := gi.VerifySignature(s, signer.SignatureKey); err != nil {
				return fmt.Errorf("pending GroupInfo with the tree filled in: %w", err)
			}
		}
	}
	if r.WelcomeSecret == nil {
		return nil
	}
	w := sc.welcome.m.Welcome
	if len(w.EncryptedGroupInfo) != 0 {
		return errors.New("pending Welcome with both a welcome_secret and an encrypted_group_info")
	}
	if sc.welcomeSecret, err = keyschedule.NewWelcomeSecret(s, r.WelcomeSecret); err != nil {
		return err
	}
	w.EncryptedGroupInfo, err = sc.welcomeSecret.SealGroupInfo(sc.groupInfo.encodedBody())
	return err
}

// record returns the past-epoch record of p, its members in leaf order.
func (p *pastEpoch) record() *state.PastRecord {
	r := &state.PastRecord{Epoch: p.epoch, GroupContext: p.gcRaw, SenderDataSecret: p.senderData, SecretTree: state.ParamsOf(p.secrets)}
	for _, l := range slices.Sorted(maps.Keys(p.sigKeys)) {
		r.Members = append(r.Members, state.PastMember{Leaf: l, SignatureKey: p.sigKeys[l], Credential: p.creds[l]})
	}
	return r
}

// pastOf rebuilds a past epoch from its record and secret tree.
func pastOf(r *state.PastRecord, secrets *secrettree.Tree) *pastEpoch {
	p := &pastEpoch{epoch: r.Epoch, gcRaw: r.GroupContext, senderData: r.SenderDataSecret, secrets: secrets,
		sigKeys: map[uint32][]byte{}, creds: map[uint32]message.Credential{}}
	for _, m := range r.Members {
		p.sigKeys[m.Leaf], p.creds[m.Leaf] = m.SignatureKey, m.Credential
	}
	return p
}

// loadGroup loads a group from the client's store, as the last state
// change left it: the current epoch, every message key consumed since,
// pending proposals, this member's pending commit (merge it with
// MergePendingCommit, or clear it), and the earlier epochs kept for late
// messages (JoinConfig.MaxPastEpochs), with the stored version the handle
// will check on its next save (Client.LoadGroup). signer may be nil for a
// group only read, such as the source of a resumption PSK.
func loadGroup(ctx context.Context, c *Client, groupID []byte, signer crypto.Signer) (*Group, error) {
	g := &Group{store: c.store}
	g.cfg.client = c
	err := view(ctx, c.store, func(tx storage.Tx) error {
		r, err := state.LoadGroupRecord(tx, groupID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: group %x", ErrNotFound, groupID)
		}
		var verr error
		if g.version, verr = state.Version(tx, groupID); verr != nil {
			return verr
		}
		if err != nil {
			return err
		}
		// restore reports what it finds wrong as corruption; other errors
		// come from the store.
		return g.restore(tx, groupID, r)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if err := g.setSigner(signer); err != nil {
		return nil, err
	}
	return g, nil
}

// restore rebuilds the group from a decoded record and checks that the
// pieces fit: the tree against the tree hash, the private keys against the
// tree, the epoch secrets against the confirmation tag.
func (g *Group) restore(tx storage.Tx, groupID []byte, r *state.GroupRecord) error {
	cfg, err := configOf(r)
	if err != nil {
		return corrupt(groupID, "group record", err)
	}
	var gc message.GroupContext
	if err := message.Unmarshal(r.GroupContext, &gc); err != nil {
		return corrupt(groupID, "group context", err)
	}
	if !bytes.Equal(gc.GroupID, groupID) || gc.Epoch != r.Epoch {
		return corrupt(groupID, "group context", fmt.Errorf("record of group %x epoch %d stored under this group at epoch %d", gc.GroupID, gc.Epoch, r.Epoch))
	}
	s, err := ciphersuite.Lookup(gc.CipherSuite)
	if err != nil {
		return corrupt(groupID, "group context", err)
	}
	t, err := state.LoadTree(tx, groupID, s, &r.Header)
	if err != nil {
		return err
	}
	if r.Active && !bytes.Equal(r.TreeHash, gc.TreeHash) {
		return corrupt(groupID, "ratchet tree", errors.New("the stored tree is not the group context's"))
	}
	st := &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: r.GroupContext, Tree: t, ConfTag: r.ConfirmationTag}, own: tree.LeafIndex(r.OwnLeaf)}
	if err := restoreEpoch(st, &r.Private, r.EpochSecrets, r.Active); err != nil {
		return corrupt(groupID, "epoch state", err)
	}
	if r.SecretTree.Leaves != t.NumLeaves() && r.Active {
		return corrupt(groupID, "secret tree", fmt.Errorf("%d leaves, the tree has %d", r.SecretTree.Leaves, t.NumLeaves()))
	}
	if st.secrets, err = state.LoadSecretTree(tx, groupID, s, gc.Epoch, r.SecretTree); err != nil {
		return err
	}
	g.cfg.WireFormatPolicy, g.cfg.PaddingSize, g.cfg.MaxPastEpochs = cfg.WireFormatPolicy, cfg.PaddingSize, cfg.MaxPastEpochs
	g.cfg.SenderRatchet, g.cfg.UseRatchetTreeExtension, g.cfg.SkipLifetimeCheck = cfg.SenderRatchet, cfg.UseRatchetTreeExtension, cfg.SkipLifetimeCheck
	g.cfg.ResumptionPSKRetention = cfg.ResumptionPSKRetention
	g.st, g.active, g.props, g.psks = st, r.Active, queuedOf(r.Proposals), r.ResumptionPSKs
	for _, ref := range r.Past {
		pr, secrets, err := state.LoadPast(tx, groupID, s, ref)
		if err != nil {
			return err
		}
		p := pastOf(pr, secrets)
		// A removed member keeps its last epoch as both current and past.
		if p.epoch > gc.Epoch || p.epoch == gc.Epoch && r.Active || (len(g.past) > 0 && p.epoch <= g.past[len(g.past)-1].epoch) {
			return corrupt(groupID, "past epochs", fmt.Errorf("epoch %d out of order", p.epoch))
		}
		g.past = append(g.past, p)
	}
	if r.Pending != nil {
		if !r.Active {
			return corrupt(groupID, "pending commit", errors.New("pending commit of an inactive member"))
		}
		if g.pending, err = g.restorePending(r.Pending); err != nil {
			return corrupt(groupID, "pending commit", err)
		}
	}
	return nil
}

// restoreEpoch fills in the private keys and epoch secrets of st and checks
// them: the private keys must fit the tree (RFC 9420, Section 4.2), the
// epoch secrets must produce the confirmation tag (Section 6.1).
func restoreEpoch(st *epochState, pr *state.PrivateRecord, keys []byte, active bool) error {
	var err error
	if st.priv, err = pr.State(st.Suite, st.own); err != nil {
		return err
	}
	if active {
		if st.ownLeaf() == nil {
			return fmt.Errorf("own leaf %d is blank", st.own)
		}
		if err := st.priv.Check(st.Tree.View()); err != nil {
			return err
		}
	}
	st.keys = &keyschedule.EpochSecrets{}
	if err := st.keys.UnmarshalBinary(keys); err != nil {
		return err
	}
	if st.keys.Suite().ID() != st.Suite.ID() {
		return fmt.Errorf("epoch secrets for suite %v, group uses %v", st.keys.Suite().ID(), st.Suite.ID())
	}
	if !st.keys.VerifyConfirmationTag(st.GC.ConfirmedTranscriptHash, st.ConfTag) {
		return errors.New("the epoch secrets do not produce the stored confirmation tag")
	}
	st.Interim = st.InterimHash()
	return nil
}

// restorePending rebuilds this member's pending commit on top of g.st and
// checks it like the current epoch: the replayed tree diff against the
// next tree hash, the private keys against the new tree, the epoch
// secrets against the confirmation tag.
func (g *Group) restorePending(r *state.PendingRecord) (*StagedCommit, error) {
	base := g.st
	s := base.Suite
	var gc message.GroupContext
	if err := message.Unmarshal(r.GroupContext, &gc); err != nil {
		return nil, err
	}
	if !bytes.Equal(gc.GroupID, base.GC.GroupID) || gc.Epoch != base.GC.Epoch+1 || gc.CipherSuite != base.GC.CipherSuite {
		return nil, fmt.Errorf("pending commit for group %x epoch %d, group is at epoch %d", gc.GroupID, gc.Epoch, base.GC.Epoch)
	}
	d, err := base.Tree.ApplyChanges(&r.Changes)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(d.TreeHash(), gc.TreeHash) {
		return nil, errors.New("the stored tree changes do not produce the next tree hash")
	}
	next := &epochState{Epoch: group.Epoch{Suite: s, GC: gc, GCRaw: r.GroupContext, Tree: base.Tree, ConfTag: r.ConfirmationTag}, own: base.own}
	if next.priv, err = r.Private.State(s, base.own); err != nil {
		return nil, err
	}
	if d.Leaf(base.own) == nil {
		return nil, fmt.Errorf("own leaf %d is blank after the pending commit", base.own)
	}
	if err := next.priv.Check(d); err != nil {
		return nil, err
	}
	next.keys = &keyschedule.EpochSecrets{}
	if err := next.keys.UnmarshalBinary(r.EpochSecrets); err != nil {
		return nil, err
	}
	if next.keys.Suite().ID() != s.ID() || !next.keys.VerifyConfirmationTag(gc.ConfirmedTranscriptHash, next.ConfTag) {
		return nil, errors.New("the next epoch secrets do not produce the stored confirmation tag")
	}
	next.Interim = next.InterimHash()
	next.secrets = &secrettree.Tree{}
	if err := next.secrets.UnmarshalBinary(r.SecretTree); err != nil {
		return nil, err
	}
	if next.secrets.Leaves() != d.NumLeaves() || next.secrets.Suite().ID() != s.ID() {
		return nil, fmt.Errorf("next secret tree of %d leaves, the tree has %d", next.secrets.Leaves(), d.NumLeaves())
	}
	if r.Sender.Type != message.SenderMember || r.Sender.LeafIndex != uint32(base.own) || r.SelfRemoved {
		return nil, errors.New("pending commit not sent by this member")
	}
	props := queuedOf(r.Proposals)
	a := &group.Applied{Props: publicList(props), Updated: map[tree.LeafIndex]bool{}, ExternalLeaf: tree.LeafIndex(r.ExternalLeaf), NeedsPath: r.NeedsPath}
	for _, l := range r.Added {
		a.Added = append(a.Added, tree.LeafIndex(l))
	}
	for _, l := range r.Removed {
		a.Removed = append(a.Removed, tree.LeafIndex(l))
	}
	for _, l := range r.Updated {
		a.Updated[tree.LeafIndex(l)] = true
	}
	for _, q := range props {
		switch p := q.p; p.Type {
		case message.ProposalAdd:
			a.AddedKPs = append(a.AddedKPs, &p.Add.KeyPackage)
		case message.ProposalPSK:
			a.Psks = append(a.Psks, p.PSK.PSK)
		case message.ProposalGroupContextExtensions:
			a.Exts = p.GroupContextExtensions.Extensions
		case message.ProposalReInit:
			a.Reinit = p.ReInit
		case message.ProposalExternalInit:
			a.ExtInit = p.ExternalInit
		}
	}
	for _, q := range props {
		if q.p.Type == group.ProposalAppDataUpdate {
			// The extensions that AppDataUpdates (draft-ietf-mls-
			// extensions) produce are those of the next epoch.
			a.Exts = next.GC.Extensions
		}
	}
	if len(a.AddedKPs) != len(a.Added) {
		return nil, fmt.Errorf("%d Add proposals for %d added leaves", len(a.AddedKPs), len(a.Added))
	}
	sc := &StagedCommit{base: base, diff: d, next: next, a: a, props: props, sender: r.Sender, own: true}
	if err := sc.restoreMessages(r); err != nil {
		return nil, err
	}
	if len(r.NewSignatureKey) > 0 && !bytes.Equal(d.Leaf(base.own).SignatureKey, r.NewSignatureKey) {
		return nil, errors.New("new signature key does not match the new leaf")
	}
	return sc, nil
}

// errSignerUnavailable: a loaded group was given the signer of the other
// side of a pending key change (see LoadGroup).
var errSignerUnavailable = errors.New("mls: this signature key was not passed to LoadGroup; load the group again with it")

// missingSigner stands in for the signer that LoadGroup was not given. Its
// Public is the given signer's, which has the right type for the suite, so
// that signing fails in Sign with errSignerUnavailable.
type missingSigner struct{ pub crypto.PublicKey }

func (m missingSigner) Public() crypto.PublicKey { return m.pub }

func (missingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errSignerUnavailable
}

// setSigner checks signer against the member's leaf (or the leaf of its
// pending commit) and installs it.
func (g *Group) setSigner(signer crypto.Signer) error {
	sc := g.pending
	if signer == nil || !g.active {
		g.signer = signer
		if sc != nil {
			sc.signer = signer
		}
		return nil
	}
	pub, err := g.st.Suite.SignaturePublicKey(signer)
	if err != nil {
		return fmt.Errorf("%w: signer: %w", ErrInvalidArgument, err)
	}
	cur := g.st.ownLeaf().SignatureKey
	var next []byte
	if sc != nil {
		next = sc.diff.Leaf(g.st.own).SignatureKey
	}
	switch {
	case bytes.Equal(pub, cur):
		g.signer = signer
		if sc != nil {
			sc.signer = signer
			if !bytes.Equal(next, cur) {
				sc.signer = missingSigner{signer.Public()}
			}
		}
	case sc != nil && bytes.Equal(pub, next):
		g.signer, sc.signer = missingSigner{signer.Public()}, signer
	default:
		return fmt.Errorf("%w: signer does not match this member's leaf", ErrInvalidArgument)
	}
	return nil
}
