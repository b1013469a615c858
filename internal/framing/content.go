package framing

import (
	"crypto"
	"errors"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// signLabel is the SignWithLabel label of FramedContentTBS (RFC 9420,
// Section 6.1).
const signLabel = "FramedContentTBS"

// needsGroupContext reports whether FramedContentTBS includes the
// GroupContext for this sender type: for member and new_member_commit
// senders (RFC 9420, Section 6.1).
func needsGroupContext(t message.SenderType) bool {
	return t == message.SenderMember || t == message.SenderNewMemberCommit
}

// checkContent checks that the FramedContent holds the body its content
// type names, and that its sender type may send that content type
// (RFC 9420, Section 6.1: external and new_member_proposal senders send
// proposals, new_member_proposal only Add; new_member_commit senders send
// commits). Whether an external sender's proposal type is allowed is
// checked by the caller, which knows the external_senders extension
// (RFC 9420, Section 12.1.8).
func checkContent(op string, fc *message.FramedContent) error {
	switch fc.ContentType {
	case message.ContentApplication:
		if fc.Proposal != nil || fc.Commit != nil {
			return newError(op, ErrContentType, errors.New("application content with a proposal or commit body"))
		}
	case message.ContentProposal:
		if fc.Proposal == nil || fc.Commit != nil || fc.ApplicationData != nil {
			return newError(op, ErrContentType, errors.New("proposal content without exactly a proposal body"))
		}
	case message.ContentCommit:
		if fc.Commit == nil || fc.Proposal != nil || fc.ApplicationData != nil {
			return newError(op, ErrContentType, errors.New("commit content without exactly a commit body"))
		}
	default:
		return newError(op, ErrContentType, errorf("unknown content type %d", fc.ContentType))
	}
	switch fc.Sender.Type {
	case message.SenderMember:
	case message.SenderExternal:
		if fc.ContentType != message.ContentProposal {
			return newError(op, ErrSender, errorf("external sender with content type %d, want proposal", fc.ContentType))
		}
	case message.SenderNewMemberProposal:
		if fc.ContentType != message.ContentProposal || fc.Proposal.Type != message.ProposalAdd {
			return newError(op, ErrSender, errors.New("new_member_proposal sender with content other than an Add proposal"))
		}
	case message.SenderNewMemberCommit:
		if fc.ContentType != message.ContentCommit {
			return newError(op, ErrSender, errorf("new_member_commit sender with content type %d, want commit", fc.ContentType))
		}
	default:
		return newError(op, ErrSender, errorf("unknown sender type %d", fc.Sender.Type))
	}
	return nil
}

// checkAuth checks that a confirmation tag is present exactly for commits
// (RFC 9420, Section 6.1).
func checkAuth(op string, ct message.ContentType, auth *message.FramedContentAuthData) error {
	if ct == message.ContentCommit && len(auth.ConfirmationTag) == 0 {
		return newError(op, ErrConfirmationTag, errors.New("commit without a confirmation tag"))
	}
	if ct != message.ContentCommit && auth.ConfirmationTag != nil {
		return newError(op, ErrConfirmationTag, errors.New("confirmation tag on a non-commit"))
	}
	return nil
}

// appendTBS appends FramedContentTBS (RFC 9420, Section 6.1):
//
//	struct {
//	    ProtocolVersion version = mls10;
//	    WireFormat wire_format;
//	    FramedContent content;
//	    select (FramedContentTBS.content.sender.sender_type) {
//	        case member:
//	        case new_member_commit:
//	            GroupContext context;
//	        case external:
//	        case new_member_proposal:
//	            struct{};
//	    };
//	} FramedContentTBS;
//
// groupContext is the encoded GroupContext. content, if not nil, is fc as
// encoded on the wire, written instead of encoding fc again.
func appendTBS(e *wire.Encoder, wf message.WireFormat, fc *message.FramedContent, content, groupContext []byte) {
	e.U16(uint16(message.MLS10))
	e.U16(uint16(wf))
	if content != nil {
		e.Raw(content)
	} else {
		fc.Encode(e)
	}
	if needsGroupContext(fc.Sender.Type) {
		e.Raw(groupContext)
	}
}

// appendAuth appends FramedContentAuthData (RFC 9420, Section 6.1): the
// signature and, for commits, the confirmation tag.
func appendAuth(e *wire.Encoder, ct message.ContentType, auth *message.FramedContentAuthData) {
	auth.EncodeFor(e, ct)
}

// encodeTBS returns the encoded FramedContentTBS.
func encodeTBS(op string, wf message.WireFormat, fc *message.FramedContent, groupContext []byte) ([]byte, error) {
	e := wire.NewEncoder(nil)
	appendTBS(e, wf, fc, nil, groupContext)
	b, err := e.Bytes()
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}
	return b, nil
}

// checkGroupContext fails if the sender type needs a GroupContext in its
// FramedContentTBS and none was given.
func checkGroupContext(op string, t message.SenderType, groupContext []byte) error {
	if needsGroupContext(t) && len(groupContext) == 0 {
		return newError(op, ErrInvalidArgument, errors.New("no GroupContext given for a member or new_member_commit sender"))
	}
	return nil
}

