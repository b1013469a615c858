package mls

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mlskit/mls/internal/group"
)

// Error classes. Every error an exported function of this package returns
// matches, with errors.Is, at least one of the sentinels below, or it is
// (or wraps) context.Canceled / context.DeadlineExceeded when the caller's
// context ended. The classes, and what a caller does about each:
//
//   - ErrMalformed: the input bytes are not the structure they claim to be.
//     Drop the input. The *wire decoding error stays in the chain, with the
//     structure, field and offset, for logging.
//   - ErrUnsupported: a cipher suite, version, credential or key type this
//     library does not implement. Drop the input, or pick another suite.
//   - ErrValidation: input that decodes but breaks a rule of RFC 9420. Always
//     a *ValidationError that names the rule (errors.As). Drop the input.
//   - ErrDecrypt: a ciphertext does not decrypt (AEAD or HPKE failure): the
//     message was damaged, forged, or sealed under keys this member does not
//     have. For a PrivateMessage it is the *ValidationError ValSem006.
//   - ErrReplayed: a PrivateMessage whose key was already used or deleted
//     (RFC 9420, Section 9.2). Usually a duplicate delivery; safe to drop.
//     It does not match ErrDecrypt.
//   - ErrStaleState: another handle or process saved a newer state of the
//     group. Load it again.
//   - ErrNotFound: a stored object (group, key package, PSK, pending
//     proposal) does not exist. ErrNoKeyPackage is one.
//   - ErrCorruptState: stored state cannot be decoded or does not fit
//     together, or the store reports its data damaged (a *CorruptStateError
//     when a group's records are at fault).
//   - ErrStorage: the store failed otherwise (closed, locked, I/O error);
//     the *storage.Error is in the chain. Retrying may help.
//   - ErrInvalidArgument: the caller passed an unusable argument (nil, a bad
//     length, a message of the wrong kind, a key that does not match, a
//     signer that is missing or fails).
//   - ErrPendingCommit, ErrNoPendingCommit, ErrInactive: the call is not
//     allowed in the group's current state (a pending commit exists, none
//     exists, the member left or was removed). Each is a class of its own.
//
// The other sentinels are refinements that always come inside one of the
// classes: ErrWrongGroup, ErrPastEpoch and ErrFutureEpoch inside the
// *ValidationError of ValSem002 / ValSem003, ErrUnknownProposal and
// ErrWireFormat inside a *ValidationError, and ErrNoKeyPackage wraps
// ErrNotFound.
var (
	// ErrValidation is wrapped by every *ValidationError.
	ErrValidation = errors.New("mls: validation failed")
	// ErrWrongGroup: the message belongs to another group. It comes inside
	// the *ValidationError of ValSem002.
	ErrWrongGroup = errors.New("mls: message for another group")
	// ErrPastEpoch: the message is from an epoch before the current one;
	// for a commit this usually means another member's commit won the race
	// (reference/faq.txt). It comes inside the *ValidationError of
	// ValSem003.
	ErrPastEpoch = errors.New("mls: message from a past epoch")
	// ErrFutureEpoch: the message is from an epoch after the current one;
	// the client missed a commit. It comes inside the *ValidationError of
	// ValSem003.
	ErrFutureEpoch = errors.New("mls: message from a future epoch")
	// ErrPendingCommit: the group has a pending commit of its own; merge or
	// clear it first. A class of its own (group state).
	ErrPendingCommit = errors.New("mls: a pending commit exists; merge or clear it first")
	// ErrNoPendingCommit: MergePendingCommit without a pending commit. A
	// class of its own (group state).
	ErrNoPendingCommit = errors.New("mls: no pending commit")
	// ErrInactive: the member was removed from the group (or left). A class
	// of its own (group state).
	ErrInactive = errors.New("mls: group is no longer active for this member")
	// ErrUnknownProposal: a commit references a proposal this member has
	// not received. It comes inside the *ValidationError of rule
	// "ProposalReference" (RFC 9420, Section 12.4.2).
	ErrUnknownProposal = errors.New("mls: commit references an unknown proposal")
	// ErrNoKeyPackage: a Welcome is addressed to none of this client's key
	// packages. It wraps ErrNotFound.
	ErrNoKeyPackage = fmt.Errorf("%w: welcome is for no key package of this client", ErrNotFound)
	// ErrDecrypt: a ciphertext could not be decrypted: a PrivateMessage
	// (inside the *ValidationError of ValSem006), a Welcome's group
	// secrets or GroupInfo.
	ErrDecrypt = errors.New("mls: decryption failed")
	// ErrWireFormat: the message's wire format is not allowed by the
	// group's wire format policy. It comes inside the *ValidationError of
	// rule "WireFormatPolicy" (RFC 9420, Section 6).
	ErrWireFormat = errors.New("mls: wire format not allowed by policy")
	// ErrNotFound: a stored object (group, key package, PSK, pending
	// proposal) does not exist.
	ErrNotFound = errors.New("mls: not found")
	// ErrInvalidArgument: a caller passed an unusable argument.
	ErrInvalidArgument = errors.New("mls: invalid argument")
	// ErrMalformed: input bytes do not decode as the MLS structure they
	// claim to be (RFC 9420, Section 2.1: truncated, trailing bytes, a bad
	// length, a value out of range) or exceed a configured size limit.
	ErrMalformed = errors.New("mls: malformed input")
	// ErrUnsupported: the input names a cipher suite, protocol version,
	// credential type or key type this library does not implement.
	ErrUnsupported = errors.New("mls: unsupported")
	// ErrReplayed: a PrivateMessage whose (epoch, sender, generation) was
	// already decrypted, or whose key was deleted because it fell out of
	// the out-of-order window (RFC 9420, Section 9.2). Unlike ErrDecrypt
	// it says nothing is wrong with the ciphertext itself, and it does not
	// match ErrDecrypt.
	ErrReplayed = errors.New("mls: message already processed")
	// ErrStaleState: the Group handle is older than the stored group: another
	// handle or process saved a newer state of it. Nothing was written;
	// the handle refuses every further operation. Load the group again.
	ErrStaleState = errors.New("mls: stale group state; load the group again")
	// ErrStorage: the store failed for a reason other than damaged data
	// (closed, locked by another process past its timeout, an I/O error).
	// The *storage.Error is in the chain. Damaged data gives
	// ErrCorruptState instead.
	ErrStorage = errors.New("mls: the store failed")
)

