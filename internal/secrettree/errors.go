package secrettree

import (
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/treemath"
)

// Sentinel errors. Every error this package returns for bad input wraps one
// of them, most through an *Error that says where the failure happened.
var (
	// ErrLeafOutOfRange: the leaf index is not below the tree's leaf count.
	ErrLeafOutOfRange = errors.New("leaf index out of range")
	// ErrGenerationUsed: the generation was already consumed, or it is
	// older than the out-of-order window and its key has been deleted
	// (RFC 9420, Section 9.2).
	ErrGenerationUsed = errors.New("generation already used or outside the out-of-order window")
	// ErrTooFarAhead: the generation lies more than MaxForwardDistance
	// beyond the next expected generation of the ratchet.
	ErrTooFarAhead = errors.New("generation too far ahead of the ratchet")
	// ErrExhausted: the ratchet has produced all 2^32 generations.
	ErrExhausted = errors.New("ratchet exhausted")
	// ErrInvalidRatchetType: a RatchetType other than Handshake or
	// Application.
	ErrInvalidRatchetType = errors.New("invalid ratchet type")
	// ErrInvalidParameter: an unusable argument to New (a secret of the
	// wrong length, a tree of zero or more than 2^31 leaves).
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrUnavailable: the secret needed is no longer held, for example
	// MarshalLeaf of a leaf whose ratchets were never initialised, or a
	// restored state that lacks the node secrets for a leaf.
	ErrUnavailable = errors.New("secret not available")
)

// Error reports a failed ratchet operation: which operation, which leaf
// and ratchet, which generation (when one was given), and why.
type Error struct {
	Op         string // "Next", "Get", "Consume", ...
	Leaf       treemath.LeafIndex
	Type       RatchetType
	Generation uint32
	HasGen     bool // Generation is meaningful
	Err        error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("secrettree: %s leaf %d %s ratchet", e.Op, e.Leaf, e.Type)
	if e.HasGen {
		s += fmt.Sprintf(" generation %d", e.Generation)
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func opErr(op string, leaf treemath.LeafIndex, typ RatchetType, err error) error {
	return &Error{Op: op, Leaf: leaf, Type: typ, Err: err}
}

func genErr(op string, leaf treemath.LeafIndex, typ RatchetType, gen uint32, err error) error {
	return &Error{Op: op, Leaf: leaf, Type: typ, Generation: gen, HasGen: true, Err: err}
}
