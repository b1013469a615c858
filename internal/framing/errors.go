package framing

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns is an *Error whose Kind
// is one of these; test with errors.Is.
var (
	// ErrMembershipTag: a member's PublicMessage carries a membership tag
	// that does not verify (RFC 9420, Section 6.2).
	ErrMembershipTag = errors.New("invalid membership tag")
	// ErrSignature: the FramedContentTBS signature does not verify under
	// the given key (RFC 9420, Section 6.1).
	ErrSignature = errors.New("invalid signature")
	// ErrDecrypt: AEAD decryption of the sender data or the content failed
	// (RFC 9420, Sections 6.3.1 and 6.3.2).
	ErrDecrypt = errors.New("decryption failed")
	// ErrPadding: the padding of a PrivateMessageContent holds a non-zero
	// byte (RFC 9420, Section 6.3.1).
	ErrPadding = errors.New("non-zero padding")
	// ErrMalformed: a structure inside the message (a decrypted
	// PrivateMessageContent or SenderData) does not decode. The wire error
	// is wrapped too.
	ErrMalformed = errors.New("malformed content")
	// ErrSender: the sender is not allowed here: a sender data leaf index
	// outside the tree, a non-member sender of a PrivateMessage, or a
	// sender type that may not send this content type (RFC 9420,
	// Sections 6.1 and 6.3.2).
	ErrSender = errors.New("sender not allowed")
	// ErrContentType: the content type is not allowed here (application
	// data in a PublicMessage, RFC 9420, Section 6) or does not match the
	// content.
	ErrContentType = errors.New("content type not allowed")
	// ErrWireFormat: an AuthenticatedContent signed for one wire format is
	// being protected as the other (RFC 9420, Section 6.1).
	ErrWireFormat = errors.New("wrong wire format")
	// ErrConfirmationTag: a Commit without a confirmation tag, or another
	// content type with one (RFC 9420, Section 6.1).
	ErrConfirmationTag = errors.New("confirmation tag missing or unexpected")
	// ErrGeneration: the secret tree has no key for the sender data's
	// generation: already used, outside the out-of-order window, or too
	// far ahead (RFC 9420, Section 9). The secret tree's error is wrapped.
	ErrGeneration = errors.New("no key for generation")
	// ErrReplayed refines ErrGeneration (it matches both): the key of the
	// generation was already used or deleted because it fell out of the
	// out-of-order window (RFC 9420, Section 9.2), so the message is a
	// replay, or too old to read. Nothing is said about its ciphertext,
	// which is never decrypted; a failed AEAD is ErrDecrypt instead.
	ErrReplayed = fmt.Errorf("%w: key already used or deleted", ErrGeneration)
	// ErrNotVerified: Consume was called on a message whose signature has
	// not been verified.
	ErrNotVerified = errors.New("message not verified")
	// ErrInvalidArgument: the caller passed something unusable (a missing
	// key, group context or random source, a negative padding block).
	ErrInvalidArgument = errors.New("invalid argument")
)

// Error is a framing failure: the operation and step that failed (Op), the
// kind of failure (one of the Err* sentinels) and, if there is one, the
// underlying error (a wire decoding error, a secret tree error ...).
// errors.Is matches both Kind and Err.
type Error struct {
	Op   string // e.g. "unprotect PrivateMessage: sender data"
	Kind error
	Err  error
}

func (e *Error) Error() string {
	msg := "mls: framing: " + e.Op + ": " + e.Kind.Error()
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns Kind and, if set, Err.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func newError(op string, kind, err error) *Error {
	return &Error{Op: op, Kind: kind, Err: err}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
