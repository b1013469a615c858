package mls

import (
	"fmt"

	"github.com/mlskit/mls/internal/message"
)

// WireFormat tells which of the five kinds of MLSMessage a message is
// (RFC 9420, Section 6).
type WireFormat uint16

const (
	WireFormatPublicMessage  = WireFormat(message.WireFormatPublicMessage)
	WireFormatPrivateMessage = WireFormat(message.WireFormatPrivateMessage)
	WireFormatWelcome        = WireFormat(message.WireFormatWelcome)
	WireFormatGroupInfo      = WireFormat(message.WireFormatGroupInfo)
	WireFormatKeyPackage     = WireFormat(message.WireFormatKeyPackage)
)

func (w WireFormat) String() string {
	switch w {
	case WireFormatPublicMessage:
		return "PublicMessage"
	case WireFormatPrivateMessage:
		return "PrivateMessage"
	case WireFormatWelcome:
		return "Welcome"
	case WireFormatGroupInfo:
		return "GroupInfo"
	case WireFormatKeyPackage:
		return "KeyPackage"
	}
	return fmt.Sprintf("WireFormat(%d)", uint16(w))
}

// Message is an MLSMessage (RFC 9420, Section 6): what goes over the wire
// between clients and the delivery service. Parse received bytes with
// ParseMessage; send with MarshalBinary.
type Message struct {
	m message.MLSMessage
	// raw is the encoding of m when this client built it already (a
	// signed GroupInfo, which carries the ratchet tree when the group uses
	// the ratchet_tree extension); nil otherwise. Neither is modified.
	raw []byte
	// content is, for a PublicMessage that ParseMessage read, the
	// encoding of its FramedContent as received; nil otherwise. The
	// membership tag, the signature and the transcript hash are checked
	// around these bytes instead of encoding the content again, so m's
	// content is never modified once content is set.
	content []byte
}

// ParseMessage decodes an MLSMessage. It checks structure only; Process,
// StageWelcome or ParseKeyPackage do the rest. Bytes that do not decode
// give an error matching ErrMalformed (the *wire.Error with the failing
// structure, field and offset stays in the chain for errors.As).
func ParseMessage(b []byte) (*Message, error) {
	m, content, err := message.UnmarshalMLSMessageContent(b)
	if err != nil {
		return nil, malformed(err)
	}
	return &Message{m: *m, content: content}, nil
}

// MarshalBinary encodes the message.
func (m *Message) MarshalBinary() ([]byte, error) {
	if m.raw != nil {
		return clone(m.raw), nil
	}
	return message.Marshal(&m.m)
}

// encoded is MarshalBinary without the copy of a cached encoding, for
// callers that do not modify or keep the bytes.
func (m *Message) encoded() ([]byte, error) {
	if m.raw != nil {
		return m.raw, nil
	}
	return message.Marshal(&m.m)
}

// encodedBody returns the encoding of the message's body (the MLSMessage
// without version and wire_format) from its cached encoding; only for
// messages built with one.
func (m *Message) encodedBody() []byte { return m.raw[4:] }

// WireFormat returns the message's wire format.
func (m *Message) WireFormat() WireFormat { return WireFormat(m.m.WireFormat) }

// GroupID returns the group a PublicMessage, PrivateMessage or GroupInfo
// belongs to, or nil for other messages.
func (m *Message) GroupID() []byte {
	switch {
	case m.m.PublicMessage != nil:
		return clone(m.m.PublicMessage.Content.GroupID)
	case m.m.PrivateMessage != nil:
		return clone(m.m.PrivateMessage.GroupID)
	case m.m.GroupInfo != nil:
		return clone(m.m.GroupInfo.GroupContext.GroupID)
	}
	return nil
}

// Epoch returns the epoch of a PublicMessage, PrivateMessage or GroupInfo.
func (m *Message) Epoch() uint64 {
	switch {
	case m.m.PublicMessage != nil:
		return m.m.PublicMessage.Content.Epoch
	case m.m.PrivateMessage != nil:
		return m.m.PrivateMessage.Epoch
	case m.m.GroupInfo != nil:
		return m.m.GroupInfo.GroupContext.Epoch
	}
	return 0
}

// KeyPackage returns the key package a KeyPackage message carries, with its
// signatures verified.
func (m *Message) KeyPackage() (*KeyPackage, error) {
	if m.m.KeyPackage == nil {
		return nil, fmt.Errorf("%w: message is a %v, not a KeyPackage", ErrInvalidArgument, m.WireFormat())
	}
	b, err := message.Marshal(m.m.KeyPackage)
	if err != nil {
		return nil, malformed(err)
	}
	return ParseKeyPackage(b)
}

func wrapPublic(pm *message.PublicMessage) *Message {
	return &Message{m: message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatPublicMessage, PublicMessage: pm}}
}

func wrapPrivate(pm *message.PrivateMessage) *Message {
	return &Message{m: message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatPrivateMessage, PrivateMessage: pm}}
}

func wrapWelcome(w *message.Welcome) *Message {
	return &Message{m: message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatWelcome, Welcome: w}}
}

func wrapGroupInfo(gi *message.GroupInfo) *Message {
	return &Message{m: message.MLSMessage{Version: message.MLS10, WireFormat: message.WireFormatGroupInfo, GroupInfo: gi}}
}

// wrapGroupInfoRaw wraps gi with raw, the encoding of the MLSMessage
// carrying it (GroupInfo.SignMessage).
func wrapGroupInfoRaw(gi *message.GroupInfo, raw []byte) *Message {
	m := wrapGroupInfo(gi)
	m.raw = raw
	return m
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
