package message

import (
	"bytes"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// This file holds the framing structures of RFC 9420, Section 6.

// Encode appends the Sender (RFC 9420, Section 6).
func (s *Sender) Encode(e *wire.Encoder) {
	e.U8(uint8(s.Type))
	switch s.Type {
	case SenderMember:
		e.U32(s.LeafIndex)
	case SenderExternal:
		e.U32(s.SenderIndex)
	}
}

// Decode reads a Sender (RFC 9420, Section 6). A sender_type other than
// member, external, new_member_proposal or new_member_commit is
// ErrUnknownValue.
func (s *Sender) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Sender"))
	*s = Sender{}
	s.Type = SenderType(d.U8("sender_type"))
	if d.Err() != nil {
		return
	}
	switch s.Type {
	case SenderMember:
		s.LeafIndex = d.U32("leaf_index")
	case SenderExternal:
		s.SenderIndex = d.U32("sender_index")
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		failUnknown(d, "sender_type", uint64(s.Type))
	}
}

func (s *Sender) check() error {
	switch s.Type {
	case SenderMember:
		if s.SenderIndex != 0 {
			return inconsistent("Sender", "sender_index", "set for a member sender")
		}
	case SenderExternal:
		if s.LeafIndex != 0 {
			return inconsistent("Sender", "leaf_index", "set for an external sender")
		}
	case SenderNewMemberProposal, SenderNewMemberCommit:
		if s.LeafIndex != 0 || s.SenderIndex != 0 {
			return inconsistent("Sender", "sender_type", "index set for a new member sender")
		}
	default:
		return inconsistent("Sender", "sender_type", "unknown sender type %d", s.Type)
	}
	return nil
}

// validContentType reports whether ct is one of the content types of
// RFC 9420, Section 6.
func validContentType(ct ContentType) bool {
	return ct == ContentApplication || ct == ContentProposal || ct == ContentCommit
}

// Encode appends the FramedContent (RFC 9420, Section 6). The body is
// taken from the field matching ContentType (a nil Proposal or Commit
// encodes as its zero value; the Marshal methods reject that).
func (c *FramedContent) Encode(e *wire.Encoder) {
	e.Opaque(c.GroupID)
	e.U64(c.Epoch)
	c.Sender.Encode(e)
	e.Opaque(c.AuthenticatedData)
	e.U8(uint8(c.ContentType))
	switch c.ContentType {
	case ContentApplication:
		e.Opaque(c.ApplicationData)
	case ContentProposal:
		orZero(c.Proposal).Encode(e)
	case ContentCommit:
		orZero(c.Commit).Encode(e)
	}
}

// Decode reads a FramedContent (RFC 9420, Section 6). A content_type other
// than application, proposal or commit is ErrUnknownValue.
func (c *FramedContent) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("FramedContent"))
	*c = FramedContent{}
	c.GroupID = d.Opaque("group_id")
	c.Epoch = d.U64("epoch")
	c.Sender.Decode(d)
	c.AuthenticatedData = d.Opaque("authenticated_data")
	c.ContentType = ContentType(d.U8("content_type"))
	if d.Err() != nil {
		return
	}
	switch c.ContentType {
	case ContentApplication:
		c.ApplicationData = d.Opaque("application_data")
	case ContentProposal:
		c.Proposal = new(Proposal)
		c.Proposal.Decode(d)
	case ContentCommit:
		c.Commit = new(Commit)
		c.Commit.Decode(d)
	default:
		failUnknown(d, "content_type", uint64(c.ContentType))
	}
}

func (c *FramedContent) check() error {
	if err := c.Sender.check(); err != nil {
		return err
	}
	switch c.ContentType {
	case ContentApplication:
		if c.Proposal != nil || c.Commit != nil {
			return inconsistent("FramedContent", "content_type", "application content with a Proposal or Commit set")
		}
	case ContentProposal:
		if c.Proposal == nil || c.Commit != nil || c.ApplicationData != nil {
			return inconsistent("FramedContent", "content_type", "proposal content needs exactly Proposal set")
		}
		return c.Proposal.check()
	case ContentCommit:
		if c.Commit == nil || c.Proposal != nil || c.ApplicationData != nil {
			return inconsistent("FramedContent", "content_type", "commit content needs exactly Commit set")
		}
		return c.Commit.check()
	default:
		return inconsistent("FramedContent", "content_type", "unknown content type %d", c.ContentType)
	}
	return nil
}

