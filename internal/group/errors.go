package group

import (
	"errors"
	"fmt"
	"strings"
)

// A check of this package that fails reports the rule it enforces through
// Report. The root package installs its own constructor and sentinels at
// init (errors.go there), so that a rule reached from mls.Group or
// mls.PublicGroup returns the very *mls.ValidationError, carrying the very
// mls.ErrWrongGroup ..., that the API documents; the root's exported API
// never names a type of this package. Without the root (this package's
// own use) the defaults below apply.
var (
	// Report returns the error of a broken rule: RFC 9420 section, a
	// detail and an optional cause.
	Report = func(rule, section, detail string, cause error) error {
		return &Error{Rule: rule, Section: section, Detail: detail, Err: cause}
	}
	// ErrWrongGroup is the cause of ValSem002: the message belongs to
	// another group.
	ErrWrongGroup = errors.New("group: message for another group")
	// ErrPastEpoch and ErrFutureEpoch are the causes of ValSem003.
	ErrPastEpoch   = errors.New("group: message from a past epoch")
	ErrFutureEpoch = errors.New("group: message from a future epoch")
	// ErrUnknownProposal is the cause of rule "ProposalReference" (RFC
	// 9420, Section 12.4.2): a commit references a proposal not received.
	ErrUnknownProposal = errors.New("group: commit references an unknown proposal")
)

// Error is the default report of a broken rule.
type Error struct {
	Rule    string
	Section string
	Detail  string
	Err     error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("group: %s (RFC 9420, Section %s): %s", e.Rule, e.Section, e.Detail)
	if strings.HasPrefix(e.Section, "draft-") {
		s = fmt.Sprintf("group: %s (%s): %s", e.Rule, e.Section, e.Detail)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func invalid(rule, section, format string, args ...any) error {
	return Report(rule, section, fmt.Sprintf(format, args...), nil)
}

func invalidErr(rule, section string, err error, format string, args ...any) error {
	return Report(rule, section, fmt.Sprintf(format, args...), err)
}
