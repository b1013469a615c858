package mls

import (
	"context"
	"fmt"

	"github.com/mlskit/mls/internal/group"
	"github.com/mlskit/mls/internal/message"
)

// This file implements the proposals of the MLS extensions draft
// (../shared/spec/draft-ietf-mls-extensions.md) that change the group:
// SelfRemove and AppDataUpdate. Their validation runs in internal/group
// (ApplyProposals, ValidateProposal), so a PublicGroup applies the same
// rules as a member. Their type codes are the draft's suggested values.

// Proposal types of draft-ietf-mls-extensions ("IANA Considerations",
// "MLS Proposal Types"; suggested values, not yet assigned by IANA).
const (
	ProposalTypeAppDataUpdate uint16 = uint16(group.ProposalAppDataUpdate) // 0x0008, External: Y, Path Required: N
	ProposalTypeSelfRemove    uint16 = uint16(group.ProposalSelfRemove)    // 0x000a, External: N, Path Required: Y
)

// ProposeSelfRemove sends a SelfRemove proposal (draft-ietf-mls-
// extensions, "SelfRemove Proposal"): this member asks to leave, and
// another member's commit removes its leaf. Unlike LeaveGroup's Remove,
// the proposal names no leaf: receivers remove the proposal's sender.
// The draft makes it a PublicMessage, whatever the group's outgoing
// policy; a group that accepts only PrivateMessage fails with
// ErrInvalidArgument and ErrWireFormat. Every member must list
// ProposalTypeSelfRemove in its capabilities (a "self-remove-capable
// group"), or this fails with a *ValidationError (ValSem113).
//
// A commit covers a SelfRemove only by reference, never the committer's
// own, and with an UpdatePath (the draft's "Path Required: Y"); a
// commit that breaks one of these rules is rejected with a
// *ValidationError (rules SelfRemoveInline, SelfRemoveCommitter,
// ValSem201). An external joiner covers it by reference too, given the
// message in ExternalJoinOptions.SelfRemoves. Send at most one per epoch (the draft's MUST): a second
// one fails with ErrInvalidArgument.
func (g *Group) ProposeSelfRemove(ctx context.Context) (*Message, ProposalRef, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	for _, q := range g.props {
		if q.p.Type == group.ProposalSelfRemove && q.sender.Type == message.SenderMember && q.sender.LeafIndex == uint32(g.st.own) {
			return nil, nil, fmt.Errorf("%w: this member already sent a SelfRemove proposal in epoch %d", ErrInvalidArgument, g.st.GC.Epoch)
		}
	}
	wf, err := g.outgoingWireFormat(WireFormatPublicMessage)
	if err != nil {
		return nil, nil, err
	}
	if err := group.CheckProposalSupported(g.st.Tree.View(), group.ProposalSelfRemove); err != nil {
		return nil, nil, err
	}
	return g.proposeAs(ctx, &message.Proposal{Type: group.ProposalSelfRemove, Data: []byte{}}, nil, wf)
}

// AppDataOp is the operation of an AppDataUpdate proposal.
type AppDataOp uint8

// The AppDataOp values of the draft's AppDataUpdateOperation (0 is
// invalid).
const (
	AppDataOpUpdate AppDataOp = 1 // update: data is given to the component's logic
	AppDataOpRemove AppDataOp = 2 // remove: the component's entry is deleted
)

// AppDataUpdate is an AppDataUpdate proposal (draft-ietf-mls-extensions,
// "Updating Application Data in the GroupContext"): it changes one
// component's entry of the GroupContext's app_data_dictionary without a
// GroupContextExtensions proposal and without an UpdatePath. Data is the
// update for AppDataOpUpdate and must be empty for AppDataOpRemove.
type AppDataUpdate struct {
	Component ComponentID
	Op        AppDataOp
	Data      []byte
}

// AppDataFunc is the application logic of the components (ClientOptions.
// AppData). For each component that a commit's AppDataUpdate proposals
// update, it gets the component's current data (present is false if the
// dictionary has none) and the updates, in commit order, and returns the
// new data, or an error if the component is unknown to the application or
// the updates invalid: the commit is then rejected with a
// *ValidationError of rule AppDataUpdateRejected wrapping that error.
type AppDataFunc func(component ComponentID, current []byte, present bool, updates [][]byte) ([]byte, error)

// ReplaceAppData is the default AppDataFunc: every component is known and
// each update replaces the component's data (the last one wins).
func ReplaceAppData(_ ComponentID, _ []byte, _ bool, updates [][]byte) ([]byte, error) {
	return clone(updates[len(updates)-1]), nil
}

// appData returns the client's AppDataFunc as internal/group takes it.
func (c *Client) appData() group.AppDataFunc {
	if c == nil || c.opts.AppData == nil {
		return nil
	}
	fn := c.opts.AppData
	return func(id uint16, cur []byte, present bool, ups [][]byte) ([]byte, error) {
		return fn(ComponentID(id), cur, present, ups)
	}
}

// proposal checks u and builds its wire form.
func (u AppDataUpdate) proposal() (*message.Proposal, error) {
	switch u.Op {
	case AppDataOpUpdate:
	case AppDataOpRemove:
		if len(u.Data) != 0 {
			return nil, fmt.Errorf("%w: an AppDataUpdate remove carries no data", ErrInvalidArgument)
		}
	default:
		return nil, fmt.Errorf("%w: AppDataUpdate operation %d is neither update nor remove", ErrInvalidArgument, u.Op)
	}
	data := u.Data
	if data == nil {
		data = []byte{}
	}
	b, err := (&group.AppDataUpdate{Component: uint16(u.Component), Op: group.AppDataUpdateOperation(u.Op), Update: data}).Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return &message.Proposal{Type: group.ProposalAppDataUpdate, Data: b}, nil
}

// ProposeAppDataUpdate sends an AppDataUpdate proposal (draft-ietf-mls-
// extensions, "Updating Application Data in the GroupContext") for
// component with operation op (data is the update; empty for a remove),
// and queues it. A commit that covers it changes the GroupContext's
// app_data_dictionary (added at the end of the extensions if the group
// has none) after every RFC 9420 proposal, and needs no UpdatePath. In
// one commit a component may have one remove or several updates, never
// both nor two removes, and a remove needs an entry to remove; a commit
// that breaks this is rejected with a *ValidationError (rules
// AppDataUpdateRemoveTwice, AppDataUpdateMixed,
// AppDataUpdateRemoveAbsent). Every member must list
// ProposalTypeAppDataUpdate in its capabilities (ValSem113) and the
// app_data_dictionary extension (ValSem209).
func (g *Group) ProposeAppDataUpdate(ctx context.Context, component ComponentID, op AppDataOp, data []byte) (*Message, ProposalRef, error) {
	p, err := AppDataUpdate{Component: component, Op: op, Data: data}.proposal()
	if err != nil {
		return nil, nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.checkCall(ctx); err != nil {
		return nil, nil, err
	}
	if err := g.checkOperational(); err != nil {
		return nil, nil, err
	}
	if err := group.CheckProposalSupported(g.st.Tree.View(), group.ProposalAppDataUpdate); err != nil {
		return nil, nil, err
	}
	return g.propose(ctx, p, nil)
}
