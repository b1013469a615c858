package message

import (
	"fmt"

	"github.com/mlskit/mls/internal/wire"
)

// This file holds the typed views of the extensions RFC 9420 defines
// (Section 17.3) and helpers to find, parse and build them in a list.

// ExtensionBody is the decoded extension_data of an extension type this
// package knows: *ApplicationID, *RatchetTree, *RequiredCapabilities,
// *ExternalPub and *ExternalSenders.
type ExtensionBody interface {
	Encodable
	Decodable
	ExtensionType() ExtensionType
}

var (
	_ ExtensionBody = (*ApplicationID)(nil)
	_ ExtensionBody = (*RatchetTree)(nil)
	_ ExtensionBody = (*RequiredCapabilities)(nil)
	_ ExtensionBody = (*ExternalPub)(nil)
	_ ExtensionBody = (*ExternalSenders)(nil)
)

// FindExtension returns the first extension of type t in exts.
func FindExtension(exts []Extension, t ExtensionType) (*Extension, bool) {
	for i := range exts {
		if exts[i].Type == t {
			return &exts[i], true
		}
	}
	return nil, false
}

// ParseExtension looks for the extension of body's type in exts and, if
// present, decodes all of its data into body. It reports whether the
// extension was present. A list with a repeated type fails with
// ErrDuplicateExtension (RFC 9420, Section 13.4); data that does not
// decode fails with the *wire.Error, offsets relative to extension_data.
func ParseExtension(exts []Extension, body ExtensionBody) (bool, error) {
	if err := CheckExtensions(exts); err != nil {
		return false, err
	}
	x, ok := FindExtension(exts, body.ExtensionType())
	if !ok {
		return false, nil
	}
	if err := Unmarshal(x.Data, body); err != nil {
		return true, fmt.Errorf("mls: extension 0x%04x: %w", uint16(x.Type), err)
	}
	return true, nil
}

// NewExtension encodes body as an Extension of its type.
func NewExtension(body ExtensionBody) (Extension, error) {
	b, err := Marshal(body)
	if err != nil {
		return Extension{}, err
	}
	return Extension{Type: body.ExtensionType(), Data: b}, nil
}

// SetExtension returns exts with ext in place of the extension of the same
// type, or appended if there is none. exts is modified in place when the
// type is present.
func SetExtension(exts []Extension, ext Extension) []Extension {
	if x, ok := FindExtension(exts, ext.Type); ok {
		*x = ext
		return exts
	}
	return append(exts, ext)
}

// ExtensionType returns ExtensionApplicationID.
func (*ApplicationID) ExtensionType() ExtensionType { return ExtensionApplicationID }

// Encode appends the application_id extension data (RFC 9420, Section
// 5.3.3).
func (a *ApplicationID) Encode(e *wire.Encoder) { e.Opaque(a.ApplicationID) }

// Decode reads the application_id extension data (RFC 9420, Section
// 5.3.3).
func (a *ApplicationID) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ApplicationId"))
	a.ApplicationID = d.Opaque("application_id")
}

// ExtensionType returns ExtensionRatchetTree.
func (RatchetTree) ExtensionType() ExtensionType { return ExtensionRatchetTree }

// ExtensionType returns ExtensionRequiredCapabilities.
func (*RequiredCapabilities) ExtensionType() ExtensionType { return ExtensionRequiredCapabilities }

// Encode appends the required_capabilities extension data (RFC 9420,
// Section 11.1).
func (r *RequiredCapabilities) Encode(e *wire.Encoder) {
	encodeU16s(e, r.Extensions)
	encodeU16s(e, r.Proposals)
	encodeU16s(e, r.Credentials)
}

// Decode reads the required_capabilities extension data (RFC 9420,
// Section 11.1).
func (r *RequiredCapabilities) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("RequiredCapabilities"))
	*r = RequiredCapabilities{}
	r.Extensions = decodeU16s[ExtensionType](d, "extension_types")
	r.Proposals = decodeU16s[ProposalType](d, "proposal_types")
	r.Credentials = decodeU16s[CredentialType](d, "credential_types")
}

// ExtensionType returns ExtensionExternalPub.
func (*ExternalPub) ExtensionType() ExtensionType { return ExtensionExternalPub }

// Encode appends the external_pub extension data (RFC 9420, Section
// 12.4.3.2).
func (x *ExternalPub) Encode(e *wire.Encoder) { e.Opaque(x.ExternalPub) }

// Decode reads the external_pub extension data (RFC 9420, Section
// 12.4.3.2).
func (x *ExternalPub) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ExternalPub"))
	x.ExternalPub = d.Opaque("external_pub")
}

// Encode appends an ExternalSender (RFC 9420, Section 12.1.8.1).
func (s *ExternalSender) Encode(e *wire.Encoder) {
	e.Opaque(s.SignatureKey)
	s.Credential.Encode(e)
}

// Decode reads an ExternalSender (RFC 9420, Section 12.1.8.1).
func (s *ExternalSender) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ExternalSender"))
	*s = ExternalSender{}
	s.SignatureKey = d.Opaque("signature_key")
	s.Credential.Decode(d)
}

// ExtensionType returns ExtensionExternalSenders.
func (ExternalSenders) ExtensionType() ExtensionType { return ExtensionExternalSenders }

// Encode appends the external_senders extension data (RFC 9420, Section
// 12.1.8.1).
func (s ExternalSenders) Encode(e *wire.Encoder) {
	e.Vector(func(e *wire.Encoder) {
		for i := range s {
			s[i].Encode(e)
		}
	})
}

// Decode reads the external_senders extension data (RFC 9420, Section
// 12.1.8.1).
func (s *ExternalSenders) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ExternalSenders"))
	out := ExternalSenders{}
	d.Vector("external_senders", func(d *wire.Decoder) {
		var x ExternalSender
		x.Decode(d)
		out = append(out, x)
	})
	*s = out
}
