// Package message holds the wire structures of RFC 9420 (key packages, leaf
// and parent nodes, proposals, commits, framing, Welcome, GroupInfo,
// extensions, credentials) and their encodings in the TLS presentation
// language (Section 2.1), built on internal/wire.
//
// Every structure T has Encode(*wire.Encoder) and Decode(*wire.Decoder)
// methods; Marshal and Unmarshal run them over a whole byte string, and
// UnmarshalMLSMessage, UnmarshalKeyPackage, UnmarshalWelcome,
// UnmarshalGroupInfo, UnmarshalGroupSecrets and UnmarshalRatchetTree decode
// the structures that arrive on their own. FramedContentAuthData depends on
// the content type and has EncodeFor / DecodeFor instead.
//
// Decoding rejects trailing bytes and what the RFC forbids: an optional
// presence octet other than 0 or 1, a value of an enumeration with no
// extension point (ErrUnknownValue: wire format, content type, sender type,
// node type, leaf node source, PSK type, proposal-or-ref type), a version
// other than mls10 in an MLSMessage (ErrUnsupportedVersion) and a list of
// extensions holding one type twice (ErrDuplicateExtension, Section 13.4).
// Values of unknown types (extensions, credentials, proposals, GREASE values
// of Section 13.5 among them) are kept byte for byte. All decoding errors
// are *wire.Error values naming structure, field and offset. Decoded byte
// fields never alias the input, and a decoded empty vector is a non-nil
// empty slice.
//
// The Encode methods write the union arm their selector names; the Marshal
// methods of the larger structures first check that selector and fields
// agree and return ErrInconsistent otherwise.
//
// This package checks structure only, plus the signatures whose to-be-signed
// encodings it defines (LeafNode, KeyPackage, GroupInfo). Semantic
// validation (capabilities, tree shape, proposal lists) is done by the
// packages that own the state.
package message
