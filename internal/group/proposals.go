package group

import (
	"bytes"
	"fmt"

	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
)

// Applied is the result of applying a proposal list to a tree diff
// (RFC 9420, Section 12.3).
type Applied struct {
	Props        []*Proposal
	Exts         []message.Extension // new group context extensions, or nil
	Added        []tree.LeafIndex    // leaves of new members, in order
	AddedKPs     []*message.KeyPackage
	Removed      []tree.LeafIndex
	Updated      map[tree.LeafIndex]bool
	ExternalLeaf tree.LeafIndex
	Psks         []message.PreSharedKeyID
	Reinit       *message.ReInitProposal
	ExtInit      *message.ExternalInitProposal
	NeedsPath    bool
	SelfGone     bool // the committer's or this member's leaf was removed
}

// pathRequired reports whether a proposal type requires the commit to have
// a path (RFC 9420, Section 17.4, "Path Required").
func pathRequired(t message.ProposalType) bool {
	switch t {
	case message.ProposalAdd, message.ProposalPSK, message.ProposalReInit, ProposalAppDataUpdate:
		// AppDataUpdate: draft-ietf-mls-extensions, "Path Required: N".
		return false
	}
	return true
}

// ApplyProposals validates a commit's proposal list (RFC 9420, Section
// 12.2) and applies it to d in the order of Section 12.3: group context
// extensions, updates, removes, adds. committer is the commit's sender;
// external is true for external commits. me is this member's leaf (to
// notice its own removal). On error d may be partly modified and must be
// discarded.
//
// Rule names follow the OpenMLS "Message Validation" chapter
// (ValSem101-ValSem113, ValSem200, ValSem208, ValSem209, ValSem401-ValSem403)
// where it has one.
func (e *Epoch) ApplyProposals(d *tree.Diff, props []*Proposal, committer message.Sender, me tree.LeafIndex, pol *Policy) (*Applied, error) {
	a := &Applied{Props: props, Updated: map[tree.LeafIndex]bool{}, NeedsPath: len(props) == 0}
	external := committer.Type == message.SenderNewMemberCommit
	var updates, removes, adds, gces, psks, selfRemoves []*Proposal
	var appData []*AppDataUpdate
	var custom []message.ProposalType
	// touched records which leaves an Update or Remove applies to, and
	// whether it was a Remove (Section 12.2: at most one of them per leaf).
	touched := map[uint32]message.ProposalType{}
	pskIDs := map[string]bool{}
	initKeys := map[string]bool{}
	for _, q := range props {
		p := q.Proposal
		if pathRequired(p.Type) {
			a.NeedsPath = true
		}
		if !IsDefaultProposal(p.Type) && !contains(custom, p.Type) {
			custom = append(custom, p.Type)
		}
		switch p.Type {
		case message.ProposalAdd:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers an Add proposal")
			}
			kp := &p.Add.KeyPackage
			if err := e.CheckKeyPackage(kp); err != nil {
				return nil, err
			}
			if initKeys[string(kp.InitKey)] {
				return nil, invalid("ValSem102", "12.2", "two Add proposals share an init key")
			}
			initKeys[string(kp.InitKey)] = true
			adds = append(adds, q)
		case message.ProposalUpdate:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers an Update proposal")
			}
			if q.Sender.Type != message.SenderMember {
				return nil, invalid("ValSem112", "12.1.2", "Update proposal from a sender of type %d", q.Sender.Type)
			}
			if committer.Type == message.SenderMember && q.Sender.LeafIndex == committer.LeafIndex {
				return nil, invalid("ValSem111", "12.2", "commit covers the committer's own Update proposal")
			}
			if _, dup := touched[q.Sender.LeafIndex]; dup {
				return nil, invalid("ProposalSameLeaf", "12.2", "several Update/Remove proposals for leaf %d", q.Sender.LeafIndex)
			}
			touched[q.Sender.LeafIndex] = message.ProposalUpdate
			updates = append(updates, q)
		case message.ProposalRemove:
			r := p.Remove.Removed
			if d.Leaf(tree.LeafIndex(r)) == nil {
				return nil, invalid("ValSem108", "12.1.3", "Remove proposal for blank or missing leaf %d", r)
			}
			if prev, dup := touched[r]; dup {
				if prev == ProposalSelfRemove {
					return nil, invalid("SelfRemoveAndRemove", secSelfRemove, "Remove proposal for leaf %d, which a SelfRemove proposal removes", r)
				}
				if prev == message.ProposalRemove {
					return nil, invalid("ValSem107", "12.2", "several Remove proposals for leaf %d", r)
				}
				return nil, invalid("ProposalSameLeaf", "12.2", "Update and Remove proposals for leaf %d", r)
			}
			touched[r] = message.ProposalRemove
			if committer.Type == message.SenderMember && r == committer.LeafIndex {
				return nil, invalid("ValSem200", "12.2", "commit removes the committer")
			}
			removes = append(removes, q)
		case message.ProposalPSK:
			id := &p.PSK.PSK
			if err := e.checkPSKProposal(id, pol); err != nil {
				return nil, err
			}
			key := pskKey(id)
			if pskIDs[key] {
				return nil, invalid("ValSem403", "12.2", "two PreSharedKey proposals for the same PSK")
			}
			pskIDs[key] = true
			psks = append(psks, q)
		case message.ProposalReInit:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers a ReInit proposal")
			}
			if len(props) != 1 {
				return nil, invalid("ReInitAlone", "12.2", "ReInit proposal together with other proposals")
			}
			if p.ReInit.Version < e.GC.Version {
				return nil, invalid("ReInitVersion", "12.1.5", "ReInit to older version %d", p.ReInit.Version)
			}
			a.Reinit = p.ReInit
		case message.ProposalExternalInit:
			if !external {
				return nil, invalid("ExternalInitInternal", "12.2", "ExternalInit proposal in a regular commit")
			}
			if a.ExtInit != nil {
				return nil, invalid("ValSem241", "12.2", "external commit covers several ExternalInit proposals")
			}
			a.ExtInit = p.ExternalInit
		case message.ProposalGroupContextExtensions:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers a GroupContextExtensions proposal")
			}
			gces = append(gces, q)
			if len(gces) > 1 {
				return nil, invalid("ValSem208", "12.2", "several GroupContextExtensions proposals")
			}
		case ProposalSelfRemove:
			// draft-ietf-mls-extensions, "SelfRemove Proposal": by
			// reference only, from a member, never the committer's own;
			// it removes the proposer's leaf.
			if q.Ref == nil {
				return nil, invalid("SelfRemoveInline", secSelfRemove, "SelfRemove proposal by value; it is only allowed by reference")
			}
			if len(p.Data) != 0 {
				return nil, invalid("SelfRemoveMalformed", secSelfRemove, "SelfRemove proposal with a %d-byte body; SelfRemove is an empty struct", len(p.Data))
			}
			l := q.Sender.LeafIndex
			if q.Sender.Type != message.SenderMember || d.Leaf(tree.LeafIndex(l)) == nil {
				return nil, invalid("SelfRemoveNonMember", secSelfRemove, "SelfRemove proposal from a sender of type %d (leaf %d) that is not a member", q.Sender.Type, l)
			}
			if committer.Type == message.SenderMember && l == committer.LeafIndex {
				return nil, invalid("SelfRemoveCommitter", secSelfRemove, "commit covers the committer's own SelfRemove proposal")
			}
			if prev, dup := touched[l]; dup {
				switch prev {
				case ProposalSelfRemove:
					return nil, invalid("SelfRemoveTwice", secSelfRemove, "several SelfRemove proposals from leaf %d", l)
				case message.ProposalRemove:
					return nil, invalid("SelfRemoveAndRemove", secSelfRemove, "Remove proposal for leaf %d, which a SelfRemove proposal removes", l)
				}
				return nil, invalid("ProposalSameLeaf", "12.2", "Update and SelfRemove proposals for leaf %d", l)
			}
			touched[l] = ProposalSelfRemove
			selfRemoves = append(selfRemoves, q)
		case ProposalAppDataUpdate:
			// draft-ietf-mls-extensions, "Updating Application Data in the
			// GroupContext": allowed from external senders and in
			// external commits.
			u, err := ParseAppDataUpdate(p.Data)
			if err != nil {
				return nil, err
			}
			appData = append(appData, u)
		default:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers a proposal of type %d", p.Type)
			}
		}
	}
	if external {
		if a.ExtInit == nil {
			return nil, invalid("ValSem240", "12.2", "external commit without an ExternalInit proposal")
		}
		if len(removes) > 1 {
			return nil, invalid("ValSem242", "12.2", "external commit with several Remove proposals")
		}
	}
	opts := pol.TreeOptions(&e.GC)

	// Group context extensions first: later leaf checks use the new
	// required capabilities (Section 12.3).
	var rc *message.RequiredCapabilities
	if len(gces) == 1 {
		exts := gces[0].Proposal.GroupContextExtensions.Extensions
		if err := message.CheckExtensions(exts); err != nil {
			return nil, invalidErr("ValSem209", "12.1.7", err, "group context extensions")
		}
		var err error
		if rc, err = RequiredCapabilities(exts); err != nil {
			return nil, invalidErr("ValSem209", "12.1.7", err, "required_capabilities")
		}
		old, _ := RequiredCapabilities(e.GC.Extensions)
		if err := checkGCEAppData(old, e.GC.Extensions, exts); err != nil {
			return nil, err
		}
		a.Exts = exts
		opts.RequiredCapabilities = rc
		if pol.Components != nil {
			opts.Leaf = pol.Components(exts)
		}
	}
	for _, q := range updates {
		at := tree.LeafIndex(q.Sender.LeafIndex)
		if err := d.ValidateLeaf(&q.Proposal.Update.LeafNode, at, message.LeafNodeSourceUpdate, &opts); err != nil {
			return nil, LeafError(err, message.LeafNodeSourceUpdate, "Update proposal from leaf %d", at)
		}
		if err := d.Update(at, &q.Proposal.Update.LeafNode); err != nil {
			return nil, invalidErr("ValSem109", "12.1.2", err, "Update proposal from leaf %d", at)
		}
		a.Updated[at] = true
	}
	// draft-ietf-mls-extensions: SelfRemove proposals are processed after
	// Update proposals and before Remove proposals, as the Remove of the
	// proposer's leaf.
	for _, q := range selfRemoves {
		r := tree.LeafIndex(q.Sender.LeafIndex)
		if err := d.Remove(r); err != nil {
			return nil, invalidErr("SelfRemoveNonMember", secSelfRemove, err, "SelfRemove proposal")
		}
		a.Removed = append(a.Removed, r)
		if r == me {
			a.SelfGone = true
		}
	}
	for _, q := range removes {
		r := tree.LeafIndex(q.Proposal.Remove.Removed)
		if err := d.Remove(r); err != nil {
			return nil, invalidErr("ValSem108", "12.1.3", err, "Remove proposal")
		}
		a.Removed = append(a.Removed, r)
		if r == me {
			a.SelfGone = true
		}
	}
	// Section 12.2: a non-default proposal type must be supported by the
	// members that process the commit: not those it removes, nor those it
	// adds.
	for _, t := range custom {
		if err := CheckProposalSupported(d, t); err != nil {
			return nil, err
		}
	}
	// Section 12.1.7: the remaining members must support the new
	// required_capabilities (added members are checked below, as their
	// leaves are validated with the new options).
	if rc != nil {
		if err := CheckNewRequiredCapabilities(d, rc); err != nil {
			return nil, err
		}
	}
	if a.Exts != nil && pol.Components != nil {
		if check := pol.Components(a.Exts); check != nil {
			for _, m := range MembersLeaves(d) {
				if err := check(d.Leaf(m)); err != nil {
					return nil, invalidErr("ValSem209", "12.1.7", err, "leaf %d does not support the group's new required components", m)
				}
			}
		}
	}
	for _, q := range adds {
		kp := &q.Proposal.Add.KeyPackage
		at, err := d.ReserveLeaf()
		if err != nil {
			return nil, invalidErr("TreeFull", "12.1.1", err, "no room for the new member")
		}
		if err := d.ValidateLeaf(&kp.LeafNode, at, message.LeafNodeSourceKeyPackage, &opts); err != nil {
			return nil, LeafError(err, message.LeafNodeSourceKeyPackage, "Add proposal for leaf %d", at)
		}
		if _, dup := d.FindEncryptionKey(kp.InitKey); dup {
			return nil, invalid("InitKeyReuse", "16.8", "Add proposal init key already in the tree")
		}
		i, err := d.Add(&kp.LeafNode)
		if err != nil {
			return nil, invalidErr("TreeFull", "12.1.1", err, "Add proposal")
		}
		a.Added = append(a.Added, i)
		a.AddedKPs = append(a.AddedKPs, kp)
	}
	// AppDataUpdate proposals come after the default proposals
	// (draft-ietf-mls-extensions), on the extensions the commit leaves.
	if len(appData) > 0 {
		base := e.GC.Extensions
		if a.Exts != nil {
			base = a.Exts
		}
		fn := pol.AppData
		if fn == nil {
			fn = ReplaceData
		}
		exts, err := applyAppData(base, appData, fn)
		if err != nil {
			return nil, err
		}
		a.Exts = exts
		// The new dictionary may require new components of every member.
		if pol.Components != nil {
			if check := pol.Components(exts); check != nil {
				for _, m := range MembersLeaves(d) {
					if err := check(d.Leaf(m)); err != nil {
						return nil, invalidErr("ValSem209", "12.1.7", err, "leaf %d does not support the group's new required components", m)
					}
				}
			}
		}
	}
	// ValSem209: every member of the new epoch supports the new group
	// context extensions.
	if a.Exts != nil {
		if err := CheckExtensionsSupported(d, a.Exts); err != nil {
			return nil, err
		}
	}
	for _, q := range psks {
		a.Psks = append(a.Psks, q.Proposal.PSK.PSK)
	}
	return a, nil
}

