package mls

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the package returns wraps one of these (or
// a *ValidationError, which in turn wraps ErrValidation), so callers can
// branch with errors.Is / errors.As.
var (
	// ErrValidation is wrapped by every *ValidationError.
	ErrValidation = errors.New("mls: validation failed")
	// ErrWrongGroup: the message belongs to another group (ValSem002).
	ErrWrongGroup = errors.New("mls: message for another group")
	// ErrPastEpoch: the message is from an epoch before the current one
	// (ValSem003); for a commit this usually means another member's commit
	// won the race (reference/faq.txt).
	ErrPastEpoch = errors.New("mls: message from a past epoch")
	// ErrFutureEpoch: the message is from an epoch after the current one
	// (ValSem003); the client missed a commit.
	ErrFutureEpoch = errors.New("mls: message from a future epoch")
	// ErrPendingCommit: the group has a pending commit of its own; merge or
	// clear it first.
	ErrPendingCommit = errors.New("mls: a pending commit exists; merge or clear it first")
	// ErrNoPendingCommit: MergePendingCommit without a pending commit.
	ErrNoPendingCommit = errors.New("mls: no pending commit")
	// ErrInactive: the member was removed from the group (or left).
	ErrInactive = errors.New("mls: group is no longer active for this member")
	// ErrUnknownProposal: a commit references a proposal this member has
	// not received.
	ErrUnknownProposal = errors.New("mls: commit references an unknown proposal")
	// ErrNoKeyPackage: a Welcome is addressed to none of this client's key
	// packages.
	ErrNoKeyPackage = errors.New("mls: welcome is for no key package of this client")
	// ErrDecrypt: a message could not be decrypted (ValSem006).
	ErrDecrypt = errors.New("mls: decryption failed")
	// ErrWireFormat: the message's wire format is not allowed by the
	// group's wire format policy.
	ErrWireFormat = errors.New("mls: wire format not allowed by policy")
	// ErrNotFound: a stored object (group, key package) does not exist.
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
	// ErrReplayed: an application message whose (epoch, sender,
	// generation) was already decrypted and whose key is deleted (RFC 9420,
	// Section 9.2). Unlike ErrDecrypt it says nothing is wrong with the
	// ciphertext itself.
	ErrReplayed = errors.New("mls: message already processed")
	// ErrStaleState: the Group handle is older than the stored group: another
	// handle or process saved a newer state of it. Nothing was written;
	// the handle refuses every further operation. Load the group again.
	ErrStaleState = errors.New("mls: stale group state; load the group again")
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
	Section string // RFC 9420 section, e.g. "12.2"
	Detail  string
	Err     error // optional underlying cause
}

func (e *ValidationError) Error() string {
	s := fmt.Sprintf("mls: %s (RFC 9420, Section %s): %s", e.Rule, e.Section, e.Detail)
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

func invalid(rule, section, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Section: section, Detail: fmt.Sprintf(format, args...)}
}

func invalidErr(rule, section string, err error, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Section: section, Detail: fmt.Sprintf(format, args...), Err: err}
}
