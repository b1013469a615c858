package message

import (
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/wire"
)

// This file holds PreSharedKeyID, the proposals of RFC 9420 Section 12.1,
// ProposalOrRef and Commit.

// Encode appends the PreSharedKeyID (RFC 9420, Section 8.4): psk_id for
// external PSKs, usage, psk_group_id and psk_epoch for resumption PSKs,
// then psk_nonce.
func (p *PreSharedKeyID) Encode(e *wire.Encoder) {
	e.U8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		e.Opaque(p.PSKID)
	case PSKResumption:
		e.U8(uint8(p.Usage))
		e.Opaque(p.PSKGroupID)
		e.U64(p.PSKEpoch)
	}
	e.Opaque(p.Nonce)
}

// Decode reads a PreSharedKeyID (RFC 9420, Section 8.4). A psktype other
// than external or resumption is ErrUnknownValue. The resumption usage is
// kept as sent; which values are acceptable depends on context (Section
// 12.2).
func (p *PreSharedKeyID) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("PreSharedKeyID"))
	*p = PreSharedKeyID{}
	p.Type = PSKType(d.U8("psktype"))
	if d.Err() != nil {
		return
	}
	switch p.Type {
	case PSKExternal:
		p.PSKID = d.Opaque("psk_id")
	case PSKResumption:
		p.Usage = ResumptionPSKUsage(d.U8("usage"))
		p.PSKGroupID = d.Opaque("psk_group_id")
		p.PSKEpoch = d.U64("psk_epoch")
	default:
		failUnknown(d, "psktype", uint64(p.Type))
		return
	}
	p.Nonce = d.Opaque("psk_nonce")
}

func (p *PreSharedKeyID) check() error {
	switch p.Type {
	case PSKExternal:
		if p.PSKGroupID != nil || p.PSKEpoch != 0 || p.Usage != 0 {
			return inconsistent("PreSharedKeyID", "psktype", "resumption fields set on an external PSK")
		}
	case PSKResumption:
		if p.PSKID != nil {
			return inconsistent("PreSharedKeyID", "psktype", "psk_id set on a resumption PSK")
		}
	default:
		return inconsistent("PreSharedKeyID", "psktype", "unknown PSK type %d", p.Type)
	}
	return nil
}

// Encode appends the Add proposal body (RFC 9420, Section 12.1.1).
func (a *AddProposal) Encode(e *wire.Encoder) { a.KeyPackage.Encode(e) }

// Decode reads an Add proposal body (RFC 9420, Section 12.1.1).
func (a *AddProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Add"))
	a.KeyPackage.Decode(d)
}

// Encode appends the Update proposal body (RFC 9420, Section 12.1.2).
func (u *UpdateProposal) Encode(e *wire.Encoder) { u.LeafNode.Encode(e) }

// Decode reads an Update proposal body (RFC 9420, Section 12.1.2).
func (u *UpdateProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Update"))
	u.LeafNode.Decode(d)
}

// Encode appends the Remove proposal body (RFC 9420, Section 12.1.3).
func (r *RemoveProposal) Encode(e *wire.Encoder) { e.U32(r.Removed) }

// Decode reads a Remove proposal body (RFC 9420, Section 12.1.3).
func (r *RemoveProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Remove"))
	r.Removed = d.U32("removed")
}

// Encode appends the PreSharedKey proposal body (RFC 9420, Section 12.1.4).
func (p *PreSharedKeyProposal) Encode(e *wire.Encoder) { p.PSK.Encode(e) }

// Decode reads a PreSharedKey proposal body (RFC 9420, Section 12.1.4).
func (p *PreSharedKeyProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("PreSharedKey"))
	p.PSK.Decode(d)
}

// Encode appends the ReInit proposal body (RFC 9420, Section 12.1.5).
func (r *ReInitProposal) Encode(e *wire.Encoder) {
	e.Opaque(r.GroupID)
	e.U16(uint16(r.Version))
	e.U16(uint16(r.CipherSuite))
	encodeExtensions(e, r.Extensions)
}

