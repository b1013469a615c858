package mls

import (
	"fmt"

	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
)

// CustomProposal is a proposal of a type RFC 9420 does not define (an
// application's own, or one of an extension such as
// draft-ietf-mls-extensions): its type from the IANA "MLS Proposal Types"
// registry (or the private-use range 0xF000-0xFFFF) and its encoded body.
//
// A custom proposal goes into a commit either by reference (ProposeCustom,
// then a commit covering the pending proposals) or by value
// (CommitOptions.Custom). Either way every member that processes the
// commit, other than those it removes or adds, must list the type in its
// capabilities (ValSem113, RFC 9420, Section 12.2), or the commit is
// rejected with a *ValidationError. A custom proposal does not change the
// tree or the group context: it is carried in the transcript, and the
// receiver sees it in StagedCommit.Proposals (QueuedProposal.CustomType
// and CustomData) to act on.
type CustomProposal struct {
	Type uint16
	Data []byte
}

// proposal checks that c is a custom type and builds its wire form. Types
// 0 and 1-7 (RFC 9420's own) and the GREASE values (which RFC 9420,
// Section 13.5 forbids in Proposal.proposal_type) are refused.
func (c CustomProposal) proposal() (*message.Proposal, error) {
	t := message.ProposalType(c.Type)
	if t == 0 || group.IsDefaultProposal(t) {
		return nil, fmt.Errorf("%w: proposal type %d is not a custom type", ErrInvalidArgument, c.Type)
	}
	if message.IsGREASE(c.Type) {
		return nil, fmt.Errorf("%w: proposal type 0x%04x is a GREASE value, which RFC 9420, Section 13.5 forbids in proposals", ErrInvalidArgument, c.Type)
	}
	data := clone(c.Data)
	if data == nil {
		data = []byte{}
	}
	return &message.Proposal{Type: t, Data: data}, nil
}