// checkResumptionRetention rejects a resumption PSK of this group from an
// epoch older than the member's retention (pol.ResumptionRetention): the
// member has deleted it, as RFC 9420, Section 8.6 lets it, and the commit
// cannot be processed. A follower (negative retention) holds no PSK and
// does not check it.
func (e *Epoch) checkResumptionRetention(id *message.PreSharedKeyID, pol *Policy) error {
	n := pol.ResumptionRetention
	if n < 0 || id.Type != message.PSKResumption || !bytes.Equal(id.PSKGroupID, e.GC.GroupID) || id.PSKEpoch >= e.GC.Epoch {
		return nil
	}
	if e.GC.Epoch-id.PSKEpoch > uint64(n) {
		// The cause is PSKMissing, so callers matching that rule (the PSK
		// is not available) match this one too.
		missing := invalid("PSKMissing", "8.4", "resumption PSK of group %x epoch %d not available", id.PSKGroupID, id.PSKEpoch)
		return invalidErr("ResumptionPSKRetention", "8.6", missing, "resumption PSK of epoch %d is more than %d epochs before the current epoch %d", id.PSKEpoch, n, e.GC.Epoch)
	}
	return nil
}

// checkPSKProposal checks the PreSharedKeyID of a PreSharedKey proposal,
// standalone or in a commit (RFC 9420, Section 12.1.4): resumption PSKs
// with usage reinit or branch belong to reinitialization and branching
// only (Sections 11.2 and 11.3), the nonce is Nh octets, and a resumption
// PSK of this group is within the member's retention.
func (e *Epoch) checkPSKProposal(id *message.PreSharedKeyID, pol *Policy) error {
	if id.Type != message.PSKExternal && !(id.Type == message.PSKResumption && id.Usage == message.ResumptionApplication) {
		return invalid("ValSem402", "12.1.4", "PSK of type %d usage %d not allowed in a PreSharedKey proposal", id.Type, id.Usage)
	}
	if len(id.Nonce) != e.Suite.HashSize() {
		return invalid("ValSem401", "12.1.4", "PSK nonce of %d bytes, want %d", len(id.Nonce), e.Suite.HashSize())
	}
	return e.checkResumptionRetention(id, pol)
}

