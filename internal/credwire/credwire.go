// Package credwire converts between credential.Credential and its wire
// form, message.Credential (RFC 9420, Section 5.3), for the mls package,
// so that package credential exports no internal type. Package credential
// sets the two functions in its init; every importer of credwire that
// converts also imports credential, so they are set before first use.
package credwire

import "github.com/mlskit/mls/internal/message"

var (
	// FromWire wraps a wire credential; the result is a
	// credential.Credential.
	FromWire func(message.Credential) any
	// ToWire returns the wire form of a credential.Credential.
	ToWire func(any) message.Credential
)