// ValidationError reports a message that breaks a rule of RFC 9420. Rule
// names follow the OpenMLS "Message Validation" chapter where one exists
// (ValSem002 ... ValSem403); rules it does not number have a short
// descriptive name, for example "ProposalSameLeaf" (two Update/Remove
// proposals for one leaf, Section 12.2), "LeafNodeLifetime" (Section 7.3)
// or "WelcomeLeaf" (Section 12.4.3.1). Section names the RFC 9420 section
// in either case; validation_test.go has one test per rule.
type ValidationError struct {
	Rule    string // e.g. "ValSem101"
	Section string // RFC 9420 section, e.g. "12.2", or "draft-..., <title>" for an extension draft's rule
	Detail  string
	Err     error // optional underlying cause
}

func (e *ValidationError) Error() string {
	s := fmt.Sprintf("mls: %s (RFC 9420, Section %s): %s", e.Rule, e.Section, e.Detail)
	if strings.HasPrefix(e.Section, "draft-") {
		// A rule of an extension draft names the draft and its section.
		s = fmt.Sprintf("mls: %s (%s): %s", e.Rule, e.Section, e.Detail)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrValidation and the cause, so errors.Is works with both.
func (e *ValidationError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrValidation, e.Err}
	}
	return []error{ErrValidation}
}

// Is matches another *ValidationError with the same Rule, so tests and
// callers can write errors.Is(err, &mls.ValidationError{Rule: "ValSem101"}).
func (e *ValidationError) Is(target error) bool {
	t, ok := target.(*ValidationError)
	return ok && t.Rule == e.Rule
}

// The checks that Group and PublicGroup share live in internal/group and
// report through the root's error type and sentinels.
func init() {
	group.Report = func(rule, section, detail string, cause error) error {
		return &ValidationError{Rule: rule, Section: section, Detail: detail, Err: cause}
	}
	group.ErrWrongGroup, group.ErrPastEpoch, group.ErrFutureEpoch = ErrWrongGroup, ErrPastEpoch, ErrFutureEpoch
	group.ErrUnknownProposal = ErrUnknownProposal
}

func invalid(rule, section, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Section: section, Detail: fmt.Sprintf(format, args...)}
}

func invalidErr(rule, section string, err error, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Section: section, Detail: fmt.Sprintf(format, args...), Err: err}
}
