package message

import (
	"errors"
	"fmt"

	"github.com/mlskit/mls/internal/wire"
)

// Decoding errors specific to MLS structures. Each is reported inside a
// *wire.Error that names the structure, field and byte offset, and each
// wraps wire.ErrInvalidValue, so errors.Is works with either.
var (
	// ErrUnknownValue: an enumerated field holds a value this
	// implementation cannot parse past because the RFC gives it no
	// extension point (wire format, content type, sender type, node type,
	// leaf node source, PSK type, proposal-or-ref type). Unknown
	// extension, proposal and credential types are not errors: their
	// bodies are kept as bytes (RFC 9420, Section 13).
	ErrUnknownValue = fmt.Errorf("%w: unknown enumeration value", wire.ErrInvalidValue)

	// ErrDuplicateExtension: a list of extensions holds two of the same
	// type (RFC 9420, Section 13.4: "Any field containing a list of
	// extensions MUST NOT have more than one extension of any given
	// type").
	ErrDuplicateExtension = fmt.Errorf("%w: duplicate extension type", wire.ErrInvalidValue)

	// ErrUnsupportedVersion: an MLSMessage whose version is not mls10
	// (RFC 9420, Section 6).
	ErrUnsupportedVersion = fmt.Errorf("%w: unsupported protocol version", wire.ErrInvalidValue)
)

// ErrInconsistent is returned by the Marshal methods for a value that
// cannot be encoded faithfully: a union whose selector does not match the
// field that is set (a Proposal of type add without Add, a Node with both or
// neither of Leaf and Parent, a commit without a confirmation tag, ...), or
// a selector with no encoding (an unknown sender type).
var ErrInconsistent = errors.New("mls: inconsistent structure")

// inconsistent builds an ErrInconsistent naming the structure and field.
func inconsistent(strct, field, format string, args ...any) error {
	return fmt.Errorf("%w: %s.%s: %s", ErrInconsistent, strct, field, fmt.Sprintf(format, args...))
}

// failUnknown records ErrUnknownValue for field.
func failUnknown(d *wire.Decoder, field string, v uint64) {
	d.Fail(field, fmt.Errorf("%w %d", ErrUnknownValue, v))
}
