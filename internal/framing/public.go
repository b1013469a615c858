package framing

import (
	"errors"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
)

// membershipTag computes MAC(membership_key, AuthenticatedContentTBM)
// (RFC 9420, Section 6.2):
//
//	struct {
//	  FramedContentTBS content_tbs;
//	  FramedContentAuthData auth;
//	} AuthenticatedContentTBM;
//
// The encoding grows in a reused buffer: a commit with an UpdatePath in a
// fresh tree is O(N) bytes.
func membershipTag(op string, s *ciphersuite.Suite, membershipKey []byte, fc *message.FramedContent, auth *message.FramedContentAuthData, groupContext []byte) ([]byte, error) {
	p := getScratch()
	f, err := frame(op, *p, message.WireFormatPublicMessage, fc, nil, auth, groupContext)
	defer putScratch(p, f.b)
	if err != nil {
		return nil, err
	}
	return s.MAC(membershipKey, f.tbm()), nil
}

// ProtectPublic encodes a signed AuthenticatedContent as a PublicMessage
// (RFC 9420, Section 6.2). For a member sender it adds membership_tag =
// MAC(membership_key, AuthenticatedContentTBM), which needs the epoch's
// membership key and encoded GroupContext; for other senders both are
// ignored and there is no tag.
//
// ac must have been signed for WireFormatPublicMessage, and a commit must
// carry its confirmation tag. Application data is refused: RFC 9420,
// Section 6 requires PrivateMessage for it.
func ProtectPublic(s *ciphersuite.Suite, ac *message.AuthenticatedContent, membershipKey, groupContext []byte) (*message.PublicMessage, error) {
	const op = "protect PublicMessage"
	if s == nil || ac == nil {
		return nil, newError(op, ErrInvalidArgument, errors.New("nil suite or content"))
	}
	if ac.WireFormat != message.WireFormatPublicMessage {
		return nil, newError(op, ErrWireFormat, errorf("content signed for wire format %d", ac.WireFormat))
	}
	if ac.Content.ContentType == message.ContentApplication {
		return nil, newError(op, ErrContentType, errors.New("application data must be sent as a PrivateMessage"))
	}
	if err := checkContent(op, &ac.Content); err != nil {
		return nil, err
	}
	if err := checkAuth(op, ac.Content.ContentType, &ac.Auth); err != nil {
		return nil, err
	}
	pm := &message.PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type != message.SenderMember {
		return pm, nil
	}
	if len(membershipKey) == 0 {
		return nil, newError(op, ErrInvalidArgument, errors.New("no membership key for a member sender"))
	}
	if err := checkGroupContext(op, ac.Content.Sender.Type, groupContext); err != nil {
		return nil, err
	}
	tag, err := membershipTag(op, s, membershipKey, &ac.Content, &ac.Auth, groupContext)
	if err != nil {
		return nil, err
	}
	pm.MembershipTag = tag
	return pm, nil
}

// UnprotectPublic checks a PublicMessage (RFC 9420, Section 6.2): its
// content type and sender type, the presence of the confirmation tag, and
// for a member sender the membership tag (compared in constant time)
// under the epoch's membership key and encoded GroupContext. The result
// still needs its signature verified.
//
// The group ID and epoch are not compared with the group's; that is the
// caller's check (RFC 9420, Section 12.2 in spirit; OpenMLS ValSem002/003).
func UnprotectPublic(s *ciphersuite.Suite, pm *message.PublicMessage, membershipKey, groupContext []byte) (*Unverified, error) {
	const op = "unprotect PublicMessage"
	if err := checkPublic(op, s, pm, membershipKey, groupContext, true); err != nil {
		return nil, err
	}
	fc := &pm.Content
	p := getScratch()
	f, err := frame(op, *p, message.WireFormatPublicMessage, fc, nil, &pm.Auth, groupContext)
	if err == nil && fc.Sender.Type == message.SenderMember && !f.tagOK(s, membershipKey, pm.MembershipTag) {
		err = newError(op, ErrMembershipTag, errorf("member %d", fc.Sender.LeafIndex))
	}
	if err != nil {
		putScratch(p, f.b)
		return nil, err
	}
	f = f.owned(p)
	return &Unverified{
		suite:        s,
		groupContext: groupContext,
		framed:       &f,
		ac: message.AuthenticatedContent{
			WireFormat: message.WireFormatPublicMessage,
			Content:    pm.Content,
			Auth:       pm.Auth,
		},
	}, nil
}

