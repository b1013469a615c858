package message

import (
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// This file holds the small building blocks shared by the larger
// structures: extensions, credentials, capabilities, lifetimes and HPKE
// ciphertexts.

// Encode appends the Extension (RFC 9420, Section 7.2).
func (x *Extension) Encode(e *wire.Encoder) {
	e.U16(uint16(x.Type))
	e.Opaque(x.Data)
}

// Decode reads an Extension (RFC 9420, Section 7.2). Every extension type
// is accepted and its data kept as bytes (Section 13.4).
func (x *Extension) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Extension"))
	*x = Extension{}
	x.Type = ExtensionType(d.U16("extension_type"))
	x.Data = d.Opaque("extension_data")
}

// encodeExtensions appends Extension extensions<V>.
func encodeExtensions(e *wire.Encoder, exts []Extension) {
	// The length is known without encoding, so the header goes first and
	// a large extension (the ratchet tree) is not moved.
	n := 0
	for i := range exts {
		n += 2 + wire.VarintLen(uint64(len(exts[i].Data))) + len(exts[i].Data)
	}
	if n > wire.MaxVarint {
		e.Vector(func(e *wire.Encoder) { // records the error
			for i := range exts {
				exts[i].Encode(e)
			}
		})
		return
	}
	e.Varint(uint64(n))
	for i := range exts {
		exts[i].Encode(e)
	}
}

// decodeExtensions reads Extension extensions<V> and rejects a list that
// holds one type twice (RFC 9420, Section 13.4).
func decodeExtensions(d *wire.Decoder, field string) []Extension {
	out := []Extension{}
	d.Vector(field, func(d *wire.Decoder) {
		var x Extension
		x.Decode(d)
		out = append(out, x)
	})
	if d.Err() != nil {
		return nil
	}
	if t, dup := duplicateExtension(out); dup {
		d.Fail(field, fmt.Errorf("%w 0x%04x", ErrDuplicateExtension, uint16(t)))
		return nil
	}
	return out
}

// duplicateExtension reports the first extension type that occurs twice in
// exts. Short lists (the normal case) are checked pairwise; long ones with a
// bitmap of all 2^16 types, so the check is linear either way.
func duplicateExtension(exts []Extension) (ExtensionType, bool) {
	if len(exts) <= 32 {
		for i := 1; i < len(exts); i++ {
			for j := 0; j < i; j++ {
				if exts[i].Type == exts[j].Type {
					return exts[i].Type, true
				}
			}
		}
		return 0, false
	}
	seen := new([1 << 16 / 64]uint64)
	for _, x := range exts {
		w, bit := x.Type/64, uint64(1)<<(x.Type%64)
		if seen[w]&bit != 0 {
			return x.Type, true
		}
		seen[w] |= bit
	}
	return 0, false
}

// CheckExtensions returns an error wrapping ErrDuplicateExtension if exts
// holds more than one extension of some type (RFC 9420, Section 13.4).
// Decoding already enforces this; use it on lists built in memory.
func CheckExtensions(exts []Extension) error {
	if t, dup := duplicateExtension(exts); dup {
		return fmt.Errorf("mls: %w 0x%04x", ErrDuplicateExtension, uint16(t))
	}
	return nil
}

// Encode appends the Credential (RFC 9420, Section 5.3). A basic credential
// writes Identity, an X.509 credential Certificates (each as
// Certificate.cert_data<V>), any other type Data as opaque<V>.
func (c *Credential) Encode(e *wire.Encoder) {
	e.U16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		e.Opaque(c.Identity)
	case CredentialX509:
		e.Vector(func(e *wire.Encoder) {
			for _, cert := range c.Certificates {
				e.Opaque(cert)
			}
		})
	default:
		e.Opaque(c.Data)
	}
}

