package group

import (
	"bytes"
	"errors"
	"time"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/credential"
	"github.com/mlskit/mls/internal/credwire"
	"github.com/mlskit/mls/internal/framing"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/tree"
)

// Epoch is the public state of one epoch: what a member and a follower
// without secrets hold alike.
type Epoch struct {
	Suite *ciphersuite.Suite
	GC    message.GroupContext
	GCRaw []byte // GC, encoded
	Tree  *tree.Tree
	// Interim is the interim transcript hash (RFC 9420, Section 8.2), from
	// GC's confirmed transcript hash and ConfTag.
	Interim []byte
	ConfTag []byte
}

// InterimHash computes the interim transcript hash of the epoch from its
// confirmed transcript hash and confirmation tag (RFC 9420, Section 8.2).
func (e *Epoch) InterimHash() []byte {
	return keyschedule.InterimTranscriptHash(e.Suite, e.GC.ConfirmedTranscriptHash, e.ConfTag)
}

// Policy is what the application decides about the leaves that enter a
// group, and the member's own settings the public checks depend on.
type Policy struct {
	Now          func() time.Time
	SkipLifetime bool
	Validator    credential.Validator
	// ResumptionRetention is how many past epochs' resumption PSKs the
	// member keeps (RFC 9420, Section 8.6); negative for a follower, which
	// holds none and does not check it.
	ResumptionRetention int
	// Components, if set, returns a further leaf check that GroupContext
	// extensions gcExts demand (nil for none): the components of
	// draft-ietf-mls-extensions, which the root package implements.
	Components func(gcExts []message.Extension) func(*message.LeafNode) error
	// AppData is the application logic of the components that
	// AppDataUpdate proposals update (draft-ietf-mls-extensions); nil
	// means ReplaceData.
	AppData AppDataFunc
}

// TreeOptions are the leaf validation options of a group whose context is
// gc (RFC 9420, Section 7.3).
func (p *Policy) TreeOptions(gc *message.GroupContext) tree.Options {
	o := tree.Options{
		GroupID:      gc.GroupID,
		SkipLifetime: p.SkipLifetime,
	}
	if p.Now != nil {
		o.Now = p.Now()
	} else {
		o.Now = time.Now()
	}
	if rc, err := RequiredCapabilities(gc.Extensions); err == nil && rc != nil {
		o.RequiredCapabilities = rc
	}
	if p.Components != nil {
		o.Leaf = p.Components(gc.Extensions)
	}
	v := p.Validator
	o.Credential = func(c *message.Credential, sigKey []byte) error {
		// RFC 9420, Section 5.3: an X.509 end-entity certificate must hold
		// the leaf's signature key; then the application decides.
		cred := credwire.FromWire(*c).(credential.Credential)
		if err := cred.CheckSignatureKey(sigKey); err != nil {
			return err
		}
		return v.Validate(cred, sigKey)
	}
	return o
}

// Proposal is a proposal received or sent in an epoch, or covered by a
// commit: the body, its ProposalRef (nil inline) and who sent it.
type Proposal struct {
	Proposal *message.Proposal
	Ref      []byte
	Sender   message.Sender
}

// CheckEpoch implements ValSem002 and ValSem003 (RFC 9420, Section 6:
// group_id and epoch must be the group's). The *ValidationError carries
// ErrWrongGroup, ErrPastEpoch or ErrFutureEpoch.
func (e *Epoch) CheckEpoch(groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, e.GC.GroupID) {
		return invalidErr("ValSem002", "6", ErrWrongGroup, "group %x, this group is %x", groupID, e.GC.GroupID)
	}
	switch {
	case epoch < e.GC.Epoch:
		return invalidErr("ValSem003", "6", ErrPastEpoch, "message epoch %d, group epoch %d", epoch, e.GC.Epoch)
	case epoch > e.GC.Epoch:
		return invalidErr("ValSem003", "6", ErrFutureEpoch, "message epoch %d, group epoch %d", epoch, e.GC.Epoch)
	}
	return nil
}

