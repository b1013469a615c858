package tree

import (
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/treemath"
)

// Rules. Every error this package returns for bad input is an *Error whose
// Rule is one of these sentinels, so callers branch with errors.Is (for
// example errors.Is(err, tree.ErrParentHash)) and read the position with
// errors.As.
var (
	// ErrMalformedTree: a ratchet tree whose shape breaks RFC 9420,
	// Section 12.4.3.3 (empty, trailing blank node, a leaf in a parent
	// position or the other way round, too many nodes).
	ErrMalformedTree = errors.New("malformed ratchet tree")
	// ErrTooManyLeaves: a ratchet tree needs more leaves than the limit
	// the caller set (RFC 9420, Section 12.4.3.3 puts no bound on the
	// tree; the limit bounds what a received tree may cost).
	ErrTooManyLeaves = errors.New("ratchet tree exceeds the leaf limit")
	// ErrTreeHash: the root tree hash differs from the expected one
	// (RFC 9420, Section 12.4.3.1).
	ErrTreeHash = errors.New("tree hash mismatch")
	// ErrParentHash: a non-blank parent node is not parent-hash valid, or
	// an UpdatePath's leaf carries the wrong parent_hash (RFC 9420,
	// Section 7.9.2).
	ErrParentHash = errors.New("invalid parent hash")
	// ErrUnmergedLeaves: an unmerged_leaves list is unsorted, names a leaf
	// that is blank or not a descendant, or is missing from a non-blank
	// node in between (RFC 9420, Sections 7.1 and 12.4.3.1).
	ErrUnmergedLeaves = errors.New("inconsistent unmerged leaves")
	// ErrDuplicateEncryptionKey: an HPKE public key appears in two nodes
	// (RFC 9420, Sections 7.3 and 12.4.3.1).
	ErrDuplicateEncryptionKey = errors.New("duplicate encryption key")
	// ErrDuplicateSignatureKey: a signature key appears in two leaves
	// (RFC 9420, Section 7.3).
	ErrDuplicateSignatureKey = errors.New("duplicate signature key")
	// ErrSameEncryptionKey: an Update or a commit's new leaf keeps the
	// encryption key of the leaf it replaces (RFC 9420, Sections 7.3 and
	// 12.4.2).
	ErrSameEncryptionKey = errors.New("encryption key not changed")
	// ErrLeafSignature: a LeafNode signature does not verify (RFC 9420,
	// Section 7.3).
	ErrLeafSignature = errors.New("invalid leaf node signature")
	// ErrLeafSource: leaf_node_source does not fit where the LeafNode
	// appears (RFC 9420, Section 7.3).
	ErrLeafSource = errors.New("wrong leaf node source")
	// ErrLifetime: the validation time is outside the LeafNode's lifetime,
	// or the lifetime is longer than allowed (RFC 9420, Section 7.3).
	ErrLifetime = errors.New("leaf node lifetime not valid")
	// ErrCapabilities: the LeafNode's capabilities lack the group's
	// protocol version, or something the group's
	// required_capabilities demand (RFC 9420, Sections 7.3 and 11.1).
	ErrCapabilities = errors.New("leaf node capabilities insufficient")
	// ErrCredentialUnsupported: the credential type is not supported by
	// every member, or the LeafNode does not support a credential type in
	// use (RFC 9420, Sections 7.2 and 7.3).
	ErrCredentialUnsupported = errors.New("credential type not supported")
	// ErrExtensionUnsupported: a LeafNode extension is not listed in its
	// own capabilities (RFC 9420, Sections 7.2 and 7.3).
	ErrExtensionUnsupported = errors.New("leaf node extension not in capabilities")
	// ErrCredential: the application's credential validator rejected the
	// credential (RFC 9420, Section 5.3.1).
	ErrCredential = errors.New("credential rejected")
	// ErrBlankLeaf: an operation names a leaf that is blank or outside the
	// tree (RFC 9420, Sections 12.1.2 and 12.1.3).
	ErrBlankLeaf = errors.New("leaf is blank or out of range")
	// ErrUpdatePath: an UpdatePath does not fit the tree: wrong number of
	// nodes or ciphertexts, or a public key already in the tree (RFC 9420,
	// Sections 7.6 and 12.4.2).
	ErrUpdatePath = errors.New("malformed update path")
	// ErrPathSecret: no path secret could be decrypted, or a derived public
	// key differs from the one in the tree (RFC 9420, Sections 7.5 and
	// 12.4.3.1).
	ErrPathSecret = errors.New("path secret does not fit the tree")
	// ErrPrivateState: a private key does not belong to the node it is
	// stored for (RFC 9420, Section 4.2).
	ErrPrivateState = errors.New("private key does not match the tree")
	// ErrStaleDiff: a Diff is merged into a tree that changed after the
	// Diff was made.
	ErrStaleDiff = errors.New("diff is stale: the tree changed since it was made")
)

// noNode marks an *Error that is not about a particular node.
const noNode = ^treemath.NodeIndex(0)

// Error is a ratchet tree validation failure: the rule broken, the RFC
// section, the node concerned (if any) and what was wrong.
type Error struct {
	Rule    error  // one of the Err* sentinels of this package
	Section string // RFC 9420 section, e.g. "7.9.2"
	Node    treemath.NodeIndex
	Detail  string
	Err     error // underlying cause, if any
}

// HasNode reports whether the error concerns a particular node.
func (e *Error) HasNode() bool { return e.Node != noNode }

func (e *Error) Error() string {
	s := "mls: ratchet tree: "
	if e.Node != noNode {
		if e.Node.IsLeaf() {
			s += fmt.Sprintf("leaf %d: ", e.Node.Leaf())
		} else {
			s += fmt.Sprintf("node %d: ", e.Node)
		}
	}
	s += e.Rule.Error()
	if e.Section != "" {
		s += " (RFC 9420, Section " + e.Section + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the rule and the cause, so errors.Is matches both.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Rule, e.Err}
	}
	return []error{e.Rule}
}

func fail(rule error, section string, x treemath.NodeIndex, format string, args ...any) *Error {
	return &Error{Rule: rule, Section: section, Node: x, Detail: fmt.Sprintf(format, args...)}
}

func failErr(rule error, section string, x treemath.NodeIndex, err error, format string, args ...any) *Error {
	return &Error{Rule: rule, Section: section, Node: x, Detail: fmt.Sprintf(format, args...), Err: err}
}
