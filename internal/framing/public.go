package framing

import (
	"bytes"
	"crypto/hmac"
	"errors"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// membershipTag computes MAC(membership_key, AuthenticatedContentTBM)
// (RFC 9420, Section 6.2):
//
//	struct {
//	  FramedContentTBS content_tbs;
//	  FramedContentAuthData auth;
//	} AuthenticatedContentTBM;
func membershipTag(op string, s *ciphersuite.Suite, membershipKey []byte, fc *message.FramedContent, auth *message.FramedContentAuthData, groupContext []byte) ([]byte, error) {
	tag, _, err := membershipTagTBS(op, s, membershipKey, fc, auth, groupContext)
	return tag, err
}

// membershipTagTBS is membershipTag that also returns the
// FramedContentTBS it encoded (the start of AuthenticatedContentTBM), so
// that the signature check need not encode the content again: a commit
// with an UpdatePath in a fresh tree is O(N) bytes. The encoding grows in
// a reused buffer; only the FramedContentTBS is copied out, once, at its
// final size.
func membershipTagTBS(op string, s *ciphersuite.Suite, membershipKey []byte, fc *message.FramedContent, auth *message.FramedContentAuthData, groupContext []byte) (tag, tbs []byte, err error) {
	p := getScratch()
	e := wire.NewEncoder(*p)
	appendTBS(e, message.WireFormatPublicMessage, fc, groupContext)
	n := e.Len()
	appendAuth(e, fc.ContentType, auth)
	tbm, err := e.Bytes()
	if err != nil {
		putScratch(p, *p)
		return nil, nil, newError(op, ErrInvalidArgument, err)
	}
	tag = s.MAC(membershipKey, tbm)
	tbs = bytes.Clone(tbm[:n])
	putScratch(p, tbm)
	return tag, tbs, nil
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
	return unprotectPublic(s, pm, membershipKey, groupContext, true)
}

// UnprotectPublicUntagged is UnprotectPublic for a party that does not hold
// the membership key (a PublicGroup: RFC 9420, Section 6.2 keys the
// membership tag with a secret of the epoch): every check is made except
// the value of a member's membership tag, which must still be present.
func UnprotectPublicUntagged(s *ciphersuite.Suite, pm *message.PublicMessage, groupContext []byte) (*Unverified, error) {
	return unprotectPublic(s, pm, nil, groupContext, false)
}

func unprotectPublic(s *ciphersuite.Suite, pm *message.PublicMessage, membershipKey, groupContext []byte, checkTag bool) (*Unverified, error) {
	const op = "unprotect PublicMessage"
	if s == nil || pm == nil {
		return nil, newError(op, ErrInvalidArgument, errors.New("nil suite or message"))
	}
	fc := &pm.Content
	if fc.ContentType == message.ContentApplication {
		return nil, newError(op, ErrContentType, errors.New("application data in a PublicMessage"))
	}
	if err := checkContent(op, fc); err != nil {
		return nil, err
	}
	if err := checkAuth(op, fc.ContentType, &pm.Auth); err != nil {
		return nil, err
	}
	if err := checkGroupContext(op, fc.Sender.Type, groupContext); err != nil {
		return nil, err
	}
	var tbs []byte
	if fc.Sender.Type == message.SenderMember && !checkTag {
		if pm.MembershipTag == nil {
			return nil, newError(op, ErrMembershipTag, errorf("member %d sent no membership tag", fc.Sender.LeafIndex))
		}
	} else if fc.Sender.Type == message.SenderMember {
		if len(membershipKey) == 0 {
			return nil, newError(op, ErrInvalidArgument, errors.New("no membership key for a member sender"))
		}
		want, t, err := membershipTagTBS(op, s, membershipKey, fc, &pm.Auth, groupContext)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(want, pm.MembershipTag) {
			return nil, newError(op, ErrMembershipTag, errorf("member %d", fc.Sender.LeafIndex))
		}
		tbs = t
	} else if pm.MembershipTag != nil {
		return nil, newError(op, ErrMembershipTag, errorf("membership tag from a sender of type %d", fc.Sender.Type))
	}
	return &Unverified{
		suite:        s,
		groupContext: groupContext,
		tbs:          tbs,
		ac: message.AuthenticatedContent{
			WireFormat: message.WireFormatPublicMessage,
			Content:    pm.Content,
			Auth:       pm.Auth,
		},
	}, nil
}