// pskKey identifies a PSK regardless of its nonce, to detect two
// proposals for the same PSK (ValSem403).
func pskKey(id *message.PreSharedKeyID) string {
	if id.Type == message.PSKExternal {
		return fmt.Sprintf("external/%x", id.PSKID)
	}
	return fmt.Sprintf("resumption/%d/%x/%d", id.Usage, id.PSKGroupID, id.PSKEpoch)
}

// CheckProposalSupported checks that every member supports a proposal type
// that is not one of RFC 9420's (ValSem113).
func CheckProposalSupported(d *tree.Diff, t message.ProposalType) error {
	for _, m := range MembersLeaves(d) {
		if !message.Supports(d.Leaf(m).Capabilities.Proposals, t) {
			return invalid("ValSem113", "12.2", "leaf %d does not support proposal type %d", m, t)
		}
	}
	return nil
}

// CheckExtensionsSupported checks that every member supports every
// non-default extension of a new group context (ValSem209).
func CheckExtensionsSupported(d *tree.Diff, exts []message.Extension) error {
	for _, e := range exts {
		if IsDefaultExtension(e.Type) {
			continue
		}
		for _, m := range MembersLeaves(d) {
			if !message.Supports(d.Leaf(m).Capabilities.Extensions, e.Type) {
				return invalid("ValSem209", "12.1.7", "leaf %d does not support extension type %d", m, e.Type)
			}
		}
	}
	return nil
}

