package message

import (
	"crypto"
	"encoding/binary"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// This file holds the structures that bring a new member into a group:
// Welcome, its encrypted and decrypted group secrets, and GroupInfo.

// Encode appends the EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1).
func (s *EncryptedGroupSecrets) Encode(e *wire.Encoder) {
	e.Opaque(s.NewMember)
	s.EncryptedGroupSecrets.Encode(e)
}

// Decode reads an EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1).
func (s *EncryptedGroupSecrets) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("EncryptedGroupSecrets"))
	*s = EncryptedGroupSecrets{}
	s.NewMember = d.Opaque("new_member")
	s.EncryptedGroupSecrets.Decode(d)
}

// Encode appends the Welcome (RFC 9420, Section 12.4.3.1).
func (w *Welcome) Encode(e *wire.Encoder) {
	e.U16(uint16(w.CipherSuite))
	e.Vector(func(e *wire.Encoder) {
		for i := range w.Secrets {
			w.Secrets[i].Encode(e)
		}
	})
	e.Opaque(w.EncryptedGroupInfo)
}

// Decode reads a Welcome (RFC 9420, Section 12.4.3.1).
func (w *Welcome) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Welcome"))
	*w = Welcome{Secrets: []EncryptedGroupSecrets{}}
	w.CipherSuite = ciphersuite.ID(d.U16("cipher_suite"))
	d.Vector("secrets", func(d *wire.Decoder) {
		var s EncryptedGroupSecrets
		s.Decode(d)
		w.Secrets = append(w.Secrets, s)
	})
	w.EncryptedGroupInfo = d.Opaque("encrypted_group_info")
}

// Find returns the entry of w.Secrets addressed to the key package with
// reference ref (RFC 9420, Section 12.4.3.1), or nil.
func (w *Welcome) Find(ref []byte) *EncryptedGroupSecrets {
	for i := range w.Secrets {
		if string(w.Secrets[i].NewMember) == string(ref) {
			return &w.Secrets[i]
		}
	}
	return nil
}

// Marshal returns the encoding of the Welcome.
func (w *Welcome) Marshal() ([]byte, error) { return Marshal(w) }

// Encode appends the PathSecret (RFC 9420, Section 12.4.3.1).
func (p *PathSecret) Encode(e *wire.Encoder) { e.Opaque(p.PathSecret) }

// Decode reads a PathSecret (RFC 9420, Section 12.4.3.1).
func (p *PathSecret) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("PathSecret"))
	p.PathSecret = d.Opaque("path_secret")
}

// Encode appends the GroupSecrets (RFC 9420, Section 12.4.3.1); a nil
// PathSecret is absent, a non-nil one (even empty) present.
func (g *GroupSecrets) Encode(e *wire.Encoder) {
	e.Opaque(g.JoinerSecret)
	e.Optional(g.PathSecret != nil)
	if g.PathSecret != nil {
		e.Opaque(g.PathSecret)
	}
	e.Vector(func(e *wire.Encoder) {
		for i := range g.PSKs {
			g.PSKs[i].Encode(e)
		}
	})
}

// Decode reads a GroupSecrets (RFC 9420, Section 12.4.3.1).
func (g *GroupSecrets) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("GroupSecrets"))
	*g = GroupSecrets{PSKs: []PreSharedKeyID{}}
	g.JoinerSecret = d.Opaque("joiner_secret")
	if d.Optional("path_secret") {
		var p PathSecret
		p.Decode(d)
		g.PathSecret = p.PathSecret
	}
	d.Vector("psks", func(d *wire.Decoder) {
		var p PreSharedKeyID
		p.Decode(d)
		g.PSKs = append(g.PSKs, p)
	})
}

func (g *GroupSecrets) check() error {
	for i := range g.PSKs {
		if err := g.PSKs[i].check(); err != nil {
			return fmt.Errorf("psks[%d]: %w", i, err)
		}
	}
	return nil
}

// Marshal returns the encoding of the GroupSecrets, after checking that it
// can be encoded faithfully (ErrInconsistent otherwise).
func (g *GroupSecrets) Marshal() ([]byte, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	return Marshal(g)
}

// encodeTBS appends GroupInfoTBS: every GroupInfo field but the signature
// (RFC 9420, Section 12.4.3).
func (g *GroupInfo) encodeTBS(e *wire.Encoder) {
	g.GroupContext.Encode(e)
	encodeExtensions(e, g.Extensions)
	e.Opaque(g.ConfirmationTag)
	e.U32(g.Signer)
}