// SenderKey returns the signature key and credential of a message sender
// in the epoch (ValSem004 for members, Section 12.1.8 for external
// senders, Sections 12.1.8 and 12.4.3.2 for new members).
func (e *Epoch) SenderKey(fc *message.FramedContent) ([]byte, message.Credential, error) {
	switch s := fc.Sender; s.Type {
	case message.SenderMember:
		ln := e.Tree.Leaf(tree.LeafIndex(s.LeafIndex))
		if ln == nil {
			return nil, message.Credential{}, invalid("ValSem004", "6", "sender leaf %d is blank or outside the tree", s.LeafIndex)
		}
		return ln.SignatureKey, ln.Credential, nil
	case message.SenderExternal:
		var es message.ExternalSenders
		ok, err := message.ParseExtension(e.GC.Extensions, &es)
		if err != nil || !ok || int(s.SenderIndex) >= len(es) {
			return nil, message.Credential{}, invalid("ExternalSender", "12.1.8", "external sender index %d not in the external_senders extension", s.SenderIndex)
		}
		return es[s.SenderIndex].SignatureKey, es[s.SenderIndex].Credential, nil
	case message.SenderNewMemberProposal:
		if fc.ContentType != message.ContentProposal || fc.Proposal == nil || fc.Proposal.Add == nil {
			return nil, message.Credential{}, invalid("ValSem112", "12.1.8", "new_member_proposal sender without an Add proposal")
		}
		ln := &fc.Proposal.Add.KeyPackage.LeafNode
		return ln.SignatureKey, ln.Credential, nil
	case message.SenderNewMemberCommit:
		if fc.ContentType != message.ContentCommit || fc.Commit == nil || fc.Commit.Path == nil {
			return nil, message.Credential{}, invalid("ValSem245", "12.4.3.2", "external commit without a path")
		}
		ln := &fc.Commit.Path.LeafNode
		return ln.SignatureKey, ln.Credential, nil
	}
	return nil, message.Credential{}, invalid("SenderType", "6", "unknown sender type %d", fc.Sender.Type)
}

// VerifyPublic checks a PublicMessage of the epoch (RFC 9420, Sections 6,
// 6.1 and 6.2), with the membership tag of a member's message checked
// against the epoch's membershipKey, and returns its verified content and
// the sender's credential. content, if not nil, is the encoding of
// pm.Content as received (message.UnmarshalMLSMessageContent), which
// spares encoding it again (framing.VerifyPublic).
func (e *Epoch) VerifyPublic(pm *message.PublicMessage, content, membershipKey []byte) (*message.AuthenticatedContent, message.Credential, error) {
	return e.verifyPublic(pm, content, &framing.PublicKeys{MembershipKey: membershipKey})
}

// FollowPublic is VerifyPublic for a follower without the epoch's secrets:
// the membership tag must be present but its value, which only members can
// check, is not checked.
func (e *Epoch) FollowPublic(pm *message.PublicMessage, content []byte) (*message.AuthenticatedContent, message.Credential, error) {
	return e.verifyPublic(pm, content, &framing.PublicKeys{Untagged: true})
}

