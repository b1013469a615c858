package mls

import "fmt"

// RemoveKind says what a Remove proposal means to this member (OpenMLS's
// RemoveOperation variants).
type RemoveKind int

const (
	// WeLeft: this member proposed its own removal (LeaveGroup).
	WeLeft RemoveKind = iota + 1
	// WeWereRemovedBy: another member or an external sender removed us.
	WeWereRemovedBy
	// TheyLeft: another member proposed its own removal.
	TheyLeft
	// TheyWereRemovedBy: another member was removed by someone else.
	TheyWereRemovedBy
	// WeRemovedThem: this member removed another member.
	WeRemovedThem
)

func (k RemoveKind) String() string {
	switch k {
	case WeLeft:
		return "we left"
	case WeWereRemovedBy:
		return "we were removed"
	case TheyLeft:
		return "they left"
	case TheyWereRemovedBy:
		return "they were removed"
	case WeRemovedThem:
		return "we removed them"
	}
	return fmt.Sprintf("RemoveKind(%d)", int(k))
}

// RemoveOperation interprets a Remove proposal of a staged commit from
// this member's point of view (OpenMLS's RemoveOperation).
type RemoveOperation struct {
	Kind RemoveKind
	// Removed is the leaf removed.
	Removed uint32
	// By is who proposed the removal (for an inline Remove, the committer).
	By Sender
}

// NewRemoveOperation interprets q, a Remove proposal of a staged commit of
// g (from StagedCommit.RemoveProposals).
func NewRemoveOperation(q *QueuedProposal, g *Group) (*RemoveOperation, error) {
	if q == nil || q.p == nil || g == nil {
		return nil, fmt.Errorf("%w: nil proposal or group", ErrInvalidArgument)
	}
	removed, ok := q.Removed()
	if !ok {
		return nil, fmt.Errorf("%w: not a Remove proposal", ErrInvalidArgument)
	}
	me := g.OwnLeafIndex()
	by := q.Sender()
	byMe := by.Type == SenderMember && by.Index == me
	selfRemove := by.Type == SenderMember && by.Index == removed
	op := &RemoveOperation{Removed: removed, By: by}
	switch {
	case removed == me && selfRemove:
		op.Kind = WeLeft
	case removed == me:
		op.Kind = WeWereRemovedBy
	case selfRemove:
		op.Kind = TheyLeft
	case byMe:
		op.Kind = WeRemovedThem
	default:
		op.Kind = TheyWereRemovedBy
	}
	return op, nil
}