// Encode appends the GroupInfo (RFC 9420, Section 12.4.3).
func (g *GroupInfo) Encode(e *wire.Encoder) {
	g.encodeTBS(e)
	e.Opaque(g.Signature)
}

// Decode reads a GroupInfo (RFC 9420, Section 12.4.3).
func (g *GroupInfo) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("GroupInfo"))
	*g = GroupInfo{}
	g.GroupContext.Decode(d)
	g.Extensions = decodeExtensions(d, "extensions")
	g.ConfirmationTag = d.Opaque("confirmation_tag")
	g.Signer = d.U32("signer")
	g.Signature = d.Opaque("signature")
}

func (g *GroupInfo) check() error {
	if err := CheckExtensions(g.GroupContext.Extensions); err != nil {
		return fmt.Errorf("group_context: %w", err)
	}
	return CheckExtensions(g.Extensions)
}

// TBS returns the encoded GroupInfoTBS (RFC 9420, Section 12.4.3).
func (g *GroupInfo) TBS() ([]byte, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	e := wire.NewEncoder(make([]byte, 0, g.sizeHint()))
	g.encodeTBS(e)
	return e.Bytes()
}

// Sign sets g.Signature to SignWithLabel(signer, "GroupInfoTBS",
// GroupInfoTBS) (RFC 9420, Section 12.4.3). signer is the key of the member
// at leaf g.Signer.
func (g *GroupInfo) Sign(s *ciphersuite.Suite, signer crypto.Signer) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(signer, labelGroupInfoTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing GroupInfo: %w", err)
	}
	g.Signature = sig
	return nil
}

// SignMessage signs the GroupInfo as Sign does and returns the encoding
// of the MLSMessage that carries it (RFC 9420, Sections 6 and 12.4.3):
// GroupInfoTBS is encoded once, into a buffer sized for the whole
// message, and the signature appended to it, so that a GroupInfo carrying
// the ratchet tree is neither copied to be signed nor encoded again to be
// sent. The bytes after the first four (version and wire_format) are the
// GroupInfo's encoding.
func (g *GroupInfo) SignMessage(s *ciphersuite.Suite, signer crypto.Signer) ([]byte, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	// GroupInfoTBS goes after room for the SignContent framing (RFC 9420,
	// Section 5.1.2), which is written in front of it once its length is
	// known; once signed, the MLSMessage header takes the last four bytes
	// of that room.
	room := ciphersuite.LabeledPrefixRoom(labelGroupInfoTBS)
	e := wire.NewEncoder(make([]byte, room, room+g.sizeHint()+8+5000))
	g.encodeTBS(e)
	b, err := e.Bytes()
	if err != nil {
		return nil, err
	}
	sc, err := ciphersuite.PutLabeledPrefix(b, room, labelGroupInfoTBS)
	if err != nil {
		return nil, err
	}
	sig, err := s.SignWithLabelFramed(signer, labelGroupInfoTBS, sc)
	if err != nil {
		return nil, fmt.Errorf("mls: signing GroupInfo: %w", err)
	}
	g.Signature = sig
	binary.BigEndian.PutUint16(b[room-4:], uint16(MLS10))
	binary.BigEndian.PutUint16(b[room-2:], uint16(WireFormatGroupInfo))
	e.Opaque(sig)
	if b, err = e.Bytes(); err != nil {
		return nil, err
	}
	return b[room-4:], nil
}

// sizeHint is about the encoded size of the GroupInfo, for sizing buffers.
func (g *GroupInfo) sizeHint() int {
	n := 128 + len(g.GroupContext.GroupID) + len(g.GroupContext.TreeHash) + len(g.GroupContext.ConfirmedTranscriptHash) + len(g.ConfirmationTag) + len(g.Signature)
	for _, x := range g.GroupContext.Extensions {
		n += 8 + len(x.Data)
	}
	for _, x := range g.Extensions {
		n += 8 + len(x.Data)
	}
	return n
}

// VerifySignature checks g.Signature over GroupInfoTBS with pub, the
// signature key of the leaf g.Signer (RFC 9420, Section 12.4.3.1).
func (g *GroupInfo) VerifySignature(s *ciphersuite.Suite, pub []byte) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(pub, labelGroupInfoTBS, tbs, g.Signature); err != nil {
		return fmt.Errorf("mls: GroupInfo signature (signer %d): %w", g.Signer, err)
	}
	return nil
}

// Marshal returns the encoding of the GroupInfo, after checking that it
// can be encoded faithfully (ErrInconsistent otherwise).
func (g *GroupInfo) Marshal() ([]byte, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	return Marshal(g)
}