// EncodeFor appends the FramedContentAuthData of content of type ct (RFC
// 9420, Section 6.1): the signature, then the confirmation tag for commits.
func (a *FramedContentAuthData) EncodeFor(e *wire.Encoder, ct ContentType) {
	e.Opaque(a.Signature)
	if ct == ContentCommit {
		e.Opaque(a.ConfirmationTag)
	}
}

// Encode appends the FramedContentAuthData, writing the confirmation tag
// if ConfirmationTag is non-nil. Prefer EncodeFor, which takes the content
// type the RFC selects on.
func (a *FramedContentAuthData) Encode(e *wire.Encoder) {
	e.Opaque(a.Signature)
	if a.ConfirmationTag != nil {
		e.Opaque(a.ConfirmationTag)
	}
}

// DecodeFor reads the FramedContentAuthData of content of type ct (RFC
// 9420, Section 6.1): confirmation_tag is present exactly for commits.
func (a *FramedContentAuthData) DecodeFor(d *wire.Decoder, ct ContentType) {
	defer d.Struct(d.Struct("FramedContentAuthData"))
	*a = FramedContentAuthData{}
	a.Signature = d.Opaque("signature")
	if ct == ContentCommit {
		a.ConfirmationTag = d.Opaque("confirmation_tag")
	}
}

func (a *FramedContentAuthData) checkFor(ct ContentType) error {
	if (ct == ContentCommit) != (a.ConfirmationTag != nil) {
		return inconsistent("FramedContentAuthData", "confirmation_tag", "must be set exactly for commits (content type %d)", ct)
	}
	return nil
}

// validAuthenticatedWireFormat reports whether wf is a wire format that
// carries an AuthenticatedContent (RFC 9420, Section 6).
func validAuthenticatedWireFormat(wf WireFormat) bool {
	return wf == WireFormatPublicMessage || wf == WireFormatPrivateMessage
}

// Encode appends the AuthenticatedContent (RFC 9420, Section 6).
func (a *AuthenticatedContent) Encode(e *wire.Encoder) {
	e.U16(uint16(a.WireFormat))
	a.Content.Encode(e)
	a.Auth.EncodeFor(e, a.Content.ContentType)
}

// Decode reads an AuthenticatedContent (RFC 9420, Section 6). The wire
// format must be mls_public_message or mls_private_message, the only two
// that carry framed content (ErrUnknownValue otherwise).
func (a *AuthenticatedContent) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("AuthenticatedContent"))
	*a = AuthenticatedContent{}
	a.WireFormat = WireFormat(d.U16("wire_format"))
	if d.Err() == nil && !validAuthenticatedWireFormat(a.WireFormat) {
		failUnknown(d, "wire_format", uint64(a.WireFormat))
		return
	}
	a.Content.Decode(d)
	if d.Err() != nil {
		return
	}
	a.Auth.DecodeFor(d, a.Content.ContentType)
}

func (a *AuthenticatedContent) check() error {
	if !validAuthenticatedWireFormat(a.WireFormat) {
		return inconsistent("AuthenticatedContent", "wire_format", "wire format %d carries no framed content", a.WireFormat)
	}
	if err := a.Content.check(); err != nil {
		return err
	}
	return a.Auth.checkFor(a.Content.ContentType)
}

// Marshal returns the encoding of the AuthenticatedContent, after checking
// that it can be encoded faithfully (ErrInconsistent otherwise). This is
// the input of MakeProposalRef (RFC 9420, Section 5.2).
func (a *AuthenticatedContent) Marshal() ([]byte, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return Marshal(a)
}

// SetConfirmedTranscriptHash records confirmed, the confirmed transcript
// hash that this commit gives after the interim transcript hash interim
// under suite s (RFC 9420, Section 8.2), computed while its bytes were at
// hand for the signature. The same conditions as for SetEncodedContent
// apply.
func (ac *AuthenticatedContent) SetConfirmedTranscriptHash(s *ciphersuite.Suite, interim, confirmed []byte) {
	ac.suite, ac.interim, ac.confirmed = s, interim, confirmed
}