func (e *Epoch) verifyPublic(pm *message.PublicMessage, content []byte, k *framing.PublicKeys) (*message.AuthenticatedContent, message.Credential, error) {
	if err := e.CheckEpoch(pm.Content.GroupID, pm.Content.Epoch); err != nil {
		return nil, message.Credential{}, err
	}
	if pm.Content.ContentType == message.ContentApplication {
		return nil, message.Credential{}, invalid("ValSem005", "6.2", "application message sent as a PublicMessage")
	}
	pub, cred, err := e.SenderKey(&pm.Content)
	if err != nil {
		return nil, message.Credential{}, err
	}
	// ValSem007 and ValSem009: the tags RFC 9420, Sections 6.1 and 6.2
	// require must be present before anything is checked against them.
	if pm.Content.Sender.Type == message.SenderMember && pm.MembershipTag == nil {
		return nil, message.Credential{}, invalid("ValSem007", "6.2", "member's PublicMessage without membership tag")
	}
	if pm.Content.ContentType == message.ContentCommit && pm.Auth.ConfirmationTag == nil {
		return nil, message.Credential{}, invalid("ValSem009", "6.1", "commit without confirmation tag")
	}
	// The confirmed transcript hash of a commit (StageCommit, Next) is
	// computed beside the signature, over the same bytes.
	k.GroupContext, k.SignatureKey, k.Interim = e.GCRaw, pub, e.Interim
	ac, err := framing.VerifyPublic(e.Suite, pm, content, k)
	switch {
	case err == nil:
		return ac, cred, nil
	case errors.Is(err, framing.ErrMembershipTag):
		return nil, message.Credential{}, invalidErr("ValSem008", "6.2", err, "membership tag")
	case !errors.Is(err, framing.ErrSignature):
		return nil, message.Credential{}, invalidErr("ValSem007", "6.2", err, "public message")
	}
	sigErr := invalidErr("ValSem010", "6.1", err, "signature")
	if pm.Content.Sender.Type == message.SenderNewMemberCommit {
		// RFC 9420, Section 12.4.3.2: an external commit is signed with
		// the key of the LeafNode in its path.
		return nil, message.Credential{}, invalidErr("ValSem246", "12.4.3.2", sigErr, "external commit not signed by its path's leaf node key")
	}
	return nil, message.Credential{}, sigErr
}

// CheckKeyPackage checks a key package that an Add brings into the group:
// its cipher suite and version are the group's (RFC 9420, Sections 10.1 and
// 12.1.1) and it verifies on its own (VerifyKeyPackage). Proposing,
// receiving and committing an Add all run this one check.
func (e *Epoch) CheckKeyPackage(kp *message.KeyPackage) error {
	if kp.CipherSuite != e.GC.CipherSuite || kp.Version != e.GC.Version {
		return invalid("ValSem105", "12.1.1", "key package for suite 0x%04x version %d, group uses 0x%04x version %d", uint16(kp.CipherSuite), kp.Version, uint16(e.GC.CipherSuite), e.GC.Version)
	}
	return VerifyKeyPackage(e.Suite, kp)
}

// VerifyKeyPackage checks a key package on its own (RFC 9420, Section
// 10.1): version, leaf source, both signatures, distinct keys.
func VerifyKeyPackage(s *ciphersuite.Suite, kp *message.KeyPackage) error {
	if kp.Version != message.MLS10 {
		return invalid("ValSem105", "10.1", "key package version %d", kp.Version)
	}
	if kp.LeafNode.Source != message.LeafNodeSourceKeyPackage {
		return invalid("KeyPackageLeafSource", "10.1", "leaf node source %d, want key_package", kp.LeafNode.Source)
	}
	if err := kp.VerifySignature(s); err != nil {
		return invalidErr("KeyPackageSignature", "10.1", err, "key package signature")
	}
	if err := kp.LeafNode.VerifySignature(s, nil, 0); err != nil {
		return invalidErr("LeafNodeSignature", "7.3", err, "key package leaf node signature")
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return invalid("ValSem104", "10.1", "init key equals the leaf encryption key")
	}
	return nil
}

// ProposalRef computes the ProposalRef of a proposal message's
// AuthenticatedContent (RFC 9420, Section 5.2).
func ProposalRef(s *ciphersuite.Suite, ac *message.AuthenticatedContent) ([]byte, error) {
	b, err := message.Marshal(ac)
	if err != nil {
		return nil, err
	}
	return s.ProposalRef(b), nil
}

// ExternalSenderAllowed reports whether an external sender may send a
// proposal of type t (RFC 9420, Section 12.1.8: add, remove, psk, reinit
// and group_context_extensions).
func ExternalSenderAllowed(t message.ProposalType) bool {
	switch t {
	case message.ProposalAdd, message.ProposalRemove, message.ProposalPSK, message.ProposalReInit, message.ProposalGroupContextExtensions:
		return true
	case ProposalAppDataUpdate:
		// draft-ietf-mls-extensions, "External: Y" (SelfRemove: N).
		return true
	}
	return false
}

