package group

import (
	"errors"
	"fmt"
)

// The validation sentinels. The root package re-exports them under the same
// names (mls.ErrValidation, ...), so errors.Is behaves the same whether the
// check ran here or there.
var (
	// ErrValidation is wrapped by every *ValidationError.
	ErrValidation = errors.New("mls: validation failed")
	// ErrWrongGroup: the message belongs to another group (ValSem002).
	ErrWrongGroup = errors.New("mls: message for another group")
	// ErrPastEpoch: the message is from an earlier epoch (ValSem003).
	ErrPastEpoch = errors.New("mls: message from a past epoch")
	// ErrFutureEpoch: the message is from a later epoch (ValSem003).
	ErrFutureEpoch = errors.New("mls: message from a future epoch")
	// ErrUnknownProposal: a commit references a proposal not received
	// (rule "ProposalReference", RFC 9420, Section 12.4.2).
	ErrUnknownProposal = errors.New("mls: commit references an unknown proposal")
)

// ValidationError reports a message that breaks a rule of RFC 9420. The
// root package's mls.ValidationError is an alias of this type; see its
// documentation there.
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

// Invalid returns the *ValidationError of rule in section.
func Invalid(rule, section, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Section: section, Detail: fmt.Sprintf(format, args...)}
}

// InvalidErr is Invalid with an underlying cause.
func InvalidErr(rule, section string, err error, format string, args ...any) *ValidationError {
	return &ValidationError{Rule: rule, Section: section, Detail: fmt.Sprintf(format, args...), Err: err}
}

var (
	invalid    = Invalid
	invalidErr = InvalidErr
)