// CheckNewRequiredCapabilities checks that every member of d supports a
// GroupContextExtensions proposal's extensions and the required
// capabilities it sets (ValSem209, RFC 9420, Section 12.1.7).
func CheckNewRequiredCapabilities(d *tree.Diff, rc *message.RequiredCapabilities) error {
	for _, m := range MembersLeaves(d) {
		if err := CheckRequiredCapabilities(rc, &d.Leaf(m).Capabilities); err != nil {
			return invalid("ValSem209", "12.1.7", "leaf %d does not support the new required_capabilities: %v", m, err)
		}
	}
	return nil
}

// MembersLeaves returns the non-blank leaves of d. It decodes no leaf (the
// tree keeps leaves encoded and Leaf decodes one on each call).
func MembersLeaves(d *tree.Diff) []tree.LeafIndex {
	var out []tree.LeafIndex
	for i := uint32(0); i < d.NumLeaves(); i++ {
		if !d.IsBlank(tree.LeafIndex(i).Node()) {
			out = append(out, tree.LeafIndex(i))
		}
	}
	return out
}

// IsDefaultExtension reports whether an extension type is one of RFC
// 9420's own, which need not be listed in capabilities (Section 7.2).
func IsDefaultExtension(t message.ExtensionType) bool {
	return t >= message.ExtensionApplicationID && t <= message.ExtensionExternalSenders
}

