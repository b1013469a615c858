package mls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/state"
	"github.com/mlskit/mls/internal/tree"
	"github.com/mlskit/mls/storage"
)

// SenderType says who sent a message (RFC 9420, Section 6).
type SenderType uint8

const (
	SenderMember            = SenderType(message.SenderMember)
	SenderExternal          = SenderType(message.SenderExternal)
	SenderNewMemberProposal = SenderType(message.SenderNewMemberProposal)
	SenderNewMemberCommit   = SenderType(message.SenderNewMemberCommit)
)

// String returns the SenderType name of RFC 9420, Section 6.
func (t SenderType) String() string {
	switch t {
	case SenderMember:
		return "member"
	case SenderExternal:
		return "external"
	case SenderNewMemberProposal:
		return "new_member_proposal"
	case SenderNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("SenderType(%d)", uint8(t))
}

// Sender identifies the sender of a message: a member by leaf index, an
// external sender by its index in the external_senders extension, or a new
// member: for an external commit (SenderNewMemberCommit) Index is the leaf
// the joiner takes, for a join proposal it is 0.
type Sender struct {
	Type  SenderType
	Index uint32
}

// String describes the sender: "member 3", "external 0",
// "new_member_proposal" or "new_member_commit".
func (s Sender) String() string {
	switch s.Type {
	case SenderMember, SenderExternal:
		return fmt.Sprintf("%v %d", s.Type, s.Index)
	}
	return s.Type.String()
}

func senderOf(s message.Sender) Sender {
	switch s.Type {
	case message.SenderMember:
		return Sender{Type: SenderMember, Index: s.LeafIndex}
	case message.SenderExternal:
		return Sender{Type: SenderExternal, Index: s.SenderIndex}
	case message.SenderNewMemberCommit:
		// Set to the joiner's leaf once known (receiveCommit).
		return Sender{Type: SenderNewMemberCommit, Index: s.LeafIndex}
	}
	return Sender{Type: SenderType(s.Type)}
}

// ProposalType is a proposal type from the IANA "MLS Proposal Types"
// registry (RFC 9420, Section 17.4).
type ProposalType uint16

const (
	ProposalAdd                    = ProposalType(message.ProposalAdd)
	ProposalUpdate                 = ProposalType(message.ProposalUpdate)
	ProposalRemove                 = ProposalType(message.ProposalRemove)
	ProposalPSK                    = ProposalType(message.ProposalPSK)
	ProposalReInit                 = ProposalType(message.ProposalReInit)
	ProposalExternalInit           = ProposalType(message.ProposalExternalInit)
	ProposalGroupContextExtensions = ProposalType(message.ProposalGroupContextExtensions)
)

// String returns the registry name of the proposal type (RFC 9420,
// Section 17.4), or its number in hexadecimal for other types.
func (t ProposalType) String() string {
	switch t {
	case ProposalAdd:
		return "add"
	case ProposalUpdate:
		return "update"
	case ProposalRemove:
		return "remove"
	case ProposalPSK:
		return "psk"
	case ProposalReInit:
		return "reinit"
	case ProposalExternalInit:
		return "external_init"
	case ProposalGroupContextExtensions:
		return "group_context_extensions"
	}
	return fmt.Sprintf("ProposalType(0x%04x)", uint16(t))
}

// ProposalRef identifies a proposal sent by reference (RFC 9420,
// Section 5.2): RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent),
// as many bytes as the cipher suite's hash. It is a byte slice so that it
// converts freely to and from []byte; compare two with bytes.Equal. A nil
// ProposalRef means "none" (a proposal sent inline in a commit).
type ProposalRef []byte

// PSKType says which kind of pre-shared key a PSK id names (RFC 9420,
// Section 8.4).
type PSKType uint8

const (
	PSKExternal   = PSKType(message.PSKExternal)
	PSKResumption = PSKType(message.PSKResumption)
)

// String returns the PSKType name of RFC 9420, Section 8.4.
func (t PSKType) String() string {
	switch t {
	case PSKExternal:
		return "external"
	case PSKResumption:
		return "resumption"
	}
	return fmt.Sprintf("PSKType(%d)", uint8(t))
}

// ResumptionUsage says why a resumption PSK is injected (RFC 9420,
// Section 8.6).
type ResumptionUsage uint8

const (
	ResumptionApplication = ResumptionUsage(message.ResumptionApplication)
	ResumptionReInit      = ResumptionUsage(message.ResumptionReInit)
	ResumptionBranch      = ResumptionUsage(message.ResumptionBranch)
)

// String returns the ResumptionPSKUsage name of RFC 9420, Section 8.6.
func (u ResumptionUsage) String() string {
	switch u {
	case ResumptionApplication:
		return "application"
	case ResumptionReInit:
		return "reinit"
	case ResumptionBranch:
		return "branch"
	}
	return fmt.Sprintf("ResumptionUsage(%d)", uint8(u))
}

// PSKID is a PreSharedKeyID (RFC 9420, Section 8.4): an external PSK's ID,
// or the group and epoch whose resumption PSK is meant, plus the nonce.
type PSKID struct {
	Type PSKType
	// ID is an external PSK's psk_id.
	ID []byte
	// Usage, GroupID and Epoch name a resumption PSK.
	Usage   ResumptionUsage
	GroupID []byte
	Epoch   uint64
	Nonce   []byte
}

func pskIDOf(id *message.PreSharedKeyID) PSKID {
	return PSKID{Type: PSKType(id.Type), ID: clone(id.PSKID), Usage: ResumptionUsage(id.Usage), GroupID: clone(id.PSKGroupID), Epoch: id.PSKEpoch, Nonce: clone(id.Nonce)}
}

// QueuedProposal is a proposal received or sent in the current epoch,
// waiting to be committed, or one covered by a staged commit.
type QueuedProposal struct {
	p      *message.Proposal
	ref    []byte // ProposalRef; nil for a proposal inline in a commit
	sender message.Sender
}

// body returns the proposal, or an empty one for a QueuedProposal that
// was not obtained from this package (a zero value), so that the
// accessors report "none" instead of panicking.
func (q *QueuedProposal) body() *message.Proposal {
	if q == nil || q.p == nil {
		return &message.Proposal{}
	}
	return q.p
}

// Type returns the proposal type.
func (q *QueuedProposal) Type() ProposalType { return ProposalType(q.body().Type) }

// Ref returns the ProposalRef (RFC 9420, Section 5.2), or nil for a
// proposal sent inline in a commit.
func (q *QueuedProposal) Ref() ProposalRef { return ProposalRef(clone(q.ref)) }

// Sender returns who proposed it.
func (q *QueuedProposal) Sender() Sender { return senderOf(q.sender) }

// Removed returns the leaf a Remove proposal removes.
func (q *QueuedProposal) Removed() (uint32, bool) {
	p := q.body()
	if p.Remove == nil {
		return 0, false
	}
	return p.Remove.Removed, true
}

// KeyPackage returns the key package an Add proposal adds (RFC 9420,
// Section 12.1.1). Its signatures were checked when the proposal was
// validated.
func (q *QueuedProposal) KeyPackage() (*KeyPackage, bool) {
	p := q.body()
	if p.Add == nil {
		return nil, false
	}
	s, err := lookupSuite(p.Add.KeyPackage.CipherSuite)
	if err != nil {
		return nil, false
	}
	kp, err := wrapKeyPackage(s, p.Add.KeyPackage)
	if err != nil {
		return nil, false
	}
	return kp, true
}

// LeafNode returns the new leaf node of an Update proposal (RFC 9420,
// Section 12.1.2).
func (q *QueuedProposal) LeafNode() (*LeafNode, bool) {
	p := q.body()
	if p.Update == nil {
		return nil, false
	}
	return leafNodeOf(&p.Update.LeafNode), true
}

// AddedCredential returns the credential of the key package an Add
// proposal adds.
func (q *QueuedProposal) AddedCredential() (credential.Credential, bool) {
	p := q.body()
	if p.Add == nil {
		return credential.Credential{}, false
	}
	return credOf(p.Add.KeyPackage.LeafNode.Credential), true
}

// UpdatedCredential returns the credential of an Update proposal's new leaf.
func (q *QueuedProposal) UpdatedCredential() (credential.Credential, bool) {
	p := q.body()
	if p.Update == nil {
		return credential.Credential{}, false
	}
	return credOf(p.Update.LeafNode.Credential), true
}

// PreSharedKey returns the PSK id a PreSharedKey proposal injects (RFC
// 9420, Section 12.1.4), external or resumption.
func (q *QueuedProposal) PreSharedKey() (PSKID, bool) {
	p := q.body()
	if p.PSK == nil {
		return PSKID{}, false
	}
	return pskIDOf(&p.PSK.PSK), true
}

// CustomType returns the type of a proposal RFC 9420 does not define, with
// CustomData its body.
func (q *QueuedProposal) CustomType() (uint16, bool) {
	p := q.body()
	if p.Type == 0 || isDefaultProposal(p.Type) {
		return 0, false
	}
	return uint16(p.Type), true
}

func (q *QueuedProposal) String() string {
	return fmt.Sprintf("proposal(%v from %v)", ProposalType(q.body().Type), senderOf(q.sender))
}

// applied is the result of applying a proposal list to a tree diff
// (RFC 9420, Section 12.3).
type applied struct {
	props        []*QueuedProposal
	exts         []message.Extension // new group context extensions, or nil
	added        []tree.LeafIndex    // leaves of new members, in order
	addedKPs     []*message.KeyPackage
	removed      []tree.LeafIndex
	updated      map[tree.LeafIndex]bool
	externalLeaf tree.LeafIndex
	psks         []message.PreSharedKeyID
	reinit       *message.ReInitProposal
	extInit      *message.ExternalInitProposal
	needsPath    bool
	selfGone     bool // the committer's or this member's leaf was removed
}

// pathRequired reports whether a proposal type requires the commit to have
// a path (RFC 9420, Section 17.4, "Path Required").
func pathRequired(t message.ProposalType) bool {
	switch t {
	case message.ProposalAdd, message.ProposalPSK, message.ProposalReInit:
		return false
	}
	return true
}

// applyProposals validates a commit's proposal list (RFC 9420, Section
// 12.2) and applies it to d in the order of Section 12.3: group context
// extensions, updates, removes, adds. committer is the commit's sender;
// external is true for external commits. me is this member's leaf (to
// notice its own removal). On error d may be partly modified and must be
// discarded.
//
// Rule names follow the OpenMLS "Message Validation" chapter
// (ValSem101-ValSem113, ValSem200, ValSem208, ValSem209, ValSem401-ValSem403)
// where it has one.
func (g *Group) applyProposals(st *epochState, d *tree.Diff, props []*QueuedProposal, committer message.Sender, me tree.LeafIndex) (*applied, error) {
	s := st.Suite
	a := &applied{props: props, updated: map[tree.LeafIndex]bool{}, needsPath: len(props) == 0}
	external := committer.Type == message.SenderNewMemberCommit
	var updates, removes, adds, gces, psks []*QueuedProposal
	var custom []message.ProposalType
	// touched records which leaves an Update or Remove applies to, and
	// whether it was a Remove (Section 12.2: at most one of them per leaf).
	touched := map[uint32]message.ProposalType{}
	pskIDs := map[string]bool{}
	initKeys := map[string]bool{}
	for _, q := range props {
		p := q.p
		if pathRequired(p.Type) {
			a.needsPath = true
		}
		if !isDefaultProposal(p.Type) && !contains(custom, p.Type) {
			custom = append(custom, p.Type)
		}
		switch p.Type {
		case message.ProposalAdd:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers an Add proposal")
			}
			kp := &p.Add.KeyPackage
			// Section 10.1: suite and version must match the group's.
			if kp.CipherSuite != st.GC.CipherSuite || kp.Version != st.GC.Version {
				return nil, invalid("ValSem105", "10.1", "key package for suite 0x%04x version %d, group uses 0x%04x version %d", uint16(kp.CipherSuite), kp.Version, uint16(st.GC.CipherSuite), st.GC.Version)
			}
			if err := verifyKeyPackage(s, kp); err != nil {
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
			if q.sender.Type != message.SenderMember {
				return nil, invalid("ValSem112", "12.1.2", "Update proposal from a sender of type %d", q.sender.Type)
			}
			if committer.Type == message.SenderMember && q.sender.LeafIndex == committer.LeafIndex {
				return nil, invalid("ValSem111", "12.2", "commit covers the committer's own Update proposal")
			}
			if _, dup := touched[q.sender.LeafIndex]; dup {
				return nil, invalid("ProposalSameLeaf", "12.2", "several Update/Remove proposals for leaf %d", q.sender.LeafIndex)
			}
			touched[q.sender.LeafIndex] = message.ProposalUpdate
			updates = append(updates, q)
		case message.ProposalRemove:
			r := p.Remove.Removed
			if d.Leaf(tree.LeafIndex(r)) == nil {
				return nil, invalid("ValSem108", "12.1.3", "Remove proposal for blank or missing leaf %d", r)
			}
			if prev, dup := touched[r]; dup {
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
			// Section 12.1.4: resumption PSKs with usage reinit or branch
			// belong to reinitialization and branching only.
			if id.Type != message.PSKExternal && !(id.Type == message.PSKResumption && id.Usage == message.ResumptionApplication) {
				return nil, invalid("ValSem402", "12.1.4", "PSK of type %d usage %d not allowed in a PreSharedKey proposal", id.Type, id.Usage)
			}
			if len(id.Nonce) != s.HashSize() {
				return nil, invalid("ValSem401", "12.1.4", "PSK nonce of %d bytes, want %d", len(id.Nonce), s.HashSize())
			}
			if err := g.checkResumptionRetention(st, id); err != nil {
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
			if p.ReInit.Version < st.GC.Version {
				return nil, invalid("ReInitVersion", "12.1.5", "ReInit to older version %d", p.ReInit.Version)
			}
			a.reinit = p.ReInit
		case message.ProposalExternalInit:
			if !external {
				return nil, invalid("ExternalInitInternal", "12.2", "ExternalInit proposal in a regular commit")
			}
			if a.extInit != nil {
				return nil, invalid("ValSem241", "12.2", "external commit covers several ExternalInit proposals")
			}
			a.extInit = p.ExternalInit
		case message.ProposalGroupContextExtensions:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers a GroupContextExtensions proposal")
			}
			gces = append(gces, q)
			if len(gces) > 1 {
				return nil, invalid("ValSem208", "12.2", "several GroupContextExtensions proposals")
			}
		default:
			if external {
				return nil, invalid("ValSem242", "12.2", "external commit covers a proposal of type %d", p.Type)
			}
		}
	}
	if external {
		if a.extInit == nil {
			return nil, invalid("ValSem240", "12.2", "external commit without an ExternalInit proposal")
		}
		if len(removes) > 1 {
			return nil, invalid("ValSem242", "12.2", "external commit with several Remove proposals")
		}
	}
	opts := g.treeOptions(st, &st.GC)

	// Group context extensions first: later leaf checks use the new
	// required capabilities (Section 12.3).
	var rc *message.RequiredCapabilities
	if len(gces) == 1 {
		exts := gces[0].p.GroupContextExtensions.Extensions
		if err := message.CheckExtensions(exts); err != nil {
			return nil, invalidErr("ValSem209", "12.1.7", err, "group context extensions")
		}
		var err error
		if rc, err = requiredCapabilities(exts); err != nil {
			return nil, invalidErr("ValSem209", "12.1.7", err, "required_capabilities")
		}
		a.exts = exts
		opts.RequiredCapabilities = rc
	}
	for _, q := range updates {
		at := tree.LeafIndex(q.sender.LeafIndex)
		if err := d.ValidateLeaf(&q.p.Update.LeafNode, at, message.LeafNodeSourceUpdate, &opts); err != nil {
			return nil, leafError(err, message.LeafNodeSourceUpdate, "Update proposal from leaf %d", at)
		}
		if err := d.Update(at, &q.p.Update.LeafNode); err != nil {
			return nil, invalidErr("ValSem109", "12.1.2", err, "Update proposal from leaf %d", at)
		}
		a.updated[at] = true
	}
	for _, q := range removes {
		r := tree.LeafIndex(q.p.Remove.Removed)
		if err := d.Remove(r); err != nil {
			return nil, invalidErr("ValSem108", "12.1.3", err, "Remove proposal")
		}
		a.removed = append(a.removed, r)
		if r == me {
			a.selfGone = true
		}
	}
	// Section 12.2: a non-default proposal type must be supported by the
	// members that process the commit: not those it removes, nor those it
	// adds.
	for _, t := range custom {
		if err := checkProposalSupported(d, t); err != nil {
			return nil, err
		}
	}
	// Section 12.1.7: the remaining members must support the new
	// required_capabilities (added members are checked below, as their
	// leaves are validated with the new options).
	if rc != nil {
		for _, m := range membersLeaves(d) {
			if err := checkRequiredCapabilities(rc, &d.Leaf(m).Capabilities); err != nil {
				return nil, invalid("ValSem209", "12.1.7", "leaf %d does not support the new required_capabilities: %v", m, err)
			}
		}
	}
	for _, q := range adds {
		kp := &q.p.Add.KeyPackage
		at, err := d.ReserveLeaf()
		if err != nil {
			return nil, invalidErr("TreeFull", "12.1.1", err, "no room for the new member")
		}
		if err := d.ValidateLeaf(&kp.LeafNode, at, message.LeafNodeSourceKeyPackage, &opts); err != nil {
			return nil, leafError(err, message.LeafNodeSourceKeyPackage, "Add proposal for leaf %d", at)
		}
		if _, dup := d.FindEncryptionKey(kp.InitKey); dup {
			return nil, invalid("InitKeyReuse", "16.8", "Add proposal init key already in the tree")
		}
		i, err := d.Add(&kp.LeafNode)
		if err != nil {
			return nil, invalidErr("TreeFull", "12.1.1", err, "Add proposal")
		}
		a.added = append(a.added, i)
		a.addedKPs = append(a.addedKPs, kp)
	}
	// ValSem209: every member of the new epoch supports the new group
	// context extensions.
	if a.exts != nil {
		if err := checkExtensionsSupported(d, a.exts); err != nil {
			return nil, err
		}
	}
	for _, q := range psks {
		a.psks = append(a.psks, q.p.PSK.PSK)
	}
	return a, nil
}

// leafError names the rule a LeafNode from an Add (source key_package) or
// Update (source update) proposal breaks, from the tree package's leaf
// node validation error (RFC 9420, Section 7.3).
func leafError(err error, src message.LeafNodeSource, format string, args ...any) error {
	add := src == message.LeafNodeSourceKeyPackage
	rule, section := "LeafNodeValidation", "7.3"
	switch {
	case errors.Is(err, tree.ErrDuplicateSignatureKey):
		if add {
			rule, section = "ValSem101", "12.2"
		} else {
			rule = "DuplicateSignatureKey"
		}
	case errors.Is(err, tree.ErrDuplicateEncryptionKey), errors.Is(err, tree.ErrSameEncryptionKey):
		if add {
			rule = "ValSem103"
		} else {
			rule, section = "ValSem110", "12.1.2"
		}
	case errors.Is(err, tree.ErrCapabilities):
		if add {
			rule, section = "ValSem106", "11.1"
		} else {
			rule, section = "ValSem109", "11.1"
		}
	case errors.Is(err, tree.ErrLeafSignature):
		rule = "LeafNodeSignature"
	case errors.Is(err, tree.ErrLifetime):
		rule = "LeafNodeLifetime"
	case errors.Is(err, tree.ErrLeafSource):
		rule = "LeafNodeSource"
	case errors.Is(err, tree.ErrCredentialUnsupported):
		rule = "CredentialUnsupported"
	case errors.Is(err, tree.ErrExtensionUnsupported):
		rule = "LeafNodeExtensions"
	case errors.Is(err, tree.ErrCredential):
		rule, section = "Credential", "5.3.1"
	}
	return invalidErr(rule, section, err, format, args...)
}

// defaultResumptionPSKRetention is how many past epochs' resumption PSKs
// a group keeps by default (RFC 9420, Section 8.6; OpenMLS's
// number_of_resumption_psks).
const defaultResumptionPSKRetention = 8

// resumptionRetention is JoinConfig.ResumptionPSKRetention with its
// default applied; 0 keeps none.
func (c *JoinConfig) resumptionRetention() int {
	switch {
	case c.ResumptionPSKRetention == 0:
		return defaultResumptionPSKRetention
	case c.ResumptionPSKRetention < 0:
		return 0
	}
	return c.ResumptionPSKRetention
}

// checkResumptionRetention rejects a resumption PSK of this group from an
// epoch older than the retention (JoinConfig.ResumptionPSKRetention):
// this member has deleted it, as RFC 9420, Section 8.6 lets it, and the
// commit cannot be processed.
func (g *Group) checkResumptionRetention(st *epochState, id *message.PreSharedKeyID) error {
	if g.public {
		// Retention is a member's own setting; a follower holds no PSK.
		return nil
	}
	if id.Type != message.PSKResumption || !bytes.Equal(id.PSKGroupID, st.GC.GroupID) || id.PSKEpoch >= st.GC.Epoch {
		return nil
	}
	if n := g.cfg.resumptionRetention(); st.GC.Epoch-id.PSKEpoch > uint64(n) {
		// The cause is PSKMissing, so callers matching that rule (the PSK
		// is not available) match this one too.
		missing := invalid("PSKMissing", "8.4", "resumption PSK of group %x epoch %d not available", id.PSKGroupID, id.PSKEpoch)
		return invalidErr("ResumptionPSKRetention", "8.6", missing, "resumption PSK of epoch %d is more than %d epochs before the current epoch %d", id.PSKEpoch, n, st.GC.Epoch)
	}
	return nil
}

// pskKey identifies a PSK regardless of its nonce, to detect two
// proposals for the same PSK (ValSem403).
func pskKey(id *message.PreSharedKeyID) string {
	if id.Type == message.PSKExternal {
		return fmt.Sprintf("external/%x", id.PSKID)
	}
	return fmt.Sprintf("resumption/%d/%x/%d", id.Usage, id.PSKGroupID, id.PSKEpoch)
}

// checkProposalSupported checks that every member supports a proposal type
// that is not one of RFC 9420's (ValSem113).
func checkProposalSupported(d *tree.Diff, t message.ProposalType) error {
	for _, m := range membersLeaves(d) {
		if !contains(d.Leaf(m).Capabilities.Proposals, t) {
			return invalid("ValSem113", "12.2", "leaf %d does not support proposal type %d", m, t)
		}
	}
	return nil
}

// checkExtensionsSupported checks that every member supports every
// non-default extension of a new group context (ValSem209).
func checkExtensionsSupported(d *tree.Diff, exts []message.Extension) error {
	for _, e := range exts {
		if isDefaultExtension(e.Type) {
			continue
		}
		for _, m := range membersLeaves(d) {
			if !contains(d.Leaf(m).Capabilities.Extensions, e.Type) {
				return invalid("ValSem209", "12.1.7", "leaf %d does not support extension type %d", m, e.Type)
			}
		}
	}
	return nil
}

func membersLeaves(d *tree.Diff) []tree.LeafIndex {
	var out []tree.LeafIndex
	for i := uint32(0); i < d.NumLeaves(); i++ {
		if d.Leaf(tree.LeafIndex(i)) != nil {
			out = append(out, tree.LeafIndex(i))
		}
	}
	return out
}

// proposalRef computes the ProposalRef of a proposal message's
// AuthenticatedContent (RFC 9420, Section 5.2).
func proposalRef(s *ciphersuite.Suite, ac *message.AuthenticatedContent) ([]byte, error) {
	b, err := message.Marshal(ac)
	if err != nil {
		return nil, err
	}
	return s.ProposalRef(b), nil
}

// findProposal looks up a queued proposal by reference.
func (g *Group) findProposal(ref []byte) *QueuedProposal {
	for _, q := range g.props {
		if bytes.Equal(q.ref, ref) {
			return q
		}
	}
	return nil
}

// ProposePSK sends a PreSharedKey proposal for the external PSK pskID
// (RFC 9420, Section 12.1.4), which must already be stored with StorePSK,
// and queues it. The members who commit or process the commit need the
// PSK too.
func (g *Group) ProposePSK(ctx context.Context, pskID []byte) (*Message, ProposalRef, error) {
	if len(pskID) == 0 {
		return nil, nil, fmt.Errorf("%w: empty PSK id", ErrInvalidArgument)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if g.store != nil {
		err := view(ctx, g.store, func(tx storage.Tx) error {
			_, err := state.PSK(tx, pskID)
			return err
		})
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil, fmt.Errorf("%w: external PSK %x (store it with StorePSK first)", ErrNotFound, pskID)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	p, err := ExternalPSKProposal(pskID).build(g.st.Suite, g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	return g.propose(ctx, p, nil)
}

// ProposeGroupContextExtensions sends a GroupContextExtensions proposal
// (RFC 9420, Section 12.1.7) that replaces the group context extensions
// with exts, and queues it. The current members must support every
// extension in it that is not one of RFC 9420's, and any
// required_capabilities it sets (ValSem209).
func (g *Group) ProposeGroupContextExtensions(ctx context.Context, exts []Extension) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	w := toWireExtensions(exts)
	if err := message.CheckExtensions(w); err != nil {
		return nil, nil, invalidErr("ValSem209", "12.1.7", err, "group context extensions")
	}
	v := g.st.Tree.View()
	rc, err := requiredCapabilities(w)
	if err != nil {
		return nil, nil, invalidErr("ValSem209", "12.1.7", err, "required_capabilities")
	}
	if rc != nil {
		for _, m := range membersLeaves(v) {
			if err := checkRequiredCapabilities(rc, &v.Leaf(m).Capabilities); err != nil {
				return nil, nil, invalid("ValSem209", "12.1.7", "leaf %d does not support the new required_capabilities: %v", m, err)
			}
		}
	}
	if err := checkExtensionsSupported(v, w); err != nil {
		return nil, nil, err
	}
	p := GroupContextExtensionsProposal(exts)
	return g.propose(ctx, &p.p, nil)
}

// ProposeCustom sends a proposal of a type RFC 9420 does not define, with
// data as its opaque body, and queues it. Every member must list the type
// in its capabilities (ValSem113, RFC 9420, Section 12.2). A commit that
// covers it carries a path.
func (g *Group) ProposeCustom(ctx context.Context, proposalType uint16, data []byte) (*Message, ProposalRef, error) {
	t := message.ProposalType(proposalType)
	if t == 0 || isDefaultProposal(t) {
		return nil, nil, fmt.Errorf("%w: proposal type %d is not a custom type", ErrInvalidArgument, proposalType)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if err := checkProposalSupported(g.st.Tree.View(), t); err != nil {
		return nil, nil, err
	}
	if data == nil {
		data = []byte{}
	}
	return g.propose(ctx, &message.Proposal{Type: t, Data: clone(data)}, nil)
}

// ProposeReInit sends a ReInit proposal (RFC 9420, Section 12.1.5) for a
// new group with groupID (nil means 16 random bytes), suite and
// extensions, protocol version mls10, and queues it. A commit covers a
// pending ReInit only when it covers nothing else (Section 12.2); once
// that commit merges, the group is inactive and ReInitParams returns the
// parameters for the new group (Section 11.2).
func (g *Group) ProposeReInit(ctx context.Context, groupID []byte, suite CipherSuite, exts []Extension) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if groupID == nil {
		groupID = make([]byte, 16)
		if _, err := io.ReadFull(g.cfg.rand(), groupID); err != nil {
			return nil, nil, err
		}
	}
	if err := message.CheckExtensions(toWireExtensions(exts)); err != nil {
		return nil, nil, fmt.Errorf("%w: ReInit extensions: %v", ErrInvalidArgument, err)
	}
	p, err := ReInitProposal(ReInitParams{GroupID: groupID, CipherSuite: suite, Extensions: exts}).build(g.st.Suite, g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	return g.propose(ctx, p, nil)
}

// ReInitParams returns the parameters of the ReInit commit that shut the
// group down (RFC 9420, Section 11.2), or false if there was none. The
// group's last epoch stays available, so that a member can create the new
// group with them (ReInitGroup).
func (g *Group) ReInitParams() (*ReInitParams, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reinit == nil && !g.active && g.store != nil {
		// A group loaded from storage: the record is kept beside the
		// group state.
		var raw []byte
		err := view(context.Background(), g.store, func(tx storage.Tx) error {
			v, err := state.ReInit(tx, g.st.GC.GroupID)
			raw = v
			return err
		})
		if err == nil {
			var p message.ReInitProposal
			if message.Unmarshal(raw, &p) == nil {
				g.reinit = reInitParams(&p)
			}
		}
	}
	if g.reinit == nil {
		return nil, false
	}
	r := *g.reinit
	r.GroupID = clone(r.GroupID)
	r.Extensions = fromWireExtensions(toWireExtensions(r.Extensions))
	return &r, true
}

// PSKID returns the ID of an external PSK a PreSharedKey proposal injects.
func (q *QueuedProposal) PSKID() ([]byte, bool) {
	p := q.body()
	if p.PSK == nil || p.PSK.PSK.Type != message.PSKExternal {
		return nil, false
	}
	return clone(p.PSK.PSK.PSKID), true
}

// ReInit returns the parameters of a ReInit proposal.
func (q *QueuedProposal) ReInit() (*ReInitParams, bool) {
	p := q.body()
	if p.ReInit == nil {
		return nil, false
	}
	return reInitParams(p.ReInit), true
}

// GroupContextExtensions returns the extensions a GroupContextExtensions
// proposal sets.
func (q *QueuedProposal) GroupContextExtensions() ([]Extension, bool) {
	p := q.body()
	if p.GroupContextExtensions == nil {
		return nil, false
	}
	return fromWireExtensions(p.GroupContextExtensions.Extensions), true
}

// CustomData returns the body of a proposal of a type RFC 9420 does not
// define.
func (q *QueuedProposal) CustomData() ([]byte, bool) {
	p := q.body()
	if p.Type == 0 || isDefaultProposal(p.Type) {
		return nil, false
	}
	return clone(p.Data), true
}

// ReInitGroup creates the group that replaces g after a ReInit commit
// (RFC 9420, Section 11.2, step 3): a group with the ReInit's group ID,
// cipher suite and extensions, created by the client c (whose signature key
// must fit the new suite: another Client on the same store when the
// signature scheme changes), whose first commit adds the
// members' key packages (for the new suite) and whose key schedule takes
// the resumption PSK of g's last epoch with usage reinit. The Welcome
// names that PSK, so joiners must hold g's state in the store they join
// with (StageWelcome finds it there). cfg supplies the creator's settings;
// its GroupID and GroupContextExtensions are taken from the
// ReInit, and it may not add group context extensions of its own
// (required capabilities, external senders). The new group is stored at
// epoch 0 with the commit pending: merge it with MergePendingCommit once
// the delivery service accepts it, then send the Welcome.
func (g *Group) ReInitGroup(ctx context.Context, c *Client, cfg GroupConfig, kps ...*KeyPackage) (*Group, *CommitResult, error) {
	if ctx == nil || c == nil {
		return nil, nil, fmt.Errorf("%w: ReInitGroup needs a context and a client", ErrInvalidArgument)
	}
	for _, kp := range kps {
		if kp == nil {
			return nil, nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
		}
	}
	params, ok := g.ReInitParams()
	if !ok {
		return nil, nil, fmt.Errorf("%w: the group was not shut down by a ReInit commit", ErrInvalidArgument)
	}
	if len(cfg.RequiredExtensions)+len(cfg.RequiredProposals)+len(cfg.RequiredCredentials)+len(cfg.ExternalSenders)+len(cfg.GroupContextExtensions) > 0 {
		return nil, nil, fmt.Errorf("%w: the new group's extensions are the ReInit's", ErrInvalidArgument)
	}
	if params.Version != uint16(message.MLS10) {
		return nil, nil, fmt.Errorf("%w: ReInit to protocol version %d", ErrInvalidArgument, params.Version)
	}
	g.mu.Lock()
	st := g.st
	held := &heldPSK{
		id:     message.PreSharedKeyID{Type: message.PSKResumption, Usage: message.ResumptionReInit, PSKGroupID: clone(st.GC.GroupID), PSKEpoch: st.GC.Epoch},
		secret: st.keys.ResumptionPSK(),
	}
	g.mu.Unlock()
	cfg.GroupID, cfg.GroupContextExtensions = params.GroupID, params.Extensions
	s, err := lookupSuite(params.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	held.id.Nonce = make([]byte, s.HashSize())
	if _, err := io.ReadFull(c.rand(), held.id.Nonce); err != nil {
		return nil, nil, err
	}
	ng, err := c.CreateGroup(ctx, params.CipherSuite, cfg)
	if err != nil {
		return nil, nil, err
	}
	res, err := ng.Commit(ctx, CommitOptions{Add: kps, reinitPSK: held})
	if err != nil {
		return nil, nil, err
	}
	return ng, res, nil
}
