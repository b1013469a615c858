package mls

import (
	"bytes"
	"context"
	"errors"

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
//	  -> StagedCommit, merged by Group.merge.

// policy is the group's policy as internal/group takes it. A PublicGroup
// holds no resumption PSK, so it checks no retention.
func (g *Group) policy() *group.Policy {
	p := &group.Policy{Now: g.cfg.now, SkipLifetime: g.cfg.SkipLifetimeCheck, Validator: g.cfg.client.validator, ResumptionRetention: g.cfg.resumptionRetention()}
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