// Decode reads a Credential (RFC 9420, Section 5.3). The body of a
// credential type other than basic and x509 (including the GREASE values
// of Section 13.5) is read as opaque<V> into Data.
func (c *Credential) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Credential"))
	*c = Credential{}
	c.Type = CredentialType(d.U16("credential_type"))
	switch c.Type {
	case CredentialBasic:
		c.Identity = d.Opaque("identity")
	case CredentialX509:
		c.Certificates = [][]byte{}
		d.Vector("certificates", func(d *wire.Decoder) {
			prev := d.Struct("Certificate")
			c.Certificates = append(c.Certificates, d.Opaque("cert_data"))
			d.Struct(prev)
		})
	default:
		c.Data = d.Opaque("credential_data")
	}
}

// encodeU16s appends a vector of uint16 values.
func encodeU16s[T ~uint16](e *wire.Encoder, vs []T) {
	e.Vector(func(e *wire.Encoder) {
		for _, v := range vs {
			e.U16(uint16(v))
		}
	})
}

// decodeU16s reads a vector of uint16 values; an odd byte length fails
// as truncated.
func decodeU16s[T ~uint16](d *wire.Decoder, field string) []T { return wire.Uint16s[T](d, field) }

// encodeU32s appends a vector of uint32 values.
func encodeU32s(e *wire.Encoder, vs []uint32) {
	e.Vector(func(e *wire.Encoder) {
		for _, v := range vs {
			e.U32(v)
		}
	})
}

// decodeU32s reads a vector of uint32 values.
func decodeU32s(d *wire.Decoder, field string) []uint32 { return wire.Uint32s[uint32](d, field) }

// Encode appends the Capabilities (RFC 9420, Section 7.2).
func (c *Capabilities) Encode(e *wire.Encoder) {
	encodeU16s(e, c.Versions)
	encodeU16s(e, c.CipherSuites)
	encodeU16s(e, c.Extensions)
	encodeU16s(e, c.Proposals)
	encodeU16s(e, c.Credentials)
}

// Decode reads Capabilities (RFC 9420, Section 7.2). Unknown and GREASE
// values are kept: Section 13.4 requires receivers to ignore them, which
// is the caller's business, not the decoder's.
func (c *Capabilities) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Capabilities"))
	*c = Capabilities{}
	c.Versions = decodeU16s[ProtocolVersion](d, "versions")
	c.CipherSuites = decodeU16s[ciphersuite.ID](d, "cipher_suites")
	c.Extensions = decodeU16s[ExtensionType](d, "extensions")
	c.Proposals = decodeU16s[ProposalType](d, "proposals")
	c.Credentials = decodeU16s[CredentialType](d, "credentials")
}

// Encode appends the Lifetime (RFC 9420, Section 7.2).
func (l *Lifetime) Encode(e *wire.Encoder) {
	e.U64(l.NotBefore)
	e.U64(l.NotAfter)
}

// Decode reads a Lifetime (RFC 9420, Section 7.2).
func (l *Lifetime) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Lifetime"))
	l.NotBefore = d.U64("not_before")
	l.NotAfter = d.U64("not_after")
}

// Encode appends the HPKECiphertext (RFC 9420, Section 7.6).
func (c *HPKECiphertext) Encode(e *wire.Encoder) {
	e.Opaque(c.KEMOutput)
	e.Opaque(c.Ciphertext)
}

// Decode reads an HPKECiphertext (RFC 9420, Section 7.6).
func (c *HPKECiphertext) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("HPKECiphertext"))
	*c = HPKECiphertext{}
	c.KEMOutput = d.Opaque("kem_output")
	c.Ciphertext = d.Opaque("ciphertext")
}

// decodeIn is Decode with the bytes copied into a.
func (c *HPKECiphertext) decodeIn(d *wire.Decoder, a *wire.Arena) {
	defer d.Struct(d.Struct("HPKECiphertext"))
	*c = HPKECiphertext{}
	c.KEMOutput = d.OpaqueIn("kem_output", a)
	c.Ciphertext = d.OpaqueIn("ciphertext", a)
}
