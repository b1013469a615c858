package group

import (
	"bytes"

	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
)

// Staged is the public half of a received commit (RFC 9420, Section
// 12.4.2): the validated proposal list applied to a diff of the tree, the
// UpdatePath applied to it, and the next epoch's public state. Nothing of
// the epoch it came from has changed; Diff.Merge makes the tree the next
// epoch's.
type Staged struct {
	Diff    *tree.Diff
	Applied *Applied
	// SenderLeaf is the committer's leaf: for an external commit the leaf
	// the joiner takes.
	SenderLeaf tree.LeafIndex
	// Path is the applied UpdatePath, nil for a commit without one, and
	// Provisional the GroupContext its path secrets are encrypted under:
	// new epoch and tree hash, old transcript (Section 12.4.2).
	Path        *tree.AppliedPath
	Provisional []byte
	// Next is the public state of the next epoch, or nil if the commit
	// removes the member me that staged it. Its tree is still the old
	// one until Diff is merged; the confirmation tag is the commit's, which
	// only a member can check.
	Next *Epoch
}

// StageCommit validates a verified commit of the epoch and stages the
// public half of the next epoch (RFC 9420, Section 12.4.2). lookup
// resolves the proposals the commit covers by reference (nil if not
// received). me is the member staging the commit, to notice its removal
// (a leaf outside every tree for a follower). The commit's sender is not
// me; its own commits the member recognizes itself.
func (e *Epoch) StageCommit(ac *message.AuthenticatedContent, lookup func(ref []byte) *Proposal, me tree.LeafIndex, pol *Policy) (*Staged, error) {
	fc := &ac.Content
	commit := fc.Commit
	sender := fc.Sender
	if ac.Auth.ConfirmationTag == nil {
		return nil, invalid("ValSem009", "6.1", "commit without confirmation tag")
	}
	if sender.Type != message.SenderMember && sender.Type != message.SenderNewMemberCommit {
		return nil, invalid("ValSem112", "12.4", "commit from a sender of type %d", sender.Type)
	}
	external := sender.Type == message.SenderNewMemberCommit
	props := make([]*Proposal, 0, len(commit.Proposals))
	for _, por := range commit.Proposals {
		if por.Proposal != nil {
			props = append(props, &Proposal{Proposal: por.Proposal, Sender: sender})
			continue
		}
		q := lookup(por.Reference)
		if external && (q == nil || q.Proposal.Type != ProposalSelfRemove) {
			// draft-ietf-mls-extensions lets an external commit cover
			// SelfRemove proposals by reference, and nothing else.
			return nil, invalid("ValSem244", "12.2", "external commit covers a proposal other than SelfRemove by reference")
		}
		if q == nil {
			return nil, invalidErr("ProposalReference", "12.4.2", ErrUnknownProposal, "proposal %x not received", por.Reference)
		}
		props = append(props, q)
	}
	d := e.Tree.Diff()
	a, err := e.ApplyProposals(d, props, sender, me, pol)
	if err != nil {
		return nil, err
	}
	st := &Staged{Diff: d, Applied: a, SenderLeaf: tree.LeafIndex(sender.LeafIndex)}
	if external {
		if commit.Path == nil {
			return nil, invalid("ValSem245", "12.4.3.2", "external commit without a path")
		}
		if st.SenderLeaf, err = d.ReserveLeaf(); err != nil {
			return nil, invalidErr("TreeFull", "12.4.3.2", err, "no room for the external joiner")
		}
		a.ExternalLeaf = st.SenderLeaf
		// The inline proposals' sender is the joiner, now at SenderLeaf
		// (those by reference, SelfRemoves, are the members').
		for _, q := range props {
			if q.Ref == nil {
				q.Sender.LeafIndex = uint32(st.SenderLeaf)
			}
		}
	}
	if a.NeedsPath && commit.Path == nil {
		return nil, invalid("ValSem201", "12.4", "commit needs a path and has none")
	}
	gc := e.NextContext(a)
	if commit.Path != nil {
		opts := tree.PathOptions{Options: pol.TreeOptions(&gc), Exclude: a.Added}
		if st.Path, err = d.ApplyPath(st.SenderLeaf, commit.Path, &opts); err != nil {
			return nil, PathError(err, st.SenderLeaf)
		}
	}
	gc.TreeHash = d.TreeHash()
	if a.SelfGone {
		return st, nil
	}
	if st.Path != nil {
		if st.Provisional, err = message.Marshal(&gc); err != nil {
			return nil, err
		}
	}
	if st.Next, err = e.Next(gc, ac); err != nil {
		return nil, err
	}
	st.Next.SetConfirmationTag(bytes.Clone(ac.Auth.ConfirmationTag))
	return st, nil
}

// NextContext is the GroupContext of the epoch that a commit applying a
// starts, before its tree hash and transcript are known (RFC 9420, Section
// 12.4.2): the next epoch number and the extensions of its
// GroupContextExtensions proposal, if any.
func (e *Epoch) NextContext(a *Applied) message.GroupContext {
	gc := e.GC
	gc.Epoch++
	if a.Exts != nil {
		gc.Extensions = a.Exts
	}
	return gc
}

// Next is the public state of the epoch that the signed commit ac starts:
// gc, whose tree hash is already the new tree's, with the confirmed
// transcript hash of ac (RFC 9420, Section 8.2), encoded. Its confirmation
// tag is set with SetConfirmationTag: a committer derives it from the next
// key schedule, which needs the encoded GroupContext first.
func (e *Epoch) Next(gc message.GroupContext, ac *message.AuthenticatedContent) (*Epoch, error) {
	var err error
	if gc.ConfirmedTranscriptHash, err = framing.ConfirmedTranscriptHash(e.Suite, e.Interim, ac); err != nil {
		return nil, err
	}
	next := &Epoch{Suite: e.Suite, GC: gc, Tree: e.Tree}
	if next.GCRaw, err = message.Marshal(&next.GC); err != nil {
		return nil, err
	}
	return next, nil
}

// SetConfirmationTag records the epoch's confirmation tag and the interim
// transcript hash that follows from it (RFC 9420, Section 8.2).
func (e *Epoch) SetConfirmationTag(tag []byte) {
	e.ConfTag = tag
	e.Interim = e.InterimHash()
}