// Decode reads a ReInit proposal body (RFC 9420, Section 12.1.5).
func (r *ReInitProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ReInit"))
	*r = ReInitProposal{}
	r.GroupID = d.Opaque("group_id")
	r.Version = ProtocolVersion(d.U16("version"))
	r.CipherSuite = ciphersuite.ID(d.U16("cipher_suite"))
	r.Extensions = decodeExtensions(d, "extensions")
}

// Encode appends the ExternalInit proposal body (RFC 9420, Section 12.1.6).
func (x *ExternalInitProposal) Encode(e *wire.Encoder) { e.Opaque(x.KEMOutput) }

// Decode reads an ExternalInit proposal body (RFC 9420, Section 12.1.6).
func (x *ExternalInitProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ExternalInit"))
	x.KEMOutput = d.Opaque("kem_output")
}

// Encode appends the GroupContextExtensions proposal body (RFC 9420,
// Section 12.1.7).
func (g *GroupContextExtensionsProposal) Encode(e *wire.Encoder) {
	encodeExtensions(e, g.Extensions)
}

// Decode reads a GroupContextExtensions proposal body (RFC 9420, Section
// 12.1.7).
func (g *GroupContextExtensionsProposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("GroupContextExtensions"))
	g.Extensions = decodeExtensions(d, "extensions")
}

// Encode appends the Proposal (RFC 9420, Section 12.1). The body is taken
// from the field matching Type (a nil field encodes as its zero value; the
// Marshal methods reject that); a type RFC 9420 does not define writes Data
// as opaque<V>.
func (p *Proposal) Encode(e *wire.Encoder) {
	e.U16(uint16(p.Type))
	switch p.Type {
	case ProposalAdd:
		orZero(p.Add).Encode(e)
	case ProposalUpdate:
		orZero(p.Update).Encode(e)
	case ProposalRemove:
		orZero(p.Remove).Encode(e)
	case ProposalPSK:
		orZero(p.PSK).Encode(e)
	case ProposalReInit:
		orZero(p.ReInit).Encode(e)
	case ProposalExternalInit:
		orZero(p.ExternalInit).Encode(e)
	case ProposalGroupContextExtensions:
		orZero(p.GroupContextExtensions).Encode(e)
	default:
		e.Opaque(p.Data)
	}
}

// orZero returns p, or a pointer to a zero T if p is nil.
func orZero[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// Decode reads a Proposal (RFC 9420, Section 12.1). The body of a proposal
// type RFC 9420 does not define (including GREASE values, which Section
// 13.5 forbids here but asks receivers to treat as any unsupported value)
// is read as opaque<V> into Data, the encoding other implementations use
// for custom proposals; whether it is acceptable is decided by proposal
// validation (Section 12.2).
func (p *Proposal) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Proposal"))
	*p = Proposal{}
	p.Type = ProposalType(d.U16("proposal_type"))
	if d.Err() != nil {
		return
	}
	switch p.Type {
	case ProposalAdd:
		p.Add = new(AddProposal)
		p.Add.Decode(d)
	case ProposalUpdate:
		p.Update = new(UpdateProposal)
		p.Update.Decode(d)
	case ProposalRemove:
		p.Remove = new(RemoveProposal)
		p.Remove.Decode(d)
	case ProposalPSK:
		p.PSK = new(PreSharedKeyProposal)
		p.PSK.Decode(d)
	case ProposalReInit:
		p.ReInit = new(ReInitProposal)
		p.ReInit.Decode(d)
	case ProposalExternalInit:
		p.ExternalInit = new(ExternalInitProposal)
		p.ExternalInit.Decode(d)
	case ProposalGroupContextExtensions:
		p.GroupContextExtensions = new(GroupContextExtensionsProposal)
		p.GroupContextExtensions.Decode(d)
	default:
		p.Data = d.Opaque("proposal_data")
	}
}

// IsKnown reports whether the proposal's type is one RFC 9420 defines.
func (t ProposalType) IsKnown() bool {
	return t >= ProposalAdd && t <= ProposalGroupContextExtensions
}

