package framing

import (
	"bytes"
	"errors"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/keyschedule"
	"github.com/mlskit/mls/internal/message"
	"github.com/mlskit/mls/internal/wire"
)

// ConfirmedTranscriptHashInput encodes the ConfirmedTranscriptHashInput of
// a commit's AuthenticatedContent (RFC 9420, Section 8.2):
//
//	struct {
//	    WireFormat wire_format;
//	    FramedContent content; /* with content_type == commit */
//	    opaque signature<V>;
//	} ConfirmedTranscriptHashInput;
func ConfirmedTranscriptHashInput(ac *message.AuthenticatedContent) ([]byte, error) {
	return appendConfirmedInput(nil, ac)
}

// appendConfirmedInput appends the encoded ConfirmedTranscriptHashInput of
// ac to buf.
func appendConfirmedInput(buf []byte, ac *message.AuthenticatedContent) ([]byte, error) {
	const op = "encode ConfirmedTranscriptHashInput"
	if err := checkConfirmedInput(op, ac); err != nil {
		return nil, err
	}
	e := wire.NewEncoder(buf)
	if enc := ac.EncodedContent(); enc != nil {
		// wire_format || content as the signature covered them.
		e.Raw(enc)
	} else {
		e.U16(uint16(ac.WireFormat))
		ac.Content.Encode(e)
	}
	e.Opaque(ac.Auth.Signature)
	b, err := e.Bytes()
	if err != nil {
		return nil, newError(op, ErrInvalidArgument, err)
	}
	return b, nil
}

// checkConfirmedInput checks that ac is a commit.
func checkConfirmedInput(op string, ac *message.AuthenticatedContent) error {
	if ac == nil {
		return newError(op, ErrInvalidArgument, errors.New("nil content"))
	}
	if ac.Content.ContentType != message.ContentCommit {
		return newError(op, ErrContentType, errorf("content type %d, want commit", ac.Content.ContentType))
	}
	return checkContent(op, &ac.Content)
}

// ConfirmedTranscriptHash returns the confirmed transcript hash of the
// epoch a commit starts (RFC 9420, Section 8.2):
//
//	confirmed_transcript_hash_[epoch] =
//	    Hash(interim_transcript_hash_[epoch - 1] || ConfirmedTranscriptHashInput_[epoch])
//
// It needs only the signature, not the confirmation tag, so a committer
// calls it between SignContent and setting the tag to
// MAC(confirmation_key, confirmed_transcript_hash).
//
// A received commit has its content as encoded for the signature, or the
// hash itself if VerifyPublic computed it: for a commit with an UpdatePath
// the input is O(N) bytes. Otherwise the content is encoded into a reused
// buffer.
func ConfirmedTranscriptHash(s *ciphersuite.Suite, interimBefore []byte, ac *message.AuthenticatedContent) ([]byte, error) {
	const op = "encode ConfirmedTranscriptHashInput"
	if err := checkConfirmedInput(op, ac); err != nil {
		return nil, err
	}
	if h := ac.ConfirmedTranscriptHashAfter(s, interimBefore); h != nil {
		return bytes.Clone(h), nil
	}
	if enc := ac.EncodedContent(); enc != nil {
		sig := ac.Auth.Signature
		return confirmedHash(s, interimBefore, enc, wire.AppendVarint(nil, uint64(len(sig))), sig), nil
	}
	p := getScratch()
	in, err := appendConfirmedInput(*p, ac)
	if err != nil {
		putScratch(p, *p)
		return nil, err
	}
	h := keyschedule.ConfirmedTranscriptHash(s, interimBefore, in)
	putScratch(p, in)
	return h, nil
}

// TranscriptHashes returns both transcript hashes after a commit
// (RFC 9420, Section 8.2): the confirmed one as ConfirmedTranscriptHash, and
//
//	interim_transcript_hash_[epoch] =
//	    Hash(confirmed_transcript_hash_[epoch] || InterimTranscriptHashInput_[epoch])
//
// where InterimTranscriptHashInput is the commit's confirmation tag, which
// must be present. The tag itself is not checked here: that needs the new
// epoch's confirmation key.
func TranscriptHashes(s *ciphersuite.Suite, interimBefore []byte, ac *message.AuthenticatedContent) (confirmed, interim []byte, err error) {
	confirmed, err = ConfirmedTranscriptHash(s, interimBefore, ac)
	if err != nil {
		return nil, nil, err
	}
	if len(ac.Auth.ConfirmationTag) == 0 {
		return nil, nil, newError("transcript hashes", ErrConfirmationTag, errors.New("commit without a confirmation tag"))
	}
	return confirmed, keyschedule.InterimTranscriptHash(s, confirmed, ac.Auth.ConfirmationTag), nil
}