// ConfirmedTranscriptHashAfter returns what SetConfirmedTranscriptHash
// recorded for suite s and this interim transcript hash, or nil.
func (ac *AuthenticatedContent) ConfirmedTranscriptHashAfter(s *ciphersuite.Suite, interim []byte) []byte {
	if ac.confirmed == nil || ac.suite != s || !bytes.Equal(ac.interim, interim) {
		return nil
	}
	return ac.confirmed
}

// Encode appends the PublicMessage (RFC 9420, Section 6.2). The
// membership tag is written for member senders only.
func (m *PublicMessage) Encode(e *wire.Encoder) {
	m.Content.Encode(e)
	m.Auth.EncodeFor(e, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		e.Opaque(m.MembershipTag)
	}
}

// Decode reads a PublicMessage (RFC 9420, Section 6.2):
// membership_tag follows the auth data exactly when the sender is a member.
func (m *PublicMessage) Decode(d *wire.Decoder) { m.decode(d) }

// decode is Decode that also returns the bytes of d's input that encode
// the FramedContent (not a copy), or nil on error.
func (m *PublicMessage) decode(d *wire.Decoder) (content []byte) {
	defer d.Struct(d.Struct("PublicMessage"))
	*m = PublicMessage{}
	in := d.Peek()
	m.Content.Decode(d)
	if d.Err() != nil {
		return nil
	}
	content = in[: len(in)-d.Len() : len(in)-d.Len()]
	m.Auth.DecodeFor(d, m.Content.ContentType)
	if m.Content.Sender.Type == SenderMember {
		m.MembershipTag = d.Opaque("membership_tag")
	}
	if d.Err() != nil {
		return nil
	}
	return content
}

func (m *PublicMessage) check() error {
	if err := m.Content.check(); err != nil {
		return err
	}
	if err := m.Auth.checkFor(m.Content.ContentType); err != nil {
		return err
	}
	if (m.Content.Sender.Type == SenderMember) != (m.MembershipTag != nil) {
		return inconsistent("PublicMessage", "membership_tag", "must be set exactly for member senders")
	}
	return nil
}

// Encode appends the PrivateMessage (RFC 9420, Section 6.3).
func (m *PrivateMessage) Encode(e *wire.Encoder) {
	e.Opaque(m.GroupID)
	e.U64(m.Epoch)
	e.U8(uint8(m.ContentType))
	e.Opaque(m.AuthenticatedData)
	e.Opaque(m.EncryptedSenderData)
	e.Opaque(m.Ciphertext)
}

// Decode reads a PrivateMessage (RFC 9420, Section 6.3). A content_type
// other than application, proposal or commit is ErrUnknownValue.
func (m *PrivateMessage) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("PrivateMessage"))
	*m = PrivateMessage{}
	m.GroupID = d.Opaque("group_id")
	m.Epoch = d.U64("epoch")
	m.ContentType = ContentType(d.U8("content_type"))
	if d.Err() == nil && !validContentType(m.ContentType) {
		failUnknown(d, "content_type", uint64(m.ContentType))
		return
	}
	m.AuthenticatedData = d.Opaque("authenticated_data")
	m.EncryptedSenderData = d.Opaque("encrypted_sender_data")
	m.Ciphertext = d.Opaque("ciphertext")
}

func (m *PrivateMessage) check() error {
	if !validContentType(m.ContentType) {
		return inconsistent("PrivateMessage", "content_type", "unknown content type %d", m.ContentType)
	}
	return nil
}

// Encode appends the SenderData (RFC 9420, Section 6.3.2).
func (s *SenderData) Encode(e *wire.Encoder) {
	e.U32(s.LeafIndex)
	e.U32(s.Generation)
	e.Raw(s.ReuseGuard[:])
}

// Decode reads a SenderData (RFC 9420, Section 6.3.2).
func (s *SenderData) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("SenderData"))
	*s = SenderData{}
	s.LeafIndex = d.U32("leaf_index")
	s.Generation = d.U32("generation")
	copy(s.ReuseGuard[:], d.Fixed("reuse_guard", len(s.ReuseGuard)))
}