// IsDefaultProposal reports whether a proposal type is one of RFC 9420's.
func IsDefaultProposal(t message.ProposalType) bool {
	return t >= message.ProposalAdd && t <= message.ProposalGroupContextExtensions
}

// CheckRequiredCapabilities checks one leaf's capabilities against the
// required_capabilities extension (RFC 9420, Section 11.1).
func CheckRequiredCapabilities(rc *message.RequiredCapabilities, c *message.Capabilities) error {
	for _, e := range rc.Extensions {
		if !IsDefaultExtension(e) && !message.Supports(c.Extensions, e) {
			return invalid("ValSem106", "11.1", "required extension type %d not supported", e)
		}
	}
	for _, p := range rc.Proposals {
		if !IsDefaultProposal(p) && !message.Supports(c.Proposals, p) {
			return invalid("ValSem106", "11.1", "required proposal type %d not supported", p)
		}
	}
	for _, ct := range rc.Credentials {
		if !message.Supports(c.Credentials, ct) {
			return invalid("ValSem106", "11.1", "required credential type %d not supported", ct)
		}
	}
	return nil
}

// RequiredCapabilities returns the required_capabilities extension, or nil.
func RequiredCapabilities(exts []message.Extension) (*message.RequiredCapabilities, error) {
	var rc message.RequiredCapabilities
	ok, err := message.ParseExtension(exts, &rc)
	if err != nil || !ok {
		return nil, err
	}
	return &rc, nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
