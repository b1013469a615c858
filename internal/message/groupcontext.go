package message

import (
	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// Encode appends the GroupContext (RFC 9420, Section 8.1).
func (g *GroupContext) Encode(e *wire.Encoder) {
	e.U16(uint16(g.Version))
	e.U16(uint16(g.CipherSuite))
	e.Opaque(g.GroupID)
	e.U64(g.Epoch)
	e.Opaque(g.TreeHash)
	e.Opaque(g.ConfirmedTranscriptHash)
	encodeExtensions(e, g.Extensions)
}

// Decode reads a GroupContext (RFC 9420, Section 8.1).
func (g *GroupContext) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("GroupContext"))
	*g = GroupContext{}
	g.Version = ProtocolVersion(d.U16("version"))
	g.CipherSuite = ciphersuite.ID(d.U16("cipher_suite"))
	g.GroupID = d.Opaque("group_id")
	g.Epoch = d.U64("epoch")
	g.TreeHash = d.Opaque("tree_hash")
	g.ConfirmedTranscriptHash = d.Opaque("confirmed_transcript_hash")
	g.Extensions = decodeExtensions(d, "extensions")
}

// Marshal returns the encoding of the GroupContext, as used in key
// derivation (RFC 9420, Section 8) and in FramedContentTBS (Section 6.1).
// It fails with ErrDuplicateExtension for a list with a repeated type.
func (g *GroupContext) Marshal() ([]byte, error) {
	if err := CheckExtensions(g.Extensions); err != nil {
		return nil, err
	}
	return Marshal(g)
}