// ValidateProposal validates a standalone proposal of the epoch (RFC 9420,
// Section 12.1) and computes its reference.
func (e *Epoch) ValidateProposal(ac *message.AuthenticatedContent, pol *Policy) (*Proposal, error) {
	p := ac.Content.Proposal
	sender := ac.Content.Sender
	switch p.Type {
	case message.ProposalUpdate:
		if sender.Type != message.SenderMember {
			return nil, invalid("ValSem112", "12.1.2", "Update proposal from a %d sender", sender.Type)
		}
		opts := pol.TreeOptions(&e.GC)
		if err := e.Tree.View().ValidateLeaf(&p.Update.LeafNode, tree.LeafIndex(sender.LeafIndex), message.LeafNodeSourceUpdate, &opts); err != nil {
			return nil, LeafError(err, message.LeafNodeSourceUpdate, "Update proposal from leaf %d", sender.LeafIndex)
		}
	case message.ProposalAdd:
		if err := e.CheckKeyPackage(&p.Add.KeyPackage); err != nil {
			return nil, err
		}
	case message.ProposalRemove:
		if e.Tree.Leaf(tree.LeafIndex(p.Remove.Removed)) == nil {
			return nil, invalid("ValSem108", "12.1.3", "Remove proposal for blank leaf %d", p.Remove.Removed)
		}
	case message.ProposalPSK:
		if err := e.checkPSKProposal(&p.PSK.PSK, pol); err != nil {
			return nil, err
		}
	case message.ProposalExternalInit:
		return nil, invalid("ExternalInitStandalone", "12.1.6", "ExternalInit proposal outside a commit")
	case ProposalSelfRemove:
		if len(p.Data) != 0 {
			return nil, invalid("SelfRemoveMalformed", secSelfRemove, "SelfRemove proposal with a %d-byte body; SelfRemove is an empty struct", len(p.Data))
		}
		if sender.Type != message.SenderMember {
			return nil, invalid("SelfRemoveNonMember", secSelfRemove, "SelfRemove proposal from a sender of type %d", sender.Type)
		}
	case ProposalAppDataUpdate:
		if _, err := ParseAppDataUpdate(p.Data); err != nil {
			return nil, err
		}
	}
	if sender.Type == message.SenderExternal && !ExternalSenderAllowed(p.Type) {
		// RFC 9420, Section 12.1.8: such messages are malformed.
		return nil, invalid("ExternalProposalType", "12.1.8", "external sender %d sent a proposal of type %d", sender.SenderIndex, p.Type)
	}
	ref, err := ProposalRef(e.Suite, ac)
	if err != nil {
		return nil, err
	}
	return &Proposal{Proposal: p, Ref: ref, Sender: sender}, nil
}

// LeafError names the rule a LeafNode from an Add (source key_package) or
// Update (source update) proposal breaks, from the tree package's leaf
// node validation error (RFC 9420, Section 7.3).
func LeafError(err error, src message.LeafNodeSource, format string, args ...any) error {
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

// PathError maps tree errors from applying an UpdatePath to the
// validation rules they break.
func PathError(err error, sender tree.LeafIndex) error {
	var te *tree.Error
	switch {
	case errors.Is(err, tree.ErrDuplicateEncryptionKey) && errors.As(err, &te) && te.Node == sender.Node():
		return invalidErr("ValSem206", "12.4.2", err, "update path leaf node")
	case errors.Is(err, tree.ErrDuplicateEncryptionKey):
		return invalidErr("ValSem207", "12.4.2", err, "update path")
	case errors.Is(err, tree.ErrUpdatePath):
		return invalidErr("ValSem202", "7.6", err, "update path")
	case errors.Is(err, tree.ErrParentHash):
		return invalidErr("ValSem204", "7.9.2", err, "update path")
	}
	return invalidErr("ValSem206", "12.4.2", err, "update path leaf node")
}
