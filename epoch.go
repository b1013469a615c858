package mls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/secrettree"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// This file is the epoch transition of a received commit, in one flow
// (RFC 9420, Section 12.4.2):
//
//	verified commit
//	  -> public stage (internal/group, Epoch.StageCommit): proposal list,
//	     tree diff, UpdatePath and parent hashes, next GroupContext and
//	     transcript hashes; a PublicGroup stops here (PublicGroup.process)
//	  -> private stage (enterEpoch, below): this member's leaf key, path
//	     secrets, PSKs, key schedule, confirmation tag, secret tree
//	  -> StagedCommit, merged by Group.merge (below): the tree diff, the
//	     next epoch state, the kept past epoch and resumption PSK, in one
//	     store transaction (saveMerged).

// policy is the group's policy as internal/group takes it. A PublicGroup
// holds no resumption PSK, so it checks no retention.
func (g *Group) policy() *group.Policy {
	p := &group.Policy{Now: g.cfg.now, SkipLifetime: g.cfg.SkipLifetimeCheck, Validator: g.cfg.client.validator, ResumptionRetention: g.cfg.resumptionRetention(), Components: componentCheck, AppData: g.cfg.client.appData()}
	if g.public {
		p.ResumptionRetention = -1
	}
	return p
}

// receiveCommit validates a verified commit and stages the next epoch: the
// public stage, then, for a member, the private stage.
func (g *Group) receiveCommit(ctx context.Context, st *epochState, ac *message.AuthenticatedContent) (*StagedCommit, error) {
	sender := ac.Content.Sender
	if sender.Type == message.SenderMember && tree.LeafIndex(sender.LeafIndex) == st.own && ac.Auth.ConfirmationTag != nil {
		// Our own commit, echoed by the delivery service.
		if g.pending != nil && g.pending.base == st && bytes.Equal(g.pending.next.ConfTag, ac.Auth.ConfirmationTag) {
			return g.pending, nil
		}
		return nil, invalid("OwnCommit", "12.4.2", "commit from this member's leaf that is not its pending commit")
	}
	ps, err := st.StageCommit(ac, g.lookupProposal, st.own, g.policy())
	if err != nil {
		return nil, err
	}
	sc := stagedCommit(st, ps, sender)
	if ps.Next == nil {
		// This member is removed: there is no next epoch for it.
		return sc, nil
	}
	if sc.next, err = g.enterEpoch(ctx, st, ps, ac); err != nil {
		return nil, err
	}
	return sc, nil
}

// stagedCommit is the StagedCommit of a commit staged by
// Epoch.StageCommit, still without its next epoch.
func stagedCommit(st *epochState, ps *group.Staged, sender message.Sender) *StagedCommit {
	return &StagedCommit{base: st, diff: ps.Diff, a: ps.Applied, props: queuedList(ps.Applied.Props), sender: sender}
}

// enterEpoch is the private stage of a received commit staged by
// Epoch.StageCommit: it decrypts the UpdatePath, runs the key schedule of
// the next epoch and checks the commit's confirmation tag against it (RFC
// 9420, Sections 8 and 12.4.2).
func (g *Group) enterEpoch(ctx context.Context, st *epochState, ps *group.Staged, ac *message.AuthenticatedContent) (*epochState, error) {
	s := st.Suite
	a := ps.Applied
	priv := st.priv
	if a.Updated[st.own] {
		// This member's own Update proposal is committed: its leaf now
		// holds the key pair generated with the proposal (RFC 9420,
		// Section 12.1.2), which may be needed to decrypt the path.
		key, err := g.ownUpdateKey(ctx, st, ps.Diff.Leaf(st.own).EncryptionKey)
		if err != nil {
			return nil, err
		}
		if priv, err = priv.WithLeafKey(key); err != nil {
			return nil, invalidErr("OwnUpdateKey", "12.1.2", err, "own Update proposal key")
		}
	}
	commitSecret := make([]byte, s.HashSize())
	if ps.Path != nil {
		dec, err := ps.Path.Decrypt(priv, ps.Provisional)
		if err != nil {
			return nil, invalidErr("ValSem203", "12.4.2", err, "path secret")
		}
		commitSecret = dec.CommitSecret()
		priv = dec.PrivateState()
	} else {
		priv = priv.Prune(ps.Diff)
	}
	psk, err := g.pskSecret(ctx, st, a.Psks)
	if err != nil {
		return nil, err
	}
	init := st.keys.InitSecret()
	if ac.Content.Sender.Type == message.SenderNewMemberCommit {
		kp, err := st.keys.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		if init, err = kp.InitSecret(a.ExtInit.KEMOutput); err != nil {
			return nil, invalidErr("ExternalInit", "8.3", err, "external init")
		}
	}
	next := ps.Next
	keys, err := epochFrom(s, init, commitSecret, psk, next.GCRaw)
	if err != nil {
		return nil, err
	}
	if !keys.epoch.VerifyConfirmationTag(next.GC.ConfirmedTranscriptHash, next.ConfTag) {
		return nil, invalid("ValSem205", "12.4.2", "confirmation tag does not verify")
	}
	out := &epochState{Epoch: *next, own: st.own, priv: priv, keys: keys.epoch}
	if out.secrets, err = newSecretTree(s, keys.epoch, ps.Diff.NumLeaves(), g.cfg.secretTreeConfig()); err != nil {
		return nil, err
	}
	return out, nil
}