func (p *Proposal) check() error {
	set := 0
	for _, ok := range []bool{p.Add != nil, p.Update != nil, p.Remove != nil, p.PSK != nil,
		p.ReInit != nil, p.ExternalInit != nil, p.GroupContextExtensions != nil} {
		if ok {
			set++
		}
	}
	if !p.Type.IsKnown() {
		if set != 0 {
			return inconsistent("Proposal", "proposal_type", "type %d is not defined by RFC 9420 but a typed body is set", p.Type)
		}
		return nil
	}
	if p.Data != nil {
		return inconsistent("Proposal", "proposal_type", "Data set on a proposal of type %d", p.Type)
	}
	var match bool
	switch p.Type {
	case ProposalAdd:
		match = p.Add != nil
	case ProposalUpdate:
		match = p.Update != nil
	case ProposalRemove:
		match = p.Remove != nil
	case ProposalPSK:
		match = p.PSK != nil
	case ProposalReInit:
		match = p.ReInit != nil
	case ProposalExternalInit:
		match = p.ExternalInit != nil
	case ProposalGroupContextExtensions:
		match = p.GroupContextExtensions != nil
	}
	if !match || set != 1 {
		return inconsistent("Proposal", "proposal_type", "type %d needs exactly its own body set", p.Type)
	}
	switch {
	case p.Add != nil:
		return p.Add.KeyPackage.check()
	case p.Update != nil:
		return p.Update.LeafNode.check()
	case p.PSK != nil:
		return p.PSK.PSK.check()
	case p.ReInit != nil:
		return CheckExtensions(p.ReInit.Extensions)
	case p.GroupContextExtensions != nil:
		return CheckExtensions(p.GroupContextExtensions.Extensions)
	}
	return nil
}

// Encode appends the ProposalOrRef (RFC 9420, Section 12.4): the proposal
// if Proposal is set, otherwise the reference.
func (p *ProposalOrRef) Encode(e *wire.Encoder) {
	if p.Proposal != nil {
		e.U8(uint8(ProposalOrRefProposal))
		p.Proposal.Encode(e)
		return
	}
	e.U8(uint8(ProposalOrRefReference))
	e.Opaque(p.Reference)
}

// Decode reads a ProposalOrRef (RFC 9420, Section 12.4). A type other than
// proposal or reference is ErrUnknownValue.
func (p *ProposalOrRef) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("ProposalOrRef"))
	*p = ProposalOrRef{}
	t := ProposalOrRefType(d.U8("type"))
	if d.Err() != nil {
		return
	}
	switch t {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.Decode(d)
	case ProposalOrRefReference:
		p.Reference = d.Opaque("reference")
	default:
		failUnknown(d, "type", uint64(t))
	}
}

func (p *ProposalOrRef) check() error {
	if p.Proposal != nil {
		if p.Reference != nil {
			return inconsistent("ProposalOrRef", "type", "both Proposal and Reference set")
		}
		return p.Proposal.check()
	}
	if p.Reference == nil {
		return inconsistent("ProposalOrRef", "type", "neither Proposal nor Reference set")
	}
	return nil
}

// Encode appends the Commit (RFC 9420, Section 12.4).
func (c *Commit) Encode(e *wire.Encoder) {
	e.Vector(func(e *wire.Encoder) {
		for i := range c.Proposals {
			c.Proposals[i].Encode(e)
		}
	})
	e.Optional(c.Path != nil)
	if c.Path != nil {
		c.Path.Encode(e)
	}
}

// Decode reads a Commit (RFC 9420, Section 12.4).
func (c *Commit) Decode(d *wire.Decoder) {
	defer d.Struct(d.Struct("Commit"))
	*c = Commit{Proposals: []ProposalOrRef{}}
	d.Vector("proposals", func(d *wire.Decoder) {
		var p ProposalOrRef
		p.Decode(d)
		c.Proposals = append(c.Proposals, p)
	})
	if d.Optional("path") {
		c.Path = new(UpdatePath)
		c.Path.Decode(d)
	}
}

func (c *Commit) check() error {
	for i := range c.Proposals {
		if err := c.Proposals[i].check(); err != nil {
			return fmt.Errorf("proposals[%d]: %w", i, err)
		}
	}
	if c.Path != nil {
		return c.Path.LeafNode.check()
	}
	return nil
}
