package message

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/mlskit/mls/internal/wire"
)

// Encode appends the MLSMessage (RFC 9420, Section 6). The body is taken
// from the field matching WireFormat (a nil field encodes as its zero
// value; Marshal rejects that).
func (m *MLSMessage) Encode(e *wire.Encoder) {
	e.U16(uint16(m.Version))
	e.U16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WireFormatPublicMessage:
		orZero(m.PublicMessage).Encode(e)
	case WireFormatPrivateMessage:
		orZero(m.PrivateMessage).Encode(e)
	case WireFormatWelcome:
		orZero(m.Welcome).Encode(e)
	case WireFormatGroupInfo:
		orZero(m.GroupInfo).Encode(e)
	case WireFormatKeyPackage:
		orZero(m.KeyPackage).Encode(e)
	}
}

// Decode reads an MLSMessage (RFC 9420, Section 6). A version other than
// mls10 is ErrUnsupportedVersion; a wire format other than the five of
// Section 17.2 is ErrUnknownValue (its body cannot be parsed).
func (m *MLSMessage) Decode(d *wire.Decoder) { m.decode(d) }

// UnmarshalMLSMessageContent is UnmarshalMLSMessage that also returns, for
// a PublicMessage, the bytes that encode its FramedContent as read (nil
// for other wire formats). The membership tag, the signature and the
// confirmed transcript hash of a PublicMessage all cover these bytes
// (RFC 9420, Sections 6.1, 6.2 and 8.2), so a receiver can build their
// inputs around them instead of encoding the content again: for a commit
// with an UpdatePath in a fresh tree they are O(N) bytes. They encode the
// returned message's Content until the caller changes it.
//
// A PublicMessage is decoded from one copy of b, which the content bytes
// and the HPKE ciphertexts of an UpdatePath share (wire.NewOwnedDecoder);
// the message still shares no memory with b.
func UnmarshalMLSMessageContent(b []byte) (*MLSMessage, []byte, error) {
	if len(b) < 4 || WireFormat(binary.BigEndian.Uint16(b[2:])) != WireFormatPublicMessage {
		m, err := UnmarshalMLSMessage(b)
		return m, nil, err
	}
	m := new(MLSMessage)
	d := wire.NewOwnedDecoder(bytes.Clone(b))
	content := m.decode(d)
	if err := d.Finish(); err != nil {
		return nil, nil, err
	}
	return m, content, nil
}

// decode is Decode that also returns, for a PublicMessage, the bytes of
// d's input that encode its FramedContent (not a copy).
func (m *MLSMessage) decode(d *wire.Decoder) (content []byte) {
	defer d.Struct(d.Struct("MLSMessage"))
	*m = MLSMessage{}
	m.Version = ProtocolVersion(d.U16("version"))
	if d.Err() == nil && m.Version != MLS10 {
		d.Fail("version", fmt.Errorf("%w %d", ErrUnsupportedVersion, m.Version))
		return
	}
	m.WireFormat = WireFormat(d.U16("wire_format"))
	if d.Err() != nil {
		return
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		content = m.PublicMessage.decode(d)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.Decode(d)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.Decode(d)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.Decode(d)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.Decode(d)
	default:
		failUnknown(d, "wire_format", uint64(m.WireFormat))
	}
	return content
}

func (m *MLSMessage) check() error {
	if m.Version != MLS10 {
		return inconsistent("MLSMessage", "version", "version %d, want mls10", m.Version)
	}
	set := 0
	for _, ok := range []bool{m.PublicMessage != nil, m.PrivateMessage != nil, m.Welcome != nil,
		m.GroupInfo != nil, m.KeyPackage != nil} {
		if ok {
			set++
		}
	}
	var err error
	switch {
	case set != 1:
		err = inconsistent("MLSMessage", "wire_format", "exactly one body must be set, found %d", set)
	case m.WireFormat == WireFormatPublicMessage && m.PublicMessage != nil:
		err = m.PublicMessage.check()
	case m.WireFormat == WireFormatPrivateMessage && m.PrivateMessage != nil:
		err = m.PrivateMessage.check()
	case m.WireFormat == WireFormatWelcome && m.Welcome != nil:
	case m.WireFormat == WireFormatGroupInfo && m.GroupInfo != nil:
		err = m.GroupInfo.check()
	case m.WireFormat == WireFormatKeyPackage && m.KeyPackage != nil:
		err = m.KeyPackage.check()
	default:
		err = inconsistent("MLSMessage", "wire_format", "wire format %d does not match the body set", m.WireFormat)
	}
	return err
}

// Marshal returns the encoding of the MLSMessage, after checking that it
// can be encoded faithfully (ErrInconsistent otherwise).
func (m *MLSMessage) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return Marshal(m)
}

// NewPublicMessage, NewPrivateMessage, NewWelcomeMessage,
// NewGroupInfoMessage and NewKeyPackageMessage wrap a body in an mls10
// MLSMessage (RFC 9420, Section 6).

// NewPublicMessage wraps m in an MLSMessage.
func NewPublicMessage(m *PublicMessage) *MLSMessage {
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPublicMessage, PublicMessage: m}
}

// NewPrivateMessage wraps m in an MLSMessage.
func NewPrivateMessage(m *PrivateMessage) *MLSMessage {
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: m}
}

// NewWelcomeMessage wraps w in an MLSMessage.
func NewWelcomeMessage(w *Welcome) *MLSMessage {
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatWelcome, Welcome: w}
}

// NewGroupInfoMessage wraps g in an MLSMessage.
func NewGroupInfoMessage(g *GroupInfo) *MLSMessage {
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatGroupInfo, GroupInfo: g}
}

// NewKeyPackageMessage wraps kp in an MLSMessage.
func NewKeyPackageMessage(kp *KeyPackage) *MLSMessage {
	return &MLSMessage{Version: MLS10, WireFormat: WireFormatKeyPackage, KeyPackage: kp}
}

// Marshal methods for the remaining top-level structures.

// Marshal returns the encoding of the PublicMessage, after checking that it
// can be encoded faithfully (ErrInconsistent otherwise).
func (m *PublicMessage) Marshal() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	return Marshal(m)
}

// Marshal returns the encoding of the FramedContent, after checking that it
// can be encoded faithfully (ErrInconsistent otherwise).
func (c *FramedContent) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return Marshal(c)
}

// Marshal returns the encoding of the Proposal, after checking that it can
// be encoded faithfully (ErrInconsistent otherwise).
func (p *Proposal) Marshal() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	return Marshal(p)
}

// Marshal returns the encoding of the Commit, after checking that it can be
// encoded faithfully (ErrInconsistent otherwise).
func (c *Commit) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return Marshal(c)
}

// Marshal returns the encoding of the LeafNode, after checking that it can
// be encoded faithfully (ErrInconsistent otherwise).
func (ln *LeafNode) Marshal() ([]byte, error) {
	if err := ln.check(); err != nil {
		return nil, err
	}
	return Marshal(ln)
}

// Marshal returns the encoding of the ratchet_tree vector, after checking
// that every node can be encoded faithfully (ErrInconsistent otherwise).
func (t RatchetTree) Marshal() ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return Marshal(t)
}