// ownUpdateKey returns the leaf private key of this member's pending
// Update proposal whose new leaf has the public key pub: kept in memory
// since ProposeSelfUpdate, or in the store after a reload.
func (g *Group) ownUpdateKey(ctx context.Context, st *epochState, pub []byte) ([]byte, error) {
	if k, ok := g.updateKeys[string(pub)]; ok {
		return k, nil
	}
	var key []byte
	if g.store != nil {
		err := view(ctx, g.store, func(tx storage.Tx) error {
			v, err := state.UpdateKey(tx, st.GC.GroupID, pub)
			key = v
			return err
		})
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	return nil, invalid("OwnUpdateKey", "12.1.2", "the commit applies an Update proposal for this member's leaf whose private key this member does not hold")
}

// pskSecret looks up the PSKs a commit or Welcome names and derives
// psk_secret (RFC 9420, Section 8.4).
func (g *Group) pskSecret(ctx context.Context, st *epochState, ids []message.PreSharedKeyID) (*keyschedule.PSKSecret, error) {
	return resolvePSKs(ctx, g.store, st.Suite, ids, func(id *message.PreSharedKeyID) []byte { return g.resumptionPSK(st, id) })
}

// resumptionPSK returns the resumption PSK of an epoch of this group
// (RFC 9420, Section 8.6): the current one or one that is kept, or nil.
func (g *Group) resumptionPSK(st *epochState, id *message.PreSharedKeyID) []byte {
	if !bytes.Equal(id.PSKGroupID, st.GC.GroupID) {
		return nil
	}
	if id.PSKEpoch == st.GC.Epoch {
		return st.keys.ResumptionPSK()
	}
	return g.psks[resumptionKey(id.PSKGroupID, id.PSKEpoch)]
}

// resolvePSKs looks up the PSKs named by ids: external ones in the store,
// resumption ones through resumption (which returns nil if unknown), and
// derives psk_secret (RFC 9420, Section 8.4).
func resolvePSKs(ctx context.Context, store storage.Store, s *ciphersuite.Suite, ids []message.PreSharedKeyID, resumption func(*message.PreSharedKeyID) []byte) (*keyschedule.PSKSecret, error) {
	if len(ids) == 0 {
		return keyschedule.ZeroPSKSecret(s), nil
	}
	psks := make([]keyschedule.PSK, len(ids))
	for i := range ids {
		id := &ids[i]
		var secret []byte
		switch id.Type {
		case message.PSKExternal:
			err := view(ctx, store, func(tx storage.Tx) error {
				v, err := state.PSK(tx, id.PSKID)
				secret = v
				return err
			})
			if errors.Is(err, storage.ErrNotFound) {
				return nil, invalidErr("PSKMissing", "8.4", err, "external PSK %x", id.PSKID)
			}
			if err != nil {
				return nil, err // the store failed (classified by view)
			}
		case message.PSKResumption:
			if resumption != nil {
				secret = resumption(id)
			}
			if secret == nil {
				return nil, invalid("PSKMissing", "8.4", "resumption PSK of group %x epoch %d not available", id.PSKGroupID, id.PSKEpoch)
			}
		}
		raw, err := message.Marshal(id)
		if err != nil {
			return nil, err
		}
		psks[i] = keyschedule.PSK{ID: raw, Secret: secret}
	}
	return keyschedule.DerivePSKSecret(s, psks)
}

// epochKeys are the outputs of one run of the key schedule.
type epochKeys struct {
	joiner  *keyschedule.JoinerSecret
	welcome *keyschedule.WelcomeSecret
	epoch   *keyschedule.EpochSecrets
}

// epochFrom runs the key schedule of RFC 9420, Section 8 from the previous
// init secret and a commit secret.
func epochFrom(s *ciphersuite.Suite, init *keyschedule.InitSecret, commitSecret []byte, psk *keyschedule.PSKSecret, gcRaw []byte) (*epochKeys, error) {
	joiner, err := init.Joiner(commitSecret, gcRaw)
	if err != nil {
		return nil, err
	}
	return epochFromJoiner(joiner, psk, gcRaw)
}

func epochFromJoiner(joiner *keyschedule.JoinerSecret, psk *keyschedule.PSKSecret, gcRaw []byte) (*epochKeys, error) {
	mid, err := joiner.Intermediate(psk)
	if err != nil {
		return nil, err
	}
	ep, err := mid.Epoch(gcRaw)
	if err != nil {
		return nil, err
	}
	return &epochKeys{joiner: joiner, welcome: mid.Welcome(), epoch: ep}, nil
}

// newSecretTree builds the secret tree of an epoch (RFC 9420, Section 9).
func newSecretTree(s *ciphersuite.Suite, keys *keyschedule.EpochSecrets, leaves uint32, cfg secrettree.Config) (*secrettree.Tree, error) {
	enc, err := keys.EncryptionSecret()
	if err != nil {
		return nil, err
	}
	t, err := secrettree.New(s, enc, leaves, cfg)
	if err != nil {
		return nil, err
	}
	// RFC 9420, Section 9.2: the encryption secret is the secret tree's
	// root and is deleted once the tree is built from it.
	keys.DeleteEncryptionSecret()
	return t, nil
}

// merge moves the group to the staged epoch in one storage transaction.
func (g *Group) merge(ctx context.Context, sc *StagedCommit) error {
	if sc.base != g.st {
		return fmt.Errorf("%w: the staged commit is for another epoch or was already merged", ErrInvalidArgument)
	}
	// Keep what late application messages of this epoch need.
	var past *pastEpoch
	if g.cfg.MaxPastEpochs > 0 {
		past = g.st.snapshot()
	}
	resumption := g.st.keys.ResumptionPSK()
	var reinitRec []byte
	if sc.a.Reinit != nil {
		var err error
		if reinitRec, err = message.Marshal(sc.a.Reinit); err != nil {
			return err
		}
	}
	if err := sc.diff.Merge(); err != nil {
		return err
	}
	oldState, oldProps, oldPending, oldPast, oldActive, oldSigner, oldPSKs, oldUpdateKeys := g.st, g.props, g.pending, g.past, g.active, g.signer, maps.Clone(g.psks), g.updateKeys
	g.rememberResumption(g.st.GC.Epoch, resumption)
	if past != nil {
		g.past = append(g.past, past)
		if len(g.past) > g.cfg.MaxPastEpochs {
			g.past = g.past[len(g.past)-g.cfg.MaxPastEpochs:]
		}
	}
	g.props = nil
	g.pending = nil
	g.updateKeys = nil
	groupID := g.st.GC.GroupID
	oldReInit := g.reinit
	if sc.a.SelfGone || sc.next == nil {
		g.active = false
		if sc.next != nil {
			g.st = sc.next
		}
	} else {
		g.st = sc.next
		if sc.own && sc.signer != nil {
			g.signer = sc.signer
		}
	}
	if reinitRec != nil && g.active {
		// RFC 9420, Section 11.2: after a ReInit commit the group is
		// shut down; its last epoch stays readable (ExportSecret, the
		// resumption PSK) so that the new group can be created.
		g.active = false
		g.reinit = reInitParams(sc.a.Reinit)
	} else {
		reinitRec = nil
	}
	// The pending proposals die with the epoch, and with them the private
	// keys of this member's Update proposals (RFC 9420, Section 12.1.2).
	extra := func(tx storage.Tx) error {
		if err := state.DeleteUpdateKeys(tx, groupID); err != nil {
			return err
		}
		if reinitRec != nil {
			return state.PutReInit(tx, groupID, reinitRec)
		}
		return nil
	}
	if err := g.saveMerged(ctx, sc, extra); err != nil {
		// The tree was merged in memory; the caller must reload from
		// storage. Restore what we can so the object is not half-updated.
		g.st, g.props, g.pending, g.past, g.active, g.signer, g.psks, g.updateKeys, g.reinit = oldState, oldProps, oldPending, oldPast, oldActive, oldSigner, oldPSKs, oldUpdateKeys, oldReInit
		return fmt.Errorf("mls: saving merged commit (reload the group with LoadGroup): %w", err)
	}
	return nil
}

// snapshot keeps what reading late application messages of st needs.
func (st *epochState) snapshot() *pastEpoch {
	p := &pastEpoch{epoch: st.GC.Epoch, gcRaw: st.GCRaw, senderData: st.keys.SenderDataSecret(), secrets: st.secrets,
		sigKeys: map[uint32][]byte{}, creds: map[uint32]message.Credential{}}
	v := st.Tree.View()
	for _, l := range group.MembersLeaves(v) {
		ln := v.Leaf(l)
		p.sigKeys[uint32(l)] = ln.SignatureKey
		p.creds[uint32(l)] = ln.Credential
	}
	return p
}

// rememberResumption keeps the resumption PSK of epoch, which is ending,
// and forgets those beyond the retention (JoinConfig.ResumptionPSKRetention).
func (g *Group) rememberResumption(epoch uint64, psk []byte) {
	if g.psks == nil {
		g.psks = map[string][]byte{}
	}
	id := g.st.GC.GroupID
	n := g.cfg.resumptionRetention()
	if n > 0 {
		g.psks[resumptionKey(id, epoch)] = psk
	}
	// The new epoch is epoch+1; keep epochs epoch+1-n ... epoch. Entries
	// kept under a larger retention before a reload go too.
	prefix := resumptionKey(id, 0)
	prefix = prefix[:len(prefix)-1]
	for k := range g.psks {
		if e, err := strconv.ParseUint(strings.TrimPrefix(k, prefix), 10, 64); err == nil && strings.HasPrefix(k, prefix) && e+uint64(n) <= epoch {
			delete(g.psks, k)
		}
	}
}

// resumptionKey names a resumption PSK in Group.psks.
func resumptionKey(groupID []byte, epoch uint64) string {
	return fmt.Sprintf("%x/%d", groupID, epoch)
}