// checkPublic makes the checks of a PublicMessage that need no
// cryptography (RFC 9420, Sections 6.1 and 6.2): content and sender type,
// auth data, a GroupContext for the senders whose FramedContentTBS has
// one, and a membership tag exactly for member senders, with a key to
// check it if tagged.
func checkPublic(op string, s *ciphersuite.Suite, pm *message.PublicMessage, membershipKey, groupContext []byte, tagged bool) error {
	if s == nil || pm == nil {
		return newError(op, ErrInvalidArgument, errors.New("nil suite or message"))
	}
	fc := &pm.Content
	if fc.ContentType == message.ContentApplication {
		return newError(op, ErrContentType, errors.New("application data in a PublicMessage"))
	}
	if err := checkContent(op, fc); err != nil {
		return err
	}
	if err := checkAuth(op, fc.ContentType, &pm.Auth); err != nil {
		return err
	}
	if err := checkGroupContext(op, fc.Sender.Type, groupContext); err != nil {
		return err
	}
	switch {
	case fc.Sender.Type != message.SenderMember:
		if pm.MembershipTag != nil {
			return newError(op, ErrMembershipTag, errorf("membership tag from a sender of type %d", fc.Sender.Type))
		}
	case tagged && len(membershipKey) == 0:
		return newError(op, ErrInvalidArgument, errors.New("no membership key for a member sender"))
	case pm.MembershipTag == nil:
		return newError(op, ErrMembershipTag, errorf("member %d sent no membership tag", fc.Sender.LeafIndex))
	}
	return nil
}

// PublicKeys is what VerifyPublic checks a PublicMessage against.
type PublicKeys struct {
	// MembershipKey is the epoch's membership key.
	MembershipKey []byte
	// Untagged is set by a party that does not hold the membership key (a
	// PublicGroup: RFC 9420, Section 6.2 keys the membership tag with a
	// secret of the epoch): a member's membership tag must be present,
	// but its value is not checked.
	Untagged bool
	// GroupContext is the encoded GroupContext of the epoch.
	GroupContext []byte
	// SignatureKey is the signer's signature public key.
	SignatureKey []byte
	// Interim, if not nil, is the epoch's interim transcript hash: for a
	// commit VerifyPublic then also computes the confirmed transcript
	// hash from the bytes it verifies (RFC 9420, Section 8.2) and records
	// it on the result, where ConfirmedTranscriptHash finds it. The
	// result keeps Interim, which must not be modified.
	Interim []byte
}

// VerifyPublic is UnprotectPublic followed by Unverified.Verify, for a
// caller that looked the signer's key up from the unverified sender
// beforehand (RFC 9420, Section 6.1). It gives the same result and the
// same errors: a wrong membership tag is ErrMembershipTag whatever the
// signature, a wrong signature ErrSignature.
//
// content, if not nil, is the encoding of pm.Content as it was received
// (message.UnmarshalMLSMessageContent), around which the membership tag,
// signature and transcript hash inputs are laid out in one reused buffer
// instead of encoding the content again. For a large message the
// signature is verified on another goroutine while the membership tag and
// transcript hash are computed over the same bytes: a commit with an
// UpdatePath in a fresh tree is O(N) bytes (RFC 9420, Section 7.6).
func VerifyPublic(s *ciphersuite.Suite, pm *message.PublicMessage, content []byte, k *PublicKeys) (*message.AuthenticatedContent, error) {
	const op = "unprotect PublicMessage"
	if k == nil {
		return nil, newError(op, ErrInvalidArgument, errors.New("nil keys"))
	}
	if err := checkPublic(op, s, pm, k.MembershipKey, k.GroupContext, !k.Untagged); err != nil {
		return nil, err
	}
	fc := &pm.Content
	p := getScratch()
	f, err := frame(op, *p, message.WireFormatPublicMessage, fc, content, &pm.Auth, k.GroupContext)
	defer putScratch(p, f.b)
	if err != nil {
		return nil, err
	}
	c := checks{pub: k.SignatureKey, signature: pm.Auth.Signature}
	if fc.Sender.Type == message.SenderMember && !k.Untagged {
		c.membershipKey, c.tag = k.MembershipKey, pm.MembershipTag
	}
	if fc.ContentType == message.ContentCommit && k.Interim != nil {
		c.interim = k.Interim
	}
	tagOK, confirmed, sigErr := f.checkFramed(s, &c)
	if !tagOK {
		return nil, newError(op, ErrMembershipTag, errorf("member %d", fc.Sender.LeafIndex))
	}
	if sigErr != nil {
		return nil, sigErr
	}
	ac := &message.AuthenticatedContent{
		WireFormat: message.WireFormatPublicMessage,
		Content:    pm.Content,
		Auth:       pm.Auth,
	}
	if confirmed != nil {
		ac.SetConfirmedTranscriptHash(s, k.Interim, confirmed)
	}
	return ac, nil
}