// SignContent signs fc for sending with wire format wf (RFC 9420,
// Section 6.1): signature = SignWithLabel(key, "FramedContentTBS",
// FramedContentTBS). groupContext is the encoded GroupContext of the
// current epoch; it is required for member and new_member_commit senders
// and ignored otherwise.
//
// For a Commit the returned AuthenticatedContent has no confirmation tag
// yet: the tag is a MAC over the confirmed transcript hash, which covers
// this signature (RFC 9420, Section 8.2), so the caller computes it with
// ConfirmedTranscriptHash and sets Auth.ConfirmationTag before protecting.
// The result shares fc's byte slices and pointers.
func SignContent(s *ciphersuite.Suite, signer crypto.Signer, wf message.WireFormat, fc *message.FramedContent, groupContext []byte) (*message.AuthenticatedContent, error) {
	const op = "sign FramedContent"
	if s == nil || signer == nil || fc == nil {
		return nil, newError(op, ErrInvalidArgument, errors.New("nil suite, signer or content"))
	}
	switch wf {
	case message.WireFormatPublicMessage:
		if fc.ContentType == message.ContentApplication {
			return nil, newError(op, ErrContentType, errors.New("application data must be sent as a PrivateMessage"))
		}
	case message.WireFormatPrivateMessage:
		if fc.Sender.Type != message.SenderMember {
			return nil, newError(op, ErrSender, errorf("sender type %d cannot send a PrivateMessage", fc.Sender.Type))
		}
	default:
		return nil, newError(op, ErrWireFormat, errorf("wire format %d is neither PublicMessage nor PrivateMessage", wf))
	}
	if err := checkContent(op, fc); err != nil {
		return nil, err
	}
	if err := checkGroupContext(op, fc.Sender.Type, groupContext); err != nil {
		return nil, err
	}
	tbs, err := encodeTBS(op, wf, fc, groupContext)
	if err != nil {
		return nil, err
	}
	sig, err := s.SignWithLabel(signer, signLabel, tbs)
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}
	return &message.AuthenticatedContent{
		WireFormat: wf,
		Content:    *fc,
		Auth:       message.FramedContentAuthData{Signature: sig},
	}, nil
}

// VerifySignature checks ac's signature against the signature public key
// pub (RFC 9420, Section 6.1). groupContext is the encoded GroupContext
// of the epoch the message claims; it is required for member and
// new_member_commit senders. It checks nothing else: the membership tag
// or decryption is the business of UnprotectPublic / UnprotectPrivate,
// and the confirmation tag that of the caller, which holds the next
// epoch's confirmation key.
func VerifySignature(s *ciphersuite.Suite, pub []byte, ac *message.AuthenticatedContent, groupContext []byte) error {
	p := getScratch()
	f, err := frameSigned(s, ac, groupContext, *p)
	defer putScratch(p, f.b)
	if err != nil {
		return err
	}
	return f.verify(s, pub, ac.Auth.Signature)
}

// frameSigned checks what VerifySignature needs of ac and returns it
// framed in buf.
func frameSigned(s *ciphersuite.Suite, ac *message.AuthenticatedContent, groupContext, buf []byte) (framed, error) {
	const op = "verify signature"
	if s == nil || ac == nil {
		return framed{b: buf}, newError(op, ErrInvalidArgument, errors.New("nil suite or content"))
	}
	if err := checkContent(op, &ac.Content); err != nil {
		return framed{b: buf}, err
	}
	if err := checkGroupContext(op, ac.Content.Sender.Type, groupContext); err != nil {
		return framed{b: buf}, err
	}
	return frame(op, buf, ac.WireFormat, &ac.Content, nil, &ac.Auth, groupContext)
}

// Unverified is a message whose membership tag (PublicMessage) or AEAD
// (PrivateMessage) has been checked but whose signature has not. Its
// content is not authenticated: use it only to find the signer's key
// (from the sender, or for new members from the commit's path or the Add
// proposal, RFC 9420, Section 6.1), then call Verify.
type Unverified struct {
	suite        *ciphersuite.Suite
	groupContext []byte
	ac           message.AuthenticatedContent
	verified     bool
	// framed is ac framed for its checks if the membership tag check
	// framed it (nil otherwise); the content it encodes is never
	// modified.
	framed *framed
}

// WireFormat returns the wire format the message arrived in.
func (u *Unverified) WireFormat() message.WireFormat { return u.ac.WireFormat }

// Sender returns the claimed sender.
func (u *Unverified) Sender() message.Sender { return u.ac.Content.Sender }

// ContentType returns the content type.
func (u *Unverified) ContentType() message.ContentType { return u.ac.Content.ContentType }

// Epoch returns the epoch the message claims.
func (u *Unverified) Epoch() uint64 { return u.ac.Content.Epoch }

// Content returns the not yet authenticated content. The caller must not
// modify it; it is meant for finding the signer's key only.
func (u *Unverified) Content() *message.FramedContent { return &u.ac.Content }

// Verify checks the signature against the signature public key pub
// (RFC 9420, Section 6.1) and on success returns the AuthenticatedContent.
// The caller still checks the confirmation tag of a commit and validates
// the content (RFC 9420, Section 12.2, 12.4.2).
func (u *Unverified) Verify(pub []byte) (*message.AuthenticatedContent, error) {
	f := u.framed
	if f == nil {
		p := getScratch()
		fr, err := frameSigned(u.suite, &u.ac, u.groupContext, *p)
		if err == nil {
			err = fr.verify(u.suite, pub, u.ac.Auth.Signature)
		}
		if err != nil {
			putScratch(p, fr.b)
			return nil, err
		}
		fr = fr.owned(p)
		f = &fr
	} else if err := f.verify(u.suite, pub, u.ac.Auth.Signature); err != nil {
		return nil, err
	}
	u.verified = true
	ac := u.ac
	// The middle of FramedContentTBS is the start of
	// ConfirmedTranscriptHashInput (RFC 9420, Section 8.2).
	ac.SetEncodedContent(f.encodedContent())
	return &ac, nil
}
